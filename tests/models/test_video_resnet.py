"""torchvision's video ResNets (stc_ext/models/video_resnet.py): keys, shapes, parameter
counts and numerics against an independent description (video_resnet_spec.py), loading
torchvision-keyed files, and the STC variants."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from video_resnet_spec import (
    PUBLISHED_PARAMETERS,
    functional_forward,
    random_state,
    video_resnet_spec,
)

from stc_ext import STCBlock
from stc_ext.models import (
    CheckpointMismatchError,
    build,
    build_from_config,
    list_models,
    load_torchvision_video_weights,
)

ARCHS = ["r3d_18", "mc3_18", "r2plus1d_18"]
# Narrow stages for fast numerics (the full-width layout is checked key by key, and
# numerically in the slow test); the R(2+1)D stem's inner width scales as 45 * w0 // 64.
NARROW = {"widths": (8, 16, 16, 24), "stem_mid": 45 * 8 // 64}


def test_registered():
    names = list_models()
    for arch in ARCHS:
        assert arch in names and f"stc_{arch}" in names


@pytest.mark.parametrize("arch", ARCHS)
def test_keys_shapes_and_parameter_count_match_torchvision(arch):
    model = build(arch, 400)
    spec = video_resnet_spec(arch)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert own == {k: shape for k, (shape, _) in spec.items()}
    parameters = {k for k, _ in model.named_parameters()}
    assert parameters == {k for k, (_, is_parameter) in spec.items() if is_parameter}
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMETERS[arch]


def _check_numerics(arch, tmp_path, widths=None, stem_mid=45):
    """A torchvision-keyed file (saved as torch.save(model.state_dict())) loads strictly and
    the model then computes exactly what the architecture's description does."""
    generator = torch.Generator().manual_seed(sum(map(ord, arch)))
    spec_widths = {"widths": widths, "stem_mid": stem_mid} if widths else {}
    state = random_state(video_resnet_spec(arch, num_classes=7, **spec_widths), generator)
    path = tmp_path / f"{arch}.pth"
    torch.save(state, path)
    model = build(arch, 7, frames=4, size=20, **({"widths": widths} if widths else {})).eval()
    report = load_torchvision_video_weights(model, path)
    assert report.ok and not report.kept_fresh and len(report.loaded) == len(state)
    x = torch.randn(2, 3, 4, 20, 20, generator=generator)
    with torch.no_grad():
        expected = functional_forward(arch, state, x)
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_numerics_match_the_description_narrow(arch, tmp_path):
    _check_numerics(arch, tmp_path, **NARROW)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_numerics_match_the_description_full_width(arch, tmp_path):
    _check_numerics(arch, tmp_path)


@pytest.mark.parametrize("arch", ARCHS)
def test_stage_shapes_match_a_real_forward(arch):
    model = build(arch, 5, frames=7, size=33, widths=(8, 8, 16, 16)).eval()
    shapes = []
    hooks = [
        getattr(model, f"layer{i}").register_forward_hook(
            lambda mod, inp, out: shapes.append(tuple(out.shape[1:]))
        )
        for i in range(1, 5)
    ]
    with torch.no_grad():
        out = model(torch.randn(1, 3, 7, 33, 33))
    for hook in hooks:
        hook.remove()
    assert out.shape == (1, 5)
    assert shapes == model.stage_shapes()
    if arch == "mc3_18":  # no temporal striding after layer1
        assert [s[1] for s in shapes] == [7, 7, 7, 7]
    else:
        assert [s[1] for s in shapes] == [7, 4, 2, 1]


@pytest.mark.parametrize("arch", ARCHS)
def test_stc_variant_loads_torchvision_weights_with_fresh_stc_blocks(arch, tmp_path):
    generator = torch.Generator().manual_seed(1)
    state = random_state(video_resnet_spec(arch, **NARROW), generator)
    path = tmp_path / "tv.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model = build(f"stc_{arch}", 400, frames=4, widths=NARROW["widths"], backend="reference")
    blocks = {n: m for n, m in model.named_modules() if isinstance(m, STCBlock)}
    assert len(blocks) == 8  # one per residual block
    for name, block in blocks.items():
        stage = int(name[len("layer")]) - 1
        assert (block.channels, block.frames) == model.stage_shapes()[stage][:2]
    report = load_torchvision_video_weights(model, path)
    assert report.ok and len(report.loaded) == len(state)
    assert report.kept_fresh and all(".stc." in k for k in report.kept_fresh)
    x = torch.randn(1, 3, 4, 16, 16, generator=generator)
    assert torch.isfinite(model.eval()(x)).all()


def test_another_architecture_or_class_count_is_named(tmp_path):
    generator = torch.Generator().manual_seed(2)
    path = tmp_path / "r3d.pth"
    widths = NARROW["widths"]
    torch.save(random_state(video_resnet_spec("r3d_18", **NARROW), generator), path)
    with pytest.raises(CheckpointMismatchError, match=r"layer1\.0\.conv1\.0\.0\.weight") as info:
        load_torchvision_video_weights(build("r2plus1d_18", 400, widths=widths), path)
    assert info.value.report.missing and info.value.report.unexpected
    with pytest.raises(CheckpointMismatchError, match="ignore=\\('fc.',\\)"):
        load_torchvision_video_weights(build("r3d_18", 10, widths=widths), path)
    report = load_torchvision_video_weights(
        build("r3d_18", 10, widths=widths), path, ignore=("fc.",)
    )
    assert report.ok and report.ignored == ["fc.weight", "fc.bias"]


def test_build_options():
    model = build_from_config(
        {"model": "stc_mc3_18", "frames": 4, "size": 32, "widths": [8, 8, 8, 8], "dropout": 0.5},
        num_classes=3,
        backend="reference",
    )
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.5
    assert model.feature_dim == 8
    assert build("r3d_18", 3, shortcut_type="B").shortcut_type == "B"
    with pytest.raises(ValueError, match="shortcut_type must be 'B'"):
        build("r3d_18", 3, shortcut_type="A")
    with pytest.raises(ValueError, match="r3d_18 has no STC blocks.*stc_r3d_18"):
        build("r3d_18", 3, reduction=8)
    with pytest.raises(ValueError, match="built for frames=4.*T=8"):
        build("r3d_18", 3, frames=4)(torch.randn(1, 3, 8, 16, 16))


def test_narrow_r2plus1d_stem_scales_with_the_width():
    model = build("r2plus1d_18", 3, widths=(16, 16, 32, 32))
    assert model.stem[0].out_channels == 45 * 16 // 64


@pytest.mark.parametrize("arch", ARCHS)
def test_both_stc_placements(arch):
    from stc_ext.models import infer_placement

    kwargs = {"frames": 4, "size": 32, "widths": (8, 8, 8, 8), "backend": "reference"}
    for placement, where in (("block", ["0", "1"]), ("stage", ["1"])):
        model = build(f"stc_{arch}", 3, placement=placement, **kwargs)
        blocks = sorted(n for n, m in model.named_modules() if isinstance(m, STCBlock))
        assert blocks == [f"layer{s}.{b}.stc" for s in range(1, 5) for b in where]
        assert model.stc_placement == placement
        assert infer_placement(model.state_dict()) == placement
        config = {"model": f"stc_{arch}", "placement": placement, **kwargs}
        config.pop("backend")
        rebuilt = build_from_config(config, 3)
        assert rebuilt.state_dict().keys() == model.state_dict().keys()
    with pytest.raises(ValueError, match="placement must be one of"):
        build(f"stc_{arch}", 3, placement="everywhere", **kwargs)
    with pytest.raises(ValueError, match="no STC blocks"):
        build(arch, 3, placement="stage")
