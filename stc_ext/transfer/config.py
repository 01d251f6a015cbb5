"""``TransferConfig``: the flags of ``stc transfer`` (paper §3.2 and §4.2 defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..train.config import (
    _EPOCHS_HELP,
    SCHEDULERS,
    ConfigError,
    RunConfig,
    _check_not_negative,
    _check_positive,
    _f,
)
from .model import FEATURE_NORMS, TEACHERS

__all__ = ["TransferConfig"]


@dataclass
class TransferConfig(RunConfig):
    """A :class:`~stc_ext.train.config.RunConfig` for the 2D->3D correspondence task.

    The optimisation defaults are the paper's for the transfer (§4.2): SGD, batch 32, weight
    decay 1e-4, Nesterov momentum 0.9, lr 0.1 divided by 10 every 30 epochs, 150 epochs.
    ``feature_norm`` and ``head_warmup_steps`` are small-scale levers
    (see :mod:`stc_ext.transfer.model`); their defaults are the paper's method.
    """

    videos: str | None = _f(
        None,
        "folder of unlabeled videos (searched recursively; frame folders are not searched)",
        group="data",
        path=True,
    )
    val_fraction: float = _f(
        0.1,
        "share of the videos held out for the validation pairs "
        "(chosen by a hash of their path; 0: no validation)",
        group="data",
    )
    teacher_frames: int = _f(
        16, "RGB frames per pair fed to the 2D teacher (X; 16 in the paper)", group="data"
    )
    teacher: str = _f("resnet50", "2D ResNet teacher", TEACHERS, group="teacher")
    teacher_weights: str | None = _f(
        None,
        "the teacher's weights: an ImageNet state_dict "
        "(torchvision/timm keys) or a file from `stc teacher`",
        group="teacher",
        path=True,
    )
    teacher_widths: list[int] | None = _f(
        None,
        "stage widths of a narrow teacher (default: "
        "those recorded in a `stc teacher` file, else "
        "64,128,256,512)",
        group="teacher",
    )
    embed_dim: int = _f(
        1024, "width of the student's and the teacher's fc features (1024)", group="model"
    )
    # Small-scale levers: how training starts (stc_ext/transfer/model.py); off = the paper.
    feature_norm: str = _f(
        "none",
        "normalise each side's embed-dim feature before the concatenation (small-scale lever; "
        "none: the paper's)",
        FEATURE_NORMS,
        group="model",
    )
    head_warmup_steps: int = _f(
        0,
        "small-scale lever: for the first N optimiser steps the teacher's features of the "
        "clip's own frames stand in for the student's, so that the head learns to compare "
        "before the student learns (the student does not run; 0: the paper's)",
        group="optimisation",
    )
    # The paper's transfer schedule (§4.2), replacing the classification defaults.
    epochs: int = _f(150, _EPOCHS_HELP, group="optimisation")
    batch_size: int = _f(
        32, "effective batch of pairs over all ranks (32 in the paper)", group="optimisation"
    )
    scheduler: str = _f(
        "step",
        "learning-rate schedule: divide by 1/lr-factor every lr-step "
        "epochs (the paper), on a held-out loss plateau, cosine, or constant",
        SCHEDULERS,
        group="optimisation",
    )
    dropout: float = _f(0.0, "dropout before the student's fc", group="model")
    out_dir: str = _f(
        "runs/transfer",
        "where checkpoints, student.pt, config.json and metrics go (one run at a time: a run "
        "locks it)",
        group="run",
        path=True,
    )

    def validate(self) -> None:
        """``RunConfig.validate`` plus the videos' and the teacher's fields (no files are
        looked at)."""
        super().validate()
        if self.videos is None:
            raise ConfigError("is required (a folder of unlabeled videos)", field="videos")
        if self.teacher_weights is None:
            raise ConfigError(
                "is required (the 2D teacher's weights: an ImageNet state_dict file, or one "
                "written by train_shape_teacher / `stc teacher`)",
                field="teacher_weights",
            )
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"must be in [0, 1), got {self.val_fraction}", field="val_fraction")
        _check_positive(self, "teacher_frames", "embed_dim")
        _check_not_negative(self, "head_warmup_steps")

    def correspondence_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~stc_ext.transfer.CorrespondenceNet` beyond the
        networks: the levers above, the warm-up counted in pairs (steps x batch size).
        """
        return {
            "feature_norm": self.feature_norm,
            "head_warmup_pairs": self.head_warmup_steps * self.batch_size,
        }
