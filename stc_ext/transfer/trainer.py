"""``transfer(config)``: train a 3D network by image-video correspondence with a 2D teacher.

:class:`TransferTrainer` is the :class:`~stc_ext.train.trainer.Trainer` (batch arithmetic,
AMP, DDP, Ctrl-C, atomic checkpoints, exact resume, logs) with the correspondence task plugged
in: pairs from unlabeled videos (:mod:`.pairs`), the :class:`~.model.CorrespondenceNet`, and
after every checkpoint ``OUT_DIR/student.pt``, the student without its 1024-D fc, which
``stc train --init`` loads for fine-tuning. Checkpoints hold the trainable weights only; the
teacher comes from ``--teacher-weights`` again on resume (its SHA-256 is checked).
"""

from __future__ import annotations

import hashlib
import logging
import os
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Annotation, DataError, read_video_folder
from ..train import distributed as tdist
from ..train.checkpoint import atomic_save
from ..train.config import ConfigError, config_from_dict, config_to_dict
from ..train.data import ResumableSampler, SeededDataset, ShardSampler, make_loader
from ..train.trainer import MODEL_FIELDS, Trainer, TrainResult, build_model, resolve_config
from .config import TransferConfig
from .model import STUDENT_FORMAT, CorrespondenceNet, build_teacher, student_init_state
from .pairs import PAIR_CLASSES, PairBatch, PairDataset, collate_pairs
from .teacher import read_teacher_arch

__all__ = ["TransferTrainer", "held_out_split", "resolve_transfer_config", "transfer"]

logger = logging.getLogger("stc_ext.transfer")

STUDENT_FILE = "student.pt"
#: What ``student.pt`` records of the config: enough to build the student again.
_STUDENT_CONFIG = ("model", "frames", "size", "widths", "shortcut", "branches", "reduction")


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
            f"--videos {root}: {len(records)} videos are too few to hold out "
            f"{count} for validation and train on at least 2; add videos or pass "
            "--val-fraction 0"
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


class TransferTrainer(Trainer):
    """One transfer run (see the module docstring); ``setup()`` then ``fit()``."""

    task = "transfer"
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
    config: TransferConfig

    def _check_task(self) -> None:
        cfg = self.config
        if cfg.videos is None:
            raise ConfigError("--videos is required: a folder of unlabeled videos")
        if not Path(cfg.videos).is_dir():
            raise ConfigError(f"--videos: folder not found: {cfg.videos}")
        if cfg.teacher_weights is None:
            raise ConfigError(
                "--teacher-weights is required: the 2D teacher's weights (an "
                "ImageNet state_dict file, or one written by `stc teacher`)"
            )
        if not Path(cfg.teacher_weights).is_file():
            raise ConfigError(f"--teacher-weights: file not found: {cfg.teacher_weights}")
        if not 0 <= cfg.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {cfg.val_fraction}")
        for name in ("teacher_frames", "embed_dim"):
            if getattr(cfg, name) < 1:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}"
                )
        self.teacher_sha256 = file_sha256(cfg.teacher_weights)

    def _build_data(self, info: tdist.DistInfo) -> None:
        cfg = self.config
        try:
            videos = read_video_folder(cfg.videos)
        except DataError as exc:
            raise ConfigError(f"--videos: {exc}") from None
        train_videos, val_videos = held_out_split(videos, cfg.videos, cfg.val_fraction)
        self.classes = list(PAIR_CLASSES)

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

        train_ds = pairs(train_videos, "train")
        self.train_sampler = ResumableSampler(
            train_ds, info.world_size, info.rank, cfg.seed, self.micro * self.accum
        )
        if self.train_sampler.steps_per_epoch == 0:
            raise ConfigError(
                f"--batch-size {cfg.batch_size} is larger than the {len(train_ds)} "
                f"training pairs ({train_ds.num_videos} videos x 2): no complete "
                "step per epoch"
            )
        pin = info.device.type == "cuda"
        self.train_loader = make_loader(
            SeededDataset(train_ds),
            self.micro,
            self.train_sampler,
            cfg.workers,
            pin,
            cfg.seed,
            collate_pairs,
        )
        self.val_loader = None
        if cfg.val_every and val_videos is not None:
            val_ds = pairs(val_videos, "val")
            self.val_loader = make_loader(
                val_ds,
                self.micro,
                ShardSampler(len(val_ds), info.rank, info.world_size),
                min(cfg.workers, 2),
                pin,
                cfg.seed,
                collate_pairs,
            )
        self.num_held_out = 0 if val_videos is None else len(val_videos.records)

    def _describe_data(self) -> str:
        dataset = self.train_sampler.dataset
        return (
            f"{dataset.num_videos} unlabeled videos ({len(dataset)} pairs per epoch, "
            f"{self.num_held_out} videos held out)"
        )

    def _describe_run(self) -> str:
        cfg = self.config
        return (
            f"{cfg.model} taught by {cfg.teacher} through image-video correspondence on "
            f"{cfg.videos}: {cfg.teacher_frames} frames / {cfg.frames}-frame clips x stride "
            f"{cfg.stride}, {cfg.size}px"
        )

    def _teacher_widths(self) -> list[int] | None:
        cfg = self.config
        arch = read_teacher_arch(cfg.teacher_weights)
        recorded = list(arch["widths"]) if arch and "widths" in arch else None
        if cfg.teacher_widths is not None:
            if recorded is not None and recorded != list(cfg.teacher_widths):
                raise ConfigError(
                    f"--teacher-widths {cfg.teacher_widths}: "
                    f"{cfg.teacher_weights} records widths {recorded}"
                )
            return list(cfg.teacher_widths)
        return recorded

    def _create_model(self, checkpoint: Mapping[str, Any] | None) -> nn.Module:
        cfg = self.config
        try:
            teacher = build_teacher(cfg.teacher, cfg.teacher_weights, self._teacher_widths())
        except ValueError as exc:
            raise ConfigError(
                f"--teacher {cfg.teacher} --teacher-weights {cfg.teacher_weights}: {exc}"
            ) from None
        student = build_model(config_to_dict(cfg), cfg.embed_dim)
        model = CorrespondenceNet(student, teacher, cfg.embed_dim, **cfg.correspondence_options())
        if checkpoint is not None:
            if checkpoint.get("teacher_sha256") != self.teacher_sha256:
                raise ConfigError(
                    f"--resume {cfg.resume}: the run was trained with another "
                    f"teacher file (SHA-256 {checkpoint.get('teacher_sha256')}); "
                    f"{cfg.teacher_weights} has {self.teacher_sha256}"
                )
            model.load_trainable_state_dict(checkpoint["model"])
        return model

    def _to_channels_last(self, model: nn.Module) -> None:
        assert isinstance(model, CorrespondenceNet)
        model.student.to(memory_format=torch.channels_last_3d)
        model.teacher.to(memory_format=torch.channels_last)

    def _model_state(self) -> dict[str, torch.Tensor]:
        return self.model.trainable_state_dict()

    def _unpack(self, batch: PairBatch) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        return (batch.frames, batch.clips), batch.labels

    def _dummy_batch(self) -> PairBatch:
        cfg = self.config
        return PairBatch(
            torch.zeros(1, 3, cfg.teacher_frames, cfg.size, cfg.size),
            torch.zeros(1, 3, cfg.frames, cfg.size, cfg.size),
            torch.zeros(1, dtype=torch.int64),
        )

    def _checkpoint(self, meter: Any) -> dict[str, Any]:
        state = super()._checkpoint(meter)
        state["teacher_sha256"] = self.teacher_sha256
        return state

    def _export(self, state: Mapping[str, Any]) -> None:
        cfg = self.config
        atomic_save(
            {
                "format": STUDENT_FORMAT,
                "model": student_init_state(state["model"]),
                "config": {k: getattr(cfg, k) for k in _STUDENT_CONFIG},
                "epoch": state["epoch"],
                "step": state["step"],
                "teacher": cfg.teacher,
                "teacher_sha256": self.teacher_sha256,
            },
            self.out_dir / STUDENT_FILE,
        )

    def _exported_path(self) -> Path | None:
        path = self.out_dir / STUDENT_FILE
        return path if path.exists() else None


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
    trainer = TransferTrainer(config, on_step=on_step)
    trainer.setup()
    return trainer.fit()
