"""``STCBlock``: the spatio-temporal channel correlation block as an nn.Module.

The modules hold the weights only; ``STCBlock.forward`` calls ``stc_ext.ops.stc``.
"""

from __future__ import annotations

from torch import Tensor, nn

from .ops import STCParams, stc
from .ops.backends import BACKEND_NAMES
from .ops.params import BranchWeights
from .validation import check_int

# The STC block's branch choices (paper Table 5): both, TCB only or SCB only.
BRANCHES = ("stc", "tcb", "scb")


class BranchMLP(nn.Module):
    """One branch's MLP, FC(in -> hidden) -> ReLU -> FC(hidden -> out) -> sigmoid; holds
    the weights only (the op applies them)."""

    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def weights(self) -> BranchWeights:
        return self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias


class STCBlock(nn.Module):
    """Spatio-temporal channel correlation block (Diba et al., ECCV 2018, §3.1).

    For x of shape (N, C, T, H, W):

    * TCB (temporal correlation branch): z = mean of x over T, H, W (eq. 1), a (N, C)
      vector; g_tcb = sigmoid(fc2(relu(fc1(z)))) with fc1: C -> C/r, fc2: C/r -> C (eq. 2).
    * SCB (spatial correlation branch): z = mean of x over H, W (eq. 4), the (C, T) map
      flattened to T*C features with index c*T + t; g_scb = sigmoid(fc2(relu(fc1(z))))
      with fc1: T*C -> T*C/r, fc2: T*C/r -> C (eq. 5).
    * Output: the average of the rescaled maps (eqs. 3, 6, 7), i.e. x * (g_tcb + g_scb) / 2.

    Equations (2) and (5) print only W2(W1 z); we read them, as the text's reference to
    squeeze-and-excitation implies, as FC -> ReLU -> FC -> sigmoid, with biases.
    ``branches="tcb"`` or ``"scb"`` keeps one branch (paper Table 5): output x * g.

    ``forward(x, identity)`` is the residual form, fused: relu(x * g + identity).

    Args:
        channels: C.
        frames: T, the temporal size of the feature maps this block sees.
        reduction: r; hidden widths are max(1, C // r) and max(1, T*C // r).
        branches: "stc" (both), "tcb" or "scb".
        backend: "auto" (the fastest available for the input's device), "reference",
            "cpu", "cuda" or "triton"; chosen per call from the input's device.
    """

    def __init__(
        self,
        channels: int,
        frames: int,
        reduction: int = 4,
        branches: str = "stc",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        channels = check_int("STCBlock", "channels", channels)
        frames = check_int("STCBlock", "frames", frames)
        reduction = check_int("STCBlock", "reduction", reduction)
        if branches not in BRANCHES:
            raise ValueError(f"STCBlock: branches must be one of {BRANCHES}, got {branches!r}")
        if backend != "auto" and backend not in BACKEND_NAMES:
            raise ValueError(
                f"STCBlock: backend must be one of {('auto',) + BACKEND_NAMES}, got {backend!r}"
            )
        self.channels, self.frames, self.reduction = channels, frames, reduction
        self.branches, self.backend = branches, backend
        if branches in ("stc", "tcb"):
            self.tcb = BranchMLP(channels, max(1, channels // reduction), channels)
        if branches in ("stc", "scb"):
            width = frames * channels
            self.scb = BranchMLP(width, max(1, width // reduction), channels)

    def params(self) -> STCParams:
        tcb = self.tcb.weights() if self.branches != "scb" else None
        scb = self.scb.weights() if self.branches != "tcb" else None
        return STCParams(tcb, scb)

    def forward(self, x: Tensor, identity: Tensor | None = None) -> Tensor:
        """x: (N, C, T, H, W) -> same shape; with identity (the residual form):
        relu(stc(x) + identity)."""
        return stc(x, self.params(), identity, backend=self.backend, caller="STCBlock")

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, frames={self.frames}, reduction={self.reduction}, "
            f"branches={self.branches!r}, backend={self.backend!r}"
        )
