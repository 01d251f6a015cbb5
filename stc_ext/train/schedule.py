"""The learning rate of each epoch, and what a resume with other settings does to it.

``step``, ``cosine`` and ``none`` are closed forms of the epoch and the config, set at the
start of every epoch (:func:`lr_at`); ``plateau`` is ``ReduceLROnPlateau``, which lowers
the rate after epochs without improvement and keeps state (its best value, its patience
count) in the checkpoint.

A resume applies the config it runs under, whatever the checkpoint holds
(:meth:`Schedule.resume`): the optimiser's momentum, Nesterov flag and weight decay are the
config's; the closed forms recompute the epoch's rate from ``lr`` and ``epochs`` (so a
longer cosine run follows the longer curve); ``plateau`` keeps the rate it reached, or takes
``lr`` when that changed, and its factor, patience and floor are the config's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import torch

from .config import RunConfig

__all__ = ["Schedule", "lr_at"]

logger = logging.getLogger("stc_ext.train")


def lr_at(config: RunConfig, epoch: int) -> float:
    """The learning rate of 0-based ``epoch`` under a closed-form schedule (``step``,
    ``cosine``, ``none``); ``plateau`` starts at ``lr``.

    ``step``: ``lr * lr_factor ** (epoch // lr_step)``; ``cosine``: ``min_lr + (lr - min_lr)
    * (1 + cos(pi * epoch / epochs)) / 2``.
    """
    if config.scheduler == "step":
        return config.lr * config.lr_factor ** (epoch // config.lr_step)
    if config.scheduler == "cosine":
        progress = min(epoch, config.epochs) / config.epochs
        return config.min_lr + (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress)) / 2
    return config.lr


class Schedule:
    """The learning-rate schedule of a run's optimiser (see the module docstring)."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: RunConfig) -> None:
        self.optimizer = optimizer
        self.config = config
        self.plateau = None
        if config.scheduler == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="min",
                factor=config.lr_factor,
                patience=config.patience,
                min_lr=config.min_lr,
            )

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def start_epoch(self, epoch: int) -> None:
        """Set the rate of 0-based ``epoch`` (closed forms; ``plateau`` keeps its own)."""
        if self.plateau is None:
            self._set_lr(lr_at(self.config, epoch))

    def end_epoch(self, monitored: float) -> None:
        """``plateau``: an epoch ended with ``monitored`` (the validation loss, or the
        training loss without validation)."""
        if self.plateau is not None:
            self.plateau.step(monitored)

    def state_dict(self) -> dict[str, Any] | None:
        return self.plateau.state_dict() if self.plateau is not None else None

    def resume(self, state: Mapping[str, Any] | None, saved: Mapping[str, Any]) -> None:
        """After ``optimizer.load_state_dict``: the scheduler's saved ``state`` and the
        config the checkpoint was trained with (``saved``), brought under this config."""
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["weight_decay"] = cfg.weight_decay
            if cfg.optimizer == "sgd":
                group["momentum"] = cfg.momentum
                group["nesterov"] = cfg.nesterov
        if self.plateau is None:
            return  # start_epoch sets the rate from the config
        if state and saved.get("scheduler") == "plateau":
            self.plateau.load_state_dict(dict(state))
        elif saved.get("scheduler", "plateau") != "plateau":
            logger.info("scheduler: plateau from here on (was %s)", saved.get("scheduler"))
        # The saved state carries the old settings; this run's config decides.
        self.plateau.factor = cfg.lr_factor
        self.plateau.patience = cfg.patience
        self.plateau.min_lrs = [cfg.min_lr] * len(self.optimizer.param_groups)
        self.plateau.default_min_lr = cfg.min_lr
        if saved.get("lr", cfg.lr) != cfg.lr:
            self._set_lr(cfg.lr)
