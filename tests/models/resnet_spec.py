"""Expected state_dict layouts of the published ResNet/ResNeXt architectures, written out
from their descriptions (He et al. 2016 / torchvision for 2D; Hara et al. 2018 and
kenshohara/3D-ResNets-PyTorch for 3D), independently of stc_ext.models.

``resnet_spec`` returns key -> (shape, is_parameter); parameter counts and synthetic
third-party checkpoints are derived from it.
"""

from __future__ import annotations

import math

import torch

# depth -> (block kind, blocks per stage)
RESNET_DEPTHS = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
RESNEXT_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}

Spec = dict[str, tuple[tuple[int, ...], bool]]


def resnet_spec(
    family: str,
    depth: int,
    num_classes: int,
    dims: int = 3,
    shortcut_type: str = "B",
    num_batches_tracked: bool = False,
) -> Spec:
    """Keys and shapes of a ResNet ("resnet") or ResNeXt ("resnext", cardinality 32) with
    ``dims``-D convolutions. Shortcut "A" has no downsample tensors, "B" a 1x1 conv + BN."""
    spec: Spec = {}

    def conv(name: str, cin: int, cout: int, k: int, groups: int = 1) -> None:
        spec[f"{name}.weight"] = ((cout, cin // groups) + (k,) * dims, True)

    def bn(name: str, c: int) -> None:
        spec[f"{name}.weight"] = ((c,), True)
        spec[f"{name}.bias"] = ((c,), True)
        spec[f"{name}.running_mean"] = ((c,), False)
        spec[f"{name}.running_var"] = ((c,), False)
        if num_batches_tracked:
            spec[f"{name}.num_batches_tracked"] = ((), False)

    if family == "resnet":
        kind, layers = RESNET_DEPTHS[depth]
        widths = (64, 128, 256, 512)
    else:
        kind, layers = "resnext", RESNEXT_DEPTHS[depth]
        widths = (128, 256, 512, 1024)
    conv("conv1", 3, 64, 7)
    bn("bn1", 64)
    inplanes = 64
    for stage, (count, planes) in enumerate(zip(layers, widths, strict=True)):
        for i in range(count):
            p = f"layer{stage + 1}.{i}"
            stride = 2 if stage > 0 and i == 0 else 1
            if kind == "basic":
                out = planes
                conv(f"{p}.conv1", inplanes, planes, 3)
                bn(f"{p}.bn1", planes)
                conv(f"{p}.conv2", planes, planes, 3)
                bn(f"{p}.bn2", planes)
            else:
                expansion, groups = (4, 1) if kind == "bottleneck" else (2, 32)
                out = planes * expansion
                conv(f"{p}.conv1", inplanes, planes, 1)
                bn(f"{p}.bn1", planes)
                conv(f"{p}.conv2", planes, planes, 3, groups)
                bn(f"{p}.bn2", planes)
                conv(f"{p}.conv3", planes, out, 1)
                bn(f"{p}.bn3", out)
            if (stride != 1 or inplanes != out) and shortcut_type == "B":
                conv(f"{p}.downsample.0", inplanes, out, 1)
                bn(f"{p}.downsample.1", out)
            inplanes = out
    spec["fc.weight"] = ((num_classes, inplanes), True)
    spec["fc.bias"] = ((num_classes,), True)
    return spec


def parameter_count(spec: Spec) -> int:
    return sum(math.prod(shape) for shape, is_param in spec.values() if is_param)


def random_state_dict(spec: Spec, seed: int) -> dict[str, torch.Tensor]:
    """Random tensors of the spec's shapes (positive running variances)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, (shape, _) in spec.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.1
    return state
