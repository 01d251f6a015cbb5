"""The custom op ``torch.ops.stc_ext.stc``: its kernel, fake kernel and autograd formula,
registered here once for every backend.

Forward: pool -> gate -> rescale. Backward: rescale_backward_sums -> gate backward ->
rescale_backward_input. The four kernel ops and the gate come from the backend named in the
call (stc_ext/ops/backends.py); the gate is stc_ext/ops/gate.py except on "cpu". The kernel
ops are registered where they are defined: schemas in csrc/stc.cpp with their fake kernels
in stc_ext/ops/native.py, and the "triton" ones in stc_ext/ops/triton/ops.py.

In the residual form (``identity`` given) the op computes relu(x * g + identity).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .backends import kernels
from .gate import gate_from_state, gate_state_width
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
    neither x nor the MLPs are run twice)."""
    k = kernels(backend)
    params = STCParams.from_flat([tcb_w1, tcb_b1, tcb_w2, tcb_b2, scb_w1, scb_b1, scb_w2, scb_b2])
    s = k.pool(x)
    g, state = k.gate_forward(s, params)
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
    ctx.residual = identity is not None
    # In the residual form the ReLU mask is read back from y (the next layer keeps y
    # alive anyway), which moves fewer bytes than recomputing it from x and identity.
    ctx.save_for_backward(x, y if ctx.residual else None, s, state, *weights)
    ctx.mark_non_differentiable(s, state)  # returned only for the backward's reuse


def _backward(ctx, grad_y: Tensor, grad_s: Tensor | None, grad_state: Tensor | None):
    x, y, s, state, *weights = ctx.saved_tensors  # y is None in the plain form
    if torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (grad_y, x, *weights)
    ):
        # create_graph=True: the kernels are not differentiable, so the gradient is built
        # from differentiable ATen ops instead, which a second backward can go through.
        return _differentiable_backward(ctx, grad_y, x, y, weights)
    params = STCParams.from_flat(weights)
    k = kernels(ctx.backend)
    g = gate_from_state(state, params)
    sums = k.rescale_backward_sums(grad_y, x, y)  # (N, C, T): sum over H, W of dy' * x
    grad_s_total, grad_weights = k.gate_backward(sums, s, params, state)
    grad_x, grad_identity = k.rescale_backward_input(grad_y, g, grad_s_total, y)
    return (grad_x, grad_identity if ctx.residual else None, *grad_weights, None)


def _differentiable_backward(ctx, grad_y: Tensor, x: Tensor, y: Tensor | None, weights: list):
    """The backward as a differentiable function of grad_y, x and the weights: the
    reference's autograd through the plain form z = x * g(x) (the residual form's ReLU only
    masks grad_y, by the sign of the saved output y, and passes it on to identity)."""
    grad_z = grad_y if y is None else grad_y * (y > 0)
    # Inputs that do not require grad get a detached stand-in, so the graph is built
    # from the ones that do and autograd.grad can still be asked for every gradient.
    leaves = [
        t if t is None or t.requires_grad else t.detach().requires_grad_() for t in (x, *weights)
    ]
    z = stc_reference(leaves[0], STCParams.from_flat(leaves[1:]))  # grad mode is on here
    present = [t for t in leaves if t is not None]
    grads = iter(torch.autograd.grad(z, present, grad_z, create_graph=True))
    grad_x, *grad_weights = [None if t is None else next(grads) for t in leaves]
    return (grad_x, grad_z if ctx.residual else None, *grad_weights, None)


stc_op.register_autograd(_backward, setup_context=_setup_context)
