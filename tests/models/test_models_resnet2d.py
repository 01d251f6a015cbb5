"""The 2D ResNet teacher: torchvision-identical keys, shapes and counts; pooled features."""

from __future__ import annotations

import pytest
import torch
from resnet_spec import parameter_count, random_state_dict, resnet_spec

from stc_ext.models import CheckpointMismatchError, resnet2d

# torchvision.models.resnet*(): published parameter counts (1000 classes).
TORCHVISION_PARAMS = {
    18: 11_689_512,
    34: 21_797_672,
    50: 25_557_032,
    101: 44_549_160,
    152: 60_192_808,
}


@pytest.mark.parametrize("depth", sorted(TORCHVISION_PARAMS))
def test_keys_shapes_and_counts_match_torchvision(depth):
    spec = resnet_spec("resnet", depth, 1000, dims=2, shortcut_type="B", num_batches_tracked=True)
    assert parameter_count(spec) == TORCHVISION_PARAMS[depth]
    with torch.device("meta"):
        model = getattr(resnet2d, f"resnet{depth}")()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        k: shape for k, (shape, _) in spec.items()
    }
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[depth]


@pytest.mark.slow  # > 1 s idle; make test runs it
@pytest.mark.parametrize(("depth", "wrap"), [(50, "plain"), (18, "module_prefix"), (18, "nested")])
def test_torchvision_keyed_file_loads(tmp_path, depth, wrap):
    state = random_state_dict(
        resnet_spec("resnet", depth, 1000, dims=2, shortcut_type="B", num_batches_tracked=True),
        seed=3,
    )
    saved = {
        "plain": state,
        "module_prefix": {f"module.{k}": v for k, v in state.items()},
        "nested": {"model": state, "epoch": 90},
    }[wrap]
    torch.save(saved, tmp_path / "resnet.pth")
    with torch.device("meta"):  # every tensor is loaded; skip the random initialisation
        model = resnet2d.resnet2d(depth)
    model = model.to_empty(device="cpu")
    report = resnet2d.load_torchvision_weights(model, tmp_path / "resnet.pth")
    assert report.ok and len(report.loaded) == len(state)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def test_torchvision_file_mismatch_is_named():
    state = random_state_dict(resnet_spec("resnet", 18, 1000, dims=2), seed=0)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"missing from the checkpoint \(\d+\): "
        r"layer1.2.conv1.weight",
    ):
        resnet2d.load_torchvision_weights(resnet2d.resnet34(), state)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"(?s)shape mismatches.*layer1.0.conv1."
        r"weight \(64, 64, 3, 3\) vs model "
        r"\(64, 64, 1, 1\)",
    ):
        resnet2d.load_torchvision_weights(resnet2d.resnet50(), state)


@pytest.mark.slow  # > 5 s
def test_pooled_per_frame_features():
    torch.manual_seed(0)
    model = resnet2d.resnet18().eval()
    clip = torch.randn(2, 3, 5, 48, 40)
    feats = model.frame_features(clip)
    assert feats.shape == (2, 5, 512) and model.feature_dim == 512
    for t in range(5):
        torch.testing.assert_close(feats[:, t], model.forward_features(clip[:, :, t]))
    logits = model(clip[:, :, 0])
    assert logits.shape == (2, 1000)
    torch.testing.assert_close(logits, model.fc(feats[:, 0]))
    with pytest.raises(ValueError, match="5-D"):
        model.frame_features(clip[:, :, 0])


@pytest.mark.slow  # > 5 s
@pytest.mark.parametrize(("depth", "feature_dim"), [(18, 64), (50, 256)])
def test_narrow_widths(depth, feature_dim):
    torch.manual_seed(0)
    model = resnet2d.resnet2d(depth, num_classes=5, widths=(8, 16, 32, 64)).eval()
    assert model.widths == (8, 16, 32, 64) and model.feature_dim == feature_dim
    # The stem stays 64 wide, as ResNet3D's, so narrow 2D nets inflate into narrow 3D ones.
    assert model.conv1.weight.shape == (64, 3, 7, 7) and model.bn1.weight.shape == (64,)
    assert model.layer1[0].conv1.weight.shape[:2] == (8, 64)
    wide = {k: v.shape for k, v in resnet2d.resnet2d(depth, 5).state_dict().items()}
    # Torchvision's keys; a basic-block net whose first stage is narrower than the stem also
    # gets the downsample projection its first block needs (a bottleneck net has one anyway).
    extra = {k for k in model.state_dict() if k not in wide}
    assert set(wide) <= set(model.state_dict())
    assert extra == (
        {
            f"layer1.0.downsample.{k}"
            for k in (
                "0.weight",
                "1.weight",
                "1.bias",
                "1.running_mean",
                "1.running_var",
                "1.num_batches_tracked",
            )
        }
        if depth == 18
        else set()
    )
    x = torch.randn(2, 3, 40, 36)
    assert model.forward_features(x).shape == (2, feature_dim)
    assert model(x).shape == (2, 5)


@pytest.mark.parametrize(
    "widths", [(8, 16, 32), (8, 16, 0, 64), (8, 16, 32, 64.0), (True, 16, 32, 64), "abcd", 8]
)
def test_bad_widths_are_named(widths):
    with pytest.raises(ValueError, match="widths"):
        resnet2d.resnet2d(18, widths=widths)
    with pytest.raises(ValueError, match="ResNet2D: widths"):
        resnet2d.ResNet2D(resnet2d.BasicBlock, (2, 2, 2, 2), widths=widths)
