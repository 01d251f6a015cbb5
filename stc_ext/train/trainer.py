"""The training engine: ``Trainer(config, task)`` runs any :class:`~.task.Task`.

The engine owns what every task shares: the batch arithmetic (effective batch = ranks x
micro-batch x accumulation), samplers and loaders, the optimiser and schedule, AMP,
``torch.compile``, DDP, Ctrl-C, atomic checkpoints, exact resume and the logs. The task says
what is trained (:mod:`.task`).

A first Ctrl-C (SIGINT, or SIGTERM from ``torchrun``) lets the current optimiser step finish,
saves ``last.pt`` and returns; a second one aborts.

Nothing is lost and nothing is silent: a run holds an exclusive lock on its folder
(:mod:`.lock`); paths are stored absolute; undecodable videos are counted per epoch, listed
and limited (:mod:`.skips`); a step without any valid sample, a non-finite loss or a
BatchNorm layer given one value per channel stops the run with a
:class:`~.errors.TrainingError` before anything is saved from it, so ``last.pt`` and
``best.pt`` always hold the last good state. A resume applies the settings it is given and
records them (``overrides`` in the checkpoint and config.json; :mod:`.schedule` says what
each does to the learning rate); settings that define the network are refused.

Exact resume: a checkpoint taken at an optimiser-step boundary holds everything that decides
the rest of the run (see :mod:`stc_ext.train.checkpoint`); data order and augmentation are
functions of ``(seed, epoch, sample)`` (see :mod:`stc_ext.train.data`), so a resumed run
computes bit for bit what the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..data import VideoBatch
from . import distributed as tdist
from .checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
)
from .config import (
    AMP_DTYPES,
    OVERRIDES_KEY,
    ConfigError,
    RunConfig,
    absolute_paths,
    check_checkpoint_task,
    check_resumable,
    config_changes,
    config_to_dict,
    path_fields,
    save_config,
)
from .data import ResumableSampler, SeededDataset, ShardSampler, make_loader
from .errors import TrainingError
from .lock import RunDirLockedError, RunLock, describe_holder
from .memory import available_memory, estimate_training_memory, format_bytes
from .metrics import ClipMeter
from .records import MetricLog, progress_bar
from .schedule import Schedule
from .skips import SKIPPED_FILE, SkipLog
from .task import Task

__all__ = ["TrainResult", "Trainer"]

logger = logging.getLogger("stc_ext.train")

#: Above this share of an epoch's training time spent waiting for the loader, the epoch's log
#: line is followed by a warning that decoding, not the network, sets the speed.
DATA_BOUND_SHARE = 0.5
#: The per-epoch log fields that measure time (they differ between otherwise identical runs).
TIMING_FIELDS = ("seconds", "clips_per_s", "data_wait_s", "compute_s")


@dataclass
class TrainResult:
    """What a training run did (the same on every rank)."""

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
    task: str = "classify"  # the task's name ("transfer": stc_ext.transfer)
    exported: Path | None = None  # what the task exported (transfer: student.pt)
    description: str = ""  # one line: model, data, clip shape
    skipped: dict[str, int] = field(default_factory=dict)  # distinct undecodable videos
    skipped_file: Path | None = None  # OUT_DIR/skipped.tsv, when any video was skipped
    overrides: list[dict[str, Any]] = field(default_factory=list)  # what resumes changed


#: A run's files in OUT_DIR besides the task's export; ``overwrite`` removes them all.
RUN_FILES = (
    "last.pt",
    "best.pt",
    "config.json",
    "metrics.csv",
    "metrics.jsonl",
    "curves.png",
    SKIPPED_FILE,
)
#: Config fields a resume may change without them being recorded as overrides: where the
#: run's files go and how fast it runs, not what it computes.
_NOT_OVERRIDES = ("resume", "overwrite", "out_dir", "progress", "tensorboard", "workers", "threads")
#: torch's message when BatchNorm gets one value per channel in training mode.
_BATCHNORM_SINGLE = "Expected more than 1 value per channel"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _weights_channels_last(model: nn.Module) -> None:
    """4-D weights and buffers in ``channels_last``, 5-D ones in ``channels_last_3d``."""
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.dim() in formats:
                tensor.data = tensor.data.contiguous(memory_format=formats[tensor.dim()])


class Trainer:
    """One training run of ``task``. ``setup()`` validates and builds everything; ``fit()``
    trains.

    Args:
        config: the resolved configuration (a :class:`~.config.RunConfig` the task accepts).
        task: what is trained (:class:`~.task.Task`).
        on_step: called as ``on_step(trainer, epoch, step)`` after each optimiser step (on
            every rank); ``trainer.request_stop()`` from it stops like a Ctrl-C.
    """

    def __init__(
        self,
        config: RunConfig,
        task: Task,
        on_step: Callable[[Trainer, int, int], None] | None = None,
    ) -> None:
        self.config = config
        self.task = task
        self.on_step = on_step
        self.signals = tdist.StopSignals()
        self.dist: tdist.DistInfo | None = None
        self.epoch = 0  # epochs completed (or the one in progress when batches_done > 0)
        self.batches_done = 0
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.overrides: list[dict[str, Any]] = []
        self.lock: RunLock | None = None
        self._data_wait = 0.0
        self._progress: list[float] | None = None
        self._rng: Any = None
        self._epoch_skips = 0  # distinct training videos skipped this epoch, all ranks
        self._step_in_epoch = 0
        self.memory_estimate: Any = None  # the MemoryEstimate of setup(), if one was made
        self._last_good = "No checkpoint was saved yet."

    # -------------------------------------------------------------- set-up
    def request_stop(self) -> None:
        """Stop after the current optimiser step, saving a checkpoint (as Ctrl-C does)."""
        self.signals.requested = True

    def setup(self) -> None:
        """Check the configuration, lock the run folder and build data, model and optimiser
        (no training step). The lock is held until ``fit`` returns (or ``close()``).

        Raises:
            ConfigError: anything wrong with the configuration, its paths or checkpoints,
                or another run using the folder.
        """
        self.config = cfg = absolute_paths(self.config)
        cfg.validate()
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        world = self._batch_arithmetic()
        self.dist = info = tdist.setup(cfg.device)
        self._check_device(info.device)
        self.out_dir = Path(cfg.out_dir)
        created = not self.out_dir.exists()
        self._lock_run_dir(info)
        try:
            self._prepare(info, world)
        except BaseException:
            self.close()
            if created and info.is_main:
                with contextlib.suppress(OSError):  # only if nothing was written there
                    self.out_dir.rmdir()
            raise

    def close(self) -> None:
        """Release the run folder's lock (``fit`` does this when it returns)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _lock_run_dir(self, info: tdist.DistInfo) -> None:
        """Rank 0 takes the folder's lock; every rank learns whether it did."""
        refusal = None
        if info.is_main:
            if self.out_dir.exists() and not self.out_dir.is_dir():
                refusal = f"{self.out_dir} is a file, not a folder: give the run a folder"
            else:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                lock = RunLock(self.out_dir)
                try:
                    self.lock = lock.acquire()
                except RunDirLockedError as exc:
                    refusal = str(exc)
                else:
                    if lock.stale is not None:
                        logger.warning(
                            "%s: took over the lock of a run that no longer runs (%s); "
                            "resume from its last.pt if it had not finished",
                            self.out_dir,
                            describe_holder(lock.stale),
                        )
        refusal = tdist.all_gather_objects(refusal)[0]
        if refusal is not None:
            raise ConfigError(refusal, field="out_dir")

    def _prepare(self, info: tdist.DistInfo, world: int) -> None:
        cfg, task = self.config, self.task
        if cfg.resume is None and not cfg.overwrite and (self.out_dir / "last.pt").exists():
            raise ConfigError(
                f"{self.out_dir} already holds a run (last.pt); set resume to "
                f"{self.out_dir / 'last.pt'} to continue it or overwrite to start afresh",
                field="out_dir",
            )
        checkpoint = None
        saved: Mapping[str, Any] = {}
        if cfg.resume is not None:
            checkpoint = load_checkpoint(cfg.resume, field="resume")
            saved = checkpoint["config"]
            check_checkpoint_task(checkpoint.get("task", "classify"), task.name, cfg.resume)
            changed = check_resumable(
                saved,
                cfg,
                task.model_fields,
                task.schedule_fields,
                mid_epoch=checkpoint["batches_done"] > 0,
                world_size=(int(checkpoint.get("world_size", 1)), world),
                micro_batch=(int(checkpoint.get("micro_batch_size", self.micro)), self.micro),
            )
            if changed:
                logger.warning(
                    "resuming with changed %s: the run will differ from an uninterrupted one",
                    ", ".join(changed),
                )
            self._record_overrides(checkpoint, info)
        with self._moved_data_hint(saved):
            task.check(cfg)
            self._build_data(info)
        self._build_model(info.device, checkpoint)
        self._check_memory(info)
        self._build_optimisation(info.device, checkpoint)
        self._wrap_model(info.device, world)
        if info.is_main:
            if cfg.overwrite and cfg.resume is None:
                self._clear_run()
            save_config(cfg, self.out_dir / "config.json", self.overrides)
        # Everything above may have drawn random numbers (weight init); the run continues
        # from the checkpoint's streams, or from the seed.
        if self._rng is not None:
            restore_rng_state(self._rng)
        else:
            _seed_everything(cfg.seed + info.rank)

    def _record_overrides(self, checkpoint: Mapping[str, Any], info: tdist.DistInfo) -> None:
        """What this resume changes, appended to the checkpoint's history of overrides."""
        cfg = self.config
        self.overrides = [dict(entry) for entry in checkpoint.get(OVERRIDES_KEY) or []]
        changes = config_changes(checkpoint["config"], cfg, ignore=_NOT_OVERRIDES)
        if not changes:
            return
        self.overrides.append(
            {
                "resumed_from": str(cfg.resume),
                "epoch": int(checkpoint["epoch"]),
                "step": int(checkpoint["step"]),
                "changes": {name: [old, new] for name, (old, new) in changes.items()},
            }
        )
        if info.is_main:
            logger.info(
                "resuming with %s (applied from step %d on; recorded in the checkpoints' and "
                "config.json's %s)",
                ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changes.items()),
                int(checkpoint["step"]),
                OVERRIDES_KEY,
            )

    @contextlib.contextmanager
    def _moved_data_hint(self, saved: Mapping[str, Any]) -> Iterator[None]:
        """A missing path that a resumed checkpoint recorded: say so, and how to give its new
        place."""
        try:
            yield
        except ConfigError as exc:
            name = exc.field
            if (
                name in path_fields(type(self.config))
                and name in saved
                and getattr(self.config, name) == saved[name]
            ):
                raise ConfigError(
                    f"{exc.detail} (the path {self.config.resume} recorded; if the data "
                    f"moved, give {name} its new place)",
                    field=name,
                ) from None
            raise

    def _batch_arithmetic(self) -> int:
        """Split the effective batch into ranks x micro-batch x accumulation; the world size."""
        cfg = self.config
        world = tdist.expected_world_size()
        if cfg.batch_size % world:
            raise ConfigError(
                f"{cfg.batch_size} is not divisible by the world size {world} "
                "(torchrun --nproc_per_node)",
                field="batch_size",
            )
        per_rank = cfg.batch_size // world
        self.micro = cfg.micro_batch_size or per_rank
        if per_rank % self.micro:
            raise ConfigError(
                f"{self.micro} does not divide the per-rank batch {per_rank} "
                f"(= batch_size {cfg.batch_size} / world size {world})",
                field="micro_batch_size",
            )
        self.accum = per_rank // self.micro
        return world

    def _check_device(self, device: torch.device) -> None:
        cfg = self.config
        if cfg.sync_bn and device.type != "cuda":
            raise ConfigError(
                "needs CUDA devices (SyncBatchNorm refuses CPU modules)", field="sync_bn"
            )
        if cfg.model.startswith("stc_"):
            from ..ops import resolve_backend

            try:
                resolve_backend(cfg.backend, device)
            except ValueError as exc:
                raise ConfigError(str(exc), field="backend") from None
        self.amp_dtype = AMP_DTYPES.get(cfg.amp)
        if device.type == "cuda" and cfg.amp == "bf16" and not torch.cuda.is_bf16_supported():
            raise ConfigError("bf16: this GPU does not support bfloat16; use fp16", field="amp")
        if device.type == "cpu" and cfg.amp == "fp16" and self.dist and self.dist.is_main:
            # Measured on a laptop CPU: 180 s an epoch with fp16 autocast, 5 s without.
            logger.warning(
                "amp fp16 on a CPU: most CPUs have no fast float16 arithmetic, and a run can be "
                "tens of times slower than without it; use amp none (or bf16 on a CPU with "
                "bfloat16 support)"
            )

    def _clear_run(self) -> None:
        """Remove a previous run's files (``overwrite``), so none of them outlives the new
        run."""
        names = RUN_FILES + ((self.task.export_name,) if self.task.export_name else ())
        for name in names:
            (self.out_dir / name).unlink(missing_ok=True)
        shutil.rmtree(self.out_dir / "tensorboard", ignore_errors=True)

    # -------------------------------------------------------------- building
    def _build_data(self, info: tdist.DistInfo) -> None:
        """The task's datasets in samplers and loaders.

        Sets ``classes``, ``data`` (the :class:`~.task.TaskData`), ``train_sampler`` (a
        :class:`ResumableSampler`), ``train_loader`` and ``val_loader`` (None without
        validation)."""
        cfg = self.config
        self.data = data = self.task.build_data(cfg)
        self.classes = list(data.classes)
        self.train_sampler = ResumableSampler(
            data.train, info.world_size, info.rank, cfg.seed, self.micro * self.accum
        )
        if self.train_sampler.steps_per_epoch == 0:
            raise ConfigError(
                f"{cfg.batch_size} is larger than {data.train_size}: no complete step per epoch",
                field="batch_size",
            )
        pin = info.device.type == "cuda"
        self.train_loader = make_loader(
            SeededDataset(data.train),
            self.micro,
            self.train_sampler,
            cfg.workers,
            pin,
            cfg.seed,
            data.collate,
        )
        videos = {"train": data.train_videos or len(data.train)}  # type: ignore[arg-type]
        if data.val is not None:
            videos["val"] = data.val_videos or len(data.val)  # type: ignore[arg-type]
        self.skips = SkipLog(videos, cfg.max_skipped_fraction)
        self.val_loader = None
        if data.val is not None:
            self.val_loader = make_loader(
                data.val,
                self.micro,
                ShardSampler(len(data.val), info.rank, info.world_size),  # type: ignore[arg-type]
                min(cfg.workers, 2),
                pin,
                cfg.seed,
                data.collate,
            )

    def _build_model(self, device: torch.device, checkpoint: Mapping[str, Any] | None) -> None:
        cfg = self.config
        _seed_everything(cfg.seed)
        model = self.task.build_model(cfg, self.data, checkpoint)
        model.to(device)
        if cfg.channels_last:
            _weights_channels_last(model)
        if cfg.sync_bn and tdist.expected_world_size() > 1:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model

    def _check_memory(self, info: tdist.DistInfo) -> None:
        """Estimate the memory a step needs (:mod:`.memory`) and warn when the device lacks
        it; a micro-batch BatchNorm cannot train on is refused here, before any data."""
        cfg = self.config
        inputs, _ = self.task.unpack(self.task.dummy_batch(cfg))
        shapes = [
            torch.empty((self.micro, *t.shape[1:]), dtype=t.dtype, device="meta") for t in inputs
        ]
        self.model.train()
        try:
            estimate = estimate_training_memory(
                self.model,
                shapes,
                optimizer=cfg.optimizer,
                autocast_dtype=self.amp_dtype,
                ddp=info.world_size > 1,
                workers=cfg.workers,
            )
        except Exception as exc:
            if isinstance(exc, ValueError) and _BATCHNORM_SINGLE in str(exc):
                raise ConfigError(
                    f"{self.micro} clip(s) per forward pass leave a BatchNorm layer of "
                    f"{cfg.model} one value per channel at {cfg.frames} frames x {cfg.size}px, "
                    "which it cannot train on; use a micro_batch_size of at least 2 (or larger "
                    "frames/size)",
                    field="micro_batch_size",
                ) from None
            # Otherwise the estimate is advice: a pass fake tensors cannot make (an op
            # without a fake kernel, ...) never stops a run.
            logger.info("no memory estimate for this configuration (%s)", exc)
            return
        # Ranks on one machine share its memory; each GPU has its own.
        ranks_here = tdist.local_world_size() if info.device.type == "cpu" else 1
        needed = estimate.total * ranks_here
        available = available_memory(info.device)
        self.memory_estimate = estimate
        if not info.is_main:
            return
        where = f"{ranks_here} ranks x " if ranks_here > 1 else ""
        logger.info("memory estimate: %s%s per rank", where, estimate.describe())
        if available is not None and needed > available:
            logger.warning(
                "this configuration needs about %s (%s%s) but %s has %s available: it "
                "will likely run out of memory. A smaller micro_batch_size (gradient "
                "accumulation keeps batch_size), fewer frames, a smaller size or a smaller "
                "model reduce it (--micro-batch-size, --frames, --size, --model)",
                format_bytes(needed),
                where,
                estimate.describe(),
                "the GPU" if info.device.type == "cuda" else "this machine",
                format_bytes(available),
            )

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
        self.schedule = Schedule(self.optimizer, cfg)
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

    def _load_training_state(self, ckpt: Mapping[str, Any]) -> None:
        cfg, info = self.config, self.dist
        assert info is not None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.resume(ckpt.get("scheduler"), ckpt["config"])
        if self.scaler.is_enabled() and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch = int(ckpt["epoch"])
        self.batches_done = int(ckpt["batches_done"])
        self.step = int(ckpt["step"])
        self.history = [dict(row) for row in ckpt.get("history", [])]
        self.best = dict(ckpt["best"]) if ckpt.get("best") else None
        self._last_good = (
            f"{cfg.resume} (step {self.step}) holds the last good state: resume from it."
        )
        self.skips.load_state(ckpt.get("skipped"), info.is_main)
        self._epoch_skips = len((ckpt.get("skipped") or {}).get("epoch", {}).get("train", {}))
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
                "the checkpoint has finished %d of %d epochs: nothing to train",
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
            self._gather_skips("train")  # the unfinished epoch's, from every rank
        rng = tdist.all_gather_objects(capture_rng_state())
        model_state = self.task.model_state(self.model)
        return {
            "format": CHECKPOINT_FORMAT,
            "task": self.task.name,
            "model": model_state,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
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
            "skipped": self.skips.state(),
            OVERRIDES_KEY: self.overrides,
            "torch_version": str(torch.__version__),
            **self.task.checkpoint_extras(model_state),
        }

    def _save(self, state: dict[str, Any], best: bool) -> None:
        assert self.dist is not None
        if self.dist.is_main:
            atomic_save(state, self.out_dir / "last.pt")
            if best:
                atomic_save(state, self.out_dir / "best.pt")
            if self.task.export_name is not None:
                self.task.export(state, self.out_dir / self.task.export_name)
        self._last_good = (
            f"{self.out_dir / 'last.pt'} (step {self.step}) holds the last good state: "
            "resume from it."
        )
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
        inputs, labels = self.task.unpack(batch)
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

    def _micro_step(
        self, batch: Any, sync: bool, meter: ClipMeter, nonfinite: torch.Tensor, epoch: int
    ) -> int:
        """Forward and backward one micro-batch; returns how many samples it held.

        ``nonfinite`` (on the device) counts micro-batches whose loss is not finite; it is
        read once per step, so the device is not waited for here."""
        weight = 1.0
        if batch is None:
            # Every sample of this micro-batch was undecodable. Alone, skip it; under DDP the
            # ranks must still run the same collectives, so a zero-weighted dummy goes in.
            if self.ddp is None:
                return 0
            weight = 0.0
            batch = self.task.dummy_batch(self.config)
        inputs, labels = self._to_device(batch)
        no_sync = self.ddp.no_sync() if (self.ddp is not None and not sync) else None
        with no_sync or contextlib.nullcontext():
            with self._autocast():
                try:
                    logits = self.forward_model(*inputs)
                except ValueError as exc:
                    if _BATCHNORM_SINGLE not in str(exc):
                        raise
                    raise self._batchnorm_error(len(labels), epoch) from None
            logits = logits.float()
            loss = self.criterion(logits, labels)
            self.scaler.scale(loss * (weight / self.accum)).backward()
        if not weight:
            return 0
        nonfinite += (~torch.isfinite(loss.detach())).to(nonfinite.dtype)
        meter.update(loss, logits, labels)
        return len(labels)

    def _batchnorm_error(self, clips: int, epoch: int) -> TrainingError:
        cfg = self.config
        cause = (
            f"micro_batch_size is {self.micro}"
            if clips == self.micro
            else f"undecodable videos left {clips} of its {self.micro} clips"
        )
        return TrainingError(
            f"step {self.step + 1} (epoch {epoch + 1}): a BatchNorm layer got one value per "
            f"channel, which it cannot train on: the micro-batch held {clips} clip(s) "
            f"({cause}) and the layer's feature map is 1 value at {cfg.frames} frames x "
            f"{cfg.size}px. Use a micro_batch_size of at least 2 (more if videos are skipped), "
            f"or larger frames/size. {self._last_good}"
        )

    def _optimizer_step(self) -> None:
        if self.config.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def _check_step(self, epoch: int, valid: int, nonfinite: torch.Tensor, new_skips: int) -> None:
        """Before the optimiser step (collective): stop the run if the step had no valid
        sample, a non-finite loss, or the epoch skipped more videos than allowed."""
        assert self.dist is not None
        totals = torch.stack(
            [
                torch.tensor(float(valid), device=nonfinite.device),
                nonfinite.double(),
                torch.tensor(float(new_skips), device=nonfinite.device),
            ]
        )
        valid_all, nonfinite_all, new_all = (int(v) for v in tdist.all_reduce_(totals).tolist())
        self._epoch_skips += new_all
        where = f"step {self.step + 1} (step {self._step_in_epoch + 1} of epoch {epoch + 1})"
        if valid_all == 0:
            names = self.skips.first_names("train")
            raise TrainingError(
                f"{where} has no sample to train on: none of its "
                f"{self.micro * self.accum * self.dist.world_size} videos could be decoded"
                + (f" ({names})" if names else "")
                + f". {self._last_good}"
            )
        self.skips.check("train", self._epoch_skips, f"in epoch {epoch + 1} (so far)")
        if nonfinite_all:
            raise TrainingError(
                f"the training loss is not finite (nan or inf) at {where}: the run diverged. "
                "A smaller lr, grad_clip or amp none may avoid it. Nothing was saved from this "
                f"step on. {self._last_good}"
            )

    def _batches(self) -> Iterator[tuple[Any, list[Any]]]:
        yield from self.train_loader

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
                self._step_in_epoch = step_in_epoch
                valid = new_skips = 0
                nonfinite = torch.zeros((), dtype=torch.int32, device=self.dist.device)
                for k in range(self.accum):
                    waited = time.perf_counter()
                    batch, skipped = next(batches)
                    self._data_wait += time.perf_counter() - waited
                    new_skips += self.skips.add("train", skipped)
                    valid += self._micro_step(batch, k == self.accum - 1, meter, nonfinite, epoch)
                self._check_step(epoch, valid, nonfinite, new_skips)
                self._optimizer_step()
                self.step += 1
                self.batches_done += self.accum
                if bar is not None:
                    bar.update(clips_per_step)
                    local = meter.local()
                    bar.set_postfix(
                        loss=f"{local['loss']:.3f}",
                        top1=f"{local['top1']:.3f}",
                        lr=f"{self.schedule.lr:.3g}",
                        refresh=False,
                    )
                if self.on_step is not None:
                    self.on_step(self, epoch, step_in_epoch)
                if self._stop_agreed():
                    return True
        return False

    def _gather_skips(self, split: str) -> None:
        """Every rank's skipped videos of ``split`` this epoch, on every rank (collective)."""
        if self.dist is not None and self.dist.distributed:
            self.skips.merge(split, tdist.all_gather_objects(self.skips.epoch[split]))

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """Loss and top-1/top-5 on the task's validation set (classify: the centre clip of
        each video; transfer: the fixed held-out pairs).

        Raises:
            TrainingError: no validation sample could be decoded, or more videos than
                ``max_skipped_fraction`` allows were skipped.
        """
        assert self.dist is not None and self.val_loader is not None
        self.model.eval()
        meter = ClipMeter(self.dist.device)
        for batch, skipped in self.val_loader:
            self.skips.add("val", skipped)
            if batch is None:
                continue
            assert not isinstance(batch, VideoBatch)
            inputs, labels = self._to_device(batch)
            with self._autocast():
                logits = self.model(*inputs)
            logits = logits.float()
            meter.update(self.criterion(logits, labels), logits, labels)
        self.model.train()
        self._gather_skips("val")
        result = meter.reduce()
        where = f"in the validation after epoch {self.epoch + 1}"
        if result["clips"] == 0:
            raise TrainingError(
                f"no validation sample could be decoded {where} "
                f"({self.skips.first_names('val')}). {self._last_good}"
            )
        self.skips.check("val", self.skips.count("val"), where)
        return result

    # -------------------------------------------------------------- the run
    def fit(self) -> TrainResult:
        """Train from the current state to ``config.epochs``; returns a ``TrainResult`` (also
        after a Ctrl-C). Releases the run folder's lock when it returns or raises.

        Raises:
            TrainingError: the run stopped (see :mod:`.errors`); the last checkpoint holds
                the last good state.
        """
        assert self.dist is not None
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> TrainResult:
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
                self.data.summary,
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

        def existing(name: str | None) -> Path | None:
            path = self.out_dir / name if name else None
            return path if path is not None and path.exists() else None

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
            last_checkpoint=existing("last.pt"),
            best_checkpoint=existing("best.pt"),
            curves_png=curves,
            init_report=self.task.init_report,
            task=self.task.name,
            exported=existing(self.task.export_name),
            description=self.task.describe(cfg, self.data),
            skipped=self.skips.summary(),
            skipped_file=existing(SKIPPED_FILE),
            overrides=self.overrides,
        )

    def _run_epoch(self, log: MetricLog | None) -> bool:
        assert self.dist is not None
        cfg = self.config
        epoch = self.epoch
        meter = ClipMeter(self.dist.device)
        if self._progress is not None:
            meter.load_state(self._progress)
            self._progress = None
        if not self.batches_done:
            self._epoch_skips = 0
        self.schedule.start_epoch(epoch)
        started = time.perf_counter()
        self._data_wait = 0.0  # seconds this rank spent waiting for the loader this epoch
        if self._train_epoch(epoch, meter):
            self._save(self._checkpoint(meter), best=False)
            if self.dist.is_main:
                logger.warning(
                    "stopped in epoch %d after step %d; resume from %s",
                    epoch + 1,
                    self.step,
                    self.out_dir / "last.pt",
                )
            return True
        train_seconds = time.perf_counter() - started
        train = meter.reduce()
        self._gather_skips("train")
        last_epoch = epoch + 1 == cfg.epochs
        val = None
        if self.val_loader is not None and ((epoch + 1) % cfg.val_every == 0 or last_epoch):
            val = self.validate()
            if not math.isfinite(val["loss"]):
                raise TrainingError(
                    f"the validation loss after epoch {epoch + 1} is not finite: the network "
                    f"outputs nan or inf. Nothing was saved from this epoch. {self._last_good}"
                )
        lr = self.schedule.lr
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
            # Rank 0's time blocked on the data loader vs the rest of the training steps
            # (forward, backward, optimiser): a large share means decoding is the bottleneck.
            "data_wait_s": round(self._data_wait, 3),
            "compute_s": round(max(train_seconds - self._data_wait, 0.0), 3),
            "train_skipped": self.skips.count("train"),
            "val_skipped": self.skips.count("val") if val else math.nan,
        }
        self._report_skips(epoch)
        self.schedule.end_epoch(val["loss"] if val else train["loss"])
        self.history.append(row)
        is_best = self._is_best(row)
        if is_best:
            self.best = dict(row)
        self.epoch = epoch + 1
        self.batches_done = 0
        self._save(self._checkpoint(None), best=is_best)
        if log is not None:
            log.write(self.history)
            acc = self.task.accuracy_name
            val_text = (
                f", val loss {row['val_loss']:.4f} {acc} {row['val_top1']:.3f}" if val else ""
            )
            wait_share = row["data_wait_s"] / max(train_seconds, 1e-9)
            logger.info(
                "epoch %d/%d: train loss %.4f %s %.3f%s, lr %.3g, %.0f s (%.1f clips/s; "
                "waiting for data %.0f%%)%s",
                epoch + 1,
                cfg.epochs,
                row["train_loss"],
                acc,
                row["train_top1"],
                val_text,
                lr,
                row["seconds"],
                row["clips_per_s"],
                100 * wait_share,
                " *best*" if is_best else "",
            )
            if wait_share > DATA_BOUND_SHARE:
                logger.warning(
                    "epoch %d spent %.0f%% of its training time waiting for the data loader: "
                    "decoding is the bottleneck (more --workers, or `stc prepare` the dataset: "
                    "see the README's data section)",
                    epoch + 1,
                    100 * wait_share,
                )
        return self._stop_agreed()

    def _report_skips(self, epoch: int) -> None:
        """Log the epoch's skipped videos (first names; all of them in skipped.tsv) and close
        the epoch's records."""
        assert self.dist is not None
        lines = []
        for split, total in self.skips.videos.items():
            count = self.skips.count(split)
            if count:
                lines.append(
                    f"{count} of {total} {'training' if split == 'train' else 'validation'} "
                    f"videos: {self.skips.first_names(split)}"
                )
        self.skips.end_epoch(epoch + 1)
        if not lines or not self.dist.is_main:
            return
        path = self.out_dir / SKIPPED_FILE
        self.skips.write(path)
        logger.warning(
            "epoch %d skipped undecodable videos (all listed in %s): %s",
            epoch + 1,
            path,
            "; ".join(lines),
        )

    def _is_best(self, row: Mapping[str, Any]) -> bool:
        if self.val_loader is None:
            return True  # nothing selects: best.pt is the last epoch
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
