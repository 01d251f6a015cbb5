"""``stc()``, the STC block as a function: the op layer's public entry point.

It checks the arguments (stc_ext/ops/checks.py, the contract every backend relies on),
chooses the backend for x's device (stc_ext/ops/backends.py) and calls the custom op
``torch.ops.stc_ext.stc`` (stc_ext/ops/registration.py), or the plain-PyTorch reference.
"""

from __future__ import annotations

from torch import Tensor

from .backends import resolve_backend
from .checks import check_inputs
from .params import STCParams
from .reference import stc_reference
from .registration import stc_op


def stc(
    x: Tensor,
    params: STCParams,
    identity: Tensor | None = None,
    backend: str = "auto",
    caller: str = "stc_ext.stc",
) -> Tensor:
    """The STC block as a function: ``x * g``, or in the residual form (``identity``
    given) ``relu(x * g + identity)``.

    Args:
        x: (N, C, T, H, W), float16/bfloat16/float32/float64, NCTHW or channels_last_3d.
        params: the branches' MLP weights (``STCParams``); see ``STCBlock``.
        identity: optional shortcut of x's shape, dtype and device.
        backend: "auto" (fastest available for x's device), "reference", "cpu", "cuda"
            or "triton".
        caller: name used in error messages.

    Returns:
        Tensor of x's shape and dtype; its layout is x's when x is NCTHW-contiguous or
        channels_last_3d, NCTHW-contiguous otherwise.
    """
    check_inputs(x, params, identity, caller)
    name = resolve_backend(backend, x.device)
    if name == "reference":
        return stc_reference(x, params, identity)
    return stc_op(x, identity, *params.flat(), name)[0]  # stc_op is torch.ops.stc_ext.stc
