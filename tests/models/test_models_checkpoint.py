"""Importing kenshohara/3D-ResNets-PyTorch checkpoints into plain and STC models."""

from __future__ import annotations

import pytest
import torch
from resnet_spec import random_state_dict, resnet_spec

from stc_ext.models import CheckpointMismatchError, build, load_3d_resnets_checkpoint


def _hara_checkpoint(
    family: str, depth: int, shortcut_type: str, num_classes: int = 400, seed: int = 0
) -> dict:
    """What 3D-ResNets-PyTorch's train.py saves: a DataParallel state_dict (``module.``
    prefix, no ``num_batches_tracked`` in the PyTorch 0.3-era Kinetics files) plus metadata."""
    spec = resnet_spec(family, depth, num_classes, dims=3, shortcut_type=shortcut_type)
    state = random_state_dict(spec, seed)
    return {
        "epoch": 200,
        "arch": f"{family}-{depth}",
        "state_dict": {f"module.{k}": v for k, v in state.items()},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
    }


@pytest.mark.slow  # > 5 s
@pytest.mark.parametrize(
    ("name", "family", "depth", "shortcut_type", "from_file"),
    [
        ("resnet3d_10", "resnet", 10, "A", True),
        ("stc_resnet3d_10", "resnet", 10, "A", True),
        ("stc_resnext3d_50", "resnext", 50, "B", False),
    ],
)
def test_hara_checkpoint_loads(tmp_path, name, family, depth, shortcut_type, from_file):
    checkpoint = _hara_checkpoint(family, depth, shortcut_type)
    source = checkpoint
    if from_file:
        source = tmp_path / "kinetics.pth"
        torch.save(checkpoint, source)
    torch.manual_seed(1)
    model = build(name, 400, frames=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    report = load_3d_resnets_checkpoint(model, source)

    assert report.ok and not report.missing and not report.unexpected
    after = model.state_dict()
    for key, value in checkpoint["state_dict"].items():
        torch.testing.assert_close(after[key.removeprefix("module.")], value, rtol=0, atol=0)
    stc_keys = [k for k in after if ".stc." in k]
    assert sorted(report.kept_fresh) == sorted(stc_keys)
    assert bool(stc_keys) == name.startswith("stc_")
    for key in stc_keys:  # STC blocks keep their fresh initialisation
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)
    assert report.defaulted and all(k.endswith("num_batches_tracked") for k in report.defaulted)
    assert len(report.loaded) == len(checkpoint["state_dict"])


def test_round_trip_gives_the_same_network(tmp_path):
    torch.manual_seed(0)
    source = build("resnet3d_10", 400, frames=8, size=32).eval()
    with torch.no_grad():  # non-trivial BN statistics
        for module in source.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    saved = {
        "arch": "resnet-10",
        "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
    }
    torch.save(saved, tmp_path / "ckpt.pth")
    torch.manual_seed(1)
    target = build("resnet3d_10", 400, frames=8, size=32).eval()
    x = torch.randn(2, 3, 8, 32, 32)
    assert not torch.allclose(target(x), source(x))
    report = load_3d_resnets_checkpoint(target, tmp_path / "ckpt.pth")
    assert report.ok and not report.defaulted
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_mismatch_names_missing_and_unexpected_keys():
    checkpoint = _hara_checkpoint("resnet", 10, "A")
    del checkpoint["state_dict"]["module.layer3.0.bn2.running_var"]
    checkpoint["state_dict"]["module.layer5.0.conv1.weight"] = torch.zeros(1)
    model = build("stc_resnet3d_10", 400)
    with pytest.raises(CheckpointMismatchError) as info:
        load_3d_resnets_checkpoint(model, checkpoint)
    message = str(info.value)
    assert "missing from the checkpoint (1): layer3.0.bn2.running_var" in message
    assert "unexpected in the checkpoint (1): layer5.0.conv1.weight" in message
    assert "'resnet-10'" in message
    assert info.value.report.missing == ["layer3.0.bn2.running_var"]


def test_mismatch_shortcut_type_gets_a_hint():
    checkpoint = _hara_checkpoint("resnet", 10, "B")
    model = build("resnet3d_10", 400)  # shortcut A by default
    with pytest.raises(
        CheckpointMismatchError,
        match=r"(?s)unexpected.*downsample.*hint: .*"
        r"shortcut type.*'A'",
    ):
        load_3d_resnets_checkpoint(model, checkpoint)
    report = load_3d_resnets_checkpoint(build("resnet3d_10", 400, shortcut_type="B"), checkpoint)
    assert report.ok


def test_other_class_count_needs_ignore_or_non_strict():
    checkpoint = _hara_checkpoint("resnet", 10, "A", num_classes=400)
    model = build("resnet3d_10", 101)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"(?s)fc.weight \(400, 512\) vs model "
        r"\(101.*hint: .*ignore=\('fc.',\)",
    ):
        load_3d_resnets_checkpoint(model, checkpoint)
    fc_before = model.fc.weight.clone()
    report = load_3d_resnets_checkpoint(model, checkpoint, ignore=("fc.",))
    assert report.ok and report.ignored == ["fc.weight", "fc.bias"]
    torch.testing.assert_close(model.fc.weight, fc_before, rtol=0, atol=0)
    torch.testing.assert_close(
        model.conv1.weight, checkpoint["state_dict"]["module.conv1.weight"], rtol=0, atol=0
    )
    report = load_3d_resnets_checkpoint(build("resnet3d_10", 101), checkpoint, strict=False)
    assert not report.ok and set(report.shape_mismatch) == {"fc.weight", "fc.bias"}
