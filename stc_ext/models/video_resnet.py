"""torchvision's video ResNets (R3D-18, MC3-18, R(2+1)D-18) and their STC variants.

The architectures of Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action
Recognition" (CVPR 2018), laid out exactly as ``torchvision.models.video`` lays them out, so
that a state_dict saved from torchvision (e.g. its Kinetics-400 weights) loads by name:

* ``stem``: R3D/MC3: ``stem.0`` conv 3x7x7, stride (1, 2, 2), padding (1, 3, 3), 64 channels,
  ``stem.1`` BN, ``stem.2`` ReLU. R(2+1)D: ``stem.0`` conv 1x7x7 (stride (1, 2, 2), padding
  (0, 3, 3)) to 45 channels, ``stem.1`` BN, ``stem.2`` ReLU, ``stem.3`` conv 3x1x1 (padding
  (1, 0, 0)) to 64, ``stem.4`` BN, ``stem.5`` ReLU. No max pool.
* ``layer1`` .. ``layer4``: two basic blocks each, widths 64/128/256/512, strides 1, 2, 2, 2.
  A block is ``conv1`` = (conv, ``conv1.1`` BN, ReLU) and ``conv2`` = (conv, ``conv2.1`` BN),
  output relu(conv2(conv1(x)) + shortcut). The conv (``convN.0``) is, per stage:

  - "3d" (R3D everywhere, MC3's layer1): one 3x3x3 conv, stride s in time and space;
  - "2d" (MC3's layer2-4): a 1x3x3 conv, stride (1, s, s): no temporal convolution;
  - "2plus1d" (R(2+1)D): ``convN.0.0`` conv 1x3x3 (stride (1, s, s)) to M channels,
    ``convN.0.1`` BN, ``convN.0.2`` ReLU, ``convN.0.3`` conv 3x1x1 (stride (s, 1, 1)),
    with M = floor(27 C_in C_out / (9 C_in + 3 C_out)) from the block's input and output
    widths (so the pair has about a 3x3x3 conv's parameters), the same M in conv1 and conv2.

  ``downsample`` (where the shape changes): ``downsample.0`` 1x1x1 conv with the stage's
  stride in (time, space, space), (s, s, s), or (1, s, s) for "2d", and ``downsample.1`` BN.
* global average pool -> ``fc`` (512 -> num_classes).

Every conv has no bias; BatchNorm uses PyTorch's defaults (eps 1e-5), as in torchvision.
STC variants put an ``STCBlock`` (``layerN.M.stc``) on a block's residual branch before the
addition, in the fused form relu(stc(branch) + shortcut), exactly as the 3D ResNets of
stc_ext.models.resnet3d do, in the blocks their ``placement`` names ("block": every residual
block; "stage": the last one of each stage); torchvision files have no such keys, so they
start fresh.

torchvision trained its Kinetics-400 weights on clips resized to 128x171, centre-cropped to
112, normalised with mean (0.43216, 0.394666, 0.37645) and std (0.22803, 0.22145, 0.216989).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..nn import STCBlock
from .checkpoint import (
    Checkpoint,
    LoadReport,
    is_stc_key,
    load_matched,
    match_state_dict,
    read_state_dict,
)
from .resnet3d import (
    RESNET_WIDTHS,
    STAGE_STRIDES,
    STCConfig,
    _ClipInput,
    _ResidualBlock,
    conv_output_size,
    has_stc,
)

CONV_TYPES = ("3d", "2d", "2plus1d")
STEMS = ("3d", "2plus1d")
# (stem, conv type of layer1..4) of each architecture; all four stages hold two blocks.
ARCHITECTURES: dict[str, tuple[str, tuple[str, str, str, str]]] = {
    "r3d_18": ("3d", ("3d", "3d", "3d", "3d")),
    "mc3_18": ("3d", ("3d", "2d", "2d", "2d")),
    "r2plus1d_18": ("2plus1d", ("2plus1d", "2plus1d", "2plus1d", "2plus1d")),
}
LAYERS_18 = (2, 2, 2, 2)
R2PLUS1D_STEM_WIDTH = 45  # torchvision's (and the paper's released model's) stem width for 64


def _conv(in_channels, out_channels, kernel, stride=1, padding=0) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)


def mid_channels(in_channels: int, out_channels: int) -> int:
    """M of a (2+1)D conv replacing a 3x3x3 one: floor(27 C_in C_out / (9 C_in + 3 C_out))."""
    return (27 * in_channels * out_channels) // (9 * in_channels + 3 * out_channels)


def _block_conv(kind: str, in_channels: int, out_channels: int, mid: int, stride: int) -> nn.Module:
    if kind == "3d":
        return _conv(in_channels, out_channels, 3, stride, 1)
    if kind == "2d":
        return _conv(in_channels, out_channels, (1, 3, 3), (1, stride, stride), (0, 1, 1))
    return nn.Sequential(
        _conv(in_channels, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1)),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        _conv(mid, out_channels, (3, 1, 1), (stride, 1, 1), (1, 0, 0)),
    )


def _temporal_stride(kind: str, stride: int) -> int:
    return 1 if kind == "2d" else stride


class VideoBasicBlock(_ResidualBlock):
    """torchvision's video ``BasicBlock``: relu(conv2(conv1(x)) + shortcut(x)), with an
    optional ``STCBlock`` on the branch (see the module docstring for the keys)."""

    def __init__(
        self,
        kind: str,
        in_channels: int,
        planes: int,
        stride: int,
        stc: STCBlock | None = None,
    ) -> None:
        super().__init__()
        mid = mid_channels(in_channels, planes)
        self.conv1 = nn.Sequential(
            _block_conv(kind, in_channels, planes, mid, stride),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            _block_conv(kind, planes, planes, mid, 1), nn.BatchNorm3d(planes)
        )
        self.downsample = None
        if stride != 1 or in_channels != planes:
            t = _temporal_stride(kind, stride)
            self.downsample = nn.Sequential(
                _conv(in_channels, planes, 1, (t, stride, stride)), nn.BatchNorm3d(planes)
            )
        self.stc = stc

    def branch(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x))


def _stem(kind: str, in_channels: int, width: int) -> nn.Sequential:
    if kind == "3d":
        return nn.Sequential(
            _conv(in_channels, width, (3, 7, 7), (1, 2, 2), (1, 3, 3)),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
        )
    mid = max(1, R2PLUS1D_STEM_WIDTH * width // 64)
    return nn.Sequential(
        _conv(in_channels, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3)),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        _conv(mid, width, (3, 1, 1), 1, (1, 0, 0)),
        nn.BatchNorm3d(width),
        nn.ReLU(inplace=True),
    )


def video_stage_frames(frames: int, conv_types: Sequence[str]) -> tuple[int, ...]:
    """T of the outputs of layer1..4 for a clip of ``frames``: the stem keeps T; a stage
    with a temporal conv and stride 2 halves it (rounding up); a "2d" stage keeps it."""
    t, sizes = frames, []
    for kind, stride in zip(conv_types, STAGE_STRIDES, strict=True):
        t = conv_output_size(t, 3, _temporal_stride(kind, stride), 1)
        sizes.append(t)
    return tuple(sizes)


def video_stage_spatial_sizes(size: int) -> tuple[int, ...]:
    """Spatial side of the outputs of layer1..4: 112 -> (56, 28, 14, 7)."""
    n, sizes = conv_output_size(size, 7, 2, 3), []
    for stride in STAGE_STRIDES:
        n = conv_output_size(n, 3, stride, 1)
        sizes.append(n)
    return tuple(sizes)


class VideoResNet(_ClipInput, nn.Module):
    """R3D / MC3 / R(2+1)D for clips of shape (N, in_channels, frames, H, W).

    Args:
        stem: "3d" or "2plus1d".
        conv_types: the conv of each stage's blocks, "3d", "2d" or "2plus1d".
        layers: blocks per stage (torchvision's 18-layer models: 2, 2, 2, 2).
        num_classes: width of ``fc``.
        frames: clip length T; inputs must have exactly this T (the STC blocks are sized for
            it; plain models check it too, so both kinds accept the same inputs).
        size: nominal spatial side (for ``stage_shapes``; the head pools globally).
        widths: base width of each stage (64/128/256/512; smaller for tests).
        stc: ``STCConfig`` to add ``STCBlock``s (to the residual blocks its ``placement``
            names), or None.
        dropout: dropout before ``fc`` (torchvision has none; 0 adds no parameters).
        in_channels: input channels (3 for RGB).
    """

    shortcut_type = "B"  # torchvision's shortcuts are 1x1x1 convs

    def __init__(
        self,
        stem: str,
        conv_types: Sequence[str],
        layers: Sequence[int] = LAYERS_18,
        num_classes: int = 400,
        frames: int = 16,
        size: int = 112,
        *,
        widths: Sequence[int] = RESNET_WIDTHS,
        stc: STCConfig | None = None,
        dropout: float = 0.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_classes", num_classes),
            ("frames", frames),
            ("size", size),
            ("in_channels", in_channels),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"VideoResNet: {name} must be a positive int, got {value!r}")
        if stem not in STEMS:
            raise ValueError(f"VideoResNet: stem must be one of {STEMS}, got {stem!r}")
        if len(conv_types) != 4 or any(kind not in CONV_TYPES for kind in conv_types):
            raise ValueError(
                f"VideoResNet: conv_types needs 4 entries of {CONV_TYPES}, got {list(conv_types)}"
            )
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(
                f"VideoResNet: layers and widths need 4 entries, got {list(layers)}, {list(widths)}"
            )
        if any(not isinstance(n, int) or n < 1 for n in (*layers, *widths)):
            raise ValueError(
                f"VideoResNet: layers and widths must be positive ints, got {list(layers)}, "
                f"{list(widths)}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"VideoResNet: dropout must be in [0, 1), got {dropout!r}")
        self.frames, self.size, self.num_classes = frames, size, num_classes
        self.conv_types = tuple(conv_types)
        self.stc_config = stc
        self.stc_placement = stc.placement if stc is not None else None
        self.stage_frames = video_stage_frames(frames, conv_types)
        self.stage_channels = tuple(widths)
        self.feature_dim = widths[-1]

        self.stem = _stem(stem, in_channels, widths[0])
        channels = widths[0]
        for index, (kind, count, width, stride, t) in enumerate(
            zip(conv_types, layers, widths, STAGE_STRIDES, self.stage_frames, strict=True),
            start=1,
        ):
            blocks = []
            for i in range(count):
                stc_block = None
                if stc is not None and has_stc(stc.placement, i, count):
                    stc_block = STCBlock(
                        width,
                        t,
                        reduction=stc.reduction,
                        branches=stc.branches,
                        backend=stc.backend,
                    )
                blocks.append(
                    VideoBasicBlock(kind, channels, width, stride if i == 0 else 1, stc_block)
                )
                channels = width
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # As torchvision: He (fan_out) for convs, BN to identity, fc ~ N(0, 0.01) with zero
        # bias. The STC blocks' linear layers keep PyTorch's default, as in ResNet3D.
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def stage_shapes(self) -> list[tuple[int, int, int, int]]:
        """(C, T, H, W) of the output of each stage for a (frames, size, size) clip."""
        sides = video_stage_spatial_sizes(self.size)
        return [
            (c, t, s, s)
            for c, t, s in zip(self.stage_channels, self.stage_frames, sides, strict=True)
        ]

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, C_in, frames, H, W) -> (N, feature_dim) globally pooled last-stage features."""
        self._check_input(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, frames, H, W) -> (N, num_classes) logits."""
        return self.fc(self.dropout(self.forward_features(x)))


def video_resnet(
    arch: str,
    num_classes: int = 400,
    frames: int = 16,
    size: int = 112,
    *,
    shortcut_type: str | None = None,
    **kwargs,
) -> VideoResNet:
    """torchvision's ``arch`` ("r3d_18", "mc3_18", "r2plus1d_18").

    ``kwargs``: ``widths``, ``dropout``, ``in_channels``, ``stc`` (an ``STCConfig``).
    ``shortcut_type`` is accepted for config compatibility: only "B" (1x1x1 convs) exists.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"video_resnet: arch must be one of {list(ARCHITECTURES)}, got {arch!r}")
    if shortcut_type not in (None, "B"):
        raise ValueError(
            f"{arch}: shortcut_type must be 'B' (torchvision's 1x1x1 conv shortcuts), "
            f"got {shortcut_type!r}"
        )
    stem, conv_types = ARCHITECTURES[arch]
    return VideoResNet(stem, conv_types, LAYERS_18, num_classes, frames, size, **kwargs)


def stc_video_resnet(
    arch: str,
    num_classes: int = 400,
    frames: int = 16,
    size: int = 112,
    *,
    branches: str = "stc",
    reduction: int = 4,
    backend: str = "auto",
    placement: str = "block",
    **kwargs,
) -> VideoResNet:
    """``video_resnet(arch)`` with an ``STCBlock`` in every residual block
    (``placement="block"``) or in the last one of each stage (``"stage"``)."""
    stc = STCConfig(branches, reduction, backend, placement)
    return video_resnet(arch, num_classes, frames, size, stc=stc, **kwargs)


def load_torchvision_video_weights(
    model: VideoResNet, checkpoint: Checkpoint, *, strict: bool = True, ignore: Sequence[str] = ()
) -> LoadReport:
    """Load a state_dict saved from ``torchvision.models.video.{r3d_18, mc3_18, r2plus1d_18}``
    (a file path or a dict) into the matching model, plain or STC.

    ``ignore``: key prefixes to skip, e.g. ``("fc.",)`` for another number of classes. The
    STC blocks, which torchvision files do not have, keep their initialisation (the report's
    ``kept_fresh``). With ``strict`` a mismatch raises ``CheckpointMismatchError`` naming the
    keys (e.g. an R3D file given to an R(2+1)D model).
    """
    state, _ = read_state_dict(checkpoint)
    loadable, report = match_state_dict(model, state, fresh=is_stc_key, ignore=ignore)
    hint = ""
    if any(k.startswith("fc.") for k in report.shape_mismatch):
        hint = "hint: for another number of classes pass ignore=('fc.',) to keep a fresh fc"
    return load_matched(model, loadable, report, strict, "load_torchvision_video_weights", hint)


__all__ = [
    "ARCHITECTURES",
    "VideoBasicBlock",
    "VideoResNet",
    "load_torchvision_video_weights",
    "mid_channels",
    "stc_video_resnet",
    "video_resnet",
    "video_stage_frames",
    "video_stage_spatial_sizes",
]
