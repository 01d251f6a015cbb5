"""2D->3D knowledge transfer by image-video correspondence (paper §3.2).

A frozen 2D ResNet teacher sees ``X`` frames, a randomly initialised 3D student sees a clip;
a head on their concatenated 1024-D features learns whether both come from the same moment
of the same (unlabeled) video. Only the student and the head learn; the trained student then
initialises fine-tuning::

    from stc_ext.transfer import TransferConfig, transfer

    result = transfer(TransferConfig(videos="unlabeled/", teacher="resnet50",
                                     teacher_weights="resnet50_imagenet.pth",
                                     model="stc_resnet3d_101", out_dir="runs/transfer"))
    # then: stc train --init runs/transfer/student.pt ...

Modules, one job each:

* :mod:`.config` -- ``TransferConfig``: the ``stc transfer`` settings and their checks;
* :mod:`.pairs` -- pair sampling (frames and a clip, same or different moment);
* :mod:`.model` -- the correspondence network and the frozen 2D teacher;
* :mod:`.task` -- ``TransferTask``, the :class:`stc_ext.train.Task` the training engine
  (:class:`stc_ext.train.Trainer`) runs, and ``transfer()`` (``stc transfer``);
* :mod:`.teacher` -- a small teacher trained on a synthetic image task, for machines without
  ImageNet weights (``stc teacher``).

Dependencies point from here to :mod:`stc_ext.train`, never back: a transfer checkpoint
carries its student as ``init_model``, so ``stc train --init`` needs nothing from this
package to read it.
"""

from .config import TransferConfig
from .model import (
    FEATURE_NORMS,
    HEAD_WIDTHS,
    PHASES,
    STUDENT_FORMAT,
    TEACHERS,
    CorrespondenceNet,
    build_teacher,
    student_init_state,
)
from .pairs import (
    PAIR_CLASSES,
    PairBatch,
    PairDataset,
    PairPlan,
    collate_pairs,
    plan_pair,
    teacher_frame_positions,
)
from .task import TransferTask, held_out_split, resolve_transfer_config, transfer
from .teacher import TEACHER_FORMAT, TeacherResult, read_teacher_arch, train_shape_teacher

__all__ = [
    "FEATURE_NORMS",
    "HEAD_WIDTHS",
    "PAIR_CLASSES",
    "PHASES",
    "STUDENT_FORMAT",
    "TEACHERS",
    "TEACHER_FORMAT",
    "CorrespondenceNet",
    "PairBatch",
    "PairDataset",
    "PairPlan",
    "TeacherResult",
    "TransferConfig",
    "TransferTask",
    "build_teacher",
    "collate_pairs",
    "held_out_split",
    "plan_pair",
    "read_teacher_arch",
    "resolve_transfer_config",
    "student_init_state",
    "teacher_frame_positions",
    "train_shape_teacher",
    "transfer",
]
