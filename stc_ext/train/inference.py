"""Running a network on whole videos by the paper's test protocol (§4.2 "Testing").

One path serves ``stc evaluate`` (:mod:`.evaluate`), ``stc predict`` and ``stc extract``
(:mod:`stc_ext.predict`, :mod:`stc_ext.extract`):

    read_source(checkpoint)     the weights, the run config they were trained with, the class
                                names; our checkpoints, or foreign weights + a model name
    -> clip_settings(...)       frames, stride, crop and short side (flags override the config)
    -> build_model(source, ..)  the registry network with the weights loaded
    -> protocol_dataset(..)     each video cut into non-overlapping clips of ``frames`` frames
                                at ``stride``, centre-cropped (VideoClipDataset "test" mode)
    -> clip_outputs(...)        batches of videos through the network, at most ``clip_batch``
                                clips per forward pass: per-clip logits or pooled features
    -> predict_videos(...)      per clip softmax, averaged over each video's clips

Videos that cannot be decoded are skipped and reported (``SkippedVideo``), never fatal.
Clip times (``with_clip_times``): clip ``k`` of a video covers frames ``[start_frame,
end_frame)``; seconds are frame / fps (the container's average rate: exact for constant
frame rate video).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..data import (
    Annotation,
    SkippedVideo,
    VideoBatch,
    VideoClipDataset,
    VideoRecord,
    average_clip_scores,
    collate_clips,
)
from ..models import build_from_config, infer_placement
from . import distributed as tdist
from .checkpoint import CHECKPOINT_FORMAT, describe_contents, read_weights_file
from .config import AMP_DTYPES, ConfigError, upgrade_saved_config
from .data import ShardSampler, clip_dataset, make_loader
from .records import progress_bar

__all__ = [
    "LAYERS",
    "BatchOutputs",
    "ClipSettings",
    "ClipTimes",
    "Source",
    "VideoScores",
    "build_model",
    "clip_outputs",
    "clip_settings",
    "clip_times",
    "predict_videos",
    "read_source",
    "protocol_dataset",
    "video_fps",
]

logger = logging.getLogger("stc_ext.train")

#: What ``clip_outputs`` returns per clip: the classifier's logits, or the globally pooled
#: last-stage features the classifier reads (512-D for ResNet-18/34, 2048-D for ResNet-50+).
LAYERS = ("logits", "pool")
# Defaults of the clip settings for weights that do not record them (the paper's).
_DEFAULT_CLIP = {"frames": 16, "stride": 2, "size": 112, "short_side": 122}


# ---------------------------------------------------------------------------- checkpoints


@dataclass
class Source:
    """What a weights file says about the network and how it was trained."""

    path: str
    state: dict[str, torch.Tensor]
    config: dict[str, Any]  # the run config (model, frames, size, ...) as far as known
    classes: list[str] | None  # class names, when the file records them
    selection: dict[str, Any] | None = None  # what selected an `stc train` checkpoint

    @property
    def has_classifier(self) -> bool:
        return "fc.weight" in self.state

    @property
    def num_classes(self) -> int | None:
        """The classifier's width (None for a backbone without ``fc``)."""
        return int(self.state["fc.weight"].shape[0]) if self.has_classifier else None


def read_source(
    path: str | Path,
    model: str | None = None,
    need_classifier: bool = True,
    placement: str | None = None,
) -> Source:
    """Read the weights in ``path`` on the CPU (``weights_only=True``).

    Accepted: ``stc train`` checkpoints (their config and class names come along), files
    that carry a config (``stc transfer``'s ``student.pt``, ``stc inflate`` outputs) and
    foreign weights (a bare or wrapped state_dict: torchvision, kenshohara/3D-ResNets, ...),
    for which ``model`` names the architecture. ``stc transfer`` checkpoints give their
    student, a backbone without classifier. ``model`` overrides a recorded model name;
    ``placement`` ("block"/"stage") is the STC placement of foreign weights, and must match
    a recorded one (configs that predate the option mean "block").

    Raises:
        ConfigError: (field ``checkpoint``) a missing or unreadable file, a file without
            tensors, or (``need_classifier``) weights without a classifier; (field
            ``model``) foreign weights without ``model``; (field ``placement``) a placement
            other than the recorded one.
    """
    from ..models.checkpoint import read_state_dict

    p = Path(path)
    raw = read_weights_file(p, "checkpoint")
    classes, selection = None, None
    config: dict[str, Any] = {}
    recorded = False  # does the file record the config it was made with?
    if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
        config, recorded = upgrade_saved_config(raw["config"]), True
        if raw.get("task", "classify") == "classify":
            classes = [str(c) for c in raw["classes"]]
            selection = raw.get("selection")
        elif "init_model" in raw and not need_classifier:
            raw = {"model": raw["init_model"]}  # a transfer run: its student backbone
        else:
            raise ConfigError(
                f"{p} is a {raw['task']!r} checkpoint, not a classifier: fine-tune it "
                "first (train with init)",
                field="checkpoint",
            )
    elif isinstance(raw, dict) and isinstance(raw.get("config"), dict):
        config, recorded = upgrade_saved_config(raw["config"]), True  # student.pt, stc inflate
    try:
        state, _ = read_state_dict(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{p}: {exc}", field="checkpoint") from None
    saved_placement = config.get("placement") or "block"  # configs before the option: block
    if recorded and placement is not None and placement != saved_placement:
        raise ConfigError(
            f"{placement} does not match {p}, which was trained with placement="
            f"{saved_placement} (its STC blocks are where that placement puts them)",
            field="placement",
        )
    config["placement"] = placement or saved_placement
    if model is not None:
        config["model"] = model
    if "model" not in config:
        raise ConfigError(
            f"{p} is {describe_contents(raw)} and does not record its architecture: give "
            "the model name (and frames, size and stride if not 16, 112 and 2)",
            field="model",
        )
    source = Source(str(p), state, config, classes, selection)
    if need_classifier and not source.has_classifier:
        raise ConfigError(
            f"{p} holds a backbone without classifier (no fc): fine-tune it first, or "
            "extract its pooled features",
            field="checkpoint",
        )
    return source


class ClipSettings(NamedTuple):
    """How videos are cut and cropped for the network."""

    frames: int
    stride: int
    size: int
    short_side: int


def clip_settings(
    config: Mapping[str, Any],
    frames: int | None = None,
    stride: int | None = None,
    size: int | None = None,
    short_side: int | None = None,
) -> ClipSettings:
    """The clip settings: the given values, else the training ``config``'s, else the paper's
    (16 frames, stride 2, 112 crop, short side 122; the short side is at least the crop).

    Raises:
        ConfigError: (field ``frames``) frames other than the ones a checkpoint's
            network was trained with (STC blocks are sized for them).
    """
    trained = config.get("frames")
    if frames is not None and trained is not None and frames != trained:
        raise ConfigError(
            f"{frames} does not match the checkpoint, which was trained with "
            f"frames={trained} (the model only accepts such clips)",
            field="frames",
        )

    def pick(name: str, given: int | None) -> int:
        value = given if given is not None else config.get(name)
        return int(value if value is not None else _DEFAULT_CLIP[name])

    size_value = pick("size", size)
    side = short_side if short_side is not None else config.get("short_side")
    side = max(size_value, _DEFAULT_CLIP["short_side"]) if side is None else int(side)
    return ClipSettings(pick("frames", frames), pick("stride", stride), size_value, side)


def build_model(
    source: Source,
    clip: ClipSettings,
    num_classes: int | None = None,
    backend: str | None = None,
) -> nn.Module:
    """The network ``source`` describes, for ``clip``, with its weights, in eval mode on the CPU.

    ``num_classes``: the classifier's width (default: the weights'). A backbone without
    ``fc`` gets a placeholder classifier (only its features are meaningful).

    Raises:
        ConfigError: the architecture is unknown or the weights do not fit it.
    """
    config = {**source.config, "frames": clip.frames, "size": clip.size}
    if num_classes is None:
        num_classes = source.num_classes or 1
    try:
        model = build_from_config(config, num_classes, backend=backend)
    except ValueError as exc:
        raise ConfigError(str(exc), field="model") from None
    theirs, ours = infer_placement(source.state), infer_placement(model.state_dict())
    hint = ""
    if theirs is not None and ours is not None and theirs != ours:
        hint = f"\nthe weights' STC blocks are placed per {theirs!r}: give placement {theirs}"
    try:
        missing, unexpected = model.load_state_dict(source.state, strict=source.has_classifier)
    except RuntimeError as exc:
        raise ConfigError(
            f"{source.path}: weights do not fit {config['model']}: {exc}{hint}",
            field="checkpoint",
        ) from None
    absent = [k for k in missing if not k.startswith("fc.")]
    if absent or unexpected:
        raise ConfigError(
            f"{source.path}: weights do not fit {config['model']}: missing {absent}, "
            f"unexpected {unexpected}{hint}",
            field="checkpoint",
        )
    return model.eval()


# ---------------------------------------------------------------------------- videos


def protocol_dataset(
    source: Annotation | Sequence[VideoRecord],
    clip: ClipSettings,
    strict: bool = False,
    drop_last_partial: bool = False,
) -> VideoClipDataset:
    """Every video of ``source`` as non-overlapping centre-cropped clips (the test protocol)."""
    annotation = (
        source if isinstance(source, Annotation) else Annotation(list(source), [], "videos")
    )
    return clip_dataset(
        annotation,
        clip.frames,
        clip.stride,
        "test",
        clip.size,
        clip.short_side,
        strict,
        drop_last_partial,
    )


def video_fps(path: str | Path) -> float | None:
    """A video file's average frame rate from its container (None for frame folders or when
    the container does not say)."""
    if Path(path).is_dir():
        return None
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
    except (av.FFmpegError, OSError, IndexError):
        return None
    return float(rate) if rate else None


@dataclass
class ClipTimes:
    """Where each clip of a video lies: clip ``k`` covers frames ``[start_frame[k],
    end_frame[k])`` (seconds: frame / ``fps``); ``padded[k]``: the clip was completed by
    looping back to the video's start (its end is the video's end)."""

    num_frames: int
    fps: float | None
    start_frame: list[int]
    end_frame: list[int]
    padded: list[bool]

    def seconds(self, frame: int) -> float | None:
        return None if not self.fps else round(frame / self.fps, 6)


def clip_times(indices: np.ndarray, num_frames: int, stride: int, fps: float | None) -> ClipTimes:
    """``ClipTimes`` of clips whose frame indices are ``indices`` (N, T), sampled every
    ``stride`` frames from a video of ``num_frames`` frames."""
    starts, ends, padded = [], [], []
    for row in np.asarray(indices).reshape(len(indices), -1):
        wrap = np.flatnonzero(np.diff(row) < 0)  # loop padding jumps back to the start
        last = int(row[wrap[0]]) if len(wrap) else int(row[-1])
        starts.append(int(row[0]))
        ends.append(min(last + stride, num_frames))
        padded.append(bool(len(wrap)))
    return ClipTimes(num_frames, fps, starts, ends, padded)


class _WithClipTimes(Dataset):
    """A test-mode ``VideoClipDataset`` whose items also carry the clips' ``ClipTimes``."""

    def __init__(self, dataset: VideoClipDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        if isinstance(item, SkippedVideo):
            return item
        indices, num_frames = self.dataset.sampled_frames(index)
        fps = video_fps(self.dataset.records[index].path)
        return (*item, clip_times(indices, num_frames, self.dataset.stride, fps))


def _collate(items: Sequence[Any]) -> tuple[tuple[VideoBatch | None, list[Any]], list]:
    """``collate_clips`` for (clips, label, index[, extra]) items: ``((batch, extras), lost)``."""
    good = [item for item in items if not isinstance(item, SkippedVideo)]
    extras = [item[3] for item in good if len(item) > 3]
    trimmed = [item if isinstance(item, SkippedVideo) else tuple(item[:3]) for item in items]
    batch, lost = collate_clips(trimmed)
    return (batch, extras), lost


# ---------------------------------------------------------------------------- the network


class BatchOutputs(NamedTuple):
    """One loader batch through the network.

    ``batch``: the videos decoded (None when all were skipped); ``outputs``: float32 (M, D)
    on the CPU, one row per clip (``batch.clip_to_video`` maps rows to videos); ``times``:
    each video's ``ClipTimes`` (with ``with_clip_times``, else empty); ``lost``: the videos
    of this batch that could not be decoded.
    """

    batch: VideoBatch | None
    outputs: torch.Tensor | None
    times: list[ClipTimes]
    lost: list[SkippedVideo]


@torch.inference_mode()
def clip_outputs(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device,
    layer: str = "logits",
    batch_size: int = 4,
    clip_batch: int = 32,
    workers: int = 2,
    amp: str = "none",
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "evaluating",
    with_clip_times: bool = False,
) -> Iterator[BatchOutputs]:
    """Run ``model`` on every clip of this rank's share of ``dataset``, video batch by batch.

    ``dataset``: test-mode items ``(clips (N, 3, T, H, W), label, index)`` or
    ``SkippedVideo``; with ``with_clip_times`` it must be a ``VideoClipDataset``.
    ``layer``: "logits" (``model(x)``) or "pool" (``model.forward_features(x)``).
    """
    if layer not in LAYERS:
        raise ValueError(f"clip_outputs: layer must be one of {LAYERS}, got {layer!r}")
    forward = model if layer == "logits" else getattr(model, "forward_features", None)
    if forward is None:
        raise ValueError(f"clip_outputs: {type(model).__name__} has no forward_features")
    if with_clip_times:
        dataset = _WithClipTimes(dataset)
    rank, world = tdist.rank_and_world()
    sampler = ShardSampler(len(dataset), rank, world)
    loader = make_loader(
        dataset, batch_size, sampler, workers, device.type == "cuda", 0, collate=_collate
    )
    model.eval()
    dtype = AMP_DTYPES.get(amp)
    with progress_bar(progress and rank == 0, total=len(sampler), unit="video", desc=desc) as bar:
        for (batch, times), lost in loader:
            outputs = None
            if batch is not None:
                chunks = []
                for chunk in batch.clips.split(clip_batch):
                    chunk = chunk.to(device, non_blocking=True)
                    if channels_last:
                        chunk = chunk.contiguous(memory_format=torch.channels_last_3d)
                    with torch.autocast(
                        device.type, dtype=dtype or torch.float32, enabled=dtype is not None
                    ):
                        chunks.append(forward(chunk).float().cpu())
                outputs = torch.cat(chunks)
            yield BatchOutputs(batch, outputs, times, list(lost))
            if bar is not None:
                bar.update(len(lost) + (0 if batch is None else len(batch.labels)))


class VideoScores(NamedTuple):
    """Per-video results of ``predict_videos``, on the CPU, ordered by dataset index."""

    scores: torch.Tensor  # float32 (V, K): the mean softmax over each video's clips
    indices: torch.Tensor  # int64 (V,): dataset index of each row
    clips: torch.Tensor  # int64 (V,): clips per video
    skipped: list[SkippedVideo]  # videos that could not be decoded (all ranks)


def predict_videos(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device,
    batch_size: int = 4,
    clip_batch: int = 32,
    workers: int = 2,
    amp: str = "none",
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "evaluating",
) -> VideoScores:
    """Per-video class probabilities by the test protocol, over all ranks.

    ``dataset``: a ``VideoClipDataset`` in ``"test"`` mode (non-overlapping centre-cropped
    clips), or any dataset of such items. Each rank scores its share of the videos; the
    results are gathered. Videos that could not be decoded are left out and listed.
    """
    scores, indices, counts, skipped = [], [], [], []
    for out in clip_outputs(
        model,
        dataset,
        device,
        "logits",
        batch_size,
        clip_batch,
        workers,
        amp,
        channels_last,
        progress,
        desc,
    ):
        skipped.extend(out.lost)
        if out.batch is None:
            continue
        videos = len(out.batch.labels)
        probs = torch.softmax(out.outputs, dim=1)
        scores.append(average_clip_scores(probs, out.batch.clip_to_video, videos))
        indices.append(out.batch.indices)
        counts.append(torch.bincount(out.batch.clip_to_video, minlength=videos))
    local = (
        torch.cat(scores) if scores else None,
        torch.cat(indices) if indices else None,
        torch.cat(counts) if counts else None,
        skipped,
    )
    gathered = tdist.all_gather_objects(local)
    parts = [g for g in gathered if g[0] is not None]
    all_skipped = [s for g in gathered for s in g[3]]
    if not parts:
        empty = torch.zeros(0, dtype=torch.int64)
        return VideoScores(torch.zeros(0, 0), empty, empty.clone(), all_skipped)
    all_indices = torch.cat([p[1] for p in parts])
    order = torch.argsort(all_indices)
    return VideoScores(
        torch.cat([p[0] for p in parts])[order],
        all_indices[order],
        torch.cat([p[2] for p in parts])[order],
        all_skipped,
    )
