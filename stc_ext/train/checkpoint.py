"""Checkpoints: the format, loading, RNG state capture, and initialising from weights.

A training checkpoint is a dict of plain types and tensors (loadable with
``torch.load(weights_only=True)``)::

    format      CHECKPOINT_FORMAT
    task        the task that made it ("classify": stc train, "transfer": stc transfer)
    model       the task's model state (no ``module.``/``_orig_mod.`` prefixes)
    optimizer, scheduler, scaler          their state_dicts (scaler: None without fp16)
    epoch       epochs completed, or the epoch in progress when ``batches_done`` > 0
    batches_done  micro-batches of that epoch already consumed (mid-epoch stop)
    step        optimiser steps taken in the whole run
    progress    the interrupted epoch's running sums (loss, correct, clips)
    rng         one entry per rank: torch, CUDA, numpy and python ``random`` states
    config      the resolved run config as a dict
    classes     class names; history: one metrics dict per finished epoch; best: the best
                epoch's metrics
    init_model  (optional) the weights another network starts from when this file is given
                as ``init``, when they are not ``model`` (a transfer run's: its student)

plus what the task adds (a transfer run: the teacher file's SHA-256). Files are written
atomically (:mod:`.atomic`).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .atomic import atomic_save, atomic_write_text
from .config import ConfigError, upgrade_saved_config

__all__ = [
    "CHECKPOINT_FORMAT",
    "atomic_save",
    "atomic_write_text",
    "capture_rng_state",
    "describe_contents",
    "load_checkpoint",
    "load_init_weights",
    "read_weights_file",
    "restore_rng_state",
]

logger = logging.getLogger("stc_ext.train")

CHECKPOINT_FORMAT = "stc_ext.train/1"


def read_weights_file(path: str | os.PathLike, field: str | None, mmap: bool = False) -> Any:
    """``models.load_file`` for a file named by config ``field``: its errors as
    :class:`ConfigError` naming the field and the file."""
    from ..models.checkpoint import CheckpointFileError, load_file

    try:
        return load_file(path, mmap=mmap)
    except CheckpointFileError as exc:
        raise ConfigError(str(exc), field=field) from None


def describe_contents(obj: Any) -> str:
    """What a loaded file holds, for messages: "a 'stc_ext.transfer.student/1' file", "a
    state dict of 62 tensors", "a Tensor", ..."""
    if isinstance(obj, Mapping):
        if isinstance(obj.get("format"), str):
            return f"a {obj['format']!r} file"
        tensors = sum(isinstance(v, torch.Tensor) for v in obj.values())
        if tensors:
            return f"a state dict of {tensors} tensors"
        keys = ", ".join(map(str, list(obj)[:6]))
        return f"a mapping of {keys}" if keys else "an empty mapping"
    return f"a {type(obj).__name__}"


def load_checkpoint(
    path: str | os.PathLike, field: str | None = None, mmap: bool = False
) -> dict[str, Any]:
    """Read a training checkpoint on the CPU (``weights_only=True``) and check its format.

    The saved config's old field names are replaced by the current ones. ``field``: the
    config field that named the file (errors name it); ``mmap``: map the tensors instead of
    reading them (to look at the config only).

    Raises:
        ConfigError: the file cannot be read (``models.load_file`` says why) or is not a
            training checkpoint (the message says what it is).
    """
    obj = read_weights_file(path, field, mmap)
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(
            f"{path}: is {describe_contents(obj)}, not a stc_ext training checkpoint (format "
            f"{CHECKPOINT_FORMAT!r}: a run's last.pt or best.pt); init starts a run from "
            "other weights",
            field=field,
        )
    obj["config"] = upgrade_saved_config(obj["config"])
    return obj


# ---------------------------------------------------------------------------- RNG state


def capture_rng_state() -> dict[str, Any]:
    """This process's torch (CPU and CUDA), numpy and python ``random`` states, as plain types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of ``capture_rng_state``."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            logger.warning(
                "checkpoint holds %d CUDA RNG states for %d devices; not restored",
                len(cuda),
                torch.cuda.device_count(),
            )


# ---------------------------------------------------------------------------- init weights


def load_init_weights(
    model: nn.Module, path: str | os.PathLike, frames: int, strict: bool = True
) -> dict[str, list[str]]:
    """Initialise ``model`` from the weights in ``path`` (any checkpoint with a state_dict).

    Accepts this package's training checkpoints (their ``init_model`` when they hold one:
    ``stc transfer``'s ``last.pt`` gives its student), ``stc transfer``'s ``student.pt``, bare
    state_dicts, kenshohara/3D-ResNets files and other ``{"state_dict"|"model": ...}``
    containers (``module.``/``_orig_mod.`` prefixes stripped). The classifier (``fc.``) is
    left freshly initialised when its shape differs (another class count) or the file has
    none (a backbone); STC blocks stay fresh when the source has none (a plain 3D ResNet).

    Returns:
        ``{"loaded": [...], "reinitialised": [...], "kept_fresh": [...]}`` (model keys).

    Raises:
        ConfigError: (field ``init``) the file is missing, or other keys are missing or
            mis-shaped (``strict``); the message names the frame count when the checkpoint
            records a different one.
    """
    from ..models.checkpoint import match_state_dict, read_state_dict
    from ..models.resnet3d import infer_placement

    path = Path(path)
    raw = read_weights_file(path, "init")
    if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
        if "init_model" in raw:
            raw = {**raw, "model": raw["init_model"]}
        elif raw.get("task", "classify") != "classify":
            raise ConfigError(
                f"{path}: this {raw['task']!r} checkpoint predates checkpoints that carry "
                "their init weights; use the file its run exported (e.g. student.pt)",
                field="init",
            )
    try:
        state, _ = read_state_dict(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: {exc}", field="init") from None
    source_frames = None
    if isinstance(raw, dict) and isinstance(raw.get("config"), dict):
        source_frames = raw["config"].get("frames")
    own = model.state_dict()
    ignore = tuple(
        k
        for k in ("fc.weight", "fc.bias")
        if k in own and k in state and tuple(state[k].shape) != tuple(own[k].shape)
    )
    source_has_stc = any(".stc." in k for k in state)
    source_has_fc = any(k.startswith("fc.") for k in state)

    def fresh(key: str) -> bool:
        return (".stc." in key and not source_has_stc) or (
            key.startswith("fc.") and not source_has_fc
        )

    loadable, report = match_state_dict(model, state, fresh=fresh, ignore=ignore)
    if not report.ok and strict:
        hint = ""
        if source_frames is not None and source_frames != frames:
            hint = (
                f"\nthe checkpoint was trained with frames={source_frames} but this run uses "
                f"frames={frames}; STC blocks are sized for the clip length"
            )
        theirs, ours = infer_placement(state), infer_placement(own)
        if theirs is not None and ours is not None and theirs != ours:
            hint += (
                f"\nthe checkpoint's STC blocks are placed per {theirs!r}, this model's per "
                f"{ours!r}: set placement to {theirs}"
            )
        raise ConfigError(
            f"{path}: the weights do not match the model:\n{report.problems()}{hint}",
            field="init",
        )
    with torch.no_grad():
        for key, value in loadable.items():
            own[key].copy_(value)
    if ignore:
        logger.info(
            "init: classifier re-initialised (checkpoint fc %s, model fc %s)",
            tuple(state["fc.weight"].shape),
            tuple(own["fc.weight"].shape),
        )
    if not source_has_fc:
        logger.info("init: the checkpoint has no classifier: fc initialised fresh")
    stc_fresh = [k for k in report.kept_fresh if ".stc." in k]
    if stc_fresh:
        logger.info(
            "init: %d STC tensors kept fresh (the checkpoint has no STC blocks)", len(stc_fresh)
        )
    return {
        "loaded": report.loaded,
        "reinitialised": list(report.ignored),
        "kept_fresh": report.kept_fresh,
    }
