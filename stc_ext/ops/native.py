"""The compiled extension (csrc/): loads it, gives its ops fake kernels, registers it
as the "cpu" backend and, where it was built with CUDA kernels, the "cuda" backend.

Where ``stc_ext._C`` was not built, ``STC_EXT_JIT=1`` (or calling ``jit_build()``)
compiles the sources on first use instead (stc_ext/ops/jit.py); import never fails.
"""

from __future__ import annotations

import os
import subprocess
import warnings

import torch
from torch import Tensor

from .dispatch import Backend, Kernels, register_backend
from .layout import empty_output, empty_statistic

_import_error: ImportError | None = None
try:
    from stc_ext import _C  # noqa: F401  (importing it registers the ops)
except ImportError as error:  # not built; a broken build still shows through the warning
    _import_error = error


_jit_error: Exception | None = None


def is_loaded() -> bool:
    return _import_error is None


def unavailable_reason() -> str | None:
    """Why the extension could not be loaded, or None when it is loaded."""
    if _import_error is None:
        return None
    reason = f"the stc_ext._C extension could not be imported: {_import_error}"
    if _jit_error is not None:
        reason += f"; its JIT build failed: {_jit_error}"
    return reason


def jit_build(root: str | os.PathLike | None = None, verbose: bool = False) -> None:
    """Compile the extension now with ``torch.utils.cpp_extension.load`` (ninja), load it
    and register its backends: for installs that did not build ``stc_ext._C``. A no-op
    when the extension is already loaded. ``root``: see ``jit.build_directory``.

    Raises:
        FileNotFoundError, RuntimeError: as ``stc_ext.ops.jit.build``.
    """
    global _import_error, _jit_error
    if is_loaded():
        return
    from .jit import build

    build(root=root, verbose=verbose)
    _import_error = _jit_error = None
    _register()


def _has_cuda_kernels() -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key("stc_ext::pool", "CUDA")


def _register_fake_kernels() -> None:
    @torch.library.register_fake("stc_ext::pool")
    def _pool(x: Tensor) -> Tensor:
        return empty_statistic(x)

    @torch.library.register_fake("stc_ext::rescale")
    def _rescale(x: Tensor, g: Tensor, identity: Tensor | None) -> Tensor:
        return empty_output(x)

    @torch.library.register_fake("stc_ext::rescale_backward_sums")
    def _sums(grad_y: Tensor, x: Tensor, y: Tensor | None) -> Tensor:
        return empty_statistic(x)

    @torch.library.register_fake("stc_ext::rescale_backward_input")
    def _input(
        grad_y: Tensor, g: Tensor, grad_s: Tensor, y: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        grad_identity = empty_output(grad_y) if y is not None else grad_y.new_empty((0,))
        return empty_output(grad_y), grad_identity


def _register() -> None:
    _register_fake_kernels()
    native = Kernels(
        pool=torch.ops.stc_ext.pool.default,
        rescale=torch.ops.stc_ext.rescale.default,
        backward_sums=torch.ops.stc_ext.rescale_backward_sums.default,
        backward_input=torch.ops.stc_ext.rescale_backward_input.default,
    )
    register_backend(Backend("cpu", native, supports=lambda d: d.type == "cpu"))
    if _has_cuda_kernels():
        register_backend(
            Backend(
                "cuda",
                native,
                supports=lambda d: d.type == "cuda" and torch.cuda.is_available(),
            )
        )


if is_loaded():
    _register()
elif os.environ.get("STC_EXT_JIT", "0") == "1":
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
