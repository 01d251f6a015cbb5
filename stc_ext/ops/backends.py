"""The backend table: which kernels run the STC op, chosen per call from the input's device.

A backend supplies the four memory-bound kernel ops around the gate: ``pool``, ``rescale``,
``rescale_backward_sums`` and ``rescale_backward_input`` (schemas and semantics:
csrc/stc.cpp), and may supply its own gate (stc_ext/ops/gate.py by default; "cpu" has a
C++ one). The autograd formula is the same for every backend
(stc_ext/ops/registration.py). "reference" is plain PyTorch (stc_ext/ops/reference.py) and
needs no kernels, so it is not in the table.

``BACKENDS`` maps "cpu", "cuda" and "triton" to a loader: each entry loads its module on
first use and gives the backend's kernels with the devices they run on, or the reason they
are unavailable:

* "cpu", "cuda": the compiled extension, ``torch.ops.stc_ext.*`` (loaded by
  stc_ext/ops/native.py, which reads ``STC_EXT_JIT`` each time the extension is still
  missing); "cuda" also needs the extension built with its CUDA kernels and a GPU.
* "triton": stc_ext/ops/triton/ops.py, with a CUDA GPU, or on CPU tensors under Triton's
  interpreter. Whether the interpreter is on (``TRITON_INTERPRET=1``) is decided by Triton
  itself when it defines the kernels; stc_ext/ops/triton/kernels.py records that decision.

An available entry is kept; an unavailable native entry is looked up again on the next call
(a JIT build may have loaded the extension since).

``STC_EXT_DISABLE`` (e.g. ``cuda,triton``), read on every call, turns kernel backends off
without touching the table: ``available_backends`` leaves them out, "auto" picks the next
one, and asking for a disabled one by name is an error saying so. Use it to route around
a backend that fails ``stc info --check`` on your machine.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from . import gate

BACKEND_NAMES = ("reference", "cpu", "cuda", "triton")


@dataclass(frozen=True)
class Kernels:
    """The kernels one backend supplies, all with the schemas of csrc/stc.cpp, and its
    gate (by default stc_ext/ops/gate.py's ATen version)."""

    pool: Callable
    rescale: Callable
    rescale_backward_sums: Callable
    rescale_backward_input: Callable
    gate_forward: Callable = gate.gate_forward
    gate_backward: Callable = gate.gate_backward


@dataclass(frozen=True)
class Backend:
    """One loaded entry of the table: its kernels and where they run, or why there are none."""

    kernels: Kernels | None
    runs_on: Callable[[torch.device], bool]  # can its kernels run tensors of this device?
    unavailable_reason: str | None = None


def _unavailable(reason: str) -> Backend:
    return Backend(None, lambda device: False, reason)


def _native_kernels() -> Kernels:
    ops = torch.ops.stc_ext
    return Kernels(
        pool=ops.pool.default,
        rescale=ops.rescale.default,
        rescale_backward_sums=ops.rescale_backward_sums.default,
        rescale_backward_input=ops.rescale_backward_input.default,
    )


def _load_cpu() -> Backend:
    from . import native

    reason = native.load()
    if reason is not None:
        return _unavailable(reason)
    kernels = replace(
        _native_kernels(), gate_forward=native.gate_forward, gate_backward=native.gate_backward
    )
    return Backend(kernels, lambda device: device.type == "cpu")


def _load_cuda() -> Backend:
    from . import native

    reason = native.load()
    if reason is not None:
        return _unavailable(reason)
    if not native.has_cuda_kernels():
        return _unavailable(
            "stc_ext was built without its CUDA kernels (torch without CUDA, no CUDA "
            "toolkit at build time, or STC_EXT_FORCE_CPU=1)"
        )
    return Backend(
        _native_kernels(), lambda device: device.type == "cuda" and torch.cuda.is_available()
    )


@functools.cache  # what it finds cannot change in this process (see the module docstring)
def _load_triton() -> Backend:
    try:
        from .triton import ops as triton_ops
    except ImportError as error:  # triton is an optional extra
        return _unavailable(f"triton cannot be imported ({error})")
    if not triton_ops.INTERPRETED and not torch.cuda.is_available():
        return _unavailable(
            "no CUDA GPU, and Triton's interpreter was off (TRITON_INTERPRET=1) when its "
            "kernels were defined"
        )
    kernels = Kernels(
        pool=triton_ops.pool,
        rescale=triton_ops.rescale,
        rescale_backward_sums=triton_ops.rescale_backward_sums,
        rescale_backward_input=triton_ops.rescale_backward_input,
    )
    return Backend(kernels, triton_ops.supports)


BACKENDS: dict[str, Callable[[], Backend]] = {
    "cpu": _load_cpu,
    "cuda": _load_cuda,
    "triton": _load_triton,
}
_loaded: dict[str, Backend] = {}  # the available entries, once loaded
_fallback_warned: set[str] = set()  # device types "auto" already warned about


def backend(name: str) -> Backend:
    """The table's entry ``name`` ("cpu", "cuda" or "triton"), loaded on first use."""
    entry = _loaded.get(name)
    if entry is None:
        entry = BACKENDS[name]()
        if entry.kernels is not None:
            _loaded[name] = entry
    return entry


def kernels(name: str) -> Kernels:
    """The kernels of backend ``name`` (as resolved by ``resolve_backend``)."""
    if name not in BACKENDS:
        raise RuntimeError(f"stc_ext: {name!r} is not a kernel backend (one of {tuple(BACKENDS)})")
    entry = backend(name)
    if entry.kernels is None:
        raise RuntimeError(
            f"stc_ext: backend {name!r} is not available here: {entry.unavailable_reason}"
        )
    return entry.kernels


DISABLE_VARIABLE = "STC_EXT_DISABLE"


def disabled_backends() -> frozenset[str]:
    """The kernel backends ``STC_EXT_DISABLE`` turns off (comma-separated names), read now.

    Raises:
        ValueError: a name that is not a kernel backend ("reference" cannot be disabled).
    """
    names = {n.strip() for n in os.environ.get(DISABLE_VARIABLE, "").split(",") if n.strip()}
    unknown = sorted(names - set(BACKENDS))
    if unknown:
        raise ValueError(
            f"stc_ext: {DISABLE_VARIABLE}={os.environ[DISABLE_VARIABLE]!r} names "
            f"{', '.join(map(repr, unknown))}; it takes kernel backends, comma-separated: "
            f"{', '.join(BACKENDS)}"
        )
    return frozenset(names)


def _usable(name: str, device: torch.device, disabled: frozenset[str]) -> bool:
    return name not in disabled and backend(name).runs_on(device)


def available_backends(device: torch.device | str | None = None) -> list[str]:
    """Backends that can run here: on ``device`` if given, else on any device present;
    those ``STC_EXT_DISABLE`` turns off are left out."""
    if device is not None:
        devices = [torch.device(device)]
    else:
        devices = [torch.device("cpu")]
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
    disabled = disabled_backends()
    names = ["reference"]
    for name in BACKENDS:
        if any(_usable(name, d, disabled) for d in devices):
            names.append(name)
    return names


# What "auto" prefers, fastest first, per device type.
_AUTO_ORDER = {"cuda": ("cuda", "triton"), "cpu": ("cpu",)}


def resolve_backend(requested: str, device: torch.device) -> str:
    """The backend that will run a call on ``device``; "auto" never fails (it skips the
    backends ``STC_EXT_DISABLE`` turns off).

    Raises:
        ValueError: unknown name, an explicit backend that is disabled or cannot run on
            ``device``, or a bad ``STC_EXT_DISABLE``.
    """
    disabled = disabled_backends()
    if requested == "auto":
        for name in _AUTO_ORDER.get(device.type, ()):
            if _usable(name, device, disabled):
                return name
        _warn_fallback(device, disabled)
        return "reference"
    if requested not in BACKEND_NAMES:
        raise ValueError(
            f"stc_ext: backend must be one of {('auto',) + BACKEND_NAMES}, got {requested!r}"
        )
    if requested in disabled:
        raise ValueError(
            f"stc_ext: backend {requested!r} is disabled by {DISABLE_VARIABLE}="
            f"{os.environ[DISABLE_VARIABLE]!r}; use another backend or unset the variable "
            f"(available for {device.type}: {available_backends(device)})"
        )
    if requested == "reference" or backend(requested).runs_on(device):
        return requested
    raise ValueError(
        f"stc_ext: backend {requested!r} cannot run on {device.type} tensors here; "
        f"available for {device.type}: {available_backends(device)}"
    )


def _warn_fallback(device: torch.device, disabled: frozenset[str]) -> None:
    if device.type in _fallback_warned:
        return
    _fallback_warned.add(device.type)
    reasons = [
        f"{name}: disabled by {DISABLE_VARIABLE}"
        if name in disabled
        else f"{name}: {backend(name).unavailable_reason}"
        for name in _AUTO_ORDER.get(device.type, ())
        if name in disabled or backend(name).unavailable_reason is not None
    ]
    reason = f" ({'; '.join(reasons)})" if reasons else ""
    warnings.warn(
        f"stc_ext: no fused STC kernel for {device.type} tensors{reason}; "
        "using the (slower) PyTorch reference implementation",
        RuntimeWarning,
        stacklevel=3,
    )
