"""What a training task plugs into the :class:`~stc_ext.train.trainer.Trainer`.

The trainer owns everything tasks share: batch arithmetic, samplers and loaders, AMP, DDP,
Ctrl-C, atomic checkpoints, exact resume, logs. A :class:`Task` says what is trained: its
data, its model, how a batch feeds the model, what a checkpoint holds and what a run exports.
Two implement it: :class:`~stc_ext.train.classify.ClassifyTask` (``stc train``) and
:class:`~stc_ext.transfer.task.TransferTask` (``stc transfer``). A task object serves one run
and may keep what it learns about it (e.g. a file's hash) between calls.

The trainer calls, in order: ``check`` -> ``build_data`` -> ``build_model``; then per step
``unpack`` (and ``dummy_batch`` for a rank whose micro-batch was empty); per checkpoint
``model_state``, ``checkpoint_extras`` and, on rank 0, ``export``; ``describe`` for the
result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from .config import RunConfig

__all__ = ["Task", "TaskData"]


@dataclass
class TaskData:
    """What a task trains and validates on; the trainer adds samplers and loaders.

    ``train`` and ``val`` are map-style datasets; ``collate`` turns a list of their items
    into ``(batch, skipped)``: the batch ``unpack`` reads (None when every item was skipped)
    and the skipped items (:class:`~stc_ext.data.SkippedVideo` s). ``train_videos`` and
    ``val_videos`` are how many videos each split holds, the base of the share of
    undecodable videos a run allows (default: the dataset's length, one item per video).
    """

    classes: list[str]  # the model's output classes, in order
    train: Dataset
    val: Dataset | None  # None: no validation
    collate: Callable[[Sequence[Any]], tuple[Any, list[Any]]]
    summary: str  # for the start-of-run log line, e.g. "12 videos, 3 classes"
    train_size: str  # what an epoch holds, for errors: "the training set (12 videos)"
    train_videos: int | None = None
    val_videos: int | None = None


class Task(Protocol):
    """A training task (see the module docstring)."""

    #: Written into checkpoints as ``task``; only a run of the same task resumes them.
    name: str
    #: What the ``*_top1`` metric is called in the log ("top-1", "pair acc").
    accuracy_name: str
    #: Config fields a checkpoint cannot be resumed under other values of.
    model_fields: tuple[str, ...]
    #: Config fields that decide which samples each step sees.
    schedule_fields: tuple[str, ...]
    #: The file ``export`` writes in the run folder (None: the task exports nothing).
    export_name: str | None
    #: What loading ``init`` weights did (``load_init_weights``' report), None if nothing.
    init_report: dict[str, list[str]] | None

    def check(self, config: RunConfig) -> None:
        """Check the task's paths and files (``config.validate()`` has passed).

        Raises:
            ConfigError: naming the field at fault.
        """
        ...

    def build_data(self, config: RunConfig) -> TaskData:
        """Read the task's data (checking every listed file) into datasets."""
        ...

    def build_model(
        self, config: RunConfig, data: TaskData, checkpoint: Mapping[str, Any] | None
    ) -> nn.Module:
        """The network on the CPU with the ``checkpoint``'s weights (``model_state`` as
        saved) when resuming, else initialised (``init`` weights, if the task has them)."""
        ...

    def unpack(self, batch: Any) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """A loader batch -> (the model's inputs, the labels), on the CPU."""
        ...

    def dummy_batch(self, config: RunConfig) -> Any:
        """A one-sample batch of the right shapes (fed with zero weight to a rank whose
        micro-batch was empty, so the ranks run the same collectives)."""
        ...

    def model_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The weights a checkpoint holds as ``model`` (what ``build_model`` loads back)."""
        ...

    def checkpoint_extras(self, model_state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """More top-level checkpoint entries (e.g. ``init_model``); ``{}`` for none."""
        ...

    def export(self, checkpoint: Mapping[str, Any], path: Path) -> None:
        """Write the task's product to ``path`` (``out_dir / export_name``) after a
        checkpoint was saved (rank 0; only called when ``export_name`` is set)."""
        ...

    def describe(self, config: RunConfig, data: TaskData) -> str:
        """One line saying what the run trains, for the summary."""
        ...
