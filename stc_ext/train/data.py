"""From a config to datasets and loaders whose randomness can be saved and replayed.

Two pieces make a stopped-and-resumed run see exactly the data an uninterrupted one sees,
whatever the number of loader workers:

* :class:`ResumableSampler` (a ``DistributedSampler``) orders the epoch from ``(seed, epoch)``
  and can start part-way through it; its state is ``(epoch, position)``.
* :class:`SeededDataset` gives every sample its own augmentation seed, derived from
  ``(seed, epoch, index)`` and carried in the sampler's keys, so a clip's random temporal
  position, crop and flip do not depend on which worker decodes it or what ran before.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..data import (
    Annotation,
    EvalTransform,
    TrainTransform,
    VideoClipDataset,
    collate_clips,
    read_hmdb51,
    read_kinetics_csv,
    read_list_file,
    read_ucf101,
)
from .config import ConfigError

__all__ = [
    "ResumableSampler",
    "SeededDataset",
    "ShardSampler",
    "make_loader",
    "read_annotation",
    "sample_seed",
]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of sample ``index`` in ``epoch`` (a 63-bit int)."""
    return int(
        np.random.SeedSequence([seed, epoch, index]).generate_state(2, np.uint64)[0] >> np.uint64(1)
    )


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that yields ``(index, seed)`` keys and can resume mid-epoch.

    Each rank's list for an epoch is the ``DistributedSampler`` one, cut to a whole number of
    optimiser steps (``usable``: a multiple of ``micro_batch * accumulation``) so that an epoch
    never ends inside a gradient-accumulation window. ``set_position(k)`` skips the first ``k``
    samples of the current epoch.
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int,
        rank: int,
        seed: int,
        samples_per_step: int,
        shuffle: bool = True,
    ) -> None:
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=False,
        )
        self.samples_per_step = samples_per_step
        self.usable = (self.num_samples // samples_per_step) * samples_per_step
        self.position = 0

    @property
    def steps_per_epoch(self) -> int:
        return self.usable // self.samples_per_step

    def set_position(self, position: int) -> None:
        if not 0 <= position <= self.usable:
            raise ValueError(f"ResumableSampler: position {position} outside 0..{self.usable}")
        self.position = position

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[: self.usable]
        for index in indices[self.position :]:
            yield index, sample_seed(self.seed, self.epoch, index)

    def __len__(self) -> int:
        return self.usable - self.position


class ShardSampler(Sampler[int]):
    """Rank ``rank``'s share ``rank, rank + world, ...`` of ``0..n-1``, in order, no padding
    (so an evaluation counts every video exactly once)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, n, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class SeededDataset(Dataset):
    """Wraps a dataset so that ``ds[(index, seed)]`` draws its randomness from ``seed`` alone.

    The global torch RNG is forked around the read (and restored after it), so the process's
    own random stream is untouched.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


def _ignore_sigint(_: int) -> None:
    # Ctrl-C reaches the whole process group; workers keep serving batches while the main
    # process finishes its step and saves a checkpoint.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    sampler: Sampler,
    workers: int,
    pin_memory: bool,
    seed: int,
    collate: Callable[..., Any] = collate_clips,
) -> DataLoader:
    """A DataLoader (``collate``: ``collate_clips`` by default) that never touches the global
    RNG.

    Its own generator seeds the workers, so creating an iterator does not advance the
    process's random stream (which a resumed run must replay exactly).
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=False,
        persistent_workers=workers > 0,
        worker_init_fn=_ignore_sigint if workers > 0 else None,
        generator=generator,
    )


# ---------------------------------------------------------------------------- annotations


def _require_path(path: str | None, field: str, what: str) -> Path:
    """``path`` (the value of config ``field``: ``what``), which must exist."""
    if path is None:
        raise ConfigError(f"is required ({what})", field=field)
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{what} not found: {p}", field=field)
    return p


def read_annotation(
    dataset: str,
    root: str | None,
    annotations: str | None,
    split: int,
    subset: str,
    classes: Sequence[str] | None = None,
) -> Annotation:
    """Read one subset (``"train"`` or ``"test"``) of a dataset described by config fields.

    ``annotations`` is the split folder (UCF101/HMDB51/synthetic), the CSV (Kinetics) or the
    list file (list) of that subset. ``classes`` fixes the label order for Kinetics/list
    validation sets.

    Raises:
        ConfigError: a path is missing or the dataset kind is unknown.
    """
    video_root = _require_path(root, "root", f"{dataset} videos")
    if dataset == "synthetic":
        split_dir = Path(annotations) if annotations else video_root / "splits"
        if not split_dir.is_dir():
            raise ConfigError(
                f"synthetic split folder not found: {split_dir} (write the synthetic "
                "dataset under root first)",
                field="annotations",
            )
        return read_ucf101(video_root / "videos", split_dir, split, subset)
    if dataset in ("ucf101", "hmdb51"):
        split_dir = _require_path(annotations, "annotations", f"{dataset} split folder")
        reader = read_ucf101 if dataset == "ucf101" else read_hmdb51
        return reader(video_root, split_dir, split, subset)
    if dataset == "kinetics":
        csv_path = _require_path(annotations, "annotations", "Kinetics CSV")
        return read_kinetics_csv(csv_path, video_root, None, classes)
    if dataset == "list":
        list_path = _require_path(annotations, "annotations", "list file")
        return read_list_file(list_path, video_root, classes)
    raise ConfigError(f"unknown dataset {dataset!r}", field="dataset")


def clip_dataset(
    annotation: Annotation,
    frames: int,
    stride: int,
    mode: str,
    size: int,
    short_side: int,
    strict: bool,
    drop_last_partial: bool = False,
) -> VideoClipDataset:
    """A ``VideoClipDataset`` with the paper's transforms at the configured sizes."""
    if size > short_side:
        raise ConfigError(f"must not exceed short_side, got {size} > {short_side}", field="size")
    transform = (
        TrainTransform(short_side=short_side, crop=size)
        if mode == "train"
        else EvalTransform(short_side=short_side, crop=size)
    )
    return VideoClipDataset(
        annotation,
        frames=frames,
        stride=stride,
        mode=mode,
        transform=transform,
        strict=strict,
        drop_last_partial=drop_last_partial,
    )
