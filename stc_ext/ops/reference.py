"""The STC block in plain PyTorch: the oracle every kernel is tested against.

This follows the paper (Diba et al., ECCV 2018, §3.1) equation by equation and is
deliberately unoptimised: each branch rescales X on its own (eqs. 3 and 6) and the
two results are averaged (eq. 7). Autograd provides the backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .params import STCParams


def _branch_mlp(z: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """A branch's MLP: FC -> ReLU -> FC -> sigmoid, as in squeeze-and-excitation."""
    return torch.sigmoid(F.linear(F.relu(F.linear(z, w1, b1)), w2, b2))


def stc_reference(
    x: Tensor,
    params: STCParams,
    identity: Tensor | None = None,
    compute_dtype: torch.dtype | None = None,
) -> Tensor:
    """Reference STC block.

    Args:
        x: (N, C, T, H, W) feature map.
        params: MLP weights of the branches present (see ``STCParams``).
        identity: optional (N, C, T, H, W) shortcut; when given, the residual form
            ``relu(stc(x) + identity)`` is returned.
        compute_dtype: dtype of the arithmetic; by default float32 for float16/bfloat16
            inputs and x's dtype otherwise. Tests pass x's own dtype to measure how
            far plain PyTorch in low precision lands from a float64 result.

    Returns:
        (N, C, T, H, W) tensor of x's dtype.
    """
    n, c, t = x.shape[:3]
    if compute_dtype is None:
        compute_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    xf = x.to(compute_dtype)
    branch_outputs = []
    if params.tcb is not None:
        z_tcb = xf.mean(dim=(2, 3, 4))  # eq. (1): (N, C)
        s_tcb = _branch_mlp(z_tcb, *(p.to(xf.dtype) for p in params.tcb))  # eq. (2)
        branch_outputs.append(s_tcb.view(n, c, 1, 1, 1) * xf)  # eq. (3)
    if params.scb is not None:
        z_scb = xf.mean(dim=(3, 4)).reshape(n, c * t)  # eq. (4): index c*T + t
        s_scb = _branch_mlp(z_scb, *(p.to(xf.dtype) for p in params.scb))  # eq. (5)
        branch_outputs.append(s_scb.view(n, c, 1, 1, 1) * xf)  # eq. (6)
    out = sum(branch_outputs) / len(branch_outputs)  # eq. (7): avg(x_tcb, x_scb)
    if identity is not None:
        out = F.relu(out + identity.to(out.dtype))  # the residual unit's addition
    return out.to(x.dtype)
