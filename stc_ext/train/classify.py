"""``train(config)``: action classification on a labelled video dataset (``stc train``).

:class:`ClassifyTask` is the :class:`~.task.Task` of the paper's supervised training
(§4.2): clips of labelled videos (UCF101, HMDB51, Kinetics, a list file, the synthetic set)
into any registered 3D network, validated on the centre clip of each validation video; the
network may start from ``init`` weights (Kinetics pre-training, ``stc transfer``'s student,
an inflated 2D network).

The validation set chooses ``best.pt`` and drives the plateau schedule, so it is never the
test list: UCF101, HMDB51 and the synthetic set hold ``val_fraction`` of the training list
out (whole groups of clips, :mod:`stc_ext.data.holdout`); Kinetics and list files validate on
their ``val_annotations`` (Kinetics: the official validation list, whose labels are public,
unlike the test list's). Without validation (``val_fraction`` 0 or ``val_every`` 0) the
schedule watches the training loss and ``best.pt`` is the last epoch. Checkpoints record
what selected them under ``selection`` (:func:`selection_record`); a resume that would change
it is refused, and ``stc evaluate`` reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import UNLABELED, Annotation, ClipBatch, collate_clips
from ..data.holdout import HOLDOUT_RULE, fingerprint, hold_out, video_id
from ..models import build_from_config
from .checkpoint import load_init_weights, read_weights_file
from .config import MODEL_FIELDS, ConfigError, TrainConfig, config_from_dict, config_to_dict
from .data import clip_dataset, read_annotation
from .task import TaskData
from .trainer import Trainer, TrainResult

__all__ = [
    "HELD_OUT_DATASETS",
    "ClassifyTask",
    "check_same_selection",
    "describe_selection",
    "train",
    "validation_split",
]

#: Datasets without a validation list: ``val_fraction`` of their training list is held out.
HELD_OUT_DATASETS = ("ucf101", "hmdb51", "synthetic")

logger = logging.getLogger("stc_ext.train")


class ClassifyTask:
    """Classify labelled videos (see the module docstring); one instance per run."""

    name = "classify"
    accuracy_name = "top-1"
    model_fields = MODEL_FIELDS
    schedule_fields = ("dataset", "split", "stride", "short_side", "batch_size", "seed", "amp")
    export_name = None

    def __init__(self) -> None:
        self.init_report: dict[str, list[str]] | None = None
        self.selection: dict[str, Any] = {}  # what selects the model (build_data sets it)

    def check(self, config: TrainConfig) -> None:
        if config.init is not None:
            read_weights_file(config.init, "init", mmap=True)  # readable, before any data

    def build_data(self, config: TrainConfig) -> TaskData:
        cfg = config
        listed = read_annotation(cfg.dataset, cfg.root, cfg.annotations, cfg.split, "train")
        if not listed.classes:
            raise ConfigError(f"{listed.name}: the training set has no class names")
        if any(r.label == UNLABELED for r in listed.records):
            raise ConfigError(f"{listed.name}: the training set has unlabeled videos")
        classes = list(listed.classes)
        train_ann, val_ann, self.selection = validation_split(cfg, listed)
        train = clip_dataset(
            train_ann, cfg.frames, cfg.stride, "train", cfg.size, cfg.short_side, cfg.strict_data
        )
        _check_every_class_has_videos(train, classes, len(train_ann.records))
        val = None
        if val_ann is not None:
            val = clip_dataset(
                val_ann, cfg.frames, cfg.stride, "val", cfg.size, cfg.short_side, cfg.strict_data
            )
        return TaskData(
            classes=classes,
            train=train,
            val=val,
            collate=collate_clips,
            summary=(
                f"{len(train)} videos, {len(classes)} classes; {describe_selection(self.selection)}"
            ),
            train_size=f"the training set ({len(train)} videos)",
        )

    def build_model(
        self, config: TrainConfig, data: TaskData, checkpoint: Mapping[str, Any] | None
    ) -> nn.Module:
        try:
            model = build_from_config(config_to_dict(config), len(data.classes))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if checkpoint is not None:
            check_same_selection(checkpoint.get("selection"), self.selection, config.resume)
            if list(checkpoint["classes"]) != data.classes:
                raise ConfigError(
                    f"{config.resume}: the checkpoint has {len(checkpoint['classes'])} classes, "
                    f"the dataset {len(data.classes)} (or in another order)",
                    field="resume",
                )
            model.load_state_dict(checkpoint["model"])
            if config.init is not None:
                logger.info("init ignored: resuming from %s", config.resume)
        elif config.init is not None:
            self.init_report = load_init_weights(model, config.init, config.frames)
        return model

    def unpack(self, batch: ClipBatch) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        return (batch.clips,), batch.labels

    def dummy_batch(self, config: TrainConfig) -> ClipBatch:
        return ClipBatch(
            torch.zeros(1, 3, config.frames, config.size, config.size),
            torch.zeros(1, dtype=torch.int64),
        )

    def model_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return model.state_dict()

    def checkpoint_extras(self, model_state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        return {"selection": self.selection}

    def export(self, checkpoint: Mapping[str, Any], path: Path) -> None:
        """Nothing to export (``export_name`` is None): the checkpoints are the product."""

    def describe(self, config: TrainConfig, data: TaskData) -> str:
        return (
            f"{config.model} on {config.dataset} split {config.split}: "
            f"{len(data.classes)} classes, {config.frames} frames x stride {config.stride}, "
            f"{config.size}px; {describe_selection(self.selection)}"
        )


def _check_every_class_has_videos(dataset: Any, classes: list[str], listed: int) -> None:
    """A class without training videos would be a classifier output trained on nothing."""
    counts = [0] * len(classes)
    for label in dataset.labels:
        counts[label] += 1
    empty = [name for name, count in zip(classes, counts, strict=True) if count == 0]
    if not empty:
        return
    shown = ", ".join(empty[:10]) + (f", ... ({len(empty) - 10} more)" if len(empty) > 10 else "")
    missing = listed - len(dataset)
    why = f" ({missing} listed videos are missing)" if missing else ""
    raise ConfigError(
        f"{dataset.annotation.name}: {len(empty)} of {len(classes)} classes have no training "
        f"video{why}: {shown}. Restore their videos, or remove the classes from the class list"
    )


def _selection(source: str, videos: list[str] | None = None, **details: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"source": source, **details}
    if videos is not None:
        record.update(num_videos=len(videos), fingerprint=fingerprint(videos), videos=videos)
    return record


def validation_split(
    config: TrainConfig, listed: Annotation
) -> tuple[Annotation, Annotation | None, dict[str, Any]]:
    """The training videos, the validation videos (None: no validation) and the record of
    what selects the model (``selection``: ``source`` "held-out", "list" or "none", the
    rule and fraction, the validation videos relative to their root and their SHA-256).

    ``listed`` is the dataset's training list.

    Raises:
        ConfigError: nothing can be held out (every class is one group of clips).
    """
    cfg = config
    if not cfg.val_every:
        logger.info(
            "no validation (val_every 0): the plateau schedule watches the training loss, "
            "best.pt is the last epoch"
        )
        return listed, None, _selection("none", reason="val_every is 0")
    if cfg.dataset not in HELD_OUT_DATASETS:
        root = cfg.val_root or cfg.root
        val_ann = read_annotation(
            cfg.dataset, root, cfg.val_annotations, cfg.split, "test", classes=listed.classes
        )
        ids = [video_id(r.path, root) for r in val_ann.records]
        what = "the official validation list" if cfg.dataset == "kinetics" else "the list"
        logger.info("validation on %s %s (%d videos)", what, cfg.val_annotations, len(ids))
        return listed, val_ann, _selection("list", ids, list=str(cfg.val_annotations))
    if cfg.val_fraction == 0:
        logger.info(
            "no validation (val_fraction 0): training on the whole training list; the plateau "
            "schedule watches the training loss, best.pt is the last epoch"
        )
        return listed, None, _selection("none", reason="val_fraction is 0")
    held = hold_out(listed, cfg.dataset, cfg.val_fraction)
    if not held.val.records:
        raise ConfigError(
            f"{listed.name}: no group of clips can be held out for validation without leaving "
            f"a class with no training videos (each class is one group: {held.grouping}); "
            "set val_fraction to 0 (no validation) or give more videos",
            field="val_fraction",
        )
    ids = [video_id(r.path, cfg.root) for r in held.val.records]
    logger.info(
        "validation: %d of %d training videos held out (%d of %d groups, val_fraction %g, "
        "%s); the test list is not used for selection",
        len(held.val),
        len(listed),
        held.groups_val,
        held.groups_val + held.groups_train,
        cfg.val_fraction,
        held.grouping,
    )
    if held.classes_without_val:
        logger.info(
            "%d classes keep all their videos for training (one group each), so have no "
            "validation videos: %s",
            len(held.classes_without_val),
            ", ".join(held.classes_without_val[:10])
            + (", ..." if len(held.classes_without_val) > 10 else ""),
        )
    record = _selection(
        "held-out",
        ids,
        rule=HOLDOUT_RULE,
        fraction=cfg.val_fraction,
        grouping=held.grouping,
        training_list=listed.name,
        groups=held.groups_val,
        classes_without_val=held.classes_without_val,
    )
    return held.train, held.val, record


def describe_selection(selection: Mapping[str, Any] | None) -> str:
    """One phrase saying what selected a model (for logs, summaries and reports)."""
    if not selection:
        return "model selection not recorded (a checkpoint from before held-out validation)"
    source = selection["source"]
    if source == "held-out":
        return (
            f"model selected on {selection['num_videos']} videos held out of the training "
            f"list ({100 * selection['fraction']:g}%, rule {selection['rule']})"
        )
    if source == "list":
        return f"model selected on {selection['list']} ({selection['num_videos']} videos)"
    return f"no model selection ({selection.get('reason', '')}): best.pt is the last epoch"


def check_same_selection(
    saved: Mapping[str, Any] | None, now: Mapping[str, Any], resume: str | None
) -> None:
    """Refuse to resume a checkpoint whose validation set differs from this run's.

    A checkpoint without a record (made before held-out validation) resumes only when this
    run validates on a list, as those runs did for Kinetics and list files.

    Raises:
        ConfigError: (field ``resume``) the validation set would change.
    """
    if saved is None:
        if now["source"] == "list":
            return
        raise ConfigError(
            f"{resume}: the checkpoint was made before validation was held out of the training "
            "list (its schedule and best.pt saw the test list for ucf101/hmdb51/synthetic); "
            f"this run selects by {describe_selection(now)}. Start a new run (init from the "
            "checkpoint to keep its weights)",
            field="resume",
        )
    keys = ("source", "rule", "fraction", "fingerprint")
    if all(saved.get(k) == now.get(k) for k in keys):
        return
    common = len(set(saved.get("videos") or ()) & set(now.get("videos") or ()))
    raise ConfigError(
        f"{resume}: resuming would change the validation set that selects the model: the "
        f"checkpoint's is {describe_selection(saved)}, this run's {describe_selection(now)} "
        f"({common} videos in common); resume with the same val_fraction, val_every, "
        "annotations and val_annotations, or start a new run",
        field="resume",
    )


def train(
    config: TrainConfig | Mapping[str, Any],
    on_step: Callable[[Trainer, int, int], None] | None = None,
) -> TrainResult:
    """Train a classifier as ``config`` says; returns a ``TrainResult`` (also on Ctrl-C).

    Under ``torchrun`` every rank calls this; rank 0 writes files and logs. Configuration
    errors raise ``ConfigError`` before the first step.
    """
    if not isinstance(config, TrainConfig):
        config = config_from_dict(TrainConfig, config, where="train config")
    trainer = Trainer(config, ClassifyTask(), on_step=on_step)
    trainer.setup()
    return trainer.fit()
