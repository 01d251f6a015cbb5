"""``VideoClipDataset``: annotation records -> decoded, sampled, transformed clips.

Modes (paper §4.2):

- ``"train"``: one clip per video at a random temporal position, random 5-position crop and
  flip. Item: ``(clip float32 (3, T, 112, 112), label int)``.
- ``"val"``: one clip at the video's centre, centre crop (a quick validation-loss pass).
  Item: ``(clip float32 (3, T, 112, 112), label int)``.
- ``"test"``: the whole video as non-overlapping clips, centre crop; the evaluator averages the
  clip predictions per video. Item: ``(clips float32 (N, 3, T, 112, 112), label int, index int)``
  with ``N`` depending on the video's length. Decoding each video once for all its clips is
  why an item is a video, not a clip; :func:`~stc_ext.data.loader.collate_clips` flattens a batch
  of videos into clips plus a clip -> video index.

A video that cannot be decoded (corrupt, truncated before its first frame, empty) raises
:class:`~stc_ext.data.errors.VideoDecodeError` naming its path when ``strict=True``. By default
(lenient) the item is a :class:`SkippedVideo` instead; the collate function drops it, and
:class:`~stc_ext.data.loader.ClipLoader` reports all skips once at the end of each epoch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .annotations import Annotation, VideoRecord
from .decode import open_video
from .errors import VideoDecodeError
from .sampling import (
    center_clip_indices,
    check_clip_args,
    non_overlapping_clip_indices,
    train_clip_indices,
)
from .transforms import EvalTransform, TrainTransform

__all__ = ["MODES", "SkippedVideo", "VideoClipDataset"]

MODES: tuple[str, ...] = ("train", "val", "test")

#: ``uint8 (..., T, H, W, 3)`` -> ``float32 (..., 3, T, h, w)``; may take a ``generator``.
ClipTransform = Callable[..., torch.Tensor]


class SkippedVideo(NamedTuple):
    """A video left out of a batch in lenient mode: its dataset index, path and the reason."""

    index: int
    path: str
    reason: str


def _as_annotation(source: Annotation | Sequence[VideoRecord | str | Path]) -> Annotation:
    if isinstance(source, Annotation):
        return source
    if isinstance(source, (str, Path)):
        raise TypeError(
            "VideoClipDataset: pass an Annotation (e.g. read_ucf101(...)) or a list of "
            f"records/paths, not a single path {str(source)!r}; for a folder of videos use "
            "read_video_folder(path)"
        )
    records = [r if isinstance(r, VideoRecord) else VideoRecord(Path(r)) for r in source]
    return Annotation(records, [], "video list")


def _select_train(frames: int, stride: int, num_frames: int) -> np.ndarray:
    return train_clip_indices(num_frames, frames, stride)


def _select_val(frames: int, stride: int, num_frames: int) -> np.ndarray:
    return center_clip_indices(num_frames, frames, stride)


def _select_test(frames: int, stride: int, drop: bool, num_frames: int) -> np.ndarray:
    return non_overlapping_clip_indices(num_frames, frames, stride, drop)


class VideoClipDataset(Dataset):
    """Clips of ``frames`` frames at temporal ``stride`` from annotated videos.

    Args:
        source: an :class:`Annotation` (from ``read_ucf101``, ``read_hmdb51``,
            ``read_kinetics_csv``, ``read_list_file``, ``read_video_folder``) or a list of
            :class:`VideoRecord`\\ s / paths (unlabeled).
        frames: frames per clip (the paper uses 16, 32 or 64; any positive int works).
        stride: temporal sampling rate (the paper's best is 2).
        mode: ``"train"``, ``"val"`` or ``"test"`` (see the module docstring).
        transform: ``uint8 (..., T, H, W, 3) -> float32 (..., 3, T, h, w)``; default
            :class:`TrainTransform` for ``"train"``, :class:`EvalTransform` otherwise.
        strict: raise on an undecodable video (and on any missing listed file) instead of
            skipping and reporting it.
        check_files: check before anything is decoded that every listed video exists, reporting
            all missing ones at once (raised with ``strict``, else logged and left out).
        drop_last_partial: ``"test"`` mode: drop a final clip that would need loop padding.
        thread_type: PyAV decoder threading (see :class:`~stc_ext.data.decode.VideoFileReader`).

    Raises:
        ValueError: bad ``frames``, ``stride`` or ``mode``.
        MissingFilesError: listed videos are absent (all, or any with ``strict``).
    """

    def __init__(
        self,
        source: Annotation | Sequence[VideoRecord | str | Path],
        frames: int = 16,
        stride: int = 2,
        mode: str = "train",
        transform: ClipTransform | None = None,
        strict: bool = False,
        check_files: bool = True,
        drop_last_partial: bool = False,
        thread_type: str = "SLICE",
    ) -> None:
        check_clip_args(frames, stride, "VideoClipDataset")
        if mode not in MODES:
            raise ValueError(f"VideoClipDataset: mode must be one of {list(MODES)}, got {mode!r}")
        annotation = _as_annotation(source)
        if check_files:
            annotation = annotation.check_files(strict=strict)
        if not annotation.records:
            raise ValueError(f"VideoClipDataset: {annotation.name} holds no videos")
        self.annotation = annotation
        self.frames = frames
        self.stride = stride
        self.mode = mode
        self.strict = strict
        self.thread_type = thread_type
        if transform is None:
            transform = TrainTransform() if mode == "train" else EvalTransform()
        self.transform = transform
        if mode == "train":
            self._select = functools.partial(_select_train, frames, stride)
        elif mode == "val":
            self._select = functools.partial(_select_val, frames, stride)
        else:
            self._select = functools.partial(_select_test, frames, stride, drop_last_partial)
        # Decoded frame counts, learnt on first read (per process: each DataLoader worker keeps
        # its own), so later reads stop decoding after the last frame they need.
        self._num_frames: dict[int, int] = {}

    @property
    def classes(self) -> list[str]:
        """Class names by label index (empty for unlabeled sources)."""
        return self.annotation.classes

    @property
    def records(self) -> list[VideoRecord]:
        return self.annotation.records

    @property
    def labels(self) -> list[int]:
        return [r.label for r in self.annotation.records]

    def __len__(self) -> int:
        return len(self.annotation.records)

    def read_frames(self, index: int) -> torch.Tensor:
        """The sampled, untransformed frames of video ``index``: ``uint8 (T, H, W, 3)`` in
        train/val mode, ``uint8 (N, T, H, W, 3)`` in test mode.

        Raises:
            VideoDecodeError: the video cannot be decoded (in every mode, strict or not).
        """
        record = self.annotation.records[index]
        reader = open_video(record.path, thread_type=self.thread_type)
        frames, num_frames = reader.read(self._select, self._num_frames.get(index))
        self._num_frames[index] = num_frames
        return frames

    def sampled_frames(self, index: int) -> tuple[np.ndarray, int] | None:
        """``(frame indices, frame count)`` of this process's last read of video ``index``:
        the indices ``(N, frames)`` its clips hold in test mode (``(frames,)`` in val mode), and
        the decoded frame count they were chosen from; None before the first read.

        Raises:
            ValueError: in train mode (its clip positions are random, not recorded).
        """
        if self.mode == "train":
            raise ValueError("VideoClipDataset.sampled_frames: train-mode clips are random")
        num_frames = self._num_frames.get(index)
        return None if num_frames is None else (self._select(num_frames), num_frames)

    def __getitem__(self, index: int):
        """``(clip, label)`` (train/val), ``(clips, label, index)`` (test), or a
        :class:`SkippedVideo` when the video cannot be decoded and ``strict`` is False."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"VideoClipDataset: index {index} out of range for {len(self)} videos")
        index = index % len(self)
        record = self.annotation.records[index]
        try:
            frames = self.read_frames(index)
        except VideoDecodeError as exc:
            if self.strict:
                raise
            return SkippedVideo(index, str(record.path), exc.reason or str(exc))
        clips = self.transform(frames)
        if self.mode == "test":
            return clips, record.label, index
        return clips, record.label

    def __repr__(self) -> str:
        return (
            f"VideoClipDataset({self.annotation.name}: {len(self)} videos, "
            f"{self.annotation.num_classes} classes, frames={self.frames}, "
            f"stride={self.stride}, mode={self.mode!r}, strict={self.strict})"
        )
