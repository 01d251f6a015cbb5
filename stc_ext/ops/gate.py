"""The gate: both bottleneck MLPs on the pooled map, forward and hand-written backward.

Shared by every kernel backend. The kernels only move the big tensors (pool, rescale
and their backward passes); this tiny part runs as ordinary ATen ops in the
accumulation dtype (float32, or float64 for float64 inputs), which also makes the op
work under autocast, where activations arrive in bf16/fp16 and weights in fp32.

Shapes: s is the (N, C, T) spatial mean of X; g is the (N, C) gate, the average of the
branches' sigmoids, so that stc(X) = X * g (paper eqs. 3, 6, 7 combined).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .params import Bottleneck, STCParams


class _BranchCache(NamedTuple):
    z: Tensor  # bottleneck input (N, C) for TCB, (N, T*C) for SCB
    h: Tensor  # hidden activations after ReLU
    sig: Tensor  # sigmoid output (N, C)


def _cast(weights: Bottleneck, dtype: torch.dtype) -> Bottleneck:
    return tuple(w.to(dtype) for w in weights)  # type: ignore[return-value]


def _branch_inputs(s: Tensor, params: STCParams) -> list[tuple[Tensor, Bottleneck]]:
    n, c, t = s.shape
    inputs = []
    if params.tcb is not None:
        inputs.append((s.mean(dim=2), _cast(params.tcb, s.dtype)))  # eq. (1)
    if params.scb is not None:
        inputs.append((s.reshape(n, c * t), _cast(params.scb, s.dtype)))  # eq. (4): c*T + t
    return inputs


def gate_forward(s: Tensor, params: STCParams) -> tuple[Tensor, list[_BranchCache]]:
    """g (N, C) from the pooled map s (N, C, T), plus what the backward needs."""
    caches = []
    # Autocast would run these matmuls in bf16/fp16; the gate stays in s's dtype.
    with torch.autocast(s.device.type, enabled=False):
        for z, (w1, b1, w2, b2) in _branch_inputs(s, params):
            h = F.relu(F.linear(z, w1, b1))
            caches.append(_BranchCache(z, h, torch.sigmoid(F.linear(h, w2, b2))))  # eqs. 2, 5
    g = caches[0].sig if len(caches) == 1 else (caches[0].sig + caches[1].sig) * 0.5  # eq. (7)
    return g, caches


def gate_backward(
    dg: Tensor, s: Tensor, params: STCParams, caches: list[_BranchCache]
) -> tuple[Tensor, list[Tensor | None]]:
    """Gradients of g w.r.t. s (N, C, T) and the eight parameters (None where absent)."""
    with torch.autocast(s.device.type, enabled=False):
        return _gate_backward(dg, s, params, caches)


def _gate_backward(
    dg: Tensor, s: Tensor, params: STCParams, caches: list[_BranchCache]
) -> tuple[Tensor, list[Tensor | None]]:
    n, c, t = s.shape
    scale = 1.0 / len(caches)
    ds = torch.zeros_like(s)
    grads: list[Tensor | None] = []
    branch_weights = [params.tcb, params.scb]
    cache_iter = iter(caches)
    for index, weights in enumerate(branch_weights):
        if weights is None:
            grads += [None] * 4
            continue
        cache = next(cache_iter)
        w1, _, w2, _ = _cast(weights, s.dtype)
        da = dg * (scale * cache.sig * (1.0 - cache.sig))  # through sigmoid: (N, C)
        dh = (da @ w2) * (cache.h > 0)  # through fc2 and ReLU
        dz = dh @ w1
        if index == 0:
            ds += (dz / t).unsqueeze(2)  # TCB mean over T
        else:
            ds += dz.view(n, c, t)
        grads += [
            (dh.t() @ cache.z).to(weights[0].dtype),
            dh.sum(0).to(weights[1].dtype),
            (da.t() @ cache.h).to(weights[2].dtype),
            da.sum(0).to(weights[3].dtype),
        ]
    return ds, grads
