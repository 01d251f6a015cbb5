"""Loading state_dicts saved by other code into our models, with a report of what matched.

``load_file`` is the one way a file of weights is read, by every command and loader
(``stc train --init/--resume``, ``stc evaluate``, ``stc inflate``, ``stc transfer
--teacher-weights``, ``read_state_dict``): on the CPU, with ``weights_only=True``, and a
:class:`CheckpointFileError` naming the file and what it is instead (missing, empty, not a
PyTorch file, truncated, a pickled object rather than tensors) when it cannot be read.

``load_3d_resnets_checkpoint`` reads kenshohara/3D-ResNets-PyTorch files (``{"arch": ...,
"state_dict": {"module.conv1.weight": ...}, ...}``, saved from a ``DataParallel`` model)
into a plain or STC ``ResNet3D``; the STC blocks, which such files do not have, keep their
fresh initialisation. Nothing is downloaded.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

Checkpoint = str | os.PathLike | Mapping[str, object]

# Containers under which training scripts commonly nest the weights.
_CONTAINER_KEYS = ("state_dict", "model", "model_state", "model_state_dict")
_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile
_LISTED = 12  # keys shown per category in messages


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6
_PICKLE_MAGIC = b"\x80"  # the legacy format: a pickle (protocol 2 or later)
_RESAVE = "re-save it with torch.save(model.state_dict(), PATH)"


class CheckpointFileError(ValueError):
    """A file cannot be read as PyTorch weights.

    Attributes:
        path: the file.
        problem: what it is instead, and what to do (the message is ``"<path>: <problem>"``).
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _load_problem(exc: Exception, size: int) -> str:
    """What a ``torch.load`` failure means for the user."""
    message = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in message:
        found = re.search(r"GLOBAL ([\w.]+)", message)
        what = f" ({found.group(1)})" if found else ""
        return (
            f"holds a pickled Python object{what}, e.g. a whole model saved with "
            "torch.save(model), rather than a state dict of tensors; such files can run code "
            f"when loaded and are not read: {_RESAVE}"
        )
    # The zip reader fails with EINVAL or a "zip archive" message on a cut archive; the
    # legacy unpickler runs out of data.
    if isinstance(exc, (EOFError, OSError)) or "zip archive" in message or "EOF" in message:
        return (
            f"is truncated or corrupt ({size} bytes, the archive is incomplete): an "
            "interrupted save, download or copy? Use a complete copy of the file"
        )
    if isinstance(exc, pickle.UnpicklingError):
        return "is not a PyTorch file (its contents do not unpickle)"
    first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return f"cannot be read by torch.load: {first}"


def load_file(path: str | os.PathLike, mmap: bool = False) -> Any:
    """What ``torch.save`` wrote to ``path``, read on the CPU with ``weights_only=True``.

    ``mmap``: map the tensors instead of reading them (to look at metadata only); files in
    the legacy (pre-1.6) format, which cannot be mapped, are read whole.

    Raises:
        CheckpointFileError: the file is missing, a folder, empty, not a PyTorch file,
            truncated, or holds pickled objects other than tensors and plain containers.
    """
    p = Path(path)
    if p.is_dir():
        raise CheckpointFileError(p, "is a folder, not a file of weights")
    if not p.is_file():
        raise CheckpointFileError(p, "not found")
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise CheckpointFileError(p, f"cannot be opened: {exc.strerror or exc}") from None
    if size == 0:
        raise CheckpointFileError(
            p, "is empty (0 bytes): an interrupted save or copy? Use a complete copy of the file"
        )
    if not head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        kind = (
            f"it is text beginning {head[:24].decode('utf-8')!r}"
            if _looks_like_text(head)
            else f"it begins with the bytes {head[:8].hex(' ')}"
        )
        raise CheckpointFileError(
            p, f"is not a PyTorch file ({kind}); expected a file written by torch.save"
        )
    try:
        return torch.load(
            p, map_location="cpu", weights_only=True, mmap=mmap and head.startswith(_ZIP_MAGIC)
        )
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, ValueError, KeyError) as exc:
        raise CheckpointFileError(p, _load_problem(exc, size)) from None


class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or shapes do not match the model; carries the ``LoadReport``."""

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report


def format_key_list(keys: Sequence[str]) -> str:
    """Up to a dozen keys, comma-separated, with a count of the rest."""
    shown = ", ".join(keys[:_LISTED])
    return shown + (f", ... ({len(keys) - _LISTED} more)" if len(keys) > _LISTED else "")


@dataclass
class LoadReport:
    """What loading a checkpoint did, by model key (checkpoint keys for ``unexpected``)."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the checkpoint
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the model
    shape_mismatch: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(
        default_factory=dict
    )  # key -> (checkpoint shape, model shape)
    kept_fresh: list[str] = field(default_factory=list)  # model-only by design (STC blocks)
    ignored: list[str] = field(default_factory=list)  # skipped on request (``ignore``)
    defaulted: list[str] = field(default_factory=list)  # BN counters absent from old files

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatch)

    def problems(self) -> str:
        """The mismatches as text, one category per line ('' when ``ok``)."""
        lines = []
        if self.missing:
            lines.append(
                f"missing from the checkpoint ({len(self.missing)}): "
                f"{format_key_list(self.missing)}"
            )
        if self.unexpected:
            lines.append(
                f"unexpected in the checkpoint ({len(self.unexpected)}): "
                f"{format_key_list(self.unexpected)}"
            )
        if self.shape_mismatch:
            items = [
                f"{k} {tuple(a)} vs model {tuple(b)}" for k, (a, b) in self.shape_mismatch.items()
            ]
            lines.append(f"shape mismatches ({len(items)}): {format_key_list(items)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        summary = (
            f"loaded {len(self.loaded)} tensors, kept {len(self.kept_fresh)} fresh, "
            f"ignored {len(self.ignored)}"
        )
        return summary if self.ok else summary + "\n" + self.problems()


def read_state_dict(checkpoint: Checkpoint) -> tuple[dict[str, Tensor], dict[str, object]]:
    """The tensors of a checkpoint file or dict, unwrapped and without wrapper prefixes.

    Accepts a path (read by :func:`load_file`) or an already loaded object; unwraps
    ``state_dict``/``model`` containers and strips ``module.`` (DataParallel) and
    ``_orig_mod.`` (torch.compile) prefixes. Returns (state_dict, metadata) where metadata
    holds the container's non-tensor entries (e.g. 3D-ResNets-PyTorch's ``arch`` and
    ``epoch``).

    Raises:
        CheckpointFileError: a file that cannot be read, or holds no state dict.
        TypeError, ValueError: a loaded object that is not a mapping, or holds no tensors.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        obj = load_file(checkpoint)
        try:
            return read_state_dict(obj)
        except (TypeError, ValueError) as exc:
            raise CheckpointFileError(checkpoint, str(exc)) from None
    obj: object = checkpoint
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"holds a {type(obj).__name__}, not a state dict (a mapping of names to tensors)"
        )
    metadata: dict[str, object] = {}
    for key in _CONTAINER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, Tensor) for v in inner.values()):
            metadata = {
                k: v for k, v in obj.items() if k != key and isinstance(v, (str, int, float))
            }
            obj = inner
            break
    state: dict[str, Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            continue
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        state[key] = value
    if not state:
        raise ValueError("holds no tensors (not a state dict of weights)")
    return state, metadata


def match_state_dict(
    model: nn.Module,
    state: Mapping[str, Tensor],
    *,
    fresh: Callable[[str], bool] = lambda key: False,
    ignore: Sequence[str] = (),
) -> tuple[dict[str, Tensor], LoadReport]:
    """Compare ``state`` with ``model.state_dict()``; return what can be loaded and a report.

    ``fresh(key)``: model keys the checkpoint is not expected to have (kept as they are).
    ``ignore``: key prefixes (e.g. ``"fc."``) skipped on both sides.
    BatchNorm ``num_batches_tracked`` counters absent from the checkpoint (files written
    before PyTorch 0.4) keep the model's value and are listed in ``defaulted``.
    """
    report = LoadReport()
    own = model.state_dict()
    loadable: dict[str, Tensor] = {}
    for key, value in own.items():
        if any(key.startswith(p) for p in ignore):
            report.ignored.append(key)
        elif key in state:
            theirs = state[key]
            if tuple(theirs.shape) != tuple(value.shape):
                report.shape_mismatch[key] = (tuple(theirs.shape), tuple(value.shape))
            else:
                loadable[key] = theirs
                report.loaded.append(key)
        elif fresh(key):
            report.kept_fresh.append(key)
        elif key.endswith("num_batches_tracked"):
            report.defaulted.append(key)
        else:
            report.missing.append(key)
    report.unexpected = [
        key for key in state if key not in own and not any(key.startswith(p) for p in ignore)
    ]
    return loadable, report


def load_matched(
    model: nn.Module,
    loadable: Mapping[str, Tensor],
    report: LoadReport,
    strict: bool,
    what: str,
    hint: str = "",
) -> LoadReport:
    """Copy ``loadable`` into ``model``; with ``strict``, first raise if ``report`` is not ok."""
    if strict and not report.ok:
        raise CheckpointMismatchError(
            f"{what}: the checkpoint does not match {type(model).__name__}:\n{report.problems()}"
            + (f"\n{hint}" if hint else ""),
            report,
        )
    with torch.no_grad():
        own = model.state_dict()
        for key, value in loadable.items():
            own[key].copy_(value)
    return report


def is_stc_key(key: str) -> bool:
    """Is ``key`` a parameter of an STC block (``...stc.tcb.fc1.weight``, ...)?"""
    return ".stc." in key


def load_3d_resnets_checkpoint(
    model: nn.Module,
    checkpoint: Checkpoint,
    *,
    strict: bool = True,
    ignore: Sequence[str] = (),
) -> LoadReport:
    """Load a kenshohara/3D-ResNets-PyTorch checkpoint into a ``ResNet3D`` (plain or STC).

    Args:
        model: the target, built with the checkpoint's depth, shortcut type, cardinality
            (and, for ``fc``, number of classes). Hara et al.'s Kinetics models use shortcut A
            for ResNet-18/34 and B for the deeper ResNets and ResNeXts — our defaults.
        checkpoint: path of the ``.pth`` file, or the loaded dict.
        strict: raise ``CheckpointMismatchError`` naming the missing, unexpected and
            mis-shaped keys instead of loading what matches.
        ignore: key prefixes to skip, e.g. ``("fc.",)`` to fine-tune on another label set.

    Returns:
        A ``LoadReport``; the STC blocks' keys are in ``kept_fresh``.
    """
    state, metadata = read_state_dict(checkpoint)
    loadable, report = match_state_dict(model, state, fresh=is_stc_key, ignore=ignore)
    what = "load_3d_resnets_checkpoint"
    if "arch" in metadata:
        what += f" (checkpoint arch {metadata['arch']!r})"
    hints = []
    if any("downsample" in k for k in (*report.missing, *report.unexpected)):
        hints.append(
            "hint: downsample keys differ; the checkpoint may use the other shortcut type "
            f"(the model uses {getattr(model, 'shortcut_type', '?')!r})"
        )
    if any(k.startswith("fc.") for k in report.shape_mismatch):
        hints.append("hint: for another number of classes pass ignore=('fc.',) to keep a fresh fc")
    return load_matched(model, loadable, report, strict, what, "\n".join(hints))
