"""The STC op: one custom op (``stc_ext::stc``) with its fake kernel and autograd
formula, registered once for every kernel backend, and the public function ``stc``.

Data path: stc() validates and picks a backend -> stc_ext::stc runs
pool -> gate -> rescale; its backward runs backward_sums -> gate backward ->
backward_input. The backend only supplies those four kernels (dispatch.Kernels).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import native  # noqa: F401  (registers the compiled backends)
from . import triton as _triton_backend  # noqa: F401  (registers the Triton backend)
from .checks import check_inputs
from .dispatch import kernels, resolve_backend
from .gate import gate_backward, gate_forward, gate_from_state, gate_state_width
from .layout import empty_output, empty_statistic
from .params import STCParams
from .reference import stc_reference


@torch.library.custom_op("stc_ext::stc", mutates_args=())
def stc_op(
    x: Tensor,
    identity: Tensor | None,
    tcb_w1: Tensor | None,
    tcb_b1: Tensor | None,
    tcb_w2: Tensor | None,
    tcb_b2: Tensor | None,
    scb_w1: Tensor | None,
    scb_b1: Tensor | None,
    scb_w2: Tensor | None,
    scb_b2: Tensor | None,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """Fused STC block. Returns y (N, C, T, H, W) and, for the backward, s, the (N, C, T)
    spatial means of x, and the gate's (N, K) state, both in the accumulation dtype (so
    neither X nor the MLPs are run twice)."""
    k = kernels(backend)
    params = STCParams.from_flat([tcb_w1, tcb_b1, tcb_w2, tcb_b2, scb_w1, scb_b1, scb_w2, scb_b2])
    s = k.pool(x)
    g, state = gate_forward(s, params)
    return k.rescale(x, g, identity), s, state


@stc_op.register_fake
def _stc_fake(x, identity, tcb_w1, tcb_b1, tcb_w2, tcb_b2, scb_w1, scb_b1, scb_w2, scb_b2, backend):
    params = STCParams.from_flat([tcb_w1, tcb_b1, tcb_w2, tcb_b2, scb_w1, scb_b1, scb_w2, scb_b2])
    state = empty_statistic(x, with_time=False).new_empty((x.shape[0], gate_state_width(params)))
    return empty_output(x), empty_statistic(x), state


def _setup_context(ctx, inputs, output) -> None:
    x, identity, *weights, backend = inputs
    y, s, state = output
    ctx.backend = backend
    ctx.has_identity = identity is not None
    # In the residual form the ReLU mask is read back from y (the next layer keeps y
    # alive anyway), which moves fewer bytes than recomputing it from x and identity.
    ctx.save_for_backward(x, y if identity is not None else None, s, state, *weights)
    ctx.mark_non_differentiable(s, state)  # returned only for the backward's reuse


def _backward(ctx, grad_y: Tensor, grad_s: Tensor | None, grad_state: Tensor | None):
    x, y, s, state, *weights = ctx.saved_tensors
    params = STCParams.from_flat(weights)
    k = kernels(ctx.backend)
    g = gate_from_state(state, params)
    sums = k.backward_sums(grad_y, x, y)  # (N, C, T): sum over H, W of dy' * x
    grad_s_total, grad_weights = gate_backward(sums.sum(dim=2), s, params, state)
    grad_x, grad_identity = k.backward_input(grad_y, g, grad_s_total, y)
    return (grad_x, grad_identity if ctx.has_identity else None, *grad_weights, None)


stc_op.register_autograd(_backward, setup_context=_setup_context)


def stc(
    x: Tensor,
    params: STCParams,
    identity: Tensor | None = None,
    backend: str = "auto",
    caller: str = "stc_ext.stc",
) -> Tensor:
    """The STC block as a function: ``x * g`` or, with ``identity``, ``relu(x * g + identity)``.

    Args:
        x: (N, C, T, H, W), float16/bfloat16/float32/float64, NCTHW or channels_last_3d.
        params: the branches' bottleneck weights (``STCParams``); see ``STCBlock``.
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
    return torch.ops.stc_ext.stc(x, identity, *params.flat(), name)[0]
