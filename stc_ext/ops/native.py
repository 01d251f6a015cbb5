"""The compiled extension (csrc/): loading it on first use, and the fake kernels of its ops.

``load()`` imports ``stc_ext._C``; importing it runs csrc's ``TORCH_LIBRARY`` registrations,
which define ``torch.ops.stc_ext.{pool, rescale, rescale_backward_sums,
rescale_backward_input}`` and the CPU gate ``gate_forward``/``gate_backward``. Where
``stc_ext._C`` was not built, ``STC_EXT_JIT=1`` (read on each call while the extension is
missing) or ``jit_build()`` compiles the same sources instead (stc_ext/ops/jit.py). Once the
ops exist, ``load()`` registers their fake kernels here: torch accepts a fake kernel only
for an op that already exists. Nothing here raises when the extension is missing; ``load()``
says why.
"""

from __future__ import annotations

import os
import subprocess
import warnings

import torch
from torch import Tensor

from . import gate
from .layout import empty_output, empty_statistic
from .params import STCParams

# Up to this many samples the C++ gate (csrc/cpu/gate_cpu.cpp) streams each weight matrix
# once for all of them; beyond it the gate's products are proper matrix products, which
# the BLAS behind ATen does faster (stc_ext/ops/gate.py).
GATE_MAX_BATCH = 32

_loaded = False
_import_error: ImportError | None = None  # why importing stc_ext._C failed
_jit_error: Exception | None = None  # why the JIT build failed (tried once per process)


def load() -> str | None:
    """Loads the extension if it is not loaded yet: None once loaded, else the reason why not.

    Imports ``stc_ext._C`` (tried once per process); if that fails and ``STC_EXT_JIT=1``,
    builds it just in time (also tried once; a failure warns).
    """
    global _jit_error
    if _loaded:
        return None
    if _import_error is None:
        _import_built_extension()
        if _loaded:
            return None
    if _jit_error is None and os.environ.get("STC_EXT_JIT", "0") == "1":
        try:
            jit_build()
        except (OSError, RuntimeError, ImportError, subprocess.SubprocessError) as error:
            _jit_error = error
            summary = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            warnings.warn(
                f"stc_ext: STC_EXT_JIT=1 but the JIT build of the extension failed ({summary}); "
                "the fused kernels are unavailable (native.unavailable_reason() has the details)",
                RuntimeWarning,
                stacklevel=2,
            )
    return unavailable_reason()


def is_loaded() -> bool:
    """Is the extension loaded (loading it now if it was not tried yet)?"""
    return load() is None


def unavailable_reason() -> str | None:
    """Why the extension could not be loaded, or None when it is loaded."""
    if _loaded:
        return None
    if _import_error is None:
        return load()
    reason = f"the stc_ext._C extension could not be imported: {_import_error}"
    if _jit_error is not None:
        reason += f"; its JIT build failed: {_jit_error}"
    return reason


def jit_build(root: str | os.PathLike | None = None, verbose: bool = False) -> None:
    """Compiles the extension now with ``torch.utils.cpp_extension.load`` (ninja) and loads
    it: for installs that did not build ``stc_ext._C``. A no-op when the extension is
    already loaded. ``root``: see ``jit.build_directory``.

    Raises:
        FileNotFoundError, RuntimeError: as ``stc_ext.ops.jit.build``.
    """
    global _jit_error
    if _loaded:
        return
    if _import_error is None:
        _import_built_extension()
        if _loaded:
            return
    from .jit import build

    build(root=root, verbose=verbose)
    _jit_error = None
    _on_loaded()


def gate_forward(s: Tensor, params: STCParams) -> tuple[Tensor, Tensor]:
    """The "cpu" backend's gate: ``stc_ext.ops.gate.gate_forward`` in C++ for small batches."""
    if s.shape[0] > GATE_MAX_BATCH:
        return gate.gate_forward(s, params)
    return torch.ops.stc_ext.gate_forward.default(s, *params.flat())


def gate_backward(
    sums: Tensor, s: Tensor, params: STCParams, state: Tensor
) -> tuple[Tensor, list[Tensor | None]]:
    """The "cpu" backend's gate backward: ``stc_ext.ops.gate.gate_backward`` in C++ for
    small batches."""
    if s.shape[0] > GATE_MAX_BATCH:
        return gate.gate_backward(sums, s, params, state)
    flat = params.flat()
    grad_s, *grads = torch.ops.stc_ext.gate_backward.default(sums, s, state, *flat)
    return grad_s, [None if w is None else g for w, g in zip(flat, grads, strict=True)]


def cached_output_bytes() -> int:
    """Bytes of freed op outputs the CPU kernels keep for reuse (csrc/cpu/output_cache.h;
    at most ``STC_EXT_CPU_CACHE_MB``, default 1024, read once per process)."""
    return torch.ops.stc_ext.output_cache_free_bytes.default()


def release_cached_outputs() -> None:
    """Returns the freed op outputs the CPU kernels keep for reuse to the system."""
    torch.ops.stc_ext.output_cache_release.default()


def has_cuda_kernels() -> bool:
    """Was the loaded extension built with its CUDA kernels?"""
    return torch._C._dispatch_has_kernel_for_dispatch_key("stc_ext::pool", "CUDA")


def _import_built_extension() -> None:
    global _import_error
    try:
        from stc_ext import _C  # noqa: F401  (importing it defines the ops)
    except ImportError as error:  # not built; a broken build still shows through the reason
        _import_error = error
    else:
        _on_loaded()


def _on_loaded() -> None:
    global _loaded
    _register_fake_kernels()
    _loaded = True


def _register_fake_kernels() -> None:
    """Fake kernels of the ops: shapes, dtypes and strides as the real kernels give them
    (stc_ext/ops/layout.py), for torch.compile and fake-tensor tracing."""

    @torch.library.register_fake("stc_ext::pool")
    def _pool(x: Tensor) -> Tensor:
        return empty_statistic(x)

    @torch.library.register_fake("stc_ext::rescale")
    def _rescale(x: Tensor, g: Tensor, identity: Tensor | None) -> Tensor:
        return empty_output(x)

    @torch.library.register_fake("stc_ext::rescale_backward_sums")
    def _rescale_backward_sums(grad_y: Tensor, x: Tensor, y: Tensor | None) -> Tensor:
        return empty_statistic(x)

    @torch.library.register_fake("stc_ext::rescale_backward_input")
    def _rescale_backward_input(
        grad_y: Tensor, g: Tensor, grad_s: Tensor, y: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        grad_identity = empty_output(grad_y) if y is not None else grad_y.new_empty((0,))
        return empty_output(grad_y), grad_identity

    @torch.library.register_fake("stc_ext::gate_forward")
    def _gate_forward(s: Tensor, *weights: Tensor | None) -> tuple[Tensor, Tensor]:
        params = STCParams.from_flat(list(weights))
        n, c = s.shape[:2]
        return s.new_empty((n, c)), s.new_empty((n, gate.gate_state_width(params)))

    @torch.library.register_fake("stc_ext::gate_backward")
    def _gate_backward(
        sums: Tensor, s: Tensor, state: Tensor, *weights: Tensor | None
    ) -> list[Tensor]:
        return [s.new_empty(s.shape)] + [
            s.new_empty((0,)) if w is None else w.new_empty(w.shape) for w in weights
        ]
