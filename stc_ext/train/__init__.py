"""Training and evaluation: the paper's protocol (§4.2) with the engineering around it.

``train(TrainConfig(...))`` trains any registered model on any supported dataset (SGD with
Nesterov momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 when the validation loss
plateaus; gradient accumulation to the effective batch; AMP; ``torch.compile``; DDP under
``torchrun``; atomic checkpoints and exact resume). ``evaluate(EvalConfig(...))`` scores
videos by the paper's test protocol (non-overlapping clips, centre crop, averaged softmax)
over one or more splits. The ``stc train`` / ``stc evaluate`` commands wrap both.

Modules, one job each:

* :mod:`.trainer` -- the engine: ``Trainer(config, task)`` (loop, AMP, DDP, checkpoints,
  exact resume, logs) and ``TrainResult``;
* :mod:`.task` -- the ``Task`` protocol a training task implements (data, model, batches,
  checkpoint contents, export) and ``TaskData``;
* :mod:`.classify` -- ``ClassifyTask`` and ``train()`` (``stc train``); the transfer task
  lives in :mod:`stc_ext.transfer`;
* :mod:`.config` -- the config dataclasses, their ``validate()``, resumability checks,
  config files and flags; :mod:`.resolve` -- defaults < checkpoint < file < flags;
* :mod:`.checkpoint` -- the checkpoint format, RNG state, ``init`` weights;
  :mod:`.atomic` -- atomic file writes;
* :mod:`.data` -- resumable samplers, seeded datasets, loaders, annotations;
* :mod:`.distributed` -- ``torchrun`` process groups, collectives, Ctrl-C (``StopSignals``);
* :mod:`.evaluate` -- the test protocol, scored through :mod:`.inference` (checkpoint to
  model, videos to clip outputs and per-video scores; shared with ``stc predict`` and
  ``stc extract``); :mod:`.metrics`, :mod:`.records` (metric logs,
  progress bars), :mod:`.plots`, :mod:`.summary` (console tables).
"""

from .checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    load_init_weights,
    restore_rng_state,
)
from .classify import ClassifyTask, train
from .config import (
    ConfigError,
    EvalConfig,
    RunConfig,
    TrainConfig,
    add_config_flags,
    config_from_dict,
    config_to_dict,
    given_options,
    load_config_file,
    save_config,
)
from .errors import TrainingError
from .evaluate import EvalResult, SplitResult, evaluate
from .inference import predict_videos
from .metrics import ClipMeter, VideoMetrics, confusion_matrix, topk_correct, video_metrics
from .resolve import resolve_config, resolve_eval_config, resolve_train_config
from .summary import format_eval_table, format_table, format_train_summary
from .task import Task, TaskData
from .trainer import Trainer, TrainResult

__all__ = [
    "CHECKPOINT_FORMAT",
    "ClassifyTask",
    "ClipMeter",
    "ConfigError",
    "EvalConfig",
    "EvalResult",
    "RunConfig",
    "SplitResult",
    "Task",
    "TaskData",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "VideoMetrics",
    "add_config_flags",
    "atomic_save",
    "capture_rng_state",
    "config_from_dict",
    "config_to_dict",
    "confusion_matrix",
    "evaluate",
    "format_eval_table",
    "format_table",
    "format_train_summary",
    "given_options",
    "load_checkpoint",
    "load_config_file",
    "load_init_weights",
    "predict_videos",
    "resolve_config",
    "resolve_eval_config",
    "resolve_train_config",
    "restore_rng_state",
    "save_config",
    "topk_correct",
    "train",
    "video_metrics",
]
