"""What every frame reader shares: the :class:`FrameReader` protocol, the selector type, and the
checks and gathering of selected frames.

A reader's one entry point is ``read(select, num_frames)``: it takes a *selector*
``num_frames -> indices`` rather than indices, because a video's frame count is only known for
sure after decoding it (container headers are not trusted: a real AVI was seen claiming 444
frames and decoding 68). The selection is made on the best count available and redone if
decoding ends sooner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

__all__ = ["FrameReader", "Selector", "check_indices", "gather_frames"]

#: ``num_frames -> integer frame indices`` (any shape, values in ``[0, num_frames)``).
Selector = Callable[[int], np.ndarray]


class FrameReader(Protocol):
    """What :class:`~stc_ext.data.dataset.VideoClipDataset` needs from a video."""

    path: str

    def read(self, select: Selector, num_frames: int | None = None) -> tuple[torch.Tensor, int]:
        """Return ``(frames uint8 (*idx.shape, H, W, 3), num_frames)`` for ``idx = select(n)``."""
        ...


def check_indices(path: str, idx: np.ndarray, n: int) -> np.ndarray:
    """``idx`` as ``int64``, or a ``ValueError`` naming ``path`` if empty or outside ``[0, n)``."""
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size == 0:
        raise ValueError(f"{path}: the frame selector returned no indices")
    if idx.min() < 0 or idx.max() >= n:
        raise ValueError(
            f"{path}: the frame selector returned indices in [{idx.min()}, {idx.max()}] "
            f"for a video of {n} frames"
        )
    return idx


def gather_frames(
    unique_frames: list[np.ndarray], inverse: np.ndarray, shape: tuple[int, ...]
) -> torch.Tensor:
    """Stack the decoded unique frames once and index them (repeats cost a copy, not a decode).

    Args:
        unique_frames: ``uint8 (H, W, 3)`` frames of ``np.unique(idx)``, in that order.
        inverse: ``np.unique(idx, return_inverse=True)[1]``.
        shape: ``idx.shape``.

    Returns:
        ``uint8 (*shape, H, W, 3)``.
    """
    stacked = torch.from_numpy(np.stack(unique_frames))
    inverse = inverse.reshape(-1)
    if len(inverse) == len(unique_frames) and bool((np.diff(inverse) > 0).all()):
        return stacked.reshape(*shape, *stacked.shape[1:])  # idx was sorted without repeats
    return stacked[torch.from_numpy(inverse)].reshape(*shape, *stacked.shape[1:])
