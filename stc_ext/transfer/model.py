"""The correspondence network of the knowledge transfer (paper §3.2, Fig. 2).

::

    X frames (N, 3, X, H, W) -> teacher I (2D ResNet, frozen) per frame -> mean over X
                              -> teacher_proj (fc, D_I -> 1024) ----------------.
                                                                                 concat (2048)
    clip (N, 3, T, H, W)      -> student V (3D net; its fc: D_V -> 1024) --------'
        -> head: fc 2048 -> fc 512 -> fc 128 -> 2-way classifier (ReLU between)

Only the student, ``teacher_proj`` and the head learn; the teacher has no gradients and its
BatchNorm layers stay in eval mode (running statistics unchanged) whatever ``train()`` says.
After the transfer the student (without its 1024-D ``fc``) initialises fine-tuning:
:func:`student_init_state`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..models.resnet2d import LAYERS as RESNET2D_DEPTHS
from ..models.resnet2d import ResNet2D, load_torchvision_weights, resnet2d
from ..models.resnet3d import ResNet3D

__all__ = [
    "HEAD_WIDTHS",
    "STUDENT_FORMAT",
    "TEACHERS",
    "CorrespondenceNet",
    "build_teacher",
    "student_init_state",
]

#: Hidden widths of the head after the concatenation (the paper's 2048-D fc, fc1, fc2).
HEAD_WIDTHS: tuple[int, ...] = (2048, 512, 128)
#: Teacher names ``--teacher`` accepts.
TEACHERS: tuple[str, ...] = tuple(f"resnet{d}" for d in RESNET2D_DEPTHS)
#: ``format`` of the student initialisation files ``stc transfer`` writes (``student.pt``).
STUDENT_FORMAT = "stc_ext.transfer.student/1"

_TEACHER = "teacher."
_STUDENT = "student."


def build_teacher(
    name: str, weights: str | os.PathLike | Mapping[str, Any], widths: Sequence[int] | None = None
) -> ResNet2D:
    """A frozen 2D ResNet ``name`` (``"resnet50"``, ...) with ``weights`` loaded.

    ``weights``: a torchvision/timm-keyed state_dict or a file holding one (an ImageNet
    checkpoint, or a teacher written by :func:`~stc_ext.transfer.teacher.train_shape_teacher`);
    its ``fc`` is not loaded and is replaced by an identity. ``widths``: stage widths of a
    narrow teacher (default: ImageNet's).

    Raises:
        ValueError: unknown name, or weights that do not fit (keys and shapes named).
    """
    if name not in TEACHERS:
        raise ValueError(f"teacher must be one of {', '.join(TEACHERS)}, got {name!r}")
    kwargs = {"widths": tuple(widths)} if widths is not None else {}
    teacher = resnet2d(int(name.removeprefix("resnet")), **kwargs)
    load_torchvision_weights(teacher, weights, strict=True, ignore=("fc.",))
    teacher.fc = nn.Identity()  # its classifier plays no part (the features are taken)
    return teacher.requires_grad_(False).eval()


class CorrespondenceNet(nn.Module):
    """Decides whether ``X`` frames and a clip show the same moment of the same video.

    Args:
        student: the 3D network ``V`` to train; its ``fc`` must output ``embed_dim`` features
            (build it with ``num_classes=embed_dim``).
        teacher: the 2D network ``I`` (frozen here: ``requires_grad_(False)``, eval mode).
        embed_dim: width of both sides' fc features (1024 in the paper).
    """

    def __init__(self, student: ResNet3D, teacher: ResNet2D, embed_dim: int = 1024) -> None:
        super().__init__()
        if student.fc.out_features != embed_dim:
            raise ValueError(
                f"CorrespondenceNet: the student's fc gives "
                f"{student.fc.out_features} features, expected embed_dim="
                f"{embed_dim} (build it with num_classes={embed_dim})"
            )
        self.student = student
        self.teacher = teacher.requires_grad_(False).eval()
        self.teacher_proj = nn.Linear(teacher.feature_dim, embed_dim)
        layers: list[nn.Module] = []
        width = 2 * embed_dim
        for hidden in HEAD_WIDTHS:
            layers += [nn.ReLU(inplace=False), nn.Linear(width, hidden)]
            width = hidden
        layers += [nn.ReLU(inplace=False), nn.Linear(width, 2)]
        self.head = nn.Sequential(*layers)

    def train(self, mode: bool = True) -> CorrespondenceNet:
        super().train(mode)
        self.teacher.eval()  # frozen: its BatchNorm statistics never update
        return self

    def teacher_features(self, frames: Tensor) -> Tensor:
        """(N, 3, X, H, W) frames -> (N, D_I): the teacher's pooled features, averaged over X."""
        with torch.no_grad():
            return self.teacher.frame_features(frames).mean(dim=1)

    def forward(self, frames: Tensor, clip: Tensor) -> Tensor:
        """Frames (N, 3, X, H, W) and clips (N, 3, T, H, W) -> (N, 2) logits (1 = same)."""
        if frames.shape[0] != clip.shape[0]:
            raise ValueError(
                f"CorrespondenceNet: frames and clip hold {frames.shape[0]} and "
                f"{clip.shape[0]} samples; they must be paired"
            )
        image = self.teacher_proj(self.teacher_features(frames))
        video = self.student(clip)
        return self.head(torch.cat([image, video.to(image.dtype)], dim=1))

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """The state without the teacher (which is loaded from its own file)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(_TEACHER)}

    def load_trainable_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Inverse of :meth:`trainable_state_dict` (every non-teacher key must be there)."""
        result = self.load_state_dict(dict(state), strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(_TEACHER)]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"CorrespondenceNet: state mismatch: missing {missing}, "
                f"unexpected {result.unexpected_keys}"
            )


def student_init_state(model_state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The student's weights from a correspondence state (``CorrespondenceNet`` keys), without
    its 1024-D ``fc``: what fine-tuning starts from."""
    return {
        k[len(_STUDENT) :]: v
        for k, v in model_state.items()
        if k.startswith(_STUDENT) and not k.startswith(_STUDENT + "fc.")
    }
