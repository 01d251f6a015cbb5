"""Run configurations: ``RunConfig``, ``TrainConfig``, ``EvalConfig``, config files, flags.

``RunConfig`` holds what every training run shares (clips, network, optimisation, speed, run
bookkeeping); ``TrainConfig`` adds the labelled dataset (``stc train``) and
:class:`stc_ext.transfer.TransferConfig` the unlabeled videos and the 2D teacher
(``stc transfer``). Every field is a flag of its command (``--micro-batch-size`` for
``micro_batch_size``) and a key of a config file (YAML or JSON, dashes or underscores). The
value a run uses is resolved, lowest priority first, from: the field's default (the paper's
protocol, §4.2), the config saved in the checkpoint being resumed, the ``--config`` file, and
the flags given on the command line (:mod:`stc_ext.train.resolve`). The resolved config is
saved as ``config.json`` next to the run's checkpoints; JSON is also valid YAML, so either
loader reads it back.

Checks live next to the fields: ``validate()`` checks a config's values against each other
(no files, no devices); :func:`check_resumable` and :func:`check_checkpoint_task` decide
whether a checkpoint can be resumed under a config. Errors are :class:`ConfigError` naming
the field at fault.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..models.registry import check_model_name
from ..models.resnet3d import PLACEMENTS
from ..nn import BRANCHES
from .atomic import atomic_write_text

__all__ = [
    "AMP_DTYPES",
    "AMP_MODES",
    "DATASETS",
    "MODEL_FIELDS",
    "OPTIMIZERS",
    "OVERRIDES_KEY",
    "RENAMED_FIELDS",
    "SCHEDULERS",
    "ConfigError",
    "EvalConfig",
    "RunConfig",
    "TrainConfig",
    "absolute_paths",
    "add_config_flags",
    "check_checkpoint_task",
    "check_resumable",
    "config_changes",
    "config_from_dict",
    "config_to_dict",
    "load_config_file",
    "path_fields",
    "save_config",
    "upgrade_saved_config",
]

DATASETS = ("ucf101", "hmdb51", "kinetics", "list", "synthetic")
SCHEDULERS = ("plateau", "step", "cosine", "none")
OPTIMIZERS = ("sgd", "adamw")
AMP_MODES = ("none", "bf16", "fp16")
#: The autocast dtype of each ``amp`` mode ("none": no autocast).
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: Fields of earlier versions under their current names; saved configs (checkpoints,
#: config.json) and config files that use the old names still load.
RENAMED_FIELDS = {"shortcut": "shortcut_type"}
#: ``RunConfig`` fields that define the network (and the optimiser's state): a checkpoint
#: cannot be resumed under other values.
MODEL_FIELDS = (
    "model",
    "frames",
    "size",
    "branches",
    "reduction",
    "placement",
    "widths",
    "shortcut_type",
    "dropout",
    "optimizer",
)


class ConfigError(ValueError):
    """A run is misconfigured; raised before any training or evaluation starts.

    ``field`` is the config field at fault (None when the problem is not one field's, e.g. a
    dataset's file); the message is then ``"<field>: <detail>"``, e.g. ``"lr: must be
    positive, got -1.0"``. The ``stc`` command shows the field's flag in its place.
    """

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {detail}" if field else detail)
        self.detail = detail
        self.field = field


def _check_positive(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ConfigError(f"must be positive, got {value}", field=name)


def _check_not_negative(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value < 0:
            raise ConfigError(f"must not be negative, got {value}", field=name)


def _check_model_name(name: str) -> None:
    try:
        check_model_name(name)
    except ValueError as exc:
        raise ConfigError(str(exc), field="model") from None


_EPOCHS_HELP = (
    "training epochs; raised on resume, the schedule goes on: step keeps dividing every "
    "lr-step epochs, plateau keeps its rate and patience, cosine recomputes its curve over "
    "the new total (epoch e of E at min-lr + (lr - min-lr)(1 + cos(pi e/E))/2, so a finished "
    "run's rate rises from min-lr to that curve's value)"
)


def _f(default: Any, help: str, choices: Sequence[Any] | None = None, **extra: Any) -> Any:
    """A config field: its default, help text, choices and metadata (``group``: the flag
    group; ``path=True``: a file or folder, made absolute when a run starts)."""
    metadata = {"help": help, **extra}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunConfig:
    """What every training run shares (``stc train`` and ``stc transfer``): clips, the 3D
    network, optimisation, speed and run bookkeeping. Defaults follow the paper (§4.2)."""

    # ------------------------------------------------------------------ data
    frames: int = _f(16, "frames per clip (16/32/64 in the paper)", group="data")
    stride: int = _f(2, "temporal stride between sampled frames (Table 6; best 2)", group="data")
    size: int = _f(112, "crop side in pixels (112 in the paper)", group="data")
    short_side: int = _f(122, "frames are resized so their short side is this (122)", group="data")
    workers: int = _f(4, "data-loading worker processes per rank", group="data")
    strict_data: bool = _f(
        False, "fail on an undecodable or missing video instead of skipping it", group="data"
    )
    max_skipped_fraction: float = _f(
        0.05,
        "stop the run when an epoch cannot decode more than this share of a split's videos "
        "(0: any undecodable video stops it; 1: never); skipped videos are counted per epoch "
        "in the log and listed in OUT_DIR/skipped.tsv",
        group="data",
    )
    # ------------------------------------------------------------------ model
    model: str = _f(
        "stc_resnet3d_101", "registered model name (stc_ext.models.list_models())", group="model"
    )
    branches: str = _f(
        "stc", "STC branches (Table 5): both, TCB only or SCB only", BRANCHES, group="model"
    )
    reduction: int = _f(4, "STC bottleneck reduction r", group="model")
    placement: str = _f(
        "block",
        "where STC blocks go: in every residual block (paper §1) or in the last residual "
        "block of each of the four stages (§3.2)",
        PLACEMENTS,
        group="model",
    )
    backend: str = _f(
        "auto", "STC kernel backend (auto, reference, cpu, cuda, triton)", group="model"
    )
    widths: list[int] | None = _f(
        None,
        "stage base widths, e.g. 16,32,64,128 for a small model (default: 64,128,256,512)",
        group="model",
    )
    shortcut_type: str | None = _f(
        None,
        "residual shortcut type (default: A for basic blocks, B for bottlenecks)",
        ("A", "B"),
        group="model",
    )
    dropout: float = _f(0.0, "dropout before the classifier", group="model")
    # ------------------------------------------------------------------ optimisation
    epochs: int = _f(200, _EPOCHS_HELP, group="optimisation")
    batch_size: int = _f(
        128,
        "effective batch over all ranks (128 in the paper); reached by gradient accumulation",
        group="optimisation",
    )
    micro_batch_size: int | None = _f(
        None,
        "clips per forward pass on each rank (default: batch-size / world size); "
        "accumulation steps = batch-size / (world size * micro-batch-size)",
        group="optimisation",
    )
    optimizer: str = _f(
        "sgd", "SGD (the paper's) or AdamW (betas 0.9, 0.999)", OPTIMIZERS, group="optimisation"
    )
    lr: float = _f(
        0.1,
        "initial learning rate (changed on resume: step, cosine and none recompute the "
        "epoch's rate from it, plateau continues from it)",
        group="optimisation",
    )
    momentum: float = _f(0.9, "SGD momentum", group="optimisation")
    nesterov: bool = _f(True, "SGD Nesterov momentum", group="optimisation")
    weight_decay: float = _f(1e-4, "weight decay", group="optimisation")
    scheduler: str = _f(
        "plateau",
        "learning-rate schedule: divide by 1/lr-factor when the "
        "validation loss plateaus, every lr-step epochs, cosine, or constant",
        SCHEDULERS,
        group="optimisation",
    )
    lr_factor: float = _f(
        0.1, "multiplier applied at each decay (plateau/step)", group="optimisation"
    )
    patience: int = _f(
        10, "plateau: epochs without improvement before a decay", group="optimisation"
    )
    lr_step: int = _f(30, "step: epochs between decays", group="optimisation")
    min_lr: float = _f(
        0.0, "lower bound of the learning rate (plateau, cosine)", group="optimisation"
    )
    label_smoothing: float = _f(0.0, "cross-entropy label smoothing", group="optimisation")
    grad_clip: float | None = _f(None, "clip the gradient norm to this", group="optimisation")
    # ------------------------------------------------------------------ speed and precision
    amp: str = _f("none", "automatic mixed precision", AMP_MODES, group="speed")
    compile: bool = _f(False, "torch.compile the model", group="speed")
    channels_last: bool = _f(
        False, "channels_last_3d memory format for weights and clips", group="speed"
    )
    sync_bn: bool = _f(False, "SyncBatchNorm across ranks (GPU only)", group="speed")
    device: str = _f(
        "auto", "cpu, cuda, cuda:N or auto (cuda:LOCAL_RANK if available)", group="speed"
    )
    deterministic: bool = _f(
        False, "torch.use_deterministic_algorithms (needed for exact resume on GPU)", group="speed"
    )
    threads: int | None = _f(
        None,
        "CPU threads per rank for torch (default: torch's choice; "
        "1 avoids oversubscription on a busy or small machine)",
        group="speed",
    )
    seed: int = _f(0, "random seed (weights, sampling order, augmentation)", group="run")
    # ------------------------------------------------------------------ run
    out_dir: str = _f(
        "runs/stc",
        "where checkpoints, config.json and metrics go (one run at a time: a run locks it)",
        group="run",
        path=True,
    )
    resume: str | None = _f(
        None,
        "resume from this checkpoint (e.g. OUT_DIR/last.pt); settings given with it are "
        "applied and recorded in the checkpoint's overrides (network settings must match)",
        group="run",
        path=True,
    )
    overwrite: bool = _f(False, "start afresh in an OUT_DIR that already holds a run", group="run")
    val_every: int = _f(
        1,
        "validate every N epochs (0: never; the plateau schedule then watches the training "
        "loss, best.pt is the last epoch, and nothing is held out of the training list)",
        group="run",
    )
    progress: bool = _f(True, "progress bars (rank 0)", group="run")
    tensorboard: bool = _f(
        True, "write TensorBoard scalars if tensorboard is installed", group="run"
    )

    def validate(self) -> None:
        """Check the values against each other (no files, no devices are looked at).

        Raises:
            ConfigError: naming the first field at fault.
        """
        _check_model_name(self.model)
        _check_positive(
            self,
            "frames",
            "stride",
            "size",
            "short_side",
            "epochs",
            "batch_size",
            "micro_batch_size",
            "reduction",
            "lr_step",
            "threads",
        )
        if self.size > self.short_side:
            raise ConfigError(
                f"must not exceed short_side, got {self.size} > {self.short_side}", field="size"
            )
        if self.lr <= 0:
            raise ConfigError(f"must be positive, got {self.lr}", field="lr")
        _check_not_negative(self, "weight_decay", "momentum", "workers", "val_every", "patience")
        if self.optimizer == "sgd" and self.nesterov and self.momentum <= 0:
            raise ConfigError("needs a positive momentum (or nesterov off)", field="nesterov")
        if not 0 < self.lr_factor < 1:
            raise ConfigError(f"must be in (0, 1), got {self.lr_factor}", field="lr_factor")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"must be positive, got {self.grad_clip}", field="grad_clip")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(
                f"must be in [0, 1), got {self.label_smoothing}", field="label_smoothing"
            )
        stc_options = {"branches": "stc", "reduction": 4, "placement": "block"}
        changed = [name for name, default in stc_options.items() if getattr(self, name) != default]
        if not self.model.startswith("stc_") and changed:
            raise ConfigError(
                f"{self.model} has no STC blocks: branches, reduction and placement need an "
                f"stc_ model (e.g. stc_{self.model})",
                field=changed[0],
            )
        if self.widths is not None and (len(self.widths) != 4 or min(self.widths) < 1):
            raise ConfigError(f"needs 4 positive integers, got {self.widths}", field="widths")
        if not 0 <= self.max_skipped_fraction <= 1:
            raise ConfigError(
                f"must be in [0, 1], got {self.max_skipped_fraction}", field="max_skipped_fraction"
            )


@dataclass
class TrainConfig(RunConfig):
    """Everything ``train`` needs: a :class:`RunConfig` plus the labelled dataset and an
    optional initialisation."""

    dataset: str = _f("ucf101", "annotation format", DATASETS, group="data")
    root: str | None = _f(
        None,
        "video root (UCF101/HMDB51/Kinetics: the class folders; list: the folder paths "
        "are relative to; synthetic: the folder `stc synth --out` wrote)",
        group="data",
        path=True,
    )
    annotations: str | None = _f(
        None,
        "UCF101/HMDB51: the split folder (classInd.txt, trainlist01.txt, ...); "
        "Kinetics: the training CSV; list: the training list; synthetic: ROOT/splits by default",
        group="data",
        path=True,
    )
    val_annotations: str | None = _f(
        None,
        "Kinetics: the official validation CSV; list: the validation list (UCF101/HMDB51/"
        "synthetic hold val_fraction of the training list out instead: the test list never "
        "selects a model)",
        group="data",
    )
    val_fraction: float = _f(
        0.1,
        "UCF101/HMDB51/synthetic: share of each class's training videos held out for "
        "validation (best.pt and the plateau schedule), whole groups of clips chosen by a "
        "hash of the group's name, not the seed (stc_ext.data.holdout); 0: no validation "
        "(the schedule watches the training loss, best.pt is the last epoch)",
        group="data",
        path=True,
    )
    val_root: str | None = _f(
        None, "video root of the validation set (default: ROOT)", group="data", path=True
    )
    split: int = _f(1, "UCF101/HMDB51 split", (1, 2, 3), group="data")
    init: str | None = _f(
        None,
        "initialise weights from this checkpoint (Kinetics "
        "pre-training, `stc transfer`'s student.pt, an inflated init); the "
        "classifier is re-initialised when the class count differs or the "
        "file has none",
        group="model",
        path=True,
    )

    def validate(self) -> None:
        """``RunConfig.validate`` plus the dataset's fields (no files are looked at)."""
        super().validate()
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"must be in [0, 1), got {self.val_fraction}", field="val_fraction")
        if self.dataset in ("kinetics", "list") and self.val_every and not self.val_annotations:
            raise ConfigError(
                f"dataset {self.dataset} validates on val_annotations: give them or set "
                "val_every to 0",
                field="val_annotations",
            )


@dataclass
class EvalConfig:
    """Everything ``evaluate`` needs; unset data/clip options come from the checkpoint."""

    checkpoint: str | None = _f(
        None,
        "checkpoint to evaluate; '{split}' in the path is replaced by each split "
        "(one model per split, as the paper reports UCF101/HMDB51)",
        group="model",
    )
    dataset: str | None = _f(
        None, "annotation format (default: the checkpoint's)", DATASETS, group="data"
    )
    root: str | None = _f(None, "video root (default: the checkpoint's)", group="data")
    annotations: str | None = _f(
        None,
        "split folder / CSV / list (default: the "
        "checkpoint's; for Kinetics and lists, the checkpoint's "
        "validation annotations)",
        group="data",
    )
    splits: list[int] = _f(
        [1], "splits to evaluate, e.g. 1,2,3; the report averages them", group="data"
    )
    subset: str = _f(
        "test", "UCF101/HMDB51/synthetic subset to evaluate", ("train", "test"), group="data"
    )
    frames: int | None = _f(None, "frames per clip (must match the checkpoint)", group="data")
    stride: int | None = _f(None, "temporal stride (default: the checkpoint's)", group="data")
    size: int | None = _f(None, "centre-crop side (default: the checkpoint's)", group="data")
    short_side: int | None = _f(None, "resize short side (default: the checkpoint's)", group="data")
    drop_last_partial: bool = _f(
        False, "drop a video's last clip when it would need loop padding", group="data"
    )
    workers: int = _f(2, "data-loading worker processes per rank", group="data")
    strict_data: bool = _f(
        False, "fail on an undecodable video instead of skipping it", group="data"
    )
    model: str | None = _f(None, "model name, for checkpoints that do not record it", group="model")
    placement: str | None = _f(
        None,
        "STC placement, for checkpoints that do not record it (default: the checkpoint's, "
        "else block); a value other than the checkpoint's is refused",
        PLACEMENTS,
        group="model",
    )
    backend: str | None = _f(None, "STC kernel backend (default: the checkpoint's)", group="model")
    batch_size: int = _f(4, "videos decoded per batch", group="speed")
    clip_batch: int = _f(32, "at most this many clips per forward pass", group="speed")
    amp: str = _f("none", "automatic mixed precision", AMP_MODES, group="speed")
    channels_last: bool = _f(False, "channels_last_3d memory format", group="speed")
    device: str = _f("auto", "cpu, cuda, cuda:N or auto", group="speed")
    threads: int | None = _f(
        None, "CPU threads per rank for torch (default: torch's choice)", group="speed"
    )
    out: str | None = _f(
        None,
        "report JSON path (default: next to the checkpoint); the "
        "confusion-matrix PNGs go beside it",
        group="run",
    )
    progress: bool = _f(True, "progress bars (rank 0)", group="run")

    def validate(self) -> None:
        """Check the values (no files, no devices are looked at).

        Raises:
            ConfigError: naming the first field at fault.
        """
        if self.checkpoint is None:
            raise ConfigError("is required", field="checkpoint")
        if not self.splits:
            raise ConfigError("needs at least one split", field="splits")
        if self.model is not None:
            _check_model_name(self.model)
        _check_positive(self, "batch_size", "clip_batch", "threads")
        _check_not_negative(self, "workers")


C = TypeVar("C")


# ---------------------------------------------------------------------------- conversion


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed) of a field annotation."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return annotation, False


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    base, optional = _base_type(annotation)
    if value is None:
        if optional:
            return None
        raise ConfigError("must not be empty", field=name)
    if typing.get_origin(base) is list:
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"must be a list, got {value!r}", field=name)
        try:
            return [int(v) for v in value]
        except (TypeError, ValueError):
            raise ConfigError(f"must be a list of integers, got {value!r}", field=name) from None
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"must be true or false, got {value!r}", field=name)
    if base is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"must be an integer, got {value!r}", field=name)
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"must be an integer, got {value!r}", field=name) from None
    if base is float:
        if isinstance(value, bool):
            raise ConfigError(f"must be a number, got {value!r}", field=name)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"must be a number, got {value!r}", field=name) from None
    if base is str:
        if isinstance(value, Path):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"must be a string, got {value!r}", field=name)
        return value
    raise TypeError(f"unsupported config field type {annotation!r}")  # a bug, not user input


def upgrade_saved_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """A saved config (a checkpoint's ``config``, a config file) with the field names of
    earlier versions replaced by the current ones (:data:`RENAMED_FIELDS`); a current name
    wins over an old one given alongside it."""
    out = {}
    for key, value in values.items():
        name = RENAMED_FIELDS.get(str(key).replace("-", "_"))
        if name is None:
            out[key] = value
        elif name not in values and name.replace("_", "-") not in values:
            out[name] = value
    return out


def _normalise_keys(values: Mapping[str, Any], cls: type, where: str) -> dict[str, Any]:
    names = [f.name for f in dataclasses.fields(cls)]
    out: dict[str, Any] = {}
    for key, value in upgrade_saved_config(values).items():
        name = str(key).replace("-", "_")
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown option {key!r}{hint}")
        out[name] = value
    return out


def config_from_dict(cls: type[C], values: Mapping[str, Any], where: str = "config") -> C:
    """Build ``cls`` from a mapping of field names (dashes allowed); unknown keys are errors.

    Values are converted to each field's type (``"16,32"`` -> ``[16, 32]``, ``"true"`` ->
    True); choices are checked. Missing keys take their defaults.
    """
    values = _normalise_keys(values, cls, where)
    hints = _field_types(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value = _coerce(f.name, values[f.name], hints[f.name])
        choices = f.metadata.get("choices")
        if choices is not None and value is not None and value not in choices:
            raise ConfigError(
                f"must be one of {', '.join(map(str, choices))}, got {value!r}", field=f.name
            )
        kwargs[f.name] = value
    return cls(**kwargs)


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as a JSON-ready dict (field order)."""
    return dataclasses.asdict(config)


def path_fields(cls: type) -> tuple[str, ...]:
    """The fields of ``cls`` that name files or folders (``path=True``)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("path"))


def absolute_paths(config: C) -> C:
    """A copy of ``config`` whose path fields are absolute (against the working directory),
    so that a saved config means the same files from anywhere."""
    changes = {
        name: os.path.abspath(os.path.expanduser(value))
        for name in path_fields(type(config))
        if isinstance(value := getattr(config, name), str) and value
    }
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def config_changes(
    saved: Mapping[str, Any], config: Any, ignore: Sequence[str] = ()
) -> dict[str, tuple[Any, Any]]:
    """``{field: (saved value, value now)}`` for the fields of ``config`` that differ from
    ``saved`` (a saved config dict; absent keys had their default then)."""
    defaults = config_to_dict(type(config)())
    saved = {**defaults, **upgrade_saved_config(saved)}
    return {
        name: (saved[name], value)
        for name, value in config_to_dict(config).items()
        if name not in ignore and saved[name] != value
    }


def merge(cls: type[C], *layers: Mapping[str, Any], where: str = "config") -> C:
    """Defaults overridden by each mapping in turn (later wins)."""
    combined: dict[str, Any] = {}
    for layer in layers:
        combined.update(_normalise_keys(layer, cls, where))
    return config_from_dict(cls, combined, where)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``, needs PyYAML) or JSON config file into a dict.

    Keys are not checked here (``config_from_dict`` does, naming the unknown ones).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(
                f"{path}: reading YAML needs PyYAML (pip install pyyaml), or use a JSON file"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value, got {type(data).__name__}")
    data.pop(OVERRIDES_KEY, None)  # a run's record in its config.json, not an option
    return data


#: The key of config.json (and of checkpoints) that records the settings each resume changed.
OVERRIDES_KEY = "overrides"


def save_config(config: Any, path: str | Path, overrides: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Write the config as JSON (readable by ``load_config_file``); returns the path.

    ``overrides``: the run's resume history (what each resume changed), written under
    :data:`OVERRIDES_KEY` when there is any.
    """
    path = Path(path)
    values = config_to_dict(config)
    if overrides:
        values[OVERRIDES_KEY] = list(overrides)
    atomic_write_text(path, json.dumps(values, indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------- resuming


def check_checkpoint_task(made_by: str, task: str, path: str | Path) -> None:
    """Refuse to resume a checkpoint of another task (a transfer run's under ``train``, ...)."""
    if made_by != task:
        raise ConfigError(
            f"{path}: the checkpoint is of a {made_by!r} run, not a {task!r} one "
            "(each task resumes only its own checkpoints)",
            field="resume",
        )


def check_resumable(
    saved: Mapping[str, Any],
    config: RunConfig,
    model_fields: Sequence[str],
    schedule_fields: Sequence[str],
    *,
    mid_epoch: bool,
    world_size: tuple[int, int],
    micro_batch: tuple[int, int],
) -> list[str]:
    """Whether the checkpoint whose config is ``saved`` can continue under ``config``.

    ``model_fields`` must be unchanged. A change of ``schedule_fields``, of the world size or
    of the micro-batch (each given as ``(saved, now)``) alters which samples each step sees:
    refused when the checkpoint was taken ``mid_epoch``, else returned (the caller warns
    that the run will differ from an uninterrupted one).

    Raises:
        ConfigError: (field ``resume``) the changes above that cannot be resumed.
    """
    defaults = config_to_dict(type(config)())
    saved = {**defaults, **upgrade_saved_config(saved)}  # absent keys had their default then
    changed = [f for f in model_fields if saved[f] != getattr(config, f)]
    if changed:
        details = ", ".join(
            f"{f}: checkpoint {saved[f]!r} vs now {getattr(config, f)!r}" for f in changed
        )
        raise ConfigError(
            f"{config.resume}: the checkpoint was made for another model or optimiser "
            f"({details}); leave those settings as they were to resume it",
            field="resume",
        )
    schedule = [f for f in schedule_fields if saved[f] != getattr(config, f)]
    if world_size[0] != world_size[1]:
        schedule.append(f"world size {world_size[0]} -> {world_size[1]}")
    if micro_batch[0] != micro_batch[1]:
        schedule.append(f"micro-batch {micro_batch[0]} -> {micro_batch[1]}")
    if schedule and mid_epoch:
        raise ConfigError(
            f"{config.resume}: the checkpoint was taken mid-epoch; it can only continue "
            f"with the same {', '.join(schedule)}",
            field="resume",
        )
    return schedule


# ---------------------------------------------------------------------------- argparse


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per field of ``cls`` to ``parser``, grouped, all defaulting to "not given".

    Parsed namespaces hold only the flags the user gave (``argparse.SUPPRESS``), so a config
    file or a resumed checkpoint supplies the rest. Booleans get ``--x/--no-x``; lists take
    comma-separated integers.
    """
    hints = _field_types(cls)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(cls):
        group_name = f.metadata.get("group", "options")
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_name)
        group = groups[group_name]
        base, _ = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        help_text = f"{f.metadata.get('help', '')} (default: {shown})"
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            "help": help_text.replace("%", "%%"),
        }
        if base is bool:
            group.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if typing.get_origin(base) is list:
            kwargs["metavar"] = "N,N,..."
        else:
            kwargs["type"] = base
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        group.add_argument(_flag(f.name), **kwargs)


def given_options(namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` present in a namespace parsed with ``add_config_flags``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(namespace).items() if k in names}
