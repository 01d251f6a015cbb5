"""The gate: both branches' MLPs on the pooled map, forward and hand-written backward.

The kernels only move the big tensors (pool, rescale and their backward passes); this
small part runs as ordinary ATen ops in the accumulation dtype (float32, or float64 for
float64 inputs), which also makes the op work under autocast, where activations arrive
in bf16/fp16 and weights in fp32. The "cuda" and "triton" backends use it as it is; the
"cpu" backend runs the same computation in C++ for small batches (csrc/cpu/gate_cpu.cpp,
through stc_ext/ops/native.py) and this one for large ones.

Shapes: s is the (N, C, T) spatial mean of X; g is the (N, C) gate, the average of the
branches' sigmoids, so that stc(X) = X * g (paper eqs. 3, 6, 7 combined). The forward
also returns ``state`` (N, K): each present branch's hidden activations and sigmoid,
concatenated, so the backward needs no second pass through the (weight-bound) MLPs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .params import BranchWeights, STCParams


def _cast(weights: BranchWeights, dtype: torch.dtype) -> BranchWeights:
    return tuple(w.to(dtype) for w in weights)  # type: ignore[return-value]


def _branches(params: STCParams) -> list[tuple[int, BranchWeights]]:
    """(index, weights) of the present branches: 0 for TCB, 1 for SCB."""
    return [(i, w) for i, w in enumerate((params.tcb, params.scb)) if w is not None]


def _branch_input(index: int, s: Tensor) -> Tensor:
    n, c, t = s.shape
    if index == 0:
        return s.mean(dim=2)  # eq. (1): the TCB mean over T, H, W
    return s.reshape(n, c * t)  # eq. (4): SCB features indexed c*T + t


def gate_state_width(params: STCParams) -> int:
    """K, the width of ``state``: hidden + C for each present branch."""
    return sum(w[0].shape[0] + w[2].shape[0] for _, w in _branches(params))


def _split_state(state: Tensor, params: STCParams) -> list[tuple[Tensor, Tensor]]:
    parts, start = [], 0
    for _, w in _branches(params):
        hidden, channels = w[0].shape[0], w[2].shape[0]
        parts.append(
            (state[:, start : start + hidden], state[:, start + hidden : start + hidden + channels])
        )
        start += hidden + channels
    return parts


def gate_from_state(state: Tensor, params: STCParams) -> Tensor:
    """g (N, C): the average of the branches' sigmoids (eq. 7)."""
    sigmoids = [sig for _, sig in _split_state(state, params)]
    return sigmoids[0] if len(sigmoids) == 1 else (sigmoids[0] + sigmoids[1]) * 0.5


def gate_forward(s: Tensor, params: STCParams) -> tuple[Tensor, Tensor]:
    """g (N, C) and state (N, K) from the pooled map s (N, C, T)."""
    pieces = []
    # Autocast would run these matmuls in bf16/fp16; the gate stays in s's dtype.
    with torch.autocast(s.device.type, enabled=False):
        for index, weights in _branches(params):
            w1, b1, w2, b2 = _cast(weights, s.dtype)
            h = F.relu(F.linear(_branch_input(index, s), w1, b1))
            pieces += [h, torch.sigmoid(F.linear(h, w2, b2))]  # eqs. (2), (5)
    state = torch.cat(pieces, dim=1)
    return gate_from_state(state, params), state


def gate_backward(
    sums: Tensor, s: Tensor, params: STCParams, state: Tensor
) -> tuple[Tensor, list[Tensor | None]]:
    """Gradients of the loss w.r.t. s (N, C, T) and the eight parameters (None where
    absent), from ``sums`` (N, C, T), the output of ``rescale_backward_sums``, whose sum
    over T is dL/dg."""
    with torch.autocast(s.device.type, enabled=False):
        dg = sums.sum(dim=2)
        n, c, t = s.shape
        present = _branches(params)
        scale = 1.0 / len(present)
        ds = torch.zeros_like(s)
        grads: list[Tensor | None] = [None] * 8
        for (index, weights), (h, sig) in zip(present, _split_state(state, params), strict=True):
            w1, _, w2, _ = _cast(weights, s.dtype)
            da = dg * (scale * sig * (1.0 - sig))  # through the sigmoid: (N, C)
            dh = (da @ w2) * (h > 0)  # through fc2 and the ReLU
            dz = dh @ w1
            ds += (dz / t).unsqueeze(2) if index == 0 else dz.view(n, c, t)
            grads[4 * index : 4 * index + 4] = [
                (dh.t() @ _branch_input(index, s)).to(weights[0].dtype),
                dh.sum(0).to(weights[1].dtype),
                (da.t() @ h).to(weights[2].dtype),
                da.sum(0).to(weights[3].dtype),
            ]
        return ds, grads
