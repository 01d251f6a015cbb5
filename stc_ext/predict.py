"""``stc predict``: the top-k classes of your own videos, by the paper's test protocol.

``predict(videos, checkpoint)`` walks the given files and folders (``collect_videos``), cuts
each video into non-overlapping centre-cropped clips, averages the clips' softmax and
returns each video's top-k classes, through the same code as ``stc evaluate``
(:mod:`stc_ext.train.inference`). Videos that cannot be read are listed, not fatal. Class
names come from the checkpoint when it recorded them (``stc train`` does), else from a
labels file (``read_labels``), else they are the class indices. ``write_predictions`` saves
the result as JSON or CSV.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .data import VideoRecord
from .data.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from .train import distributed as tdist
from .train.atomic import atomic_write_text
from .train.config import AMP_MODES, ConfigError
from .train.inference import (
    build_model,
    clip_settings,
    predict_videos,
    protocol_dataset,
    read_source,
)

__all__ = [
    "PredictResult",
    "VideoInputs",
    "VideoPrediction",
    "collect_videos",
    "predict",
    "read_labels",
    "write_predictions",
]

logger = logging.getLogger("stc_ext.predict")


# ---------------------------------------------------------------------------- inputs


@dataclass
class VideoInputs:
    """What ``collect_videos`` found: the videos, each with the name it is known by (its
    path relative to the folder given, or the file's name), and the paths that do not exist."""

    videos: list[Path] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _is_frame_folder(folder: Path) -> bool:
    """A folder of images and no videos: one video stored frame by frame."""
    entries = list(folder.iterdir())
    has_images = any(e.is_file() and e.suffix.lower() in IMAGE_EXTENSIONS for e in entries)
    has_videos = any(e.is_file() and e.suffix.lower() in VIDEO_EXTENSIONS for e in entries)
    return has_images and not has_videos


def collect_videos(paths: Sequence[str | os.PathLike]) -> VideoInputs:
    """The videos under ``paths``, in order, without duplicates.

    A file is taken as it is (whatever its extension; an unreadable one is skipped when it
    is decoded). A folder holding images and no video files is one video stored as frames;
    any other folder is walked recursively for files with a video extension
    (``VIDEO_EXTENSIONS``), in sorted order. Paths that do not exist are listed in
    ``missing``.
    """
    found = VideoInputs()
    seen: set[Path] = set()

    def add(path: Path, name: str) -> None:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            found.videos.append(path)
            found.names.append(name)

    for given in paths:
        path = Path(given)
        if not path.exists():
            found.missing.append(str(path))
        elif path.is_file():
            add(path, path.name)
        elif _is_frame_folder(path):
            add(path, path.name)
        else:
            for file in sorted(path.rglob("*")):
                if file.is_file() and file.suffix.lower() in VIDEO_EXTENSIONS:
                    add(file, file.relative_to(path).as_posix())
    return found


# ---------------------------------------------------------------------------- labels

_NUMBERED = re.compile(r"^\s*(\d+)[\s,:]+(.+?)\s*$")


def read_labels(path: str | os.PathLike, num_classes: int) -> list[str]:
    """Class names from a text file: one name per line in class order, or lines
    ``<index> <name>`` (UCF101's classInd.txt: 1-based; 0-based also accepted).

    Raises:
        ConfigError: (field ``labels``) a missing file, or not ``num_classes`` names.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"not found: {p}", field="labels")
    lines = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    numbered = [_NUMBERED.match(line) for line in lines]
    if lines and all(numbered):
        pairs = {int(m.group(1)): m.group(2) for m in numbered if m is not None}
        base = min(pairs)
        if sorted(pairs) == list(range(base, base + len(pairs))) and base in (0, 1):
            lines = [pairs[i] for i in range(base, base + len(pairs))]
    if len(lines) != num_classes:
        raise ConfigError(
            f"{p} holds {len(lines)} class names, but the checkpoint's classifier has "
            f"{num_classes} classes",
            field="labels",
        )
    return lines


# ---------------------------------------------------------------------------- predict


@dataclass
class VideoPrediction:
    """One video's top-k classes, best first: ``(label, class index, probability)``."""

    video: str
    clips: int
    top: list[tuple[str, int, float]]


@dataclass
class PredictResult:
    """Every video's prediction, what was skipped and why, and how the scores were made."""

    checkpoint: str
    model: str
    labels_from: str  # "checkpoint", the labels file, or "class indices"
    protocol: dict[str, Any]
    predictions: list[VideoPrediction]
    skipped: list[tuple[str, str]]  # (path, reason): unreadable or missing
    seconds: float


def predict(
    videos: Sequence[str | os.PathLike],
    checkpoint: str | os.PathLike,
    *,
    labels: str | os.PathLike | None = None,
    topk: int = 5,
    model: str | None = None,
    placement: str | None = None,
    frames: int | None = None,
    stride: int | None = None,
    size: int | None = None,
    short_side: int | None = None,
    drop_last_partial: bool = False,
    batch_size: int = 4,
    clip_batch: int = 32,
    workers: int = 2,
    device: str = "auto",
    amp: str = "none",
    backend: str | None = None,
    progress: bool = False,
) -> PredictResult:
    """Top-``topk`` classes of each video under ``videos`` (files and folders).

    The clip settings default to the checkpoint's training config (``frames`` must match
    it); foreign weights need ``model`` (and frames/size/stride if not 16/112/2, and
    ``placement`` for STC weights placed per stage). Under
    ``torchrun`` the videos are shared among the ranks; every rank gets the result.

    Raises:
        ConfigError: bad arguments or checkpoint (before any video is decoded), or no video
            found at all.
    """
    if topk < 1:
        raise ConfigError(f"must be positive, got {topk}", field="topk")
    if amp not in AMP_MODES:
        raise ConfigError(f"must be one of {AMP_MODES}, got {amp!r}", field="amp")
    inputs = collect_videos(videos)
    if not inputs.videos:
        raise ConfigError(
            "no videos found in "
            + ", ".join(map(str, videos))
            + (f" (missing: {', '.join(inputs.missing)})" if inputs.missing else ""),
            field="videos",
        )
    source = read_source(checkpoint, model, placement=placement)
    clip = clip_settings(source.config, frames, stride, size, short_side)
    num_classes = source.num_classes
    assert num_classes is not None  # read_source insists on a classifier
    if source.classes is not None:
        names, labels_from = source.classes, "checkpoint"
        if labels is not None:
            logger.warning("the checkpoint records its class names: %s is not used", labels)
    elif labels is not None:
        names, labels_from = read_labels(labels, num_classes), str(labels)
    else:
        names, labels_from = [str(i) for i in range(num_classes)], "class indices"
    info = tdist.setup(device)
    net = build_model(source, clip, num_classes, backend).to(info.device)
    dataset = protocol_dataset(
        [VideoRecord(p) for p in inputs.videos], clip, drop_last_partial=drop_last_partial
    )
    start = time.perf_counter()
    scores = predict_videos(
        net,
        dataset,
        info.device,
        batch_size,
        clip_batch,
        workers,
        amp,
        progress=progress,
        desc="predicting",
    )
    k = min(topk, num_classes)
    predictions = []
    if len(scores.indices):
        values, classes = scores.scores.topk(k, dim=1)
        for row, index in enumerate(scores.indices.tolist()):
            top = [
                (names[c], c, round(float(v), 6))
                for v, c in zip(values[row].tolist(), classes[row].tolist(), strict=True)
            ]
            predictions.append(
                VideoPrediction(str(inputs.videos[index]), int(scores.clips[row]), top)
            )
    skipped = [(path, "not found") for path in inputs.missing]
    skipped += [(s.path, s.reason) for s in sorted(scores.skipped, key=lambda s: s.index)]
    return PredictResult(
        checkpoint=str(checkpoint),
        model=source.config["model"],
        labels_from=labels_from,
        protocol={
            "clips": "non-overlapping",
            "crop": "centre",
            "aggregation": "mean softmax per video",
            **clip._asdict(),
            "drop_last_partial": drop_last_partial,
        },
        predictions=predictions,
        skipped=skipped,
        seconds=round(time.perf_counter() - start, 3),
    )


def _csv_text(result: PredictResult) -> str:
    k = max((len(p.top) for p in result.predictions), default=0)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["video", "clips"]
    for rank in range(1, k + 1):
        header += [f"label_{rank}", f"index_{rank}", f"score_{rank}"]
    writer.writerow(header)
    for p in result.predictions:
        row: list[Any] = [p.video, p.clips]
        for label, index, score in p.top:
            row += [label, index, f"{score:.6f}"]
        writer.writerow(row)
    return out.getvalue()


def write_predictions(result: PredictResult, path: str | os.PathLike) -> Path:
    """Save ``result`` atomically: ``.json`` (everything, skipped files with reasons) or
    ``.csv`` (one row per video: video, clips, then label/index/score per rank).

    Raises:
        ConfigError: (field ``out``) another extension.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".json":
        data = asdict(result)
        data["predictions"] = [
            {
                "video": pred.video,
                "clips": pred.clips,
                "top": [{"label": a, "index": b, "score": c} for a, b, c in pred.top],
            }
            for pred in result.predictions
        ]
        data["skipped"] = [{"video": v, "reason": r} for v, r in result.skipped]
        data["torch_version"] = str(torch.__version__)
        return atomic_write_text(p, json.dumps(data, indent=2) + "\n")
    if suffix == ".csv":
        return atomic_write_text(p, _csv_text(result))
    raise ConfigError(f"must end in .json or .csv, got {p.name}", field="out")
