"""Video-level evaluation with the paper's test protocol (§4.2 "Testing").

Each video is cut into non-overlapping clips of ``frames`` frames (at the training stride),
each clip is centre-cropped, the network's softmax outputs are averaged over the clips, and
the average is the video's prediction. Reported: top-1, top-5 and mean class accuracy, per
split and averaged over splits (the paper averages UCF101/HMDB51 over their three splits, one
model per split: put ``{split}`` in the checkpoint path). A JSON report and one
confusion-matrix PNG per split are written. Loading the checkpoint and scoring the videos go
through :mod:`.inference`, the path ``stc predict`` and ``stc extract`` share.

The report lists on the test list by default (Kinetics and list files: the validation list);
each split's entry says what selected its checkpoint (``selection``: videos held out of the
training list, with the rule and fraction, or a validation list, or nothing) and how many of
the reported videos were among those (``selection.reported_videos_that_selected``; a warning
is logged when any were, e.g. Kinetics, whose test labels are not public).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.holdout import video_id
from . import distributed as tdist
from .atomic import atomic_write_text
from .classify import describe_selection
from .config import ConfigError, EvalConfig, config_from_dict, config_to_dict
from .data import read_annotation
from .inference import (
    ClipSettings,
    Source,
    build_model,
    clip_settings,
    predict_videos,
    protocol_dataset,
    read_source,
)
from .metrics import video_metrics

__all__ = ["EvalResult", "SplitResult", "evaluate"]

logger = logging.getLogger("stc_ext.train")


@dataclass
class SplitResult:
    """One split's video-level results (accuracies in [0, 1])."""

    split: int
    checkpoint: str
    top1: float
    top5: float
    mean_class_accuracy: float
    num_videos: int
    num_clips: int
    per_class_accuracy: dict[str, float | None]
    confusion: list[list[int]]
    skipped: list[str]
    seconds: float
    confusion_png: str | None = None
    selection: dict[str, Any] | None = None  # what chose the checkpoint (None: not recorded)
    predictions: list[dict[str, Any]] = field(default_factory=list, repr=False)


@dataclass
class EvalResult:
    """All splits, their average, and where the report went."""

    dataset: str
    subset: str
    classes: list[str]
    protocol: dict[str, Any]
    splits: list[SplitResult]
    average: dict[str, float]
    report_path: str | None = None


def _resolve(cfg: EvalConfig, source: Source) -> tuple[dict[str, Any], ClipSettings]:
    """The data to evaluate on and the clip settings (flags override the checkpoint)."""
    tc = source.config
    clip = clip_settings(tc, cfg.frames, cfg.stride, cfg.size, cfg.short_side)
    dataset = cfg.dataset or tc.get("dataset")
    if dataset is None:
        raise ConfigError("is required (the checkpoint does not record it)", field="dataset")
    if cfg.annotations is not None:
        annotations = cfg.annotations
    elif dataset in ("kinetics", "list"):
        annotations = tc.get("val_annotations")
    else:
        annotations = tc.get("annotations")
    root = (
        cfg.root
        or (tc.get("val_root") if dataset in ("kinetics", "list") else None)
        or tc.get("root")
    )
    return {"dataset": dataset, "root": root, "annotations": annotations}, clip


@dataclass
class _Prepared:
    """One split, checked and ready to run: its model (on the CPU) and its videos."""

    checkpoint: str
    model: nn.Module
    dataset: Any
    classes: list[str]
    data: dict[str, Any]
    selection: dict[str, Any] | None  # what selected the checkpoint (its Source's)


def _read_split_annotation(
    cfg: EvalConfig, data: Mapping[str, Any], split: int, checkpoint: str, classes: Any
) -> Any:
    """The split's annotation; a missing path the checkpoint recorded says so."""
    try:
        return read_annotation(
            data["dataset"], data["root"], data["annotations"], split, cfg.subset, classes=classes
        )
    except ConfigError as exc:
        if exc.field not in ("root", "annotations") or getattr(cfg, exc.field) is not None:
            raise
        raise ConfigError(
            f"{exc.detail} (the path {checkpoint} recorded; if the data moved, give "
            f"{exc.field} its new place)",
            field=exc.field,
        ) from None


def _prepare_split(cfg: EvalConfig, split: int) -> _Prepared:
    """Everything of a split but decoding its videos: the checkpoint, the data paths and
    annotation, the model with its weights (errors here stop before any video is read)."""
    checkpoint = cfg.checkpoint.replace("{split}", str(split))  # type: ignore[union-attr]
    source = read_source(checkpoint, cfg.model, placement=cfg.placement)
    data, clip = _resolve(cfg, source)
    annotation = _read_split_annotation(cfg, data, split, checkpoint, source.classes)
    classes = source.classes or list(annotation.classes)
    if source.classes is not None and len(annotation.classes) != len(source.classes):
        raise ConfigError(
            f"{annotation.name}: {len(annotation.classes)} classes, but the "
            f"checkpoint's classifier has {len(source.classes)}"
        )
    if any(r.label < 0 for r in annotation.records):
        raise ConfigError(f"{annotation.name}: unlabeled videos cannot be scored")
    model = build_model(source, clip, len(classes), backend=cfg.backend)
    dataset = protocol_dataset(annotation, clip, cfg.strict_data, cfg.drop_last_partial)
    return _Prepared(
        checkpoint, model, dataset, classes, {**data, **clip._asdict()}, source.selection
    )


def _evaluate_split(
    cfg: EvalConfig, split: int, prepared: _Prepared, info: tdist.DistInfo, report_path: Path
) -> SplitResult:
    checkpoint, dataset, classes, data = (
        prepared.checkpoint,
        prepared.dataset,
        prepared.classes,
        prepared.data,
    )
    annotation = dataset.annotation
    model = prepared.model.to(info.device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last_3d)
    start = time.perf_counter()
    scores, indices, counts, skipped = predict_videos(
        model,
        dataset,
        info.device,
        cfg.batch_size,
        cfg.clip_batch,
        cfg.workers,
        cfg.amp,
        cfg.channels_last,
        cfg.progress,
    )
    if len(indices) == 0:
        raise ConfigError(f"{annotation.name}: no video could be decoded")
    selection = _selection_report(prepared.selection, annotation, data["root"], checkpoint)
    labels = torch.tensor([dataset.records[i].label for i in indices.tolist()])
    metrics = video_metrics(scores, labels)
    top = scores.argmax(dim=1)
    predictions = [
        {
            "video": str(dataset.records[i].path),
            "label": classes[int(labels[n])],
            "prediction": classes[int(top[n])],
            "score": round(float(scores[n, top[n]]), 5),
            "clips": int(counts[n]),
        }
        for n, i in enumerate(indices.tolist())
    ]
    result = SplitResult(
        split=split,
        checkpoint=checkpoint,
        top1=metrics.top1,
        top5=metrics.top5,
        mean_class_accuracy=metrics.mean_class_accuracy,
        num_videos=metrics.num_videos,
        num_clips=int(counts.sum()),
        per_class_accuracy=dict(zip(classes, metrics.per_class_accuracy, strict=True)),
        confusion=metrics.confusion,
        skipped=[s.path for s in skipped],
        seconds=round(time.perf_counter() - start, 3),
        selection=selection,
        predictions=predictions,
    )
    if info.is_main:
        png = report_path.with_name(f"{report_path.stem}_confusion_split{split}.png")
        try:
            from .plots import plot_confusion_matrix

            plot_confusion_matrix(
                metrics.confusion,
                classes,
                png,
                title=f"{data['dataset']} split {split} ({cfg.subset}): top-1 {metrics.top1:.1%}",
            )
            result.confusion_png = str(png)
        except ImportError:
            logger.warning("matplotlib is not installed: no confusion-matrix PNG")
        logger.info(
            "split %d: top-1 %.4f, top-5 %.4f, mean class %.4f over %d videos (%d clips)",
            split,
            result.top1,
            result.top5,
            result.mean_class_accuracy,
            result.num_videos,
            result.num_clips,
        )
    return result


def _write_failure_report(
    cfg: EvalConfig,
    report_path: Path,
    split: int,
    error: Exception,
    done: list[SplitResult],
    info: tdist.DistInfo,
) -> None:
    """Replace the report (a stale one may claim success) by one saying which split failed
    and why, with the splits finished before it (no average: the evaluation is incomplete)."""
    report = {
        "status": "failed",
        "failed_split": split,
        "error": f"{type(error).__name__}: {error}",
        "config": config_to_dict(cfg),
        "splits": [asdict(s) for s in done],
        "world_size": info.world_size,
        "torch_version": str(torch.__version__),
    }
    atomic_write_text(report_path, json.dumps(report, indent=2) + "\n")
    logger.error("split %d failed: %s written, marked as failed", split, report_path)


def _selection_report(
    selection: Mapping[str, Any] | None, annotation: Any, root: str | None, checkpoint: str
) -> dict[str, Any] | None:
    """What selected the checkpoint, without its video list, plus how many of the videos
    reported on were among those that selected it."""
    if selection is None:
        return None
    report = {k: v for k, v in selection.items() if k != "videos"}
    report["summary"] = describe_selection(selection)
    chose = set(selection.get("videos") or ())
    reported = {video_id(r.path, root) for r in annotation.records}
    overlap = len(chose & reported)
    report["reported_videos_that_selected"] = overlap
    if overlap:
        logger.warning(
            "%s: %d of the %d videos reported on also selected this checkpoint (%s); the "
            "figures are optimistic",
            checkpoint,
            overlap,
            len(reported),
            report["summary"],
        )
    return report


def _default_report_path(cfg: EvalConfig) -> Path:
    first = Path(cfg.checkpoint.replace("{split}", str(cfg.splits[0])))  # type: ignore[union-attr]
    return first.parent / f"eval_{cfg.subset}_split{'-'.join(map(str, cfg.splits))}.json"


def evaluate(config: EvalConfig | Mapping[str, Any]) -> EvalResult:
    """Evaluate one checkpoint per split by the paper's test protocol; write the report.

    Under ``torchrun`` the videos are shared among the ranks and the result is returned on
    every rank; rank 0 writes the JSON report and the PNGs.

    Every split's checkpoint, data and model are checked before the first video is
    decoded. A split that fails later (e.g. none of its videos decodes) replaces the report
    by one with ``"status": "failed"``, the failed split and the error, and raises.

    Raises:
        ConfigError: a missing checkpoint or dataset path, frames not matching the
            checkpoint, a class-count mismatch, ... (before any video is decoded).
    """
    cfg = (
        config
        if isinstance(config, EvalConfig)
        else config_from_dict(EvalConfig, config, where="evaluate config")
    )
    cfg.validate()
    assert cfg.checkpoint is not None
    if len(cfg.splits) > 1 and "{split}" not in cfg.checkpoint:
        logger.warning(
            "one checkpoint for splits %s: the splits' test sets overlap the "
            "others' training sets; the paper trains one model per split "
            "(put {split} in the checkpoint path)",
            cfg.splits,
        )
    # Every split's checkpoint must exist before anything starts (_evaluate reads them all
    # before the first video).
    for split in cfg.splits:
        path = Path(cfg.checkpoint.replace("{split}", str(split)))
        if not path.exists():
            raise ConfigError(
                f"{path}: not found" + (f" (split {split})" if "{split}" in cfg.checkpoint else ""),
                field="checkpoint",
            )
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    return _evaluate(cfg, tdist.setup(cfg.device))


def _evaluate(cfg: EvalConfig, info: tdist.DistInfo) -> EvalResult:
    report_path = Path(cfg.out) if cfg.out else _default_report_path(cfg)
    # Every split is checked before the first video is decoded.
    prepared = [_prepare_split(cfg, split) for split in cfg.splits]
    data, classes = prepared[-1].data, prepared[-1].classes
    splits: list[SplitResult] = []
    for split in cfg.splits:
        try:
            splits.append(_evaluate_split(cfg, split, prepared.pop(0), info, report_path))
        except Exception as exc:
            if info.is_main:
                _write_failure_report(cfg, report_path, split, exc, splits, info)
            raise
    average = {
        key: sum(getattr(s, key) for s in splits) / len(splits)
        for key in ("top1", "top5", "mean_class_accuracy")
    }
    protocol = {
        "clips": "non-overlapping",
        "crop": "centre",
        "aggregation": "mean softmax per video",
        "frames": data["frames"],
        "stride": data["stride"],
        "size": data["size"],
        "short_side": data["short_side"],
        "drop_last_partial": cfg.drop_last_partial,
    }
    result = EvalResult(
        dataset=data["dataset"],
        subset=cfg.subset,
        classes=classes,
        protocol=protocol,
        splits=splits,
        average=average,
        report_path=str(report_path),
    )
    if info.is_main:
        report = {
            "config": config_to_dict(cfg),
            **{k: v for k, v in asdict(result).items() if k != "report_path"},
            "world_size": info.world_size,
            "torch_version": str(torch.__version__),
        }
        atomic_write_text(
            report_path, json.dumps({"status": "complete", **report}, indent=2) + "\n"
        )
        if len(splits) > 1:
            logger.info(
                "average over splits %s: top-1 %.4f, top-5 %.4f, mean class %.4f",
                cfg.splits,
                average["top1"],
                average["top5"],
                average["mean_class_accuracy"],
            )
    tdist.barrier()
    return result
