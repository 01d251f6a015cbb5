"""torchvision's video ResNets written out independently of stc_ext.models: the state_dict
layout of ``torchvision.models.video.{r3d_18, mc3_18, r2plus1d_18}`` and a functional
forward over such a state_dict.

From Tran et al. 2018 ("A Closer Look at Spatiotemporal Convolutions"): R3D uses 3x3x3
convs throughout; MC3 ("mixed convolutions") 3x3x3 in the first residual stage and 1x3x3
after it; R(2+1)D factors each 3x3x3 conv into a 1x3x3 spatial conv to M_i channels, BN,
ReLU and a 3x1x1 temporal conv, with M_i = floor(t d^2 N_{i-1} N_i / (d^2 N_{i-1} + t N_i))
(t = d = 3). torchvision's layer naming: ``stem.<i>``; ``layer<s>.<b>.conv1`` = (conv, BN,
ReLU), ``conv2`` = (conv, BN), where a (2+1)D conv is itself (conv, BN, ReLU, conv);
``downsample`` = (1x1x1 conv, BN); ``fc``. The R(2+1)D stem is 1x7x7 to 45 channels, BN,
ReLU, 3x1x1 to 64, BN, ReLU. Published parameter counts (torchvision's weight metadata):
r3d_18 33,371,472; mc3_18 11,695,440; r2plus1d_18 31,505,325.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PUBLISHED_PARAMETERS = {"r3d_18": 33_371_472, "mc3_18": 11_695_440, "r2plus1d_18": 31_505_325}
# The conv of each residual stage: "full" 3x3x3, "spatial" 1x3x3 or "factored" (2+1)D.
STAGE_CONVS = {
    "r3d_18": ("full",) * 4,
    "mc3_18": ("full", "spatial", "spatial", "spatial"),
    "r2plus1d_18": ("factored",) * 4,
}
WIDTHS = (64, 128, 256, 512)

Spec = dict[str, tuple[tuple[int, ...], bool]]  # key -> (shape, is a parameter)


def _bn(spec: Spec, prefix: str, channels: int) -> None:
    spec[f"{prefix}.weight"] = ((channels,), True)
    spec[f"{prefix}.bias"] = ((channels,), True)
    spec[f"{prefix}.running_mean"] = ((channels,), False)
    spec[f"{prefix}.running_var"] = ((channels,), False)
    spec[f"{prefix}.num_batches_tracked"] = ((), False)


def _conv_keys(spec: Spec, prefix: str, kind: str, cin: int, cout: int, m: int) -> None:
    if kind == "full":
        spec[f"{prefix}.weight"] = ((cout, cin, 3, 3, 3), True)
    elif kind == "spatial":
        spec[f"{prefix}.weight"] = ((cout, cin, 1, 3, 3), True)
    else:
        spec[f"{prefix}.0.weight"] = ((m, cin, 1, 3, 3), True)
        _bn(spec, f"{prefix}.1", m)
        spec[f"{prefix}.3.weight"] = ((cout, m, 3, 1, 1), True)


def video_resnet_spec(
    arch: str, num_classes: int = 400, widths: tuple[int, ...] = WIDTHS, stem_mid: int = 45
) -> Spec:
    """torchvision's layout; ``widths`` and ``stem_mid`` (the R(2+1)D stem's inner width)
    other than torchvision's 64/128/256/512 and 45 describe narrow variants for fast tests."""
    spec: Spec = {}
    if arch == "r2plus1d_18":
        spec["stem.0.weight"] = ((stem_mid, 3, 1, 7, 7), True)
        _bn(spec, "stem.1", stem_mid)
        spec["stem.3.weight"] = ((widths[0], stem_mid, 3, 1, 1), True)
        _bn(spec, "stem.4", widths[0])
    else:
        spec["stem.0.weight"] = ((widths[0], 3, 3, 7, 7), True)
        _bn(spec, "stem.1", widths[0])
    cin = widths[0]
    for s, (kind, width) in enumerate(zip(STAGE_CONVS[arch], widths, strict=True), start=1):
        for b in range(2):
            m = (27 * cin * width) // (9 * cin + 3 * width)  # from the block's input width
            prefix = f"layer{s}.{b}"
            _conv_keys(spec, f"{prefix}.conv1.0", kind, cin, width, m)
            _bn(spec, f"{prefix}.conv1.1", width)
            _conv_keys(spec, f"{prefix}.conv2.0", kind, width, width, m)
            _bn(spec, f"{prefix}.conv2.1", width)
            if b == 0 and (s > 1 or cin != width):
                spec[f"{prefix}.downsample.0.weight"] = ((width, cin, 1, 1, 1), True)
                _bn(spec, f"{prefix}.downsample.1", width)
            cin = width
    spec["fc.weight"] = ((num_classes, widths[-1]), True)
    spec["fc.bias"] = ((num_classes,), True)
    return spec


def random_state(spec: Spec, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A state_dict of the spec's layout with random weights and BN statistics (the weights
    scaled by fan-in, so activations stay O(1) through 18 layers)."""
    state = {}
    for key, (shape, _) in spec.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        elif key.endswith(("running_mean", "bias")):
            state[key] = 0.1 * torch.randn(shape, generator=generator)
        elif len(shape) == 1:  # BN weight
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:
            fan_in = torch.Size(shape[1:]).numel()
            state[key] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
    return state


def _bn_apply(x, state, prefix):
    return F.batch_norm(
        x,
        state[f"{prefix}.running_mean"],
        state[f"{prefix}.running_var"],
        state[f"{prefix}.weight"],
        state[f"{prefix}.bias"],
        training=False,
        eps=1e-5,
    )


def _conv_apply(x, state, prefix, kind, stride):
    if kind == "full":
        return F.conv3d(x, state[f"{prefix}.weight"], stride=stride, padding=1)
    if kind == "spatial":
        return F.conv3d(x, state[f"{prefix}.weight"], stride=(1, stride, stride), padding=(0, 1, 1))
    x = F.conv3d(x, state[f"{prefix}.0.weight"], stride=(1, stride, stride), padding=(0, 1, 1))
    x = F.relu(_bn_apply(x, state, f"{prefix}.1"))
    return F.conv3d(x, state[f"{prefix}.3.weight"], stride=(stride, 1, 1), padding=(1, 0, 0))


def functional_forward(arch: str, state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits of ``arch`` with weights ``state`` (eval mode) for clips x (N, 3, T, H, W)."""
    if arch == "r2plus1d_18":
        x = F.conv3d(x, state["stem.0.weight"], stride=(1, 2, 2), padding=(0, 3, 3))
        x = F.relu(_bn_apply(x, state, "stem.1"))
        x = F.conv3d(x, state["stem.3.weight"], padding=(1, 0, 0))
        x = F.relu(_bn_apply(x, state, "stem.4"))
    else:
        x = F.conv3d(x, state["stem.0.weight"], stride=(1, 2, 2), padding=(1, 3, 3))
        x = F.relu(_bn_apply(x, state, "stem.1"))
    for s, kind in enumerate(STAGE_CONVS[arch], start=1):
        for b in range(2):
            prefix = f"layer{s}.{b}"
            stride = 2 if (b == 0 and s > 1) else 1
            out = _conv_apply(x, state, f"{prefix}.conv1.0", kind, stride)
            out = F.relu(_bn_apply(out, state, f"{prefix}.conv1.1"))
            out = _conv_apply(out, state, f"{prefix}.conv2.0", kind, 1)
            out = _bn_apply(out, state, f"{prefix}.conv2.1")
            shortcut = x
            if f"{prefix}.downsample.0.weight" in state:
                t = 1 if kind == "spatial" else stride
                shortcut = F.conv3d(
                    x, state[f"{prefix}.downsample.0.weight"], stride=(t, stride, stride)
                )
                shortcut = _bn_apply(shortcut, state, f"{prefix}.downsample.1")
            x = F.relu(out + shortcut)
    features = x.mean(dim=(2, 3, 4))
    return F.linear(features, state["fc.weight"], state["fc.bias"])
