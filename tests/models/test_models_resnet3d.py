"""3D ResNet/ResNeXt (+STC): shapes, per-stage T, parameter counts, registry, shortcuts."""

from __future__ import annotations

import math

import pytest
import torch
from resnet_spec import parameter_count, resnet_spec
from torch._subclasses.fake_tensor import FakeTensorMode

import stc_ext
from stc_ext import STCBlock
from stc_ext.models import (
    build,
    build_from_config,
    infer_placement,
    list_models,
    stage_frames,
    stage_spatial_sizes,
)
from stc_ext.models.resnet3d import ShortcutA, conv_output_size

BACKENDS = stc_ext.available_backends("cpu")
# The shape sweep runs the STC models with the native kernels where built (their fake
# kernel included); every other backend gets one pass over all STC models.
SWEEP_BACKEND = "cpu" if "cpu" in BACKENDS else "reference"


def _stage_outputs(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    hooks = [
        getattr(model, f"layer{i}").register_forward_hook(
            lambda mod, inp, out: shapes.append(tuple(out.shape))
        )
        for i in range(1, 5)
    ]
    try:
        out = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return [tuple(out.shape), *shapes]


def _stc_blocks(model: torch.nn.Module) -> list[tuple[str, STCBlock]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, STCBlock)]


def test_registry_lists_the_model_names():
    names = list_models()
    for name in (
        "resnet3d_18",
        "resnet3d_101",
        "resnext3d_101",
        "stc_resnet3d_18",
        "stc_resnet3d_50",
        "stc_resnet3d_101",
        "stc_resnext3d_101",
    ):
        assert name in names
    assert len(names) == len(set(names))


# The families of this module (torchvision's video ResNets: tests/models/test_video_resnet.py).
RESNET3D_NAMES = [n for n in list_models() if "resnet3d_" in n or "resnext3d_" in n]


@pytest.mark.slow  # > 1 s idle; make test runs it
@pytest.mark.parametrize("frames", [16, 32, 64])
@pytest.mark.parametrize("name", RESNET3D_NAMES)
def test_output_and_stage_shapes_at_112(name, frames):
    # Deep nets at 112x112x64 are too slow to run for real on a CI CPU; fake tensors run
    # every module's shape logic (and, with a fused backend, the STC op's fake kernel).
    kwargs = {"backend": SWEEP_BACKEND} if name.startswith("stc_") else {}
    with FakeTensorMode():
        model = build(name, 400, frames=frames, size=112, **kwargs)
        shapes = _stage_outputs(model, torch.empty(2, 3, frames, 112, 112))
    assert shapes[0] == (2, 400)
    t_expected = stage_frames(frames)
    assert t_expected == tuple(frames // d for d in (2, 4, 8, 16))  # even clip lengths
    sides = stage_spatial_sizes(112)
    assert sides == (28, 14, 7, 4)
    assert shapes[1:] == [
        (2, c, t, s, s) for c, t, s in zip(model.stage_channels, t_expected, sides, strict=True)
    ]
    blocks = _stc_blocks(model)
    assert bool(blocks) == name.startswith("stc_")
    for block_name, block in blocks:
        stage = int(block_name[len("layer")]) - 1
        assert block.frames == t_expected[stage]
        assert block.channels == model.stage_channels[stage]


@pytest.mark.slow  # > 1 s idle; make test runs it
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != SWEEP_BACKEND])
@pytest.mark.parametrize("name", [n for n in list_models() if n.startswith("stc_")])
def test_every_stc_model_runs_with_every_backend(name, backend):
    with FakeTensorMode():
        model = build(name, 10, frames=16, backend=backend)
        out = model(torch.empty(1, 3, 16, 112, 112))
    assert out.shape == (1, 10)


@pytest.mark.parametrize(
    ("name", "frames", "size"),
    [
        ("stc_resnet3d_10", 1, 17),
        ("stc_resnet3d_10", 5, 33),
        ("stc_resnet3d_10", 13, 20),
        ("stc_resnet3d_18", 16, 32),
        ("stc_resnext3d_50", 16, 24),
        ("resnet3d_10", 32, 16),
    ],
)
def test_stage_frames_match_real_forward(name, frames, size):
    torch.manual_seed(0)
    model = build(name, 7, frames=frames, size=size).eval()
    shapes = _stage_outputs(model, torch.randn(1, 3, frames, size, size))
    assert shapes[0] == (1, 7)
    assert (
        [s[2] for s in shapes[1:]]
        == list(stage_frames(frames))
        == [c[1] for c in model.stage_shapes()]
    )
    assert [s[3] for s in shapes[1:]] == list(stage_spatial_sizes(size))


def test_stage_frames_formula():
    assert stage_frames(16) == (8, 4, 2, 1)
    assert stage_frames(32) == (16, 8, 4, 2)
    assert stage_frames(64) == (32, 16, 8, 4)
    assert stage_frames(1) == (1, 1, 1, 1)
    assert stage_frames(13) == (7, 4, 2, 1)  # 13 -> pool 7 -> ceil halves
    assert conv_output_size(7, 3, 2, 1) == 4


@pytest.mark.parametrize("name", ["resnet3d_18", "stc_resnet3d_18", "stc_resnext3d_50"])
def test_frames_mismatch_is_a_clear_error(name):
    with FakeTensorMode():
        model = build(name, 5, frames=16)
        with pytest.raises(ValueError, match=r"built for frames=16.*T=32.*frames=32"):
            model(torch.empty(1, 3, 32, 112, 112))
        with pytest.raises(ValueError, match=r"5-D \(N, C, T, H, W\)"):
            model(torch.empty(3, 16, 112, 112))


# Depth -> (family, shortcut type): basic blocks take shortcut A, bottlenecks B.
PARAM_CASES = [
    ("resnet3d_18", "resnet", 18, "A"),
    ("resnet3d_34", "resnet", 34, "A"),
    ("resnet3d_50", "resnet", 50, "B"),
    ("resnet3d_101", "resnet", 101, "B"),
    ("resnet3d_152", "resnet", 152, "B"),
    ("resnext3d_101", "resnext", 101, "B"),
]


@pytest.mark.parametrize(("name", "family", "depth", "shortcut_type"), PARAM_CASES)
def test_parameter_counts_match_the_architecture(name, family, depth, shortcut_type):
    spec = resnet_spec(family, depth, num_classes=400, dims=3, shortcut_type=shortcut_type)
    with torch.device("meta"):
        model = build(name, 400)
    assert sum(p.numel() for p in model.parameters()) == parameter_count(spec)
    # Names and shapes too, so that the count cannot match by accident.
    shapes = {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    assert shapes == {k: shape for k, (shape, _) in spec.items()}


def test_parameter_counts_known_values():
    # Hara et al.'s published sizes (3D-ResNets-PyTorch, 400 classes) as a sanity anchor.
    def millions(spec):
        return round(parameter_count(spec) / 1e6, 1)

    assert millions(resnet_spec("resnet", 18, 400, shortcut_type="A")) == 33.2
    assert millions(resnet_spec("resnet", 34, 400, shortcut_type="A")) == 63.5
    assert millions(resnet_spec("resnext", 101, 400)) == 48.3


@pytest.mark.parametrize("placement", ["block", "stage"])
@pytest.mark.parametrize(
    ("name", "family", "depth", "frames", "reduction", "branches"),
    [
        ("stc_resnet3d_18", "resnet", 18, 16, 4, "stc"),
        ("stc_resnet3d_50", "resnet", 50, 32, 4, "stc"),
        ("stc_resnext3d_101", "resnext", 101, 16, 8, "tcb"),
        ("stc_resnext3d_101", "resnext", 101, 64, 4, "stc"),
        ("stc_resnet3d_101", "resnet", 101, 32, 4, "stc"),
        ("stc_resnet3d_34", "resnet", 34, 64, 4, "scb"),
    ],
)
def test_stc_parameter_counts(name, family, depth, frames, reduction, branches, placement):
    # Per STC block (paper §3.1): TCB FC C -> C/r -> C, SCB FC T*C -> T*C/r -> C, with
    # biases; "block" has one in every residual block, "stage" one per stage.
    plain = resnet_spec(family, depth, 400, shortcut_type="A" if depth < 50 else "B")
    expected = parameter_count(plain)
    layers = (
        {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
        if family == "resnet"
        else (3, 4, 23, 3)
    )
    expansion = 1 if depth < 50 else (4 if family == "resnet" else 2)
    widths = (64, 128, 256, 512) if family == "resnet" else (128, 256, 512, 1024)
    t = frames // 2
    for stage, (count, width) in enumerate(zip(layers, widths, strict=True)):
        t = t if stage == 0 else math.ceil(t / 2)
        c = width * expansion
        tcb = c * (c // reduction) + c // reduction + (c // reduction) * c + c
        tc = t * c
        scb = tc * (tc // reduction) + tc // reduction + (tc // reduction) * c + c
        per_block = {"stc": tcb + scb, "tcb": tcb, "scb": scb}[branches]
        expected += (count if placement == "block" else 1) * per_block
    with torch.device("meta"):
        model = build(
            name, 400, frames=frames, reduction=reduction, branches=branches, placement=placement
        )
    assert sum(p.numel() for p in model.parameters()) == expected
    with_stc = sorted({k.split(".stc.")[0] for k in model.state_dict() if ".stc." in k})
    if placement == "block":
        assert len(with_stc) == sum(layers)
    else:  # the last residual block of each stage
        assert with_stc == [f"layer{s + 1}.{n - 1}" for s, n in enumerate(layers)]


def test_stage_placement_paper_scale_counts():
    # The figures the README's table and the issue quote: STC-ResNeXt-101 (plain 48.3M) gains
    # ~70M with an STC block in every residual block at 16 frames, 639M at 64.
    def millions(**kwargs):
        with torch.device("meta"):
            model = build("stc_resnext3d_101", 400, **kwargs)
        return sum(p.numel() for p in model.parameters()) / 1e6

    plain = parameter_count(resnet_spec("resnext", 101, 400)) / 1e6
    assert round(millions(frames=16) - plain) == 70
    assert round(millions(frames=64) - plain) == 639
    assert millions(frames=16, placement="stage") - plain < 20


def test_defaults_and_options_pass_through():
    with torch.device("meta"):
        basic = build("resnet3d_18", 3)
        deep = build("resnet3d_50", 3)
        basic_b = build("resnet3d_18", 3, shortcut_type="B")
        stc = build(
            "stc_resnet3d_18", 3, frames=32, branches="tcb", reduction=8, backend="reference"
        )
        resnext = build("resnext3d_50", 3)
    assert basic.shortcut_type == "A" and deep.shortcut_type == "B"
    assert isinstance(basic.layer2[0].downsample, ShortcutA)
    assert isinstance(basic_b.layer2[0].downsample, torch.nn.Sequential)
    assert resnext.layer1[0].conv2.groups == 32
    assert resnext.layer1[0].conv2.out_channels == 128 and resnext.stage_channels[-1] == 2048
    blocks = [m for _, m in _stc_blocks(stc)]
    assert len(blocks) == 8
    assert {(b.branches, b.reduction, b.backend) for b in blocks} == {("tcb", 8, "reference")}
    assert [b.frames for b in blocks] == [16, 16, 8, 8, 4, 4, 2, 2]


def test_placement_option_passes_through_and_is_inferred_from_keys():
    with torch.device("meta"):
        block = build("stc_resnet3d_18", 3)
        stage = build("stc_resnet3d_18", 3, placement="stage", backend="reference")
        one_per_stage = build("stc_resnet3d_10", 3, placement="stage")
        plain = build("resnet3d_18", 3)
    assert block.stc_placement == "block" and stage.stc_placement == "stage"
    assert plain.stc_placement is None
    assert [n for n, _ in _stc_blocks(stage)] == [f"layer{s}.1.stc" for s in range(1, 5)]
    assert all(b.backend == "reference" for _, b in _stc_blocks(stage))
    assert infer_placement(block.state_dict()) == "block"
    assert infer_placement(stage.state_dict()) == "stage"
    assert infer_placement(plain.state_dict()) is None
    # One residual block per stage: the two placements build the same network.
    assert infer_placement(one_per_stage.state_dict()) == "block"
    odd = {k: v for k, v in block.state_dict().items() if not k.startswith("layer2.1.stc.")}
    assert infer_placement(odd) is None
    config = {"model": "stc_resnet3d_18", "frames": 16, "size": 112}
    with torch.device("meta"):
        assert build_from_config(config, 3).stc_placement == "block"  # saved before the option
        assert build_from_config({**config, "placement": "stage"}, 3).stc_placement == "stage"


def test_build_errors():
    with pytest.raises(ValueError, match="unknown model 'stc_resnet3d_17'.*did you mean"):
        build("stc_resnet3d_17", 10)
    with pytest.raises(ValueError, match="resnet3d_18 has no STC blocks.*reduction"):
        build("resnet3d_18", 10, reduction=8)
    with pytest.raises(ValueError, match="shortcut_type"):
        build("resnet3d_18", 10, shortcut_type="C")
    with pytest.raises(ValueError, match="frames must be a positive int"):
        build("resnet3d_18", 10, frames=0)
    with pytest.raises(ValueError, match="branches"):
        build("stc_resnet3d_18", 10, branches="both")
    with pytest.raises(ValueError, match=r"placement must be one of \('block', 'stage'\)"):
        build("stc_resnet3d_18", 10, placement="layer")
    with pytest.raises(ValueError, match="resnet3d_18 has no STC blocks.*placement"):
        build("resnet3d_18", 10, placement="stage")
    config = {"model": "resnet3d_18", "frames": 16, "size": 112, "placement": "stage"}
    with pytest.raises(ValueError, match="has no STC blocks"):
        build_from_config(config, 10)


def test_shortcut_a_pads_channels_and_passes_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, 7, requires_grad=True)
    y = ShortcutA(8, 2)(x)
    assert y.shape == (2, 8, 3, 3, 4)
    torch.testing.assert_close(y[:, :3], x[:, :, ::2, ::2, ::2])
    assert torch.count_nonzero(y[:, 3:]) == 0
    y.sum().backward()
    expected = torch.zeros_like(x)
    expected[:, :, ::2, ::2, ::2] = 1
    torch.testing.assert_close(x.grad, expected)


def test_dropout_option():
    torch.manual_seed(0)
    model = build("resnet3d_10", 4, frames=4, size=16, dropout=0.5)
    x = torch.randn(2, 3, 4, 16, 16)
    model.train()
    assert not torch.allclose(model.fc(model.dropout(model.forward_features(x))), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model.fc(model.forward_features(x)))
