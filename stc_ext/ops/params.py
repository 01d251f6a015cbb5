"""The STC block's parameters as the ops receive them."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

# (fc1.weight, fc1.bias, fc2.weight, fc2.bias) of one branch's MLP (stc_ext.nn.BranchMLP).
BranchWeights = tuple[Tensor, Tensor, Tensor, Tensor]


class STCParams(NamedTuple):
    """Weights of the two branches; a branch that is absent is ``None``.

    tcb: fc1 (C/r, C), fc1 bias (C/r,), fc2 (C, C/r), fc2 bias (C,).
    scb: fc1 (T*C/r, T*C), fc1 bias (T*C/r,), fc2 (C, T*C/r), fc2 bias (C,).
    """

    tcb: BranchWeights | None
    scb: BranchWeights | None

    def flat(self) -> list[Tensor | None]:
        """The eight tensors in the op schema's order, ``None`` for an absent branch."""
        return [*(self.tcb or (None,) * 4), *(self.scb or (None,) * 4)]

    @staticmethod
    def from_flat(flat: list[Tensor | None]) -> STCParams:
        tcb, scb = tuple(flat[:4]), tuple(flat[4:8])
        return STCParams(
            tcb=None if tcb[0] is None else tcb,  # type: ignore[arg-type]
            scb=None if scb[0] is None else scb,  # type: ignore[arg-type]
        )
