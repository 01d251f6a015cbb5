"""3D ResNet / ResNeXt (Hara et al., CVPR 2018) and their STC variants (Diba et al., ECCV 2018).

Layout, following Hara et al.'s 3D-ResNets-PyTorch so that its checkpoints load by name:

* stem: ``conv1`` 7x7x7, 64 channels, stride (1, 2, 2), padding 3 -> ``bn1`` -> ReLU ->
  ``maxpool`` 3x3x3, stride 2, padding 1;
* ``layer1`` .. ``layer4``: residual blocks of base width 64/128/256/512 (ResNeXt:
  128/256/512/1024 grouped width), strides 1, 2, 2, 2 in time and space; each block is
  ``conv1``/``bn1``, ``conv2``/``bn2`` (basic) or ``conv1``..``conv3``/``bn1``..``bn3``
  (bottleneck, the stride on the 3x3x3 ``conv2``), and ``downsample`` where the shape
  changes: shortcut A (strided identity padded with zero channels, no parameters) or
  B (``downsample.0`` 1x1x1 conv + ``downsample.1`` BN);
* global average pool -> optional dropout -> ``fc``.

STC variants add an ``STCBlock`` (``stc``) to residual blocks, applied to the residual
branch before the addition in the fused form ``relu(stc(branch) + identity)`` (paper §3.1,
Table 1). Which blocks get one is the ``placement`` (see :data:`PLACEMENTS`): the paper says
both "the STC block is inserted after each residual block" (§1) and "our 3D architecture has
4 3D-convolution blocks with an STC block" (§3.2). ``"block"`` (the default, and what
checkpoints without a placement hold) puts one in every residual block; ``"stage"`` one in
the last residual block of each of the four stages, in that block's residual branch like the
others. The SCB's first FC is (T*C) x (T*C/r), so the placement decides most of the cost:
STC-ResNeXt-101 at 16 frames has +70M parameters with "block", far fewer with "stage"
(python/param_table.py prints the table). Its SCB bottleneck has T*C inputs, so each block
needs the exact temporal length T of its stage; ``stage_frames`` computes it from the clip
length with the same output-size formula the convolutions and the pool apply.

Units are conv -> BN -> ReLU as in Hara et al. (whose checkpoints depend on it), although
the caption of the paper's Table 1 speaks of BN-ReLU-Conv.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import STCBlock

STAGE_STRIDES = (1, 2, 2, 2)
RESNET_WIDTHS = (64, 128, 256, 512)
RESNEXT_WIDTHS = (128, 256, 512, 1024)
SHORTCUT_TYPES = ("A", "B")
TEMPORAL_PADDINGS = ("zeros", "replicate")
#: Where STC blocks go: in every residual block ("block", the default) or in the last
#: residual block of each stage ("stage").
PLACEMENTS = ("block", "stage")


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling along one axis: floor((n + 2p - k) / s) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def _stage_sizes(size: int, stem_stride: int) -> tuple[int, int, int, int]:
    n = conv_output_size(size, 7, stem_stride, 3)  # conv1
    n = conv_output_size(n, 3, 2, 1)  # maxpool
    sizes = []
    for stride in STAGE_STRIDES:
        # The block's strided 3x3x3 conv (padding 1); the shortcut (kernel 1, stride s,
        # no padding) gives the same length, floor((n - 1) / s) + 1.
        n = conv_output_size(n, 3, stride, 1)
        sizes.append(n)
    return tuple(sizes)  # type: ignore[return-value]


def stage_frames(frames: int) -> tuple[int, int, int, int]:
    """Temporal length T of the feature maps of ``layer1`` .. ``layer4`` for a clip of ``frames``.

    16 frames -> (8, 4, 2, 1); 32 -> (16, 8, 4, 2); 64 -> (32, 16, 8, 4).
    """
    return _stage_sizes(frames, stem_stride=1)


def stage_spatial_sizes(size: int) -> tuple[int, int, int, int]:
    """Spatial side of the feature maps of ``layer1`` .. ``layer4`` for a ``size`` x ``size`` input.

    112 -> (28, 14, 7, 4).
    """
    return _stage_sizes(size, stem_stride=2)


@dataclass(frozen=True)
class STCConfig:
    """What the ``STCBlock``s of a model are built with (see ``stc_ext.STCBlock``) and which
    residual blocks get one (``placement``, one of :data:`PLACEMENTS`)."""

    branches: str = "stc"
    reduction: int = 4
    backend: str = "auto"
    placement: str = "block"

    def __post_init__(self) -> None:
        check_placement(self.placement)


def check_placement(placement: str) -> None:
    """Raise ``ValueError`` unless ``placement`` is one of :data:`PLACEMENTS`."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")


def has_stc(placement: str, index: int, blocks_in_stage: int) -> bool:
    """Whether residual block ``index`` (0-based) of a stage of ``blocks_in_stage`` blocks
    gets an STC block under ``placement``."""
    check_placement(placement)
    return placement == "block" or index == blocks_in_stage - 1


def stc_block_layout(keys: Iterable[str]) -> dict[str, tuple[int, list[int]]]:
    """Per stage of a ResNet3D state_dict (``"layer1"`` ..): (residual blocks, indices of those
    with an STC block), read from the keys (``layerS.I.stc.*``)."""
    blocks: dict[str, set[int]] = {}
    with_stc: dict[str, set[int]] = {}
    for key in keys:
        parts = key.split(".")
        if len(parts) < 3 or not parts[0].startswith("layer") or not parts[1].isdigit():
            continue
        blocks.setdefault(parts[0], set()).add(int(parts[1]))
        if parts[2] == "stc":
            with_stc.setdefault(parts[0], set()).add(int(parts[1]))
    return {
        stage: (len(indices), sorted(with_stc.get(stage, ())))
        for stage, indices in sorted(blocks.items())
    }


def infer_placement(keys: Iterable[str]) -> str | None:
    """The placement a ResNet3D state_dict's keys show: "block", "stage", or None (no STC
    blocks, or another layout). With one residual block per stage both placements are the
    same network; it is reported as "block"."""
    layout = stc_block_layout(keys)
    if not any(stc for _, stc in layout.values()):
        return None
    for placement in PLACEMENTS:
        if all(
            stc == [i for i in range(count) if has_stc(placement, i, count)]
            for count, stc in layout.values()
        ):
            return placement
    return None


class TimeReplicateConv3d(nn.Conv3d):
    """A Conv3d whose temporal padding repeats the first/last frame instead of adding zeros.

    Spatial padding stays zero. With it a 3D net inflated from a 2D one reproduces the 2D
    net exactly on a static video (every frame equal), also at the clip's ends; with zero
    temporal padding the frames near the ends see fewer non-zero taps. Same parameters
    (and state_dict keys) as ``nn.Conv3d``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        pad_t, pad_h, pad_w = self.padding  # type: ignore[misc]
        self.time_padding = pad_t
        self.padding = (0, pad_h, pad_w)

    def forward(self, x: Tensor) -> Tensor:
        if self.time_padding:
            p = self.time_padding
            x = F.pad(x, (0, 0, 0, 0, p, p), mode="replicate")
        return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", time_padding={self.time_padding} (replicate)"


def _conv(
    in_channels: int,
    out_channels: int,
    kernel: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] = 1,
    padding: int | tuple[int, int, int] = 0,
    groups: int = 1,
    temporal_padding: str = "zeros",
) -> nn.Conv3d:
    cls = TimeReplicateConv3d if temporal_padding == "replicate" else nn.Conv3d
    return cls(
        in_channels, out_channels, kernel, stride=stride, padding=padding, groups=groups, bias=False
    )


class ShortcutA(nn.Module):
    """Parameter-free shortcut: the input subsampled by ``stride``, zero channels appended.

    (N, C_in, T, H, W) -> (N, C_out, ceil(T/s), ceil(H/s), ceil(W/s)); Hara et al.'s type A
    (their version detaches the input; here gradients flow through the kept channels).
    """

    def __init__(self, out_channels: int, stride: int) -> None:
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride, :: self.stride]
        extra = self.out_channels - x.shape[1]
        # A new dense tensor either way: the strided view would reach the fused op as is.
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, extra)) if extra else x.contiguous()

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, stride={self.stride}"


def _shortcut(kind: str, in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_channels == out_channels:
        return None
    if kind == "A":
        return ShortcutA(out_channels, stride)
    return nn.Sequential(
        _conv(in_channels, out_channels, 1, stride=stride), nn.BatchNorm3d(out_channels)
    )


class _ResidualBlock(nn.Module):
    """Shared forward: relu(branch(x) + shortcut(x)), or relu(stc(branch(x)) + shortcut(x))."""

    downsample: nn.Module | None
    stc: STCBlock | None

    def branch(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C_in, T, H, W) -> (N, C_out, T', H', W') with T' = floor((T - 1)/stride) + 1."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.branch(x)
        if identity.dtype != out.dtype:  # e.g. under autocast; the fused op wants one dtype
            identity = identity.to(out.dtype)
        if self.stc is not None:
            return self.stc(out, identity)
        return torch.relu(out + identity)


class BasicBlock3D(_ResidualBlock):
    """Two 3x3x3 convs (the first strided); output width ``planes``."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        shortcut_type: str,
        stc: STCBlock | None,
        temporal_padding: str = "zeros",
        cardinality: int = 1,
    ) -> None:
        super().__init__()
        if cardinality != 1:
            raise ValueError("BasicBlock3D: cardinality must be 1")
        self.conv1 = _conv(in_channels, planes, 3, stride, 1, temporal_padding=temporal_padding)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv(planes, planes, 3, 1, 1, temporal_padding=temporal_padding)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = _shortcut(shortcut_type, in_channels, planes, stride)
        self.stc = stc

    def branch(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return self.bn2(self.conv2(out))


class Bottleneck3D(_ResidualBlock):
    """1x1x1 -> 3x3x3 (strided, grouped for ResNeXt) -> 1x1x1; output ``planes * expansion``.

    ResNet: expansion 4, inner width ``planes``. ResNeXt (``cardinality`` > 1): expansion 2,
    inner width ``cardinality * planes // 32`` as in Hara et al. (= ``planes`` at cardinality 32).
    """

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        shortcut_type: str,
        stc: STCBlock | None,
        temporal_padding: str = "zeros",
        cardinality: int = 1,
    ) -> None:
        super().__init__()
        expansion = self.expansion_for(cardinality)
        mid = planes if cardinality == 1 else cardinality * planes // 32
        out_channels = planes * expansion
        self.conv1 = _conv(in_channels, mid, 1)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = _conv(mid, mid, 3, stride, 1, cardinality, temporal_padding)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = _conv(mid, out_channels, 1)
        self.bn3 = nn.BatchNorm3d(out_channels)
        self.downsample = _shortcut(shortcut_type, in_channels, out_channels, stride)
        self.stc = stc

    @staticmethod
    def expansion_for(cardinality: int) -> int:
        return 4 if cardinality == 1 else 2

    def branch(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        return self.bn3(self.conv3(out))


class _ClipInput:
    """The input check every video network here shares (``self.frames`` is its clip length)."""

    frames: int

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(
                f"{type(self).__name__}: input must be 5-D (N, C, T, H, W), got shape "
                f"{tuple(x.shape)}"
            )
        if x.shape[2] != self.frames:
            raise ValueError(
                f"{type(self).__name__}: the model was built for frames={self.frames}, got a "
                f"clip of shape {tuple(x.shape)} with T={x.shape[2]} (dim 2); build it with "
                f"frames={x.shape[2]} or resample the clip"
            )


class ResNet3D(_ClipInput, nn.Module):
    """3D ResNet / ResNeXt for clips of shape (N, in_channels, frames, H, W).

    Args:
        block: ``BasicBlock3D`` or ``Bottleneck3D``.
        layers: number of blocks in each of the four stages.
        num_classes: width of ``fc``.
        frames: clip length T the model is built for; inputs must have exactly this T
            (the STC blocks' SCB weights depend on it; plain models check it too, so that
            both kinds accept the same inputs).
        size: nominal spatial side of the input (recorded for ``stage_shapes``; any
            spatial size is accepted, the head pools globally).
        shortcut_type: "A" or "B"; default "A" for basic blocks, "B" for bottlenecks.
        widths: base width of each stage (64/128/256/512; ResNeXt 128/256/512/1024).
        cardinality: groups of the 3x3x3 conv in bottlenecks; > 1 makes it ResNeXt
            (expansion 2).
        stc: ``STCConfig`` to add ``STCBlock``s (to the residual blocks its ``placement``
            names), or None.
        dropout: dropout probability before ``fc``.
        temporal_padding: "zeros" (Hara et al.) or "replicate" (see ``TimeReplicateConv3d``).
        in_channels: input channels (3 for RGB).
    """

    def __init__(
        self,
        block: type[BasicBlock3D] | type[Bottleneck3D],
        layers: Sequence[int],
        num_classes: int = 400,
        frames: int = 16,
        size: int = 112,
        *,
        shortcut_type: str | None = None,
        widths: Sequence[int] = RESNET_WIDTHS,
        cardinality: int = 1,
        stc: STCConfig | None = None,
        dropout: float = 0.0,
        temporal_padding: str = "zeros",
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_classes", num_classes),
            ("frames", frames),
            ("size", size),
            ("cardinality", cardinality),
            ("in_channels", in_channels),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ResNet3D: {name} must be a positive int, got {value!r}")
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(
                f"ResNet3D: layers and widths need 4 entries, got {list(layers)}, {list(widths)}"
            )
        if any(not isinstance(n, int) or n < 1 for n in (*layers, *widths)):
            raise ValueError(
                f"ResNet3D: layers and widths must be positive ints, got {list(layers)}, "
                f"{list(widths)}"
            )
        if shortcut_type is None:
            shortcut_type = "A" if block is BasicBlock3D else "B"
        if shortcut_type not in SHORTCUT_TYPES:
            raise ValueError(
                f"ResNet3D: shortcut_type must be one of {SHORTCUT_TYPES}, got {shortcut_type!r}"
            )
        if temporal_padding not in TEMPORAL_PADDINGS:
            raise ValueError(
                f"ResNet3D: temporal_padding must be one of {TEMPORAL_PADDINGS}, "
                f"got {temporal_padding!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"ResNet3D: dropout must be in [0, 1), got {dropout!r}")
        self.frames, self.size, self.num_classes = frames, size, num_classes
        self.shortcut_type, self.cardinality = shortcut_type, cardinality
        self.stc_config = stc
        self.stc_placement = stc.placement if stc is not None else None
        self.stage_frames = stage_frames(frames)
        expansion = 1 if block is BasicBlock3D else Bottleneck3D.expansion_for(cardinality)

        self.conv1 = _conv(in_channels, 64, 7, (1, 2, 2), 3, temporal_padding=temporal_padding)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        channels = 64
        stage_channels = []
        for index, (count, width, stride, t) in enumerate(
            zip(layers, widths, STAGE_STRIDES, self.stage_frames, strict=True), start=1
        ):
            out_channels = width * expansion
            blocks = []
            for i in range(count):
                stc_block = None
                if stc is not None and has_stc(stc.placement, i, count):
                    stc_block = STCBlock(
                        out_channels,
                        t,
                        reduction=stc.reduction,
                        branches=stc.branches,
                        backend=stc.backend,
                    )
                blocks.append(
                    block(
                        channels,
                        width,
                        stride if i == 0 else 1,
                        shortcut_type,
                        stc_block,
                        temporal_padding,
                        cardinality,
                    )
                )
                channels = out_channels
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
            stage_channels.append(out_channels)
        self.stage_channels = tuple(stage_channels)
        self.feature_dim = channels
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # He et al. 2015 (the paper's [33]) for convolutions, as Hara et al.; BN to identity.
        # Linear layers (fc and the STC bottlenecks) keep PyTorch's default initialisation.
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def stage_shapes(self) -> list[tuple[int, int, int, int]]:
        """(C, T, H, W) of the output of each stage for a (frames, size, size) clip."""
        sides = stage_spatial_sizes(self.size)
        return [
            (c, t, s, s)
            for c, t, s in zip(self.stage_channels, self.stage_frames, sides, strict=True)
        ]

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, C_in, frames, H, W) -> (N, feature_dim) globally pooled last-stage features."""
        self._check_input(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, frames, H, W) -> (N, num_classes) logits."""
        return self.fc(self.dropout(self.forward_features(x)))


RESNET_LAYERS: dict[int, tuple[type[BasicBlock3D] | type[Bottleneck3D], tuple[int, ...]]] = {
    10: (BasicBlock3D, (1, 1, 1, 1)),
    18: (BasicBlock3D, (2, 2, 2, 2)),
    34: (BasicBlock3D, (3, 4, 6, 3)),
    50: (Bottleneck3D, (3, 4, 6, 3)),
    101: (Bottleneck3D, (3, 4, 23, 3)),
    152: (Bottleneck3D, (3, 8, 36, 3)),
    200: (Bottleneck3D, (3, 24, 36, 3)),
}
RESNEXT_LAYERS: dict[int, tuple[int, ...]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


def _depth_entry(table: dict, depth: int, family: str):
    if depth not in table:
        raise ValueError(f"{family}: depth must be one of {sorted(table)}, got {depth!r}")
    return table[depth]


def resnet3d(
    depth: int, num_classes: int = 400, frames: int = 16, size: int = 112, **kwargs
) -> ResNet3D:
    """3D ResNet-``depth`` (10/18/34: basic blocks, shortcut A; 50/101/152/200: bottlenecks, B).

    ``kwargs``: ``shortcut_type``, ``dropout``, ``temporal_padding``, ``in_channels``.
    """
    block, layers = _depth_entry(RESNET_LAYERS, depth, "resnet3d")
    return ResNet3D(block, layers, num_classes, frames, size, **kwargs)


def resnext3d(
    depth: int,
    num_classes: int = 400,
    frames: int = 16,
    size: int = 112,
    cardinality: int = 32,
    **kwargs,
) -> ResNet3D:
    """3D ResNeXt-``depth`` (50/101/152): cardinality 32, widths 128/256/512/1024, expansion 2,
    shortcut B by default."""
    layers = _depth_entry(RESNEXT_LAYERS, depth, "resnext3d")
    if cardinality < 2:
        raise ValueError(f"resnext3d: cardinality must be >= 2, got {cardinality!r}")
    return ResNet3D(
        Bottleneck3D,
        layers,
        num_classes,
        frames,
        size,
        widths=RESNEXT_WIDTHS,
        cardinality=cardinality,
        **kwargs,
    )


def stc_resnet3d(
    depth: int,
    num_classes: int = 400,
    frames: int = 16,
    size: int = 112,
    *,
    branches: str = "stc",
    reduction: int = 4,
    backend: str = "auto",
    placement: str = "block",
    **kwargs,
) -> ResNet3D:
    """STC-ResNet-``depth``: ``resnet3d`` with ``STCBlock``s in every residual block
    (``placement="block"``) or in the last one of each stage (``"stage"``)."""
    stc = STCConfig(branches, reduction, backend, placement)
    return resnet3d(depth, num_classes, frames, size, stc=stc, **kwargs)


def stc_resnext3d(
    depth: int,
    num_classes: int = 400,
    frames: int = 16,
    size: int = 112,
    *,
    branches: str = "stc",
    reduction: int = 4,
    backend: str = "auto",
    placement: str = "block",
    **kwargs,
) -> ResNet3D:
    """STC-ResNeXt-``depth``: ``resnext3d`` with ``STCBlock``s in every residual block
    (``placement="block"``) or in the last one of each stage (``"stage"``)."""
    stc = STCConfig(branches, reduction, backend, placement)
    return resnext3d(depth, num_classes, frames, size, stc=stc, **kwargs)
