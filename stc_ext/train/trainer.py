"""The training loop: SGD with the paper's defaults, accumulation, AMP, DDP, exact resume.

``train(config)`` checks the whole configuration (model name, paths, batch arithmetic,
checkpoint compatibility, ...) before the first step, then trains, validating, logging and
checkpointing each epoch. A first Ctrl-C (SIGINT, or SIGTERM from ``torchrun``) lets the
current optimiser step finish, saves ``last.pt`` and returns; a second one aborts.

Exact resume: a checkpoint taken at an optimiser-step boundary holds everything that decides
the rest of the run (see :mod:`stc_ext.train.checkpoint`); data order and augmentation are
functions of ``(seed, epoch, sample)`` (see :mod:`stc_ext.train.data`), so a resumed run
computes bit for bit what the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import models
from ..data import UNLABELED, ClipBatch, VideoBatch
from . import distributed as tdist
from .checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    load_init_weights,
    restore_rng_state,
)
from .config import (
    ConfigError,
    RunConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    save_config,
)
from .data import (
    ResumableSampler,
    SeededDataset,
    ShardSampler,
    clip_dataset,
    make_loader,
    read_annotation,
)
from .metrics import ClipMeter
from .records import MetricLog, progress_bar

__all__ = ["TrainResult", "Trainer", "build_model", "resolve_config", "train"]

logger = logging.getLogger("stc_ext.train")

# Fields that define the network (and the optimiser's state): a checkpoint cannot be resumed
# under other values.
MODEL_FIELDS = (
    "model",
    "frames",
    "size",
    "branches",
    "reduction",
    "widths",
    "shortcut",
    "dropout",
    "optimizer",
)
# Fields that decide which samples each step sees: changing them is refused mid-epoch and
# warned about at an epoch boundary (the run then differs from an uninterrupted one).
SCHEDULE_FIELDS = ("dataset", "split", "stride", "short_side", "batch_size", "seed", "amp")

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainResult:
    """What a ``train`` (or ``transfer``) call did (the same on every rank)."""

    out_dir: Path
    config: RunConfig
    classes: list[str]
    history: list[dict[str, Any]]
    best: dict[str, Any] | None
    epochs_done: int
    steps: int
    interrupted: bool
    seconds: float
    world_size: int
    accumulation: int
    micro_batch_size: int
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    curves_png: Path | None = None
    init_report: dict[str, list[str]] | None = field(default=None, repr=False)
    task: str = "classify"  # or "transfer" (stc_ext.transfer)
    exported: Path | None = None  # transfer: the student initialisation (student.pt)
    description: str = ""  # one line: model, data, clip shape


# ---------------------------------------------------------------------------- model


def build_model(
    config: Mapping[str, Any], num_classes: int, backend: str | None = None
) -> nn.Module:
    """Build the network a (train) config describes, for ``num_classes`` classes."""
    name = config["model"]
    kwargs: dict[str, Any] = {"dropout": config.get("dropout", 0.0)}
    if config.get("widths"):
        kwargs["widths"] = tuple(config["widths"])
    if config.get("shortcut"):
        kwargs["shortcut_type"] = config["shortcut"]
    if name.startswith("stc_"):
        kwargs.update(
            branches=config.get("branches", "stc"),
            reduction=config.get("reduction", 4),
            backend=backend or config.get("backend", "auto"),
        )
    try:
        return models.build(
            name, num_classes, frames=config["frames"], size=config["size"], **kwargs
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def check_model_name(name: str) -> None:
    """Raise ``ConfigError`` with suggestions when ``name`` is not a registered model."""
    known = models.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown model {name!r}{hint} (stc_ext.models.list_models() has {', '.join(known)})"
        )


def _check_static(cfg: RunConfig) -> None:
    """Checks of the shared fields that need neither files nor devices."""
    check_model_name(cfg.model)
    positive = {
        "frames": cfg.frames,
        "stride": cfg.stride,
        "size": cfg.size,
        "short_side": cfg.short_side,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "reduction": cfg.reduction,
    }
    if cfg.micro_batch_size is not None:
        positive["micro_batch_size"] = cfg.micro_batch_size
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if cfg.size > cfg.short_side:
        raise ConfigError(f"--size {cfg.size} must not exceed --short-side {cfg.short_side}")
    if cfg.lr <= 0:
        raise ConfigError(f"--lr must be positive, got {cfg.lr}")
    if cfg.optimizer == "sgd" and cfg.nesterov and cfg.momentum <= 0:
        raise ConfigError("--nesterov needs a positive --momentum (or pass --no-nesterov)")
    if cfg.weight_decay < 0 or cfg.momentum < 0:
        raise ConfigError("--weight-decay and --momentum must not be negative")
    if not 0 < cfg.lr_factor < 1:
        raise ConfigError(f"--lr-factor must be in (0, 1), got {cfg.lr_factor}")
    if cfg.workers < 0 or cfg.val_every < 0 or cfg.patience < 0 or cfg.lr_step < 1:
        raise ConfigError("--workers, --val-every and --patience must be >= 0, --lr-step >= 1")
    if cfg.grad_clip is not None and cfg.grad_clip <= 0:
        raise ConfigError(f"--grad-clip must be positive, got {cfg.grad_clip}")
    if not 0 <= cfg.label_smoothing < 1:
        raise ConfigError(f"--label-smoothing must be in [0, 1), got {cfg.label_smoothing}")
    if not cfg.model.startswith("stc_") and (cfg.branches != "stc" or cfg.reduction != 4):
        raise ConfigError(
            f"{cfg.model} has no STC blocks: --branches/--reduction need an "
            f"stc_ model (e.g. stc_{cfg.model})"
        )
    if cfg.widths is not None and (len(cfg.widths) != 4 or min(cfg.widths) < 1):
        raise ConfigError(f"--widths needs 4 positive integers, got {cfg.widths}")


def _check_resume(
    saved: Mapping[str, Any],
    cfg: RunConfig,
    mid_epoch: bool,
    world_size: int,
    saved_world: int,
    micro: int,
    saved_micro: int,
    model_fields: tuple[str, ...],
    schedule_fields: tuple[str, ...],
) -> None:
    defaults = config_to_dict(type(cfg)())
    saved = {**defaults, **saved}  # keys a checkpoint lacks had their default then
    changed = [f for f in model_fields if saved[f] != getattr(cfg, f)]
    if changed:
        details = ", ".join(
            f"{f}: checkpoint {saved[f]!r} vs now {getattr(cfg, f)!r}" for f in changed
        )
        raise ConfigError(
            f"--resume {cfg.resume}: the checkpoint was made for another model "
            f"or optimiser ({details}); drop those flags to resume it as it was"
        )
    schedule = [f for f in schedule_fields if saved[f] != getattr(cfg, f)]
    if world_size != saved_world:
        schedule.append(f"world size {saved_world} -> {world_size}")
    if micro != saved_micro:
        schedule.append(f"micro-batch {saved_micro} -> {micro}")
    if schedule and mid_epoch:
        raise ConfigError(
            f"--resume {cfg.resume}: the checkpoint was taken mid-epoch; it can "
            f"only continue with the same {', '.join(schedule)}"
        )
    if schedule:
        logger.warning(
            "resuming with changed %s: the run will differ from an uninterrupted one",
            ", ".join(schedule),
        )


RUN_FILES = ("last.pt", "best.pt", "config.json", "metrics.csv", "metrics.jsonl", "curves.png")


def _clear_run(out_dir: Path) -> None:
    """Remove a previous run's files (--overwrite), so none of them outlives the new run."""
    import shutil

    for name in RUN_FILES:
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / "tensorboard", ignore_errors=True)


# ---------------------------------------------------------------------------- Ctrl-C


class StopSignals:
    """While active, the first SIGINT/SIGTERM sets ``requested``; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning(
            "%s received: finishing this step and saving a checkpoint "
            "(press Ctrl-C again to abort without saving)",
            signal.Signals(signum).name,
        )

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


# ---------------------------------------------------------------------------- trainer


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """One training run. ``setup()`` validates and builds everything; ``fit()`` trains.

    This class trains a classifier on a labelled dataset (``stc train``). The task-specific
    parts are methods a subclass overrides (``stc_ext.transfer.TransferTrainer`` does):
    ``_check_task``, ``_build_data``, ``_create_model``, ``_unpack``, ``_dummy_batch``,
    ``_model_state``, ``_export`` and ``_describe_data``; everything else (batch arithmetic,
    AMP, DDP, signals, checkpoints, exact resume, logs) is shared.

    Args:
        config: the resolved configuration.
        on_step: called as ``on_step(trainer, epoch, step)`` after each optimiser step (on
            every rank); ``trainer.request_stop()`` from it stops like a Ctrl-C.
    """

    #: Written into checkpoints; a checkpoint of another task cannot be resumed.
    task = "classify"
    #: What the ``*_top1`` metrics are called in the log.
    accuracy_name = "top-1"
    #: Config fields a checkpoint cannot be resumed under other values of.
    model_fields: tuple[str, ...] = MODEL_FIELDS
    #: Config fields that decide which samples each step sees.
    schedule_fields: tuple[str, ...] = SCHEDULE_FIELDS

    def __init__(
        self, config: RunConfig, on_step: Callable[[Trainer, int, int], None] | None = None
    ) -> None:
        self.config = config
        self.on_step = on_step
        self.signals = StopSignals()
        self.dist: tdist.DistInfo | None = None
        self.epoch = 0  # epochs completed (or the one in progress when batches_done > 0)
        self.batches_done = 0
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self._progress: list[float] | None = None
        self._rng: Any = None
        self.init_report: dict[str, list[str]] | None = None

    # -------------------------------------------------------------- set-up
    def request_stop(self) -> None:
        """Stop after the current optimiser step, saving a checkpoint (as Ctrl-C does)."""
        self.signals.requested = True

    def setup(self) -> None:
        """Check the configuration and build data, model and optimiser (no training step).

        Raises:
            ConfigError: anything wrong with the configuration, its paths or checkpoints.
        """
        cfg = self.config
        _check_static(cfg)
        if cfg.threads is not None:
            if cfg.threads < 1:
                raise ConfigError(f"--threads must be positive, got {cfg.threads}")
            torch.set_num_threads(cfg.threads)
        world = self._batch_arithmetic()
        self.dist = info = tdist.setup(cfg.device)
        self._check_device(info.device)
        self.out_dir = Path(cfg.out_dir)
        if cfg.resume is None and not cfg.overwrite and (self.out_dir / "last.pt").exists():
            raise ConfigError(
                f"{self.out_dir} already holds a run (last.pt); pass --resume "
                f"{self.out_dir / 'last.pt'} to continue it or --overwrite to "
                "start afresh"
            )
        self._check_task()
        checkpoint = None
        if cfg.resume is not None:
            checkpoint = load_checkpoint(cfg.resume)
            made_by = checkpoint.get("task", "classify")
            if made_by != self.task:
                raise ConfigError(
                    f"--resume {cfg.resume}: the checkpoint is of a {made_by!r} "
                    f"run, not {self.task!r} (stc train resumes classify runs, "
                    "stc transfer resumes transfer runs)"
                )
            _check_resume(
                checkpoint["config"],
                cfg,
                checkpoint["batches_done"] > 0,
                world,
                int(checkpoint.get("world_size", 1)),
                self.micro,
                int(checkpoint.get("micro_batch_size", self.micro)),
                self.model_fields,
                self.schedule_fields,
            )
        self._build_data(info)
        self._build_model(info.device, checkpoint)
        self._build_optimisation(info.device, checkpoint)
        self._wrap_model(info.device, world)
        if info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if cfg.overwrite and cfg.resume is None:
                _clear_run(self.out_dir)
            save_config(cfg, self.out_dir / "config.json")
        # Everything above may have drawn random numbers (weight init); the run continues
        # from the checkpoint's streams, or from the seed.
        if self._rng is not None:
            restore_rng_state(self._rng)
        else:
            _seed_everything(cfg.seed + info.rank)

    def _batch_arithmetic(self) -> int:
        """Split the effective batch into ranks x micro-batch x accumulation; the world size."""
        cfg = self.config
        world = tdist.expected_world_size()
        if cfg.batch_size % world:
            raise ConfigError(
                f"--batch-size {cfg.batch_size} is not divisible by the world "
                f"size {world} (torchrun --nproc_per_node)"
            )
        per_rank = cfg.batch_size // world
        self.micro = cfg.micro_batch_size or per_rank
        if per_rank % self.micro:
            raise ConfigError(
                f"--micro-batch-size {self.micro} does not divide the per-rank batch "
                f"{per_rank} (= --batch-size {cfg.batch_size} / world size {world})"
            )
        self.accum = per_rank // self.micro
        return world

    def _check_device(self, device: torch.device) -> None:
        cfg = self.config
        if cfg.sync_bn and device.type != "cuda":
            raise ConfigError("--sync-bn needs CUDA devices (SyncBatchNorm refuses CPU modules)")
        if cfg.model.startswith("stc_"):
            from ..ops import resolve_backend

            try:
                resolve_backend(cfg.backend, device)
            except ValueError as exc:
                raise ConfigError(f"--backend {cfg.backend}: {exc}") from None
        self.amp_dtype = AMP_DTYPES.get(cfg.amp)
        if device.type == "cuda" and cfg.amp == "bf16" and not torch.cuda.is_bf16_supported():
            raise ConfigError("--amp bf16: this GPU does not support bfloat16; use fp16")

    # -------------------------------------------------------------- the task
    def _check_task(self) -> None:
        """Task-specific checks of the config and its paths, before anything is built."""
        cfg = self.config
        if cfg.dataset in ("kinetics", "list") and cfg.val_every and not cfg.val_annotations:
            raise ConfigError(
                f"--dataset {cfg.dataset} validates on --val-annotations; give it "
                "or pass --val-every 0"
            )
        if cfg.init is not None and not Path(cfg.init).is_file():
            raise ConfigError(f"--init: checkpoint not found: {cfg.init}")

    def _describe_data(self) -> str:
        """What the run trains on, for the start-of-run log line."""
        return f"{len(self.train_sampler.dataset)} videos, {len(self.classes)} classes"

    def _build_data(self, info: tdist.DistInfo) -> None:
        """Read the annotations (checking every listed file) and make the loaders.

        Sets ``classes``, ``train_sampler`` (a :class:`ResumableSampler`), ``train_loader``
        and ``val_loader`` (None without validation)."""
        cfg = self.config
        train_ann = read_annotation(cfg.dataset, cfg.root, cfg.annotations, cfg.split, "train")
        if not train_ann.classes:
            raise ConfigError(f"{train_ann.name}: the training set has no class names")
        if any(r.label == UNLABELED for r in train_ann.records):
            raise ConfigError(f"{train_ann.name}: the training set has unlabeled videos")
        self.classes = list(train_ann.classes)
        train_ds = clip_dataset(
            train_ann, cfg.frames, cfg.stride, "train", cfg.size, cfg.short_side, cfg.strict_data
        )
        self.train_sampler = ResumableSampler(
            train_ds, info.world_size, info.rank, cfg.seed, self.micro * self.accum
        )
        if self.train_sampler.steps_per_epoch == 0:
            raise ConfigError(
                f"--batch-size {cfg.batch_size} is larger than the training set "
                f"({len(train_ds)} videos): no complete step per epoch"
            )
        pin = info.device.type == "cuda"
        self.train_loader = make_loader(
            SeededDataset(train_ds), self.micro, self.train_sampler, cfg.workers, pin, cfg.seed
        )
        self.val_loader = None
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
                    classes=self.classes,
                )
            val_ds = clip_dataset(
                val_ann, cfg.frames, cfg.stride, "val", cfg.size, cfg.short_side, cfg.strict_data
            )
            self.val_loader = make_loader(
                val_ds,
                self.micro,
                ShardSampler(len(val_ds), info.rank, info.world_size),
                min(cfg.workers, 2),
                pin,
                cfg.seed,
            )

    def _create_model(self, checkpoint: Mapping[str, Any] | None) -> nn.Module:
        """The network on the CPU, with the checkpoint's (or ``--init``) weights loaded."""
        cfg = self.config
        model = build_model(config_to_dict(cfg), len(self.classes))
        if checkpoint is not None:
            if list(checkpoint["classes"]) != self.classes:
                raise ConfigError(
                    f"--resume {cfg.resume}: the checkpoint has {len(checkpoint['classes'])} "
                    f"classes, the dataset {len(self.classes)} (or in another order)"
                )
            model.load_state_dict(checkpoint["model"])
            if cfg.init is not None:
                logger.info("--init ignored: resuming from %s", cfg.resume)
        elif cfg.init is not None:
            self.init_report = load_init_weights(model, cfg.init, cfg.frames)
        return model

    def _model_state(self) -> dict[str, torch.Tensor]:
        """The weights a checkpoint holds (``_create_model`` loads them back)."""
        return self.model.state_dict()

    def _unpack(self, batch: Any) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """A loader batch -> (the model's inputs, the labels), on the CPU."""
        return (batch.clips,), batch.labels

    def _dummy_batch(self) -> Any:
        """A one-sample batch of the right shapes, for a rank whose micro-batch was empty."""
        cfg = self.config
        return ClipBatch(
            torch.zeros(1, 3, cfg.frames, cfg.size, cfg.size), torch.zeros(1, dtype=torch.int64)
        )

    def _to_channels_last(self, model: nn.Module) -> None:
        """``--channels-last``: the 3D network's weights in ``channels_last_3d``."""
        model.to(memory_format=torch.channels_last_3d)

    def _describe_run(self) -> str:
        """One line saying what the run trains, for the summary."""
        cfg = self.config
        return (
            f"{cfg.model} on {cfg.dataset} split {cfg.split}: {len(self.classes)} classes, "
            f"{cfg.frames} frames x stride {cfg.stride}, {cfg.size}px"
        )

    def _export(self, state: Mapping[str, Any]) -> None:
        """Called on rank 0 after each checkpoint is written (transfer writes its init)."""

    # -------------------------------------------------------------- building
    def _build_model(self, device: torch.device, checkpoint: Mapping[str, Any] | None) -> None:
        cfg = self.config
        _seed_everything(cfg.seed)
        model = self._create_model(checkpoint)
        model.to(device)
        if cfg.channels_last:
            self._to_channels_last(model)
        if cfg.sync_bn and tdist.expected_world_size() > 1:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model

    def _build_optimisation(
        self, device: torch.device, checkpoint: Mapping[str, Any] | None
    ) -> None:
        cfg = self.config
        params = [p for p in self.model.parameters() if p.requires_grad]  # not frozen ones
        if cfg.optimizer == "adamw":
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(
                params, lr=cfg.lr, weight_decay=cfg.weight_decay
            )
        else:
            self.optimizer = torch.optim.SGD(
                params,
                lr=cfg.lr,
                momentum=cfg.momentum,
                nesterov=cfg.nesterov,
                weight_decay=cfg.weight_decay,
            )
        self.scheduler = self._make_scheduler()
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        if checkpoint is not None:
            self._load_training_state(checkpoint)

    def _wrap_model(self, device: torch.device, world: int) -> None:
        """DDP across ranks, then torch.compile; ``self.model`` stays the plain module."""
        cfg = self.config
        if cfg.deterministic:
            if device.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.ddp: DistributedDataParallel | None = None
        forward: nn.Module = self.model
        if world > 1:
            self.ddp = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )
            forward = self.ddp
        if cfg.compile:
            forward = torch.compile(forward)  # type: ignore[assignment]
        self.forward_model = forward

    def _make_scheduler(self) -> Any:
        cfg = self.config
        if cfg.scheduler == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer,
                mode="min",
                factor=cfg.lr_factor,
                patience=cfg.patience,
                min_lr=cfg.min_lr,
            )
        if cfg.scheduler == "step":
            return torch.optim.lr_scheduler.StepLR(self.optimizer, cfg.lr_step, cfg.lr_factor)
        if cfg.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, cfg.epochs, eta_min=cfg.min_lr
            )
        return None

    def _load_training_state(self, ckpt: Mapping[str, Any]) -> None:
        cfg, info = self.config, self.dist
        assert info is not None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler"):
            if ckpt["config"].get("scheduler") == cfg.scheduler:
                self.scheduler.load_state_dict(ckpt["scheduler"])
            else:
                logger.warning(
                    "--scheduler changed from %s: starting it afresh",
                    ckpt["config"].get("scheduler"),
                )
        if self.scaler.is_enabled() and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch = int(ckpt["epoch"])
        self.batches_done = int(ckpt["batches_done"])
        self.step = int(ckpt["step"])
        self.history = [dict(row) for row in ckpt.get("history", [])]
        self.best = dict(ckpt["best"]) if ckpt.get("best") else None
        if self.batches_done:
            # The epoch's running sums were reduced over ranks when saved: rank 0 carries them.
            zeros = [0.0] * len(ckpt["progress"])
            self._progress = list(ckpt["progress"]) if info.is_main else zeros
        rngs = ckpt.get("rng") or []
        if len(rngs) == info.world_size:
            self._rng = rngs[info.rank]
        elif rngs:
            logger.warning(
                "checkpoint has RNG states of %d ranks, this run %d: reseeding",
                len(rngs),
                info.world_size,
            )
        if self.epoch >= cfg.epochs and not self.batches_done:
            logger.warning(
                "the checkpoint has finished %d of --epochs %d: nothing to train",
                self.epoch,
                cfg.epochs,
            )
        logger.info(
            "resumed from %s at epoch %d, step %d",
            cfg.resume,
            self.epoch + (1 if self.batches_done else 0),
            self.step,
        )

    # -------------------------------------------------------------- checkpoints
    def _checkpoint(self, meter: ClipMeter | None) -> dict[str, Any]:
        """The state to save (collective: every rank must call it)."""
        progress = None
        if meter is not None:
            progress = tdist.all_reduce_(meter.sums.clone()).tolist()
        rng = tdist.all_gather_objects(capture_rng_state())
        return {
            "format": CHECKPOINT_FORMAT,
            "task": self.task,
            "model": self._model_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": self.epoch,
            "batches_done": self.batches_done,
            "step": self.step,
            "progress": progress,
            "rng": rng,
            # Where the data stream stands: the epoch's order is a function of (seed, epoch),
            # so these three numbers restore it.
            "sampler": {
                "epoch": self.epoch,
                "position": self.batches_done * self.micro,
                "seed": self.train_sampler.seed,
            },
            "config": config_to_dict(self.config),
            "classes": self.classes,
            "num_classes": len(self.classes),
            "world_size": self.dist.world_size if self.dist else 1,
            "micro_batch_size": self.micro,
            "history": self.history,
            "best": self.best,
            "torch_version": str(torch.__version__),
        }

    def _save(self, state: dict[str, Any], best: bool) -> None:
        assert self.dist is not None
        if self.dist.is_main:
            atomic_save(state, self.out_dir / "last.pt")
            if best:
                atomic_save(state, self.out_dir / "best.pt")
            self._export(state)
        tdist.barrier()

    # -------------------------------------------------------------- steps
    def _stop_agreed(self) -> bool:
        """Whether any rank was asked to stop (collective, so all ranks stop together)."""
        if self.dist is None or not self.dist.distributed:
            return self.signals.requested
        flag = torch.tensor([1.0 if self.signals.requested else 0.0], device=self.dist.device)
        return bool(tdist.all_reduce_(flag, op="max").item() > 0)

    def _to_device(self, batch: Any) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """(inputs, labels) of a batch on the run's device (5-D inputs channels-last if set)."""
        assert self.dist is not None
        device = self.dist.device
        inputs, labels = self._unpack(batch)
        moved = []
        for tensor in inputs:
            tensor = tensor.to(device, non_blocking=True)
            if self.config.channels_last and tensor.dim() == 5:
                tensor = tensor.contiguous(memory_format=torch.channels_last_3d)
            moved.append(tensor)
        return tuple(moved), labels.to(device, non_blocking=True)

    def _autocast(self) -> Any:
        assert self.dist is not None
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.dist.device.type, dtype=self.amp_dtype)

    def _micro_step(self, batch: Any, sync: bool, meter: ClipMeter) -> None:
        weight = 1.0
        if batch is None:
            # Every video of this micro-batch was undecodable. Alone, skip it; under DDP the
            # ranks must still run the same collectives, so a zero-weighted dummy clip goes in.
            if self.ddp is None:
                return
            weight = 0.0
            batch = self._dummy_batch()
        inputs, labels = self._to_device(batch)
        no_sync = self.ddp.no_sync() if (self.ddp is not None and not sync) else None
        with no_sync or contextlib.nullcontext():
            with self._autocast():
                logits = self.forward_model(*inputs)
            logits = logits.float()
            loss = self.criterion(logits, labels)
            self.scaler.scale(loss * (weight / self.accum)).backward()
        if weight:
            meter.update(loss, logits, labels)

    def _optimizer_step(self) -> None:
        if self.config.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def _batches(self) -> Iterator[Any]:
        for batch, _skipped in self.train_loader:
            yield batch

    def _train_epoch(self, epoch: int, meter: ClipMeter) -> bool:
        """Train one epoch (from ``batches_done`` on); True if a stop was requested."""
        assert self.dist is not None
        cfg = self.config
        sampler = self.train_sampler
        sampler.set_epoch(epoch)
        sampler.set_position(self.batches_done * self.micro)
        clips_per_step = self.micro * self.accum * self.dist.world_size
        first = self.batches_done // self.accum
        self.model.train()
        with progress_bar(
            cfg.progress and self.dist.is_main,
            total=sampler.steps_per_epoch * clips_per_step,
            initial=first * clips_per_step,
            unit="clip",
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            leave=False,
        ) as bar:
            batches = self._batches()
            for step_in_epoch in range(first, sampler.steps_per_epoch):
                for k in range(self.accum):
                    self._micro_step(next(batches), k == self.accum - 1, meter)
                self._optimizer_step()
                self.step += 1
                self.batches_done += self.accum
                if bar is not None:
                    bar.update(clips_per_step)
                    local = meter.local()
                    bar.set_postfix(
                        loss=f"{local['loss']:.3f}",
                        top1=f"{local['top1']:.3f}",
                        lr=f"{self.optimizer.param_groups[0]['lr']:.3g}",
                        refresh=False,
                    )
                if self.on_step is not None:
                    self.on_step(self, epoch, step_in_epoch)
                if self._stop_agreed():
                    return True
        return False

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """Loss and top-1/top-5 on the validation set (classify: the centre clip of each
        video; transfer: the fixed held-out pairs)."""
        assert self.dist is not None and self.val_loader is not None
        self.model.eval()
        meter = ClipMeter(self.dist.device)
        for batch, _skipped in self.val_loader:
            if batch is None:
                continue
            assert not isinstance(batch, VideoBatch)
            inputs, labels = self._to_device(batch)
            with self._autocast():
                logits = self.model(*inputs)
            logits = logits.float()
            meter.update(self.criterion(logits, labels), logits, labels)
        self.model.train()
        return meter.reduce()

    # -------------------------------------------------------------- the run
    def fit(self) -> TrainResult:
        """Train from the current state to ``config.epochs``; see ``train``."""
        assert self.dist is not None
        cfg, info = self.config, self.dist
        start = time.perf_counter()
        log = (
            MetricLog(self.out_dir, cfg.tensorboard, first_epoch=self.epoch + 1)
            if info.is_main
            else None
        )
        interrupted = False
        if info.is_main:
            logger.info(
                "training %s on %s: %d epochs x %d steps, batch %d = "
                "%d rank(s) x %d clips x %d accumulation, on %s",
                cfg.model,
                self._describe_data(),
                cfg.epochs,
                self.train_sampler.steps_per_epoch,
                cfg.batch_size,
                info.world_size,
                self.micro,
                self.accum,
                info.device,
            )
        try:
            with self.signals:
                while self.epoch < cfg.epochs:
                    interrupted = self._run_epoch(log)
                    if interrupted:
                        break
        finally:
            if log is not None:
                log.close()
        curves = None
        if info.is_main and self.history:
            try:
                from .plots import plot_training_curves

                curves = plot_training_curves(self.history, self.out_dir / "curves.png")
            except ImportError:
                logger.warning("matplotlib is not installed: no curves.png")
        tdist.barrier()
        last = self.out_dir / "last.pt"
        best = self.out_dir / "best.pt"
        return TrainResult(
            out_dir=self.out_dir,
            config=cfg,
            classes=self.classes,
            history=self.history,
            best=self.best,
            epochs_done=self.epoch,
            steps=self.step,
            interrupted=interrupted,
            seconds=time.perf_counter() - start,
            world_size=info.world_size,
            accumulation=self.accum,
            micro_batch_size=self.micro,
            last_checkpoint=last if last.exists() else None,
            best_checkpoint=best if best.exists() else None,
            curves_png=curves,
            init_report=self.init_report,
            task=self.task,
            exported=self._exported_path(),
            description=self._describe_run(),
        )

    def _exported_path(self) -> Path | None:
        """Where ``_export`` writes (None when the task exports nothing)."""
        return None

    def _run_epoch(self, log: MetricLog | None) -> bool:
        assert self.dist is not None
        cfg = self.config
        epoch = self.epoch
        meter = ClipMeter(self.dist.device)
        if self._progress is not None:
            meter.load_state(self._progress)
            self._progress = None
        started = time.perf_counter()
        if self._train_epoch(epoch, meter):
            self._save(self._checkpoint(meter), best=False)
            if self.dist.is_main:
                logger.warning(
                    "stopped in epoch %d after step %d; resume with --resume %s",
                    epoch + 1,
                    self.step,
                    self.out_dir / "last.pt",
                )
            return True
        train_seconds = time.perf_counter() - started
        train = meter.reduce()
        last_epoch = epoch + 1 == cfg.epochs
        val = None
        if self.val_loader is not None and ((epoch + 1) % cfg.val_every == 0 or last_epoch):
            val = self.validate()
        lr = self.optimizer.param_groups[0]["lr"]
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": self.step,
            "lr": lr,
            "train_loss": train["loss"],
            "train_top1": train["top1"],
            "train_top5": train["top5"],
            "val_loss": val["loss"] if val else math.nan,
            "val_top1": val["top1"] if val else math.nan,
            "val_top5": val["top5"] if val else math.nan,
            "seconds": round(time.perf_counter() - started, 3),
            "clips_per_s": round(train["clips"] / max(train_seconds, 1e-9), 3),
        }
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val["loss"] if val else train["loss"])
        elif self.scheduler is not None:
            self.scheduler.step()
        self.history.append(row)
        is_best = self._is_best(row)
        if is_best:
            self.best = dict(row)
        self.epoch = epoch + 1
        self.batches_done = 0
        self._save(self._checkpoint(None), best=is_best)
        if log is not None:
            log.write(self.history)
            acc = self.accuracy_name
            val_text = (
                f", val loss {row['val_loss']:.4f} {acc} {row['val_top1']:.3f}" if val else ""
            )
            logger.info(
                "epoch %d/%d: train loss %.4f %s %.3f%s, lr %.3g, %.0f s (%.1f clips/s)%s",
                epoch + 1,
                cfg.epochs,
                row["train_loss"],
                acc,
                row["train_top1"],
                val_text,
                lr,
                row["seconds"],
                row["clips_per_s"],
                " *best*" if is_best else "",
            )
        return self._stop_agreed()

    def _is_best(self, row: Mapping[str, Any]) -> bool:
        has_val = not math.isnan(row["val_top1"])
        if self.best is None:
            return True
        best_has_val = not math.isnan(self.best["val_top1"])
        if has_val and not best_has_val:
            return True
        if not has_val:
            return not best_has_val and row["train_loss"] < self.best["train_loss"]
        if row["val_top1"] != self.best["val_top1"]:
            return row["val_top1"] > self.best["val_top1"]
        return row["val_loss"] < self.best["val_loss"]


def resolve_config(
    cls: type[RunConfig],
    options: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike | None = None,
    task: str = "classify",
    where: str = "train config",
) -> Any:
    """A ``cls`` from defaults < the resumed checkpoint's config < ``config_file`` < ``options``.

    ``options`` are explicitly given settings (e.g. parsed command-line flags); a resumed
    checkpoint must be of ``task``.
    """
    from .config import load_config_file, merge

    options = dict(options or {})
    from_file = load_config_file(config_file) if config_file is not None else {}
    resume = options.get("resume", from_file.get("resume"))
    layers: list[Mapping[str, Any]] = []
    if resume:
        saved = _peek_config(resume, task)
        layers.append({k: v for k, v in saved.items() if k not in ("resume", "overwrite")})
    layers += [from_file, options]
    return merge(cls, *layers, where=where)


def resolve_train_config(
    options: Mapping[str, Any] | None = None, config_file: str | os.PathLike | None = None
) -> TrainConfig:
    """``resolve_config`` for ``stc train``: defaults < checkpoint < file < ``options``."""
    return resolve_config(TrainConfig, options, config_file)


def _peek_config(path: str | os.PathLike, task: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--resume: checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # corrupt or foreign file
        raise ConfigError(f"--resume {path}: cannot be read as a checkpoint: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"--resume {path}: not a stc_ext training checkpoint")
    made_by = obj.get("task", "classify")
    if made_by != task:
        raise ConfigError(
            f"--resume {path}: the checkpoint is of a {made_by!r} run, not "
            f"{task!r} (stc train resumes classify runs, stc transfer resumes "
            "transfer runs)"
        )
    return dict(obj["config"])


def train(
    config: TrainConfig | Mapping[str, Any],
    on_step: Callable[[Trainer, int, int], None] | None = None,
) -> TrainResult:
    """Train a model as ``config`` says; returns a ``TrainResult`` (also on Ctrl-C).

    Under ``torchrun`` every rank calls this; rank 0 writes files and logs. Configuration
    errors raise ``ConfigError`` before the first step.
    """
    if not isinstance(config, TrainConfig):
        config = config_from_dict(TrainConfig, config, where="train config")
    trainer = Trainer(config, on_step=on_step)
    trainer.setup()
    return trainer.fit()
