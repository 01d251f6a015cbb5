"""``stc extract``: per-clip features of your videos for another task.

``extract(videos, checkpoint, out_dir, layer="pool")`` cuts each video into the test
protocol's non-overlapping centre-cropped clips and writes, per video,

* ``<name>.npy``: float32 (clips, D): the globally pooled last-stage features (``"pool"``:
  512-D for ResNet-18/34 and torchvision's video ResNets, 2048-D for ResNet-50 and deeper)
  or the classifier's logits (``"logits"``);
* ``<name>.json``: the index: the video, the checkpoint and clip settings, the frame rate and
  frame count, and for each clip its ``start_frame``/``end_frame`` (end exclusive) and
  ``start_s``/``end_s`` in seconds (frame / fps; null for frame folders without ``fps``)
  and whether it was loop-padded;

where ``<name>`` is the video's path relative to the folder given (or its file name), with
the extension dropped. Runs are resumable: a video whose ``.json`` (written last) and
``.npy`` exist is skipped. Both files are written atomically (a temporary file renamed),
so an interrupted run leaves no partial output. The network and clips are exactly
``stc evaluate``'s (:mod:`stc_ext.train.inference`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import VideoRecord
from .predict import collect_videos
from .train import distributed as tdist
from .train.atomic import atomic_write, atomic_write_text
from .train.config import AMP_MODES, ConfigError
from .train.inference import (
    LAYERS,
    ClipTimes,
    build_model,
    clip_outputs,
    clip_settings,
    protocol_dataset,
    read_source,
)

__all__ = ["ExtractResult", "extract", "output_name"]

INDEX_FORMAT = "stc_ext.features/1"


@dataclass
class ExtractResult:
    """What a run wrote (by this rank), found already done, or could not read."""

    out_dir: str
    layer: str
    dim: int | None
    written: list[str] = field(default_factory=list)  # feature files written now
    existing: list[str] = field(default_factory=list)  # videos whose outputs were there
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0


def output_name(name: str) -> str:
    """The output stem of a video known as ``name`` (a relative path): the extension
    dropped, so ``a/b.mp4`` -> ``a/b``; a frame folder's name is kept as it is."""
    path = Path(name)
    return path.with_suffix("").as_posix() if path.suffix else path.as_posix()


def _index(
    video: Path,
    times: ClipTimes,
    features: np.ndarray,
    layer: str,
    meta: dict,
) -> dict:
    clips = []
    for start, end, padded in zip(times.start_frame, times.end_frame, times.padded, strict=True):
        clips.append(
            {
                "start_frame": start,
                "end_frame": end,
                "start_s": times.seconds(start),
                "end_s": times.seconds(end),
                "padded": padded,
            }
        )
    return {
        "format": INDEX_FORMAT,
        "video": str(video),
        "layer": layer,
        "shape": list(features.shape),
        "dtype": str(features.dtype),
        "fps": times.fps,
        "num_frames": times.num_frames,
        **meta,
        "clips": clips,
    }


def extract(
    videos: Sequence[str | os.PathLike],
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    layer: str = "pool",
    model: str | None = None,
    placement: str | None = None,
    frames: int | None = None,
    stride: int | None = None,
    size: int | None = None,
    short_side: int | None = None,
    fps: float | None = None,
    drop_last_partial: bool = False,
    batch_size: int = 4,
    clip_batch: int = 32,
    workers: int = 2,
    device: str = "auto",
    amp: str = "none",
    backend: str | None = None,
    progress: bool = False,
) -> ExtractResult:
    """Write per-clip ``layer`` outputs of every video under ``videos`` to ``out_dir``.

    ``fps``: the frame rate of frame-folder videos (files give their own). Checkpoints
    without classifier (``stc transfer``'s student, an inflated backbone) give ``"pool"``
    features. Under ``torchrun`` each rank writes its share of the videos.

    Raises:
        ConfigError: bad arguments or checkpoint, two videos with the same output name, or
            no video found.
    """
    if layer not in LAYERS:
        raise ConfigError(f"must be one of {LAYERS}, got {layer!r}", field="layer")
    if amp not in AMP_MODES:
        raise ConfigError(f"must be one of {AMP_MODES}, got {amp!r}", field="amp")
    if fps is not None and fps <= 0:
        raise ConfigError(f"must be positive, got {fps}", field="fps")
    inputs = collect_videos(videos)
    if not inputs.videos:
        raise ConfigError("no videos found in " + ", ".join(map(str, videos)), field="videos")
    names = [output_name(n) for n in inputs.names]
    clashes: dict[str, list[str]] = {}
    for name, video in zip(names, inputs.videos, strict=True):
        clashes.setdefault(name, []).append(str(video))
    clashes = {k: v for k, v in clashes.items() if len(v) > 1}
    if clashes:
        listed = "; ".join(f"{k}: {', '.join(v)}" for k, v in list(clashes.items())[:5])
        raise ConfigError(
            f"videos with the same output name (extract them in separate runs): {listed}",
            field="videos",
        )
    source = read_source(checkpoint, model, layer == "logits", placement)
    clip = clip_settings(source.config, frames, stride, size, short_side)
    out = Path(out_dir)
    result = ExtractResult(str(out), layer, None)
    result.skipped = [(path, "not found") for path in inputs.missing]

    todo = []
    for video, name in zip(inputs.videos, names, strict=True):
        if (out / f"{name}.json").is_file() and (out / f"{name}.npy").is_file():
            result.existing.append(str(video))
        else:
            todo.append((video, name))
    if not todo:
        return result
    info = tdist.setup(device)
    net = build_model(source, clip, backend=backend).to(info.device)
    meta = {
        "checkpoint": str(checkpoint),
        "model": source.config["model"],
        **clip._asdict(),
        "drop_last_partial": drop_last_partial,
    }
    if layer == "logits" and source.classes is not None:
        meta["classes"] = source.classes
    dataset = protocol_dataset(
        [VideoRecord(v) for v, _ in todo], clip, drop_last_partial=drop_last_partial
    )
    start = time.perf_counter()
    for batch_out in clip_outputs(
        net,
        dataset,
        info.device,
        layer,
        batch_size,
        clip_batch,
        workers,
        amp,
        progress=progress,
        desc="extracting",
        with_clip_times=True,
    ):
        result.skipped += [(s.path, s.reason) for s in batch_out.lost]
        if batch_out.batch is None:
            continue
        per_video = batch_out.outputs.numpy()
        owner = batch_out.batch.clip_to_video.numpy()
        for position, index in enumerate(batch_out.batch.indices.tolist()):
            video, name = todo[index]
            features = np.ascontiguousarray(per_video[owner == position], dtype=np.float32)
            times = batch_out.times[position]
            if times.fps is None and fps is not None:
                times.fps = fps
            result.dim = int(features.shape[1])
            atomic_write(out / f"{name}.npy", lambda f, a=features: np.save(f, a))
            index_json = _index(video, times, features, layer, meta)
            atomic_write_text(out / f"{name}.json", json.dumps(index_json, indent=1) + "\n")
            result.written.append(str(out / f"{name}.npy"))
    result.seconds = round(time.perf_counter() - start, 3)
    return result
