"""Temporal sampling: which frame indices make up a clip (paper §4.2).

A clip is ``frames`` frames taken every ``stride`` frames (the paper's "input stride", best at 2),
so it spans ``(frames - 1) * stride + 1`` frames of the video. A video shorter than that is
*loop-padded*: its sampled positions repeat from the first until the clip is full (the
3D-ResNets convention), so every video gives full-length clips.

All functions return ``int64`` numpy arrays of indices in ``[0, num_frames)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..validation import check_int

__all__ = [
    "center_clip_indices",
    "check_clip_args",
    "clip_span",
    "non_overlapping_clip_indices",
    "train_clip_indices",
]


def check_clip_args(frames: int, stride: int, where: str = "clip sampling") -> None:
    """Raise ``ValueError`` unless ``frames`` and ``stride`` are positive integers."""
    check_int(where, "frames", frames)
    check_int(where, "stride", stride)


def _check_num_frames(num_frames: int) -> None:
    if num_frames < 1:
        raise ValueError(f"clip sampling: the video must have at least 1 frame, got {num_frames}")


def clip_span(frames: int, stride: int) -> int:
    """The number of video frames a clip covers: ``(frames - 1) * stride + 1``."""
    check_clip_args(frames, stride)
    return (frames - 1) * stride + 1


def _loop(positions: np.ndarray, frames: int) -> np.ndarray:
    # np.resize repeats its input cyclically: exactly loop padding.
    return np.resize(positions, frames).astype(np.int64)


def train_clip_indices(
    num_frames: int, frames: int, stride: int, generator: torch.Generator | None = None
) -> np.ndarray:
    """One training clip at a uniformly random temporal position: shape ``(frames,)``.

    The start is drawn from ``[0, num_frames - span]`` with torch's RNG (``generator`` or the
    global one, which DataLoader seeds per worker). Short videos start at 0 and are loop-padded.
    """
    check_clip_args(frames, stride)
    _check_num_frames(num_frames)
    last_start = max(0, num_frames - clip_span(frames, stride))
    start = int(torch.randint(0, last_start + 1, (1,), generator=generator).item())
    return _loop(np.arange(start, num_frames, stride)[:frames], frames)


def center_clip_indices(num_frames: int, frames: int, stride: int) -> np.ndarray:
    """One clip at the centre of the video (for a quick validation pass): shape ``(frames,)``."""
    check_clip_args(frames, stride)
    _check_num_frames(num_frames)
    start = max(0, num_frames - clip_span(frames, stride)) // 2
    return _loop(np.arange(start, num_frames, stride)[:frames], frames)


def non_overlapping_clip_indices(
    num_frames: int, frames: int, stride: int, drop_last_partial: bool = False
) -> np.ndarray:
    """The video as consecutive non-overlapping clips (paper §4.2 testing): ``(num_clips, frames)``.

    The sampled positions ``0, stride, 2*stride, ...`` are cut into runs of ``frames``; every
    position appears in exactly one clip. A final run shorter than ``frames`` is completed by
    looping back to the video's first positions (so a short video gives one loop-padded clip),
    or dropped with ``drop_last_partial=True`` unless it is the only clip.
    """
    check_clip_args(frames, stride)
    _check_num_frames(num_frames)
    positions = np.arange(0, num_frames, stride)
    count = len(positions)
    num_clips = math.ceil(count / frames)
    if drop_last_partial and count >= frames:
        num_clips = count // frames
    order = np.arange(num_clips * frames) % count
    return positions[order].reshape(num_clips, frames).astype(np.int64)
