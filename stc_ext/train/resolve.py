"""Which value each config field takes: defaults < resumed checkpoint < config file < options.

``options`` are the settings given explicitly (e.g. the parsed command-line flags); a
resumed checkpoint (``resume``, from the options or the file) contributes the config it was
trained with, except ``resume`` and ``overwrite``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from .checkpoint import load_checkpoint
from .config import (
    EvalConfig,
    RunConfig,
    TrainConfig,
    check_checkpoint_task,
    load_config_file,
    merge,
)

__all__ = ["resolve_config", "resolve_eval_config", "resolve_train_config"]

R = TypeVar("R", bound=RunConfig)


def resolve_config(
    cls: type[R],
    options: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike | None = None,
    task: str = "classify",
    where: str = "train config",
) -> R:
    """A ``cls`` from defaults < the resumed checkpoint's config < ``config_file`` <
    ``options``; a resumed checkpoint must be of ``task``."""
    options = dict(options or {})
    from_file = load_config_file(config_file) if config_file is not None else {}
    resume = options.get("resume", from_file.get("resume"))
    layers: list[Mapping[str, Any]] = []
    if resume:
        checkpoint = load_checkpoint(resume, field="resume", mmap=True)
        check_checkpoint_task(checkpoint.get("task", "classify"), task, resume)
        saved = checkpoint["config"]
        layers.append({k: v for k, v in saved.items() if k not in ("resume", "overwrite")})
    layers += [from_file, options]
    return merge(cls, *layers, where=where)


def resolve_train_config(
    options: Mapping[str, Any] | None = None, config_file: str | os.PathLike | None = None
) -> TrainConfig:
    """``resolve_config`` for ``train`` (``stc train``)."""
    return resolve_config(TrainConfig, options, config_file)


def resolve_eval_config(
    options: Mapping[str, Any] | None = None, config_file: str | os.PathLike | None = None
) -> EvalConfig:
    """Defaults < ``config_file`` < ``options`` (explicitly given settings)."""
    from_file = load_config_file(config_file) if config_file is not None else {}
    return merge(EvalConfig, from_file, dict(options or {}), where="evaluate config")
