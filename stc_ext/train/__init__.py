"""Training and evaluation: the paper's protocol (§4.2) with the engineering around it.

``train(TrainConfig(...))`` trains any registered model on any supported dataset (SGD with
Nesterov momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 when the validation loss
plateaus; gradient accumulation to the effective batch; AMP; ``torch.compile``; DDP under
``torchrun``; atomic checkpoints and exact resume). ``evaluate(EvalConfig(...))`` scores
videos by the paper's test protocol (non-overlapping clips, centre crop, averaged softmax)
over one or more splits. The ``stc train`` / ``stc evaluate`` commands wrap both.
"""

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
    EvalConfig,
    TrainConfig,
    add_config_flags,
    config_from_dict,
    config_to_dict,
    given_options,
    load_config_file,
    save_config,
)
from .evaluate import EvalResult, SplitResult, evaluate, predict_videos, resolve_eval_config
from .metrics import ClipMeter, VideoMetrics, confusion_matrix, topk_correct, video_metrics
from .summary import format_eval_table, format_table, format_train_summary
from .trainer import Trainer, TrainResult, build_model, resolve_train_config, train

__all__ = [
    "CHECKPOINT_FORMAT",
    "ClipMeter",
    "ConfigError",
    "EvalConfig",
    "EvalResult",
    "SplitResult",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "VideoMetrics",
    "add_config_flags",
    "atomic_save",
    "build_model",
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
    "resolve_eval_config",
    "resolve_train_config",
    "restore_rng_state",
    "save_config",
    "topk_correct",
    "train",
    "video_metrics",
]
