"""The custom op ``stc_ext::stc`` written with standard ATen ops, for exporting graphs that
must not depend on stc_ext (ONNX, other runtimes).

``torch.export`` keeps ``torch.ops.stc_ext.stc`` in the graph as one node (its fake kernel
gives the shapes), which only a process that imported stc_ext can run. ``decompose_stc``
rewrites every such node into the op's own formula: pool (the spatial mean), the gate
(stc_ext/ops/gate.py, the ATen gate; the "cpu" backend's C++ gate computes the same) and
the rescale, all in the
accumulation dtype, so the result matches the fused kernels to rounding. The outputs are the
op's three: y, the pooled map s and the gate's state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .gate import gate_forward
from .layout import accumulate_dtype
from .params import STCParams
from .registration import stc_op  # noqa: F401  (defines torch.ops.stc_ext.stc)

__all__ = ["STC_DECOMPOSITIONS", "decompose_stc", "stc_decomposition"]


def stc_decomposition(
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
    """``torch.ops.stc_ext.stc`` in ATen ops: (y, s, state) as the op returns them."""
    params = STCParams.from_flat([tcb_w1, tcb_b1, tcb_w2, tcb_b2, scb_w1, scb_b1, scb_w2, scb_b2])
    xf = x.to(accumulate_dtype(x.dtype))
    s = xf.mean(dim=(3, 4))  # (N, C, T), the pool kernel
    g, state = gate_forward(s, params)
    y = xf * g[:, :, None, None, None]  # the rescale kernel
    if identity is not None:
        y = F.relu(y + identity.to(xf.dtype))
    return y.to(x.dtype), s, state


#: For ``ExportedProgram.run_decompositions``: the STC op to its ATen formula.
STC_DECOMPOSITIONS = {torch.ops.stc_ext.stc.default: stc_decomposition}


def decompose_stc(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """``program`` with every ``stc_ext::stc`` node replaced by ATen ops (other ops kept)."""
    return program.run_decompositions(STC_DECOMPOSITIONS)
