"""``transfer(config)``: train a 3D network by image-video correspondence with a 2D teacher.

:class:`TransferTask` is the :class:`~stc_ext.train.task.Task` the
:class:`~stc_ext.train.trainer.Trainer` (batch arithmetic, AMP, DDP, Ctrl-C, atomic
checkpoints, exact resume, logs) runs for ``stc transfer``: pairs from unlabeled videos
(:mod:`.pairs`), the :class:`~.model.CorrespondenceNet`, and after every checkpoint
``OUT_DIR/student.pt``, the student without its 1024-D fc, which ``stc train --init`` loads
for fine-tuning (the checkpoints carry the same weights as ``init_model``). Checkpoints hold
the trainable weights only; the teacher comes from ``teacher_weights`` again on resume (its
SHA-256 is checked).
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Annotation, DataError, read_video_folder
from ..models import build_from_config, read_state_dict
from ..train.atomic import atomic_save
from ..train.checkpoint import describe_contents, read_weights_file
from ..train.config import MODEL_FIELDS, ConfigError, config_from_dict, config_to_dict
from ..train.resolve import resolve_config
from ..train.task import TaskData
from ..train.trainer import Trainer, TrainResult
from .config import TransferConfig
from .model import STUDENT_FORMAT, CorrespondenceNet, build_teacher, student_init_state
from .pairs import PAIR_CLASSES, PairBatch, PairDataset, collate_pairs
from .teacher import read_teacher_arch

__all__ = ["TransferTask", "held_out_split", "resolve_transfer_config", "transfer"]

#: What ``student.pt`` records of the config: enough to build the student again.
_STUDENT_CONFIG = (
    "model",
    "frames",
    "size",
    "widths",
    "shortcut_type",
    "branches",
    "reduction",
    "placement",
)


def held_out_split(
    videos: Annotation, root: str | os.PathLike, fraction: float
) -> tuple[Annotation, Annotation | None]:
    """Split unlabeled videos into (training, held-out) by a hash of their path under ``root``.

    The held-out set is the ``round(fraction * n)`` videos (at least 2, as negatives need
    two) with the smallest CRC-32 of their relative path: it does not depend on the seed and
    stays put when videos are added. ``fraction == 0`` gives no held-out set.

    Raises:
        ConfigError: too few videos for both sets.
    """
    records = list(videos.records)
    if fraction == 0:
        return videos, None
    count = max(2, round(fraction * len(records)))
    if len(records) - count < 2:
        raise ConfigError(
            f"{root}: {len(records)} videos are too few to hold out {count} for validation "
            "and train on at least 2; add videos or set val_fraction to 0",
            field="videos",
        )

    def key(record: Any) -> tuple[int, str]:
        rel = Path(record.path).relative_to(root).as_posix()
        return zlib.crc32(rel.encode("utf-8")), rel

    held = {r.path for r in sorted(records, key=key)[:count]}
    train = [r for r in records if r.path not in held]
    val = [r for r in records if r.path in held]
    return (
        Annotation(train, [], f"{videos.name} (training)"),
        Annotation(val, [], f"{videos.name} (held out)"),
    )


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class TransferTask:
    """The correspondence task (see the module docstring); one instance per run."""

    name = "transfer"
    accuracy_name = "pair acc"
    model_fields = MODEL_FIELDS + ("teacher", "teacher_widths", "embed_dim", "feature_norm")
    schedule_fields = (
        "videos",
        "val_fraction",
        "teacher_frames",
        "stride",
        "short_side",
        "batch_size",
        "seed",
        "amp",
    )
    export_name = "student.pt"
    init_report = None  # the student starts from scratch

    def check(self, config: TransferConfig) -> None:
        if not Path(config.videos).is_dir():  # type: ignore[arg-type]
            raise ConfigError(f"folder not found: {config.videos}", field="videos")
        weights = read_weights_file(config.teacher_weights, "teacher_weights", mmap=True)  # type: ignore[arg-type]
        try:
            state, _ = read_state_dict(weights)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{config.teacher_weights}: {exc}", field="teacher_weights") from None
        volumetric = next((k for k, t in state.items() if t.dim() == 5), None)
        if volumetric is not None:
            raise ConfigError(
                f"{config.teacher_weights}: is {describe_contents(weights)} holding 3D weights "
                f"({volumetric} is 5-D), not a 2D teacher's (an ImageNet ResNet state dict or "
                "a `stc teacher` file)",
                field="teacher_weights",
            )
        self.teacher_sha256 = file_sha256(config.teacher_weights)  # type: ignore[arg-type]

    def build_data(self, config: TransferConfig) -> TaskData:
        cfg = config
        try:
            videos = read_video_folder(cfg.videos)
        except DataError as exc:
            raise ConfigError(str(exc), field="videos") from None
        train_videos, val_videos = held_out_split(videos, cfg.videos, cfg.val_fraction)

        def pairs(source: Annotation, mode: str) -> PairDataset:
            return PairDataset(
                source,
                cfg.frames,
                cfg.stride,
                cfg.teacher_frames,
                mode,
                cfg.short_side,
                cfg.size,
                cfg.strict_data,
            )

        train = pairs(train_videos, "train")
        val = pairs(val_videos, "val") if cfg.val_every and val_videos is not None else None
        held_out = 0 if val_videos is None else len(val_videos.records)
        return TaskData(
            classes=list(PAIR_CLASSES),
            train=train,
            val=val,
            collate=collate_pairs,
            summary=(
                f"{train.num_videos} unlabeled videos ({len(train)} pairs per epoch, "
                f"{held_out} videos held out)"
            ),
            train_size=f"the {len(train)} training pairs ({train.num_videos} videos x 2)",
            train_videos=train.num_videos,
            val_videos=None if val is None else val.num_videos,
        )

    def _teacher_widths(self, cfg: TransferConfig) -> list[int] | None:
        arch = read_teacher_arch(cfg.teacher_weights)
        recorded = list(arch["widths"]) if arch and "widths" in arch else None
        if cfg.teacher_widths is not None:
            if recorded is not None and recorded != list(cfg.teacher_widths):
                raise ConfigError(
                    f"{cfg.teacher_widths}: {cfg.teacher_weights} records widths {recorded}",
                    field="teacher_widths",
                )
            return list(cfg.teacher_widths)
        return recorded

    def build_model(
        self, config: TransferConfig, data: TaskData, checkpoint: Mapping[str, Any] | None
    ) -> nn.Module:
        cfg = config
        try:
            teacher = build_teacher(cfg.teacher, cfg.teacher_weights, self._teacher_widths(cfg))
        except ValueError as exc:
            raise ConfigError(
                f"{cfg.teacher} with {cfg.teacher_weights}: {exc}", field="teacher_weights"
            ) from None
        try:
            student = build_from_config(config_to_dict(cfg), cfg.embed_dim)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        model = CorrespondenceNet(student, teacher, cfg.embed_dim, **cfg.correspondence_options())
        if checkpoint is not None:
            if checkpoint.get("teacher_sha256") != self.teacher_sha256:
                raise ConfigError(
                    f"{cfg.resume}: the run was trained with another teacher file (SHA-256 "
                    f"{checkpoint.get('teacher_sha256')}); {cfg.teacher_weights} has "
                    f"{self.teacher_sha256}",
                    field="resume",
                )
            model.load_trainable_state_dict(checkpoint["model"])
        return model

    def unpack(self, batch: PairBatch) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        return (batch.frames, batch.clips), batch.labels

    def dummy_batch(self, config: TransferConfig) -> PairBatch:
        return PairBatch(
            torch.zeros(1, 3, config.teacher_frames, config.size, config.size),
            torch.zeros(1, 3, config.frames, config.size, config.size),
            torch.zeros(1, dtype=torch.int64),
        )

    def model_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        assert isinstance(model, CorrespondenceNet)
        return model.trainable_state_dict()

    def checkpoint_extras(self, model_state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        # The student's tensors are the model state's own: torch.save stores them once.
        return {
            "teacher_sha256": self.teacher_sha256,
            "init_model": student_init_state(model_state),
        }

    def export(self, checkpoint: Mapping[str, Any], path: Path) -> None:
        cfg = checkpoint["config"]
        atomic_save(
            {
                "format": STUDENT_FORMAT,
                "model": checkpoint["init_model"],
                "config": {k: cfg[k] for k in _STUDENT_CONFIG},
                "epoch": checkpoint["epoch"],
                "step": checkpoint["step"],
                "teacher": cfg["teacher"],
                "teacher_sha256": self.teacher_sha256,
            },
            path,
        )

    def describe(self, config: TransferConfig, data: TaskData) -> str:
        return (
            f"{config.model} taught by {config.teacher} through image-video correspondence on "
            f"{config.videos}: {config.teacher_frames} frames / {config.frames}-frame clips x "
            f"stride {config.stride}, {config.size}px"
        )


def resolve_transfer_config(
    options: Mapping[str, Any] | None = None, config_file: str | os.PathLike | None = None
) -> TransferConfig:
    """Defaults < the resumed checkpoint's config < ``config_file`` < ``options``."""
    return resolve_config(
        TransferConfig, options, config_file, task="transfer", where="transfer config"
    )


def transfer(
    config: TransferConfig | Mapping[str, Any],
    on_step: Callable[[Trainer, int, int], None] | None = None,
) -> TrainResult:
    """Run the knowledge transfer ``config`` describes; returns a ``TrainResult`` whose
    ``exported`` is the student initialisation (``OUT_DIR/student.pt``).

    Under ``torchrun`` every rank calls this. Configuration errors raise ``ConfigError``
    before the first step.
    """
    if not isinstance(config, TransferConfig):
        config = config_from_dict(TransferConfig, config, where="transfer config")
    trainer = Trainer(config, TransferTask(), on_step=on_step)
    trainer.setup()
    return trainer.fit()
