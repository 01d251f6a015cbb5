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

Small-scale levers (both off by default, which is the paper's method). At small scale a
random student and an untrained head cannot find each other: the head sees no relation between
the two sides, settles on the constant prior, and the student's gradients die out
(bench/results/2026-12-04-transfer-diagnosis.md). Two options change only how training starts,
not the network, the data or the loss:

- ``feature_norm``: normalise each side's 1024-D feature before the concatenation, so neither
  side dominates the head's first layer by scale (the random student's is ~4x the other's) and
  the head sees each side's pair-to-pair variation rather than its common part;
- ``head_warmup_pairs``: for the first pairs of training the teacher's own features of the
  clip's frames (through ``teacher_proj``, the image side's projection) stand in for the
  student's, so the head learns to compare two views of a video before the student exists
  for it (the student does not run). Then the student takes its place and everything trains
  together, as in the paper.

The warm-up is counted in training pairs seen (``pairs_seen``, a buffer, so a resumed run
continues where it stopped); evaluation always uses the student.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..models.resnet2d import LAYERS as RESNET2D_DEPTHS
from ..models.resnet2d import ResNet2D, load_torchvision_weights, resnet2d
from ..models.resnet3d import ResNet3D
from .pairs import teacher_frame_positions

__all__ = [
    "FEATURE_NORMS",
    "HEAD_WIDTHS",
    "PHASES",
    "STUDENT_FORMAT",
    "TEACHERS",
    "CorrespondenceNet",
    "build_teacher",
    "student_init_state",
]

#: Hidden widths of the head after the concatenation (the paper's 2048-D fc, fc1, fc2).
HEAD_WIDTHS: tuple[int, ...] = (2048, 512, 128)
#: How each side's 1024-D feature may be normalised before the concatenation (``feature_norm``):
#: ``"none"`` is the paper's; ``"layernorm"`` gives both sides zero mean and unit variance per
#: sample (no learnt scale), ``"batchnorm"`` per feature over the batch (no learnt scale), so that
#: neither side dominates the head's first layer by scale alone.
FEATURE_NORMS: tuple[str, ...] = ("none", "layernorm", "batchnorm")
#: Training phases of :class:`CorrespondenceNet` (see the module docstring), in order.
PHASES: tuple[str, ...] = ("head_warmup", "joint")
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


def _feature_norm(kind: str, dim: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "layernorm":
        return nn.LayerNorm(dim, elementwise_affine=False)
    if kind == "batchnorm":
        return nn.BatchNorm1d(dim, affine=False)
    raise ValueError(f"feature_norm must be one of {', '.join(FEATURE_NORMS)}, got {kind!r}")


def _zero_touch(params: Sequence[nn.Parameter]) -> Tensor:
    """0 * (one element of each parameter): gives every one of them a zero gradient, so that
    DistributedDataParallel sees them all used in the warm-up, which leaves them out."""
    return sum(p.reshape(-1)[0] for p in params) * 0.0  # type: ignore[return-value]


class CorrespondenceNet(nn.Module):
    """Decides whether ``X`` frames and a clip show the same moment of the same video.

    Args:
        student: the 3D network ``V`` to train; its ``fc`` must output ``embed_dim`` features
            (build it with ``num_classes=embed_dim``).
        teacher: the 2D network ``I`` (frozen here: ``requires_grad_(False)``, eval mode).
        embed_dim: width of both sides' fc features (1024 in the paper).
        feature_norm: normalisation of each side's ``embed_dim`` features before the
            concatenation (:data:`FEATURE_NORMS`; ``"none"``, the paper's, by default).
        head_warmup_pairs: training pairs during which the teacher's features of the clip's
            frames stand in for the student's (0, the paper's: none).
        world_size: ranks each training batch is one shard of (counts ``pairs_seen`` in
            global pairs); default: ``torch.distributed``'s world size when initialised, else 1.
    """

    def __init__(
        self,
        student: ResNet3D,
        teacher: ResNet2D,
        embed_dim: int = 1024,
        feature_norm: str = "none",
        head_warmup_pairs: int = 0,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        if student.fc.out_features != embed_dim:
            raise ValueError(
                f"CorrespondenceNet: the student's fc gives "
                f"{student.fc.out_features} features, expected embed_dim="
                f"{embed_dim} (build it with num_classes={embed_dim})"
            )
        if head_warmup_pairs < 0:
            raise ValueError(
                f"CorrespondenceNet: head_warmup_pairs must be >= 0, got {head_warmup_pairs}"
            )
        self.student = student
        self.teacher = teacher.requires_grad_(False).eval()
        self.teacher_proj = nn.Linear(teacher.feature_dim, embed_dim)
        self.feature_norm = feature_norm
        self.image_norm = _feature_norm(feature_norm, embed_dim)
        self.video_norm = _feature_norm(feature_norm, embed_dim)
        layers: list[nn.Module] = []
        width = 2 * embed_dim
        for hidden in HEAD_WIDTHS:
            layers += [nn.ReLU(inplace=False), nn.Linear(width, hidden)]
            width = hidden
        layers += [nn.ReLU(inplace=False), nn.Linear(width, 2)]
        self.head = nn.Sequential(*layers)
        self.head_warmup_pairs = head_warmup_pairs
        self.world_size = world_size
        # Training pairs seen so far (over all ranks): decides the phase; saved with the state.
        self.register_buffer("pairs_seen", torch.zeros((), dtype=torch.int64))

    def train(self, mode: bool = True) -> CorrespondenceNet:
        super().train(mode)
        self.teacher.eval()  # frozen: its BatchNorm statistics never update
        return self

    @property
    def phase(self) -> str:
        """The phase the next training batch is in (:data:`PHASES`)."""
        return "head_warmup" if int(self.pairs_seen) < self.head_warmup_pairs else "joint"

    def teacher_features(self, frames: Tensor) -> Tensor:
        """(N, 3, X, H, W) frames -> (N, D_I): the teacher's pooled features, averaged over X."""
        with torch.no_grad():
            return self.teacher.frame_features(frames).mean(dim=1)

    def image_features(self, frames: Tensor) -> Tensor:
        """(N, 3, X, H, W) frames -> (N, embed_dim): the image side of the concatenation."""
        return self.image_norm(self.teacher_proj(self.teacher_features(frames)))

    def video_features(self, clip: Tensor) -> Tensor:
        """(N, 3, T, H, W) clip -> (N, embed_dim): the video side of the concatenation."""
        return self.video_norm(self.student(clip))

    def teacher_stand_in(self, clip: Tensor, teacher_frames: int) -> Tensor:
        """(N, 3, T, H, W) clip -> (N, embed_dim): the image side computed on ``teacher_frames``
        of the clip's own frames (those a positive pair's teacher sees): the head warm-up's
        stand-in for the student."""
        positions = teacher_frame_positions(clip.shape[2], teacher_frames)
        return self.image_features(clip[:, :, torch.from_numpy(positions).to(clip.device)])

    def head_input_layer(self) -> nn.Linear:
        """The head's first fc (2 * embed_dim -> 2048): image half, then video half."""
        return next(m for m in self.head if isinstance(m, nn.Linear))

    def _count(self, pairs: int) -> None:
        world = self.world_size
        if world is None:
            world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.pairs_seen += pairs * world

    def forward(self, frames: Tensor, clip: Tensor) -> Tensor:
        """Frames (N, 3, X, H, W) and clips (N, 3, T, H, W) -> (N, 2) logits (1 = same).

        In training mode (with gradients) the batch counts towards ``pairs_seen`` and runs in
        the current :attr:`phase`; in eval mode it always runs the paper's network.
        """
        if frames.shape[0] != clip.shape[0]:
            raise ValueError(
                f"CorrespondenceNet: frames and clip hold {frames.shape[0]} and "
                f"{clip.shape[0]} samples; they must be paired"
            )
        phase = "joint"
        if self.training and torch.is_grad_enabled():
            phase = self.phase
            self._count(frames.shape[0])
        image = self.image_features(frames)
        if phase == "head_warmup":
            video = self.teacher_stand_in(clip, frames.shape[2])
            logits = self.head(torch.cat([image, video], dim=1))
            return logits + _zero_touch(list(self.student.parameters()))
        video = self.video_features(clip)
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
