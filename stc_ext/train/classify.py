"""``train(config)``: action classification on a labelled video dataset (``stc train``).

:class:`ClassifyTask` is the :class:`~.task.Task` of the paper's supervised training
(§4.2): clips of labelled videos (UCF101, HMDB51, Kinetics, a list file, the synthetic set)
into any registered 3D network, validated on the centre clip of each validation video; the
network may start from ``init`` weights (Kinetics pre-training, ``stc transfer``'s student,
an inflated 2D network).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import UNLABELED, ClipBatch, collate_clips
from ..models import build_from_config
from .checkpoint import load_init_weights, read_weights_file
from .config import MODEL_FIELDS, ConfigError, TrainConfig, config_from_dict, config_to_dict
from .data import clip_dataset, read_annotation
from .task import TaskData
from .trainer import Trainer, TrainResult

__all__ = ["ClassifyTask", "train"]

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

    def check(self, config: TrainConfig) -> None:
        if config.init is not None:
            read_weights_file(config.init, "init", mmap=True)  # readable, before any data

    def build_data(self, config: TrainConfig) -> TaskData:
        cfg = config
        train_ann = read_annotation(cfg.dataset, cfg.root, cfg.annotations, cfg.split, "train")
        if not train_ann.classes:
            raise ConfigError(f"{train_ann.name}: the training set has no class names")
        if any(r.label == UNLABELED for r in train_ann.records):
            raise ConfigError(f"{train_ann.name}: the training set has unlabeled videos")
        classes = list(train_ann.classes)
        train = clip_dataset(
            train_ann, cfg.frames, cfg.stride, "train", cfg.size, cfg.short_side, cfg.strict_data
        )
        _check_every_class_has_videos(train, classes, len(train_ann.records))
        val = None
        if cfg.val_every:
            if cfg.dataset in ("ucf101", "hmdb51", "synthetic"):
                val_ann = read_annotation(cfg.dataset, cfg.root, cfg.annotations, cfg.split, "test")
            else:
                val_ann = read_annotation(
                    cfg.dataset,
                    cfg.val_root or cfg.root,
                    cfg.val_annotations,
                    cfg.split,
                    "test",
                    classes=classes,
                )
            val = clip_dataset(
                val_ann, cfg.frames, cfg.stride, "val", cfg.size, cfg.short_side, cfg.strict_data
            )
        return TaskData(
            classes=classes,
            train=train,
            val=val,
            collate=collate_clips,
            summary=f"{len(train)} videos, {len(classes)} classes",
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
        return {}

    def export(self, checkpoint: Mapping[str, Any], path: Path) -> None:
        """Nothing to export (``export_name`` is None): the checkpoints are the product."""

    def describe(self, config: TrainConfig, data: TaskData) -> str:
        return (
            f"{config.model} on {config.dataset} split {config.split}: "
            f"{len(data.classes)} classes, {config.frames} frames x stride {config.stride}, "
            f"{config.size}px"
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
