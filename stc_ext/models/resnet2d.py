"""The 2D teacher: ImageNet ResNet-18/34/50/101/152 (He et al., CVPR 2016).

Module names and therefore ``state_dict`` keys are torchvision's (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0``, ..., ``fc``), and so are the shapes (the
"v1.5" bottleneck with the stride on its 3x3 conv), so an ImageNet checkpoint saved by
torchvision or timm loads from disk with ``load_torchvision_weights``. torchvision itself
is not needed.

``forward_features`` gives the pooled features of images; ``frame_features`` those of
every frame of a clip, as the paper's knowledge transfer (§3.2) feeds frames to the 2D net.
``widths`` makes narrower nets (same keys, smaller shapes), e.g. a teacher small enough to
train on a CPU (:mod:`stc_ext.transfer.teacher`).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .checkpoint import Checkpoint, LoadReport, load_matched, match_state_dict, read_state_dict


def _conv(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, padding: int = 0
) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)


def _downsample(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(_conv(in_channels, out_channels, 1, stride), nn.BatchNorm2d(out_channels))


def _check_widths(widths: Sequence[int], where: str) -> tuple[int, ...]:
    """``widths`` as a tuple of 4 positive ints, or a ValueError naming it."""
    try:
        if isinstance(widths, (str, bytes)) or any(isinstance(w, bool) for w in widths):
            raise TypeError
        values = tuple(operator.index(w) for w in widths)
    except TypeError:
        values = ()
    if len(values) != 4 or min(values) < 1:
        raise ValueError(f"{where}: widths must be 4 positive ints, got {widths!r}")
    return values


class BasicBlock(nn.Module):
    """Two 3x3 convs, the first strided; output width ``planes``."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(in_channels, planes, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv(planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(in_channels, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, planes, H', W')."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1; output width ``4 * planes``."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = _conv(in_channels, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3, stride, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv(planes, out_channels, 1)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, 4 * planes, H', W')."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet2D(nn.Module):
    """2D ResNet with torchvision's module names.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage (four stages, strides 1/2/2/2).
        num_classes: width of ``fc`` (1000 for ImageNet checkpoints).
        widths: the four stages' base widths (torchvision's 64/128/256/512 by default; the
            stem has 64 channels whatever they are, as ResNet3D's). Narrower nets make small
            teachers that train on a CPU; their keys are torchvision's, only shapes shrink.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        *,
        widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        super().__init__()
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ValueError(f"ResNet2D: layers needs 4 positive entries, got {list(layers)}")
        self.widths = _check_widths(widths, "ResNet2D")
        # The stem keeps 64 channels whatever the widths, as ResNet3D's does, so that a
        # narrow 2D net inflates into the narrow 3D net of the same widths.
        self.conv1 = _conv(3, 64, 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        for index, (count, width) in enumerate(zip(layers, self.widths, strict=True), start=1):
            blocks = []
            for i in range(count):
                blocks.append(block(channels, width, 2 if i == 0 and index > 1 else 1))
                channels = width * block.expansion
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
        self.feature_dim = channels
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) images -> (N, feature_dim) globally pooled last-stage features."""
        if x.dim() != 4:
            raise ValueError(
                f"ResNet2D: input must be 4-D (N, C, H, W), got shape {tuple(x.shape)}"
            )
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def frame_features(self, clip: Tensor) -> Tensor:
        """(N, 3, T, H, W) clip -> (N, T, feature_dim): pooled features of every frame."""
        if clip.dim() != 5:
            raise ValueError(
                f"ResNet2D: clip must be 5-D (N, C, T, H, W), got shape {tuple(clip.shape)}"
            )
        n, c, t, h, w = clip.shape
        frames = clip.transpose(1, 2).reshape(n * t, c, h, w)
        return self.forward_features(frames).view(n, t, -1)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> (N, num_classes) logits."""
        return self.fc(self.forward_features(x))


LAYERS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resnet2d(
    depth: int, num_classes: int = 1000, *, widths: Sequence[int] = (64, 128, 256, 512)
) -> ResNet2D:
    """2D ResNet-``depth`` (18, 34, 50, 101 or 152), randomly initialised.

    ``widths``: the four stages' base widths (see :class:`ResNet2D`).
    """
    if depth not in LAYERS:
        raise ValueError(f"resnet2d: depth must be one of {sorted(LAYERS)}, got {depth!r}")
    block, layers = LAYERS[depth]
    return ResNet2D(block, layers, num_classes, widths=_check_widths(widths, "resnet2d"))


def resnet18(num_classes: int = 1000) -> ResNet2D:
    return resnet2d(18, num_classes)


def resnet34(num_classes: int = 1000) -> ResNet2D:
    return resnet2d(34, num_classes)


def resnet50(num_classes: int = 1000) -> ResNet2D:
    return resnet2d(50, num_classes)


def resnet101(num_classes: int = 1000) -> ResNet2D:
    return resnet2d(101, num_classes)


def resnet152(num_classes: int = 1000) -> ResNet2D:
    return resnet2d(152, num_classes)


def load_torchvision_weights(
    model: ResNet2D, checkpoint: Checkpoint, *, strict: bool = True, ignore: Sequence[str] = ()
) -> LoadReport:
    """Load a torchvision- or timm-keyed ResNet state_dict (a file path or a dict) into ``model``.

    ``ignore``: key prefixes to skip, e.g. ``("fc.",)`` for a different number of classes.
    With ``strict`` a mismatch raises ``CheckpointMismatchError`` naming the keys.
    """
    state, _ = read_state_dict(checkpoint)
    loadable, report = match_state_dict(model, state, ignore=ignore)
    return load_matched(model, loadable, report, strict, "load_torchvision_weights")


__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet2D",
    "load_torchvision_weights",
    "resnet2d",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
]
