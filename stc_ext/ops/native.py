"""The compiled extension (csrc/): loads it, gives its ops fake kernels, registers it
as the "cpu" backend and, where it was built with CUDA kernels, the "cuda" backend."""

from __future__ import annotations

import torch
from torch import Tensor

from .dispatch import Backend, Kernels, register_backend
from .layout import empty_output, empty_statistic

_import_error: ImportError | None = None
try:
    from stc_ext import _C  # noqa: F401  (importing it registers the ops)
except ImportError as error:  # not built; a broken build still shows through the warning
    _import_error = error


def is_loaded() -> bool:
    return _import_error is None


def unavailable_reason() -> str | None:
    """Why the extension could not be loaded, or None when it is loaded."""
    if _import_error is None:
        return None
    return f"the stc_ext._C extension could not be imported: {_import_error}"


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


if is_loaded():
    _register_fake_kernels()
    _native = Kernels(
        pool=torch.ops.stc_ext.pool.default,
        rescale=torch.ops.stc_ext.rescale.default,
        backward_sums=torch.ops.stc_ext.rescale_backward_sums.default,
        backward_input=torch.ops.stc_ext.rescale_backward_input.default,
    )
    register_backend(Backend("cpu", _native, supports=lambda d: d.type == "cpu"))
    if _has_cuda_kernels():
        register_backend(
            Backend(
                "cuda",
                _native,
                supports=lambda d: d.type == "cuda" and torch.cuda.is_available(),
            )
        )
