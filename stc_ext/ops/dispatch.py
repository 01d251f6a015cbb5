"""Backend registry and per-call backend choice.

A backend provides the four memory-bound kernels of the STC op (see csrc/stc.cpp for
their semantics); the gate and the autograd formula are shared (stc_ext/ops/stc.py).
The choice is made per call from the input's device, never at import time.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

BACKEND_NAMES = ("reference", "cpu", "cuda", "triton")


@dataclass(frozen=True)
class Kernels:
    """The kernels one backend supplies, all with the schemas of csrc/stc.cpp."""

    pool: Callable
    rescale: Callable
    backward_sums: Callable
    backward_input: Callable


@dataclass(frozen=True)
class Backend:
    name: str
    kernels: Kernels
    supports: Callable[[torch.device], bool]  # can it run on tensors of this device?


_REGISTRY: dict[str, Backend] = {}
_fallback_warned: set[str] = set()


def register_backend(backend: Backend) -> None:
    if backend.name not in BACKEND_NAMES or backend.name == "reference":
        raise ValueError(f"unknown kernel backend name {backend.name!r}")
    _REGISTRY[backend.name] = backend


def kernels(name: str) -> Kernels:
    """The kernels of a registered backend (``name`` as resolved by ``resolve_backend``)."""
    try:
        return _REGISTRY[name].kernels
    except KeyError:
        raise RuntimeError(f"stc_ext: backend {name!r} is not available here") from None


def available_backends(device: torch.device | str | None = None) -> list[str]:
    """Backends that can run here: on ``device`` if given, else on any device present."""
    if device is not None:
        devices = [torch.device(device)]
    else:
        devices = [torch.device("cpu")]
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
    names = ["reference"]
    for name in BACKEND_NAMES[1:]:
        backend = _REGISTRY.get(name)
        if backend is not None and any(backend.supports(d) for d in devices):
            names.append(name)
    return names


# What "auto" prefers, fastest first, per device type.
_AUTO_ORDER = {"cuda": ("cuda", "triton"), "cpu": ("cpu",)}


def resolve_backend(requested: str, device: torch.device) -> str:
    """The backend that will run a call on ``device``; "auto" never fails.

    Raises:
        ValueError: unknown name, or an explicit backend that cannot run on ``device``.
    """
    if requested == "auto":
        for name in _AUTO_ORDER.get(device.type, ()):
            backend = _REGISTRY.get(name)
            if backend is not None and backend.supports(device):
                return name
        _warn_fallback(device)
        return "reference"
    if requested not in BACKEND_NAMES:
        raise ValueError(
            f"stc_ext: backend must be one of {('auto',) + BACKEND_NAMES}, got {requested!r}"
        )
    if requested == "reference":
        return requested
    backend = _REGISTRY.get(requested)
    if backend is None or not backend.supports(device):
        raise ValueError(
            f"stc_ext: backend {requested!r} cannot run on {device.type} tensors here; "
            f"available for {device.type}: {available_backends(device)}"
        )
    return requested


def _warn_fallback(device: torch.device) -> None:
    if device.type in _fallback_warned:
        return
    _fallback_warned.add(device.type)
    reason = ""
    if device.type in ("cpu", "cuda"):
        from . import native

        reason = f" ({native.unavailable_reason()})" if native.unavailable_reason() else ""
    warnings.warn(
        f"stc_ext: no fused STC kernel for {device.type} tensors{reason}; "
        "using the (slower) PyTorch reference implementation",
        RuntimeWarning,
        stacklevel=3,
    )
