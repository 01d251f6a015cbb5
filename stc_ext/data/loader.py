"""Batching :class:`~stc_ext.data.dataset.VideoClipDataset` items, and the per-epoch skip report.

:func:`collate_clips` turns a list of items into ``(batch, skipped)``: the batch of good items
(:class:`ClipBatch` for train/val, :class:`VideoBatch` for test) and the
:class:`~stc_ext.data.dataset.SkippedVideo` s it dropped. It runs inside DataLoader workers, so
skips travel back with the batch; :class:`ClipLoader` collects them over an epoch, logs one
warning listing them all at its end, and yields only the batches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader, Sampler

from ..validation import check_int
from .dataset import SkippedVideo, VideoClipDataset

__all__ = ["ClipBatch", "ClipLoader", "VideoBatch", "average_clip_scores", "collate_clips"]

logger = logging.getLogger("stc_ext.data")


class ClipBatch(NamedTuple):
    """Train/val batch: ``clips`` ``float32 (B, 3, T, H, W)``, ``labels`` ``int64 (B,)``."""

    clips: torch.Tensor
    labels: torch.Tensor


class VideoBatch(NamedTuple):
    """Test batch of ``B`` videos cut into ``M = sum(N_i)`` clips.

    Attributes:
        clips: ``float32 (M, 3, T, H, W)``, video by video.
        labels: ``int64 (B,)``, one per video.
        clip_to_video: ``int64 (M,)``, the batch position (``0..B-1``) of each clip's video.
        indices: ``int64 (B,)``, each video's index in the dataset.
    """

    clips: torch.Tensor
    labels: torch.Tensor
    clip_to_video: torch.Tensor
    indices: torch.Tensor


def collate_clips(
    items: Sequence[Any],
) -> tuple[ClipBatch | VideoBatch | None, list[SkippedVideo]]:
    """Stack dataset items into a batch, dropping :class:`SkippedVideo` s.

    Returns:
        ``(batch, skipped)``: ``batch`` is a :class:`ClipBatch` for ``(clip, label)`` items, a
        :class:`VideoBatch` for ``(clips, label, index)`` items, or ``None`` when every item was
        skipped.
    """
    skipped = [item for item in items if isinstance(item, SkippedVideo)]
    good = [item for item in items if not isinstance(item, SkippedVideo)]
    if not good:
        return None, skipped
    labels = torch.tensor([item[1] for item in good], dtype=torch.int64)
    if len(good[0]) == 2:
        return ClipBatch(torch.stack([item[0] for item in good]), labels), skipped
    counts = torch.tensor([item[0].shape[0] for item in good], dtype=torch.int64)
    return (
        VideoBatch(
            clips=torch.cat([item[0] for item in good]),
            labels=labels,
            clip_to_video=torch.repeat_interleave(torch.arange(len(good)), counts),
            indices=torch.tensor([item[2] for item in good], dtype=torch.int64),
        ),
        skipped,
    )


def average_clip_scores(
    scores: torch.Tensor, clip_to_video: torch.Tensor, num_videos: int
) -> torch.Tensor:
    """Average clip predictions per video (paper §4.2 testing).

    Args:
        scores: ``(M, K)`` per-clip scores (e.g. softmax probabilities or logits).
        clip_to_video: ``int64 (M,)`` video position of each clip, from :class:`VideoBatch`.
        num_videos: ``B``; every video must have at least one clip.

    Returns:
        ``(B, K)`` per-video mean, in ``scores``' dtype.
    """
    if scores.dim() != 2 or clip_to_video.shape != scores.shape[:1]:
        raise ValueError(
            f"average_clip_scores: expected scores (M, K) and clip_to_video (M,), got "
            f"{tuple(scores.shape)} and {tuple(clip_to_video.shape)}"
        )
    index = clip_to_video.to(scores.device)
    sums = scores.new_zeros(num_videos, scores.shape[1]).index_add_(0, index, scores)
    counts = torch.bincount(index, minlength=num_videos).to(scores.dtype)
    if bool((counts == 0).any()):
        raise ValueError("average_clip_scores: some video has no clip")
    return sums / counts.unsqueeze(1)


class ClipLoader:
    """A DataLoader over a :class:`VideoClipDataset` that drops undecodable videos and reports
    them once per epoch.

    Iterating yields :class:`ClipBatch` (train/val) or :class:`VideoBatch` (test). After each
    epoch (also one cut short), :attr:`last_epoch_skipped` lists the videos left out and one
    warning on the ``stc_ext.data`` logger names them with the reason. A batch can be smaller
    than ``batch_size`` when it lost videos; a batch that lost all of them is not yielded.

    Args:
        dataset: the dataset.
        batch_size: clips per batch (train/val) or videos per batch (test).
        shuffle: default: True in train mode, else False. Ignored with ``sampler``.
        num_workers: decoding worker processes.
        pin_memory: default: True when CUDA is available.
        persistent_workers: keep workers (and their frame-count caches) across epochs;
            default: True when ``num_workers > 0``.
        drop_last: default: True in train mode (no tiny last batch for BatchNorm), else False.
        sampler: e.g. a ``DistributedSampler``; call its ``set_epoch`` yourself.
        **kwargs: passed on to :class:`torch.utils.data.DataLoader` (``prefetch_factor``,
            ``generator``, ``worker_init_fn``, ...).
    """

    def __init__(
        self,
        dataset: VideoClipDataset,
        batch_size: int,
        shuffle: bool | None = None,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
        drop_last: bool | None = None,
        sampler: Sampler | None = None,
        **kwargs: Any,
    ) -> None:
        check_int("ClipLoader", "batch_size", batch_size)
        train = getattr(dataset, "mode", "train") == "train"
        self.dataset = dataset
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=(train if shuffle is None else shuffle) if sampler is None else False,
            sampler=sampler,
            num_workers=num_workers,
            collate_fn=collate_clips,
            pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
            persistent_workers=(num_workers > 0)
            if persistent_workers is None
            else persistent_workers,
            drop_last=train if drop_last is None else drop_last,
            **kwargs,
        )
        self.last_epoch_skipped: list[SkippedVideo] = []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[ClipBatch | VideoBatch]:
        skipped: list[SkippedVideo] = []
        try:
            for batch, lost in self.loader:
                skipped.extend(lost)
                if batch is not None:
                    yield batch
        finally:
            self.last_epoch_skipped = skipped
            if skipped:
                self._report(skipped)

    def _report(self, skipped: list[SkippedVideo]) -> None:
        lines = "\n".join(f"  {s.path}: {s.reason}" for s in skipped)
        name = getattr(getattr(self.dataset, "annotation", None), "name", "dataset")
        logger.warning(
            "%s: skipped %d undecodable video(s) of %d this epoch (strict=True raises instead):"
            "\n%s",
            name,
            len(skipped),
            len(self.dataset),
            lines,
        )
