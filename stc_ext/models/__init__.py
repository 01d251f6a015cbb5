"""Networks: 3D ResNet/ResNeXt, torchvision's video ResNets, their STC variants, the 2D
teacher, inflation, checkpoints.

``build(name, num_classes, frames=16, size=112, **kw)`` makes any registered model
(``list_models()``), ``build_from_config`` the one a run config describes; STC models take a
``placement`` (:data:`PLACEMENTS`: an STC block in every residual block, or one per stage);
``resnet2d`` is
the 2D ImageNet teacher; ``inflate_from_2d`` builds a 3D net's weights from a 2D net's;
``load_3d_resnets_checkpoint`` reads kenshohara/3D-ResNets-PyTorch files,
``load_torchvision_video_weights`` torchvision's r3d_18/mc3_18/r2plus1d_18 files; ``load_file``
reads any file of weights, naming the file and the problem when it cannot.
"""

from . import resnet2d
from .checkpoint import (
    CheckpointFileError,
    CheckpointMismatchError,
    LoadReport,
    load_3d_resnets_checkpoint,
    load_file,
    read_state_dict,
)
from .inflate import InflationReport, inflate_from_2d, inflated_backbone
from .registry import build, build_from_config, check_model_name, list_models
from .resnet3d import (
    PLACEMENTS,
    BasicBlock3D,
    Bottleneck3D,
    ResNet3D,
    STCConfig,
    has_stc,
    infer_placement,
    resnet3d,
    resnext3d,
    stage_frames,
    stage_spatial_sizes,
    stc_resnet3d,
    stc_resnext3d,
)
from .video_resnet import (
    VideoResNet,
    load_torchvision_video_weights,
    stc_video_resnet,
    video_resnet,
)

__all__ = [
    "PLACEMENTS",
    "BasicBlock3D",
    "Bottleneck3D",
    "CheckpointFileError",
    "CheckpointMismatchError",
    "InflationReport",
    "LoadReport",
    "ResNet3D",
    "STCConfig",
    "VideoResNet",
    "build",
    "build_from_config",
    "check_model_name",
    "has_stc",
    "inflate_from_2d",
    "inflated_backbone",
    "infer_placement",
    "list_models",
    "load_3d_resnets_checkpoint",
    "load_file",
    "load_torchvision_video_weights",
    "read_state_dict",
    "resnet2d",
    "resnet3d",
    "resnext3d",
    "stage_frames",
    "stage_spatial_sizes",
    "stc_resnet3d",
    "stc_resnext3d",
    "stc_video_resnet",
    "video_resnet",
]
