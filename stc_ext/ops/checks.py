"""Validation of the STC op's arguments: the contract, checked once at the public entry point.

Every backend may assume what ``check_inputs`` guarantees. The kernel ops re-check only what
their memory accesses rely on, as short internal assertions (csrc/stc_common.h,
stc_ext/ops/triton/ops.py); the errors users see, naming their arguments, come from here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .layout import SUPPORTED_DTYPES
from .params import STCParams

_WEIGHT_NAMES = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def check_inputs(x: Tensor, params: STCParams, identity: Tensor | None, caller: str) -> None:
    """Raise ValueError/TypeError naming the argument when the inputs cannot be used.

    Checks x is a non-empty 5-D floating tensor whose C and T match the weights, that
    identity (if any) matches x in shape, dtype and device, and that every weight has
    the shape its branch's MLP needs and lives on x's device.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{caller}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 5:
        raise ValueError(f"{caller}: x must be 5-D (N, C, T, H, W), got shape {_shape(x)}")
    if x.numel() == 0:
        raise ValueError(f"{caller}: x must not be empty, got shape {_shape(x)}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(
            f"{caller}: x must be float16, bfloat16, float32 or float64, got {x.dtype}"
        )
    if params.tcb is None and params.scb is None:
        raise ValueError(f"{caller}: at least one of the TCB and SCB branches is needed")
    n, c, t = x.shape[:3]
    if params.tcb is not None:
        channels = params.tcb[0].shape[1]
        if c != channels:
            raise ValueError(
                f"{caller}: x must have {channels} channels (dim 1), got shape {_shape(x)}"
            )
        _check_branch_weights(params.tcb, "tcb", c, c, x, caller)
    if params.scb is not None:
        in_features = params.scb[0].shape[1]
        if c * t != in_features:
            expected = f"T*C = {in_features}"
            if params.tcb is None and in_features % c == 0:
                expected = f"T = {in_features // c} frames (dim 2)"
            raise ValueError(f"{caller}: x must have {expected}, got shape {_shape(x)}")
        _check_branch_weights(params.scb, "scb", c * t, c, x, caller)
    if identity is not None:
        if not isinstance(identity, Tensor):
            raise TypeError(f"{caller}: identity must be a torch.Tensor or None")
        if identity.shape != x.shape:
            raise ValueError(
                f"{caller}: identity must have x's shape {_shape(x)}, got {_shape(identity)}"
            )
        if identity.dtype != x.dtype:
            raise ValueError(
                f"{caller}: identity must have x's dtype {x.dtype}, got {identity.dtype}"
            )
        if identity.device != x.device:
            raise ValueError(
                f"{caller}: identity must be on x's device {x.device}, got {identity.device}"
            )


def _check_branch_weights(
    weights: tuple[Tensor, ...],
    branch: str,
    in_features: int,
    out_features: int,
    x: Tensor,
    caller: str,
) -> None:
    w1, b1, w2, b2 = weights
    hidden = w1.shape[0]
    expected = ((hidden, in_features), (hidden,), (out_features, hidden), (out_features,))
    for name, tensor, shape in zip(_WEIGHT_NAMES, weights, expected, strict=True):
        if _shape(tensor) != shape:
            raise ValueError(
                f"{caller}: {branch}.{name} must have shape {shape}, got {_shape(tensor)}"
            )
        if tensor.device != x.device:
            raise ValueError(
                f"{caller}: {branch}.{name} must be on x's device {x.device}, got {tensor.device}"
            )
        if not torch.is_floating_point(tensor):
            raise ValueError(
                f"{caller}: {branch}.{name} must be floating point, got {tensor.dtype}"
            )
