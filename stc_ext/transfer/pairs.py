"""Image-video pairs for the correspondence task (paper §3.2), from unlabeled videos.

A pair is ``X`` RGB frames (for the 2D teacher) and a clip (for the 3D student):

- positive: both from the **same time span of the same video**: the clip is ``frames`` frames
  at ``stride`` from a random position, and the ``X`` teacher frames are taken evenly from the
  clip's own frames (``teacher_frame_positions``), so they cover exactly its span;
- negative: the frames from one video and the clip from **another**, each at its own random
  position.

Balance and resampling: item ``i`` of a :class:`PairDataset` is anchored on video ``i // 2`` and
is positive for even ``i``, negative for odd ``i``, so every epoch holds exactly one positive and
one negative per video (1:1). Everything random about a pair (the negative's partner video, the
temporal positions, the crops and flips) is drawn from torch's RNG when the item is read; the
trainer seeds it per ``(seed, epoch, index)`` (:class:`stc_ext.train.data.SeededDataset`), so
pairs are resampled every epoch and a resumed run sees the same pairs. In ``"val"`` mode each
pair is fixed instead (its own generator seeded from the index; centre positions, centre crop):
the held-out pairs are the same every epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data import (
    Annotation,
    EvalTransform,
    SkippedVideo,
    TrainTransform,
    VideoDecodeError,
    center_clip_indices,
    open_video,
    train_clip_indices,
)
from ..data.sampling import check_clip_args

__all__ = [
    "PAIR_CLASSES",
    "PAIR_MODES",
    "PairBatch",
    "PairDataset",
    "PairPlan",
    "collate_pairs",
    "plan_pair",
    "teacher_frame_positions",
]

#: Label names: 0 = the frames and the clip come from different videos, 1 = same time span.
PAIR_CLASSES: tuple[str, str] = ("different", "same")
PAIR_MODES: tuple[str, ...] = ("train", "val")
_VAL_SEED = 0x5EED  # the held-out pairs' generators: fixed, whatever the run's seed


class PairPlan(NamedTuple):
    """Which videos a pair uses: the teacher frames' video, the clip's video, the label."""

    frame_video: int
    clip_video: int
    positive: bool


class PairBatch(NamedTuple):
    """``frames`` ``float32 (B, 3, X, H, W)``, ``clips`` ``float32 (B, 3, T, H, W)``,
    ``labels`` ``int64 (B,)`` (1 = same video and time span)."""

    frames: torch.Tensor
    clips: torch.Tensor
    labels: torch.Tensor


def plan_pair(index: int, num_videos: int, generator: torch.Generator | None = None) -> PairPlan:
    """The videos of pair ``index`` among ``num_videos`` (see the module docstring).

    A negative's clip video is drawn uniformly from the other ``num_videos - 1`` videos with
    ``generator`` (torch's global RNG if None); a positive draws nothing.
    """
    if num_videos < 2:
        raise ValueError(f"plan_pair: negatives need at least 2 videos, got {num_videos}")
    if not 0 <= index < 2 * num_videos:
        raise IndexError(f"plan_pair: index {index} out of range for {2 * num_videos} pairs")
    anchor, positive = index // 2, index % 2 == 0
    if positive:
        return PairPlan(anchor, anchor, True)
    other = int(torch.randint(0, num_videos - 1, (1,), generator=generator).item())
    return PairPlan(anchor, other + (other >= anchor), False)


def teacher_frame_positions(frames: int, teacher_frames: int) -> np.ndarray:
    """Which of a clip's ``frames`` frames the teacher sees: ``teacher_frames`` positions spread
    evenly from its first to its last frame (all of them, in order, when the counts match)."""
    return np.rint(np.linspace(0, frames - 1, teacher_frames)).astype(np.int64)


class PairDataset(Dataset):
    """Positive and negative image-video pairs from unlabeled videos (1:1, see module doc).

    Args:
        source: the videos (e.g. ``read_video_folder(dir)``); labels are ignored.
        frames: clip length ``T`` for the student; ``stride`` its temporal stride.
        teacher_frames: ``X``, frames per pair for the teacher (16 in the paper).
        mode: ``"train"`` (random positions, :class:`TrainTransform`, pairs drawn from the
            global RNG) or ``"val"`` (fixed pairs: centre positions, :class:`EvalTransform`).
        short_side, crop: frame resizing and crop side (122 and 112 in the paper).
        strict: raise on an undecodable video instead of returning a :class:`SkippedVideo`.

    Item ``i``: ``(frames float32 (3, X, crop, crop), clip float32 (3, T, crop, crop),
    label int)``, or a :class:`SkippedVideo` (lenient mode) naming the video that failed.
    """

    def __init__(
        self,
        source: Annotation,
        frames: int = 16,
        stride: int = 2,
        teacher_frames: int = 16,
        mode: str = "train",
        short_side: int = 122,
        crop: int = 112,
        strict: bool = False,
    ) -> None:
        check_clip_args(frames, stride, "PairDataset")
        check_clip_args(teacher_frames, 1, "PairDataset (teacher_frames)")
        if mode not in PAIR_MODES:
            raise ValueError(f"PairDataset: mode must be one of {list(PAIR_MODES)}, got {mode!r}")
        if len(source.records) < 2:
            raise ValueError(
                f"PairDataset: {source.name} has {len(source.records)} video(s); "
                "negative pairs need at least 2"
            )
        self.records = list(source.records)
        self.name = source.name
        self.frames, self.stride, self.teacher_frames = frames, stride, teacher_frames
        self.mode, self.strict = mode, strict
        self.transform = (
            TrainTransform(short_side=short_side, crop=crop)
            if mode == "train"
            else EvalTransform(short_side=short_side, crop=crop)
        )
        self._positions = teacher_frame_positions(frames, teacher_frames)
        self._num_frames: dict[int, int] = {}  # learnt per process on first read

    def __len__(self) -> int:
        return 2 * len(self.records)

    @property
    def num_videos(self) -> int:
        return len(self.records)

    def _generator(self, index: int) -> torch.Generator | None:
        if self.mode == "train":
            return None  # the global RNG, seeded per item by the trainer
        return torch.Generator().manual_seed(_VAL_SEED * 1_000_003 + index)

    def _clip_indices(self, generator: torch.Generator | None) -> Callable[[int], np.ndarray]:
        if self.mode == "train":
            return lambda n: train_clip_indices(n, self.frames, self.stride, generator)
        return lambda n: center_clip_indices(n, self.frames, self.stride)

    def _read(self, video: int, select: Callable[[int], np.ndarray]) -> torch.Tensor:
        reader = open_video(self.records[video].path)
        decoded, num_frames = reader.read(select, self._num_frames.get(video))
        self._num_frames[video] = num_frames
        return decoded

    def read_pair(
        self, index: int, generator: torch.Generator | None = None
    ) -> tuple[PairPlan, torch.Tensor, torch.Tensor]:
        """The plan of pair ``index`` and its untransformed ``uint8`` teacher frames
        ``(X, H, W, 3)`` and clip ``(T, H, W, 3)``.

        Raises:
            VideoDecodeError: a video of the pair cannot be decoded.
        """
        plan = plan_pair(index, len(self.records), generator)
        clip_indices = self._clip_indices(generator)
        if plan.positive:
            # One decode: the clip's frames, then the teacher's frames picked among them.
            both = self._read(
                plan.clip_video,
                lambda n: np.concatenate([idx := clip_indices(n), idx[self._positions]]),
            )
            return plan, both[self.frames :], both[: self.frames]
        teacher = self._read(plan.frame_video, lambda n: clip_indices(n)[self._positions])
        clip = self._read(plan.clip_video, clip_indices)
        return plan, teacher, clip

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"PairDataset: index {index} out of range for {len(self)} pairs")
        generator = self._generator(index)
        try:
            plan, teacher, clip = self.read_pair(index, generator)
        except VideoDecodeError as exc:
            if self.strict:
                raise
            return SkippedVideo(index, exc.path, exc.reason or str(exc))
        # Each side gets its own crop and flip: a positive must be recognised from content,
        # not from the two inputs being the same pixels.
        return (
            self.transform(teacher, generator=generator),
            self.transform(clip, generator=generator),
            int(plan.positive),
        )

    def __repr__(self) -> str:
        return (
            f"PairDataset({self.name}: {len(self.records)} videos, {len(self)} pairs, "
            f"frames={self.frames}, stride={self.stride}, "
            f"teacher_frames={self.teacher_frames}, mode={self.mode!r})"
        )


def collate_pairs(items: Sequence[object]) -> tuple[PairBatch | None, list[SkippedVideo]]:
    """Stack :class:`PairDataset` items into a :class:`PairBatch`, dropping skipped ones.

    Returns ``(batch, skipped)``; ``batch`` is None when every item was skipped.
    """
    skipped = [item for item in items if isinstance(item, SkippedVideo)]
    good = [item for item in items if not isinstance(item, SkippedVideo)]
    if not good:
        return None, skipped
    frames, clips, labels = zip(*good, strict=True)
    return (
        PairBatch(torch.stack(frames), torch.stack(clips), torch.tensor(labels, dtype=torch.int64)),
        skipped,
    )
