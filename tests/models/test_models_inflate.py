"""I3D-style inflation of 2D ResNet weights into 3D ResNets."""

from __future__ import annotations

import pytest
import torch

from stc_ext.models import build, inflate_from_2d, resnet2d
from stc_ext.models.inflate import inflate_tensor


def _randomise_bn(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN affine parameters and statistics, so copying them is actually tested."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                module.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(c, generator=gen) + 0.5)


def test_inflate_tensor_sums_back_to_the_2d_kernel():
    torch.manual_seed(0)
    w = torch.randn(8, 3, 7, 7)
    w3 = inflate_tensor(w, 5)
    assert w3.shape == (8, 3, 5, 7, 7)
    torch.testing.assert_close(w3.sum(dim=2), w)
    torch.testing.assert_close(w3[:, :, 2], w / 5)


@pytest.fixture(scope="module")
def teacher50() -> torch.nn.Module:
    torch.manual_seed(0)
    model = resnet2d.resnet50().double().eval()
    _randomise_bn(model, seed=1)
    return model


def _uninitialised_3d(**kwargs) -> torch.nn.Module:
    # Skips the (slow) random initialisation: inflation must overwrite every tensor anyway,
    # which the first test asserts through an empty ``not_inflated``.
    with torch.device("meta"):
        model = build("resnet3d_50", 1000, frames=4, size=32, **kwargs)
    return model.to(torch.float64).to_empty(device="cpu").eval()


@pytest.fixture(scope="module")
def inflated50(teacher50) -> torch.nn.Module:
    model3d = _uninitialised_3d(temporal_padding="replicate")
    report = inflate_from_2d(model3d, teacher50)
    assert not report.not_inflated and not report.unused
    convs = [k for k, v in model3d.state_dict().items() if v.dim() == 5]
    assert sorted(report.inflated) == sorted(convs)
    assert len(report.copied) == len(model3d.state_dict()) - len(convs)
    return model3d


def _static_video(frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(2)
    frame = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    return frame, frame.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()


@pytest.mark.slow  # > 5 s
def test_static_video_gives_the_2d_features(teacher50, inflated50):
    frame, video = _static_video(4)
    with torch.no_grad():
        expected = teacher50.forward_features(frame)
        torch.testing.assert_close(
            inflated50.forward_features(video), expected, rtol=1e-9, atol=1e-10
        )
        torch.testing.assert_close(inflated50(video), teacher50(frame), rtol=1e-9, atol=1e-10)
        # A moving video is not a fixed point: the check above is not vacuous.
        moving = video + 0.5 * torch.randn_like(video)
        assert (inflated50.forward_features(moving) - expected).abs().max() > 1e-3


@pytest.mark.slow  # > 5 s
def test_zero_temporal_padding_breaks_the_static_video_property(teacher50, inflated50):
    # Why temporal_padding="replicate" exists: with zeros, the clip's end frames see fewer
    # non-zero taps of the inflated kernels, so the pooled features move away.
    zero_padded = _uninitialised_3d()
    zero_padded.load_state_dict(inflated50.state_dict())  # same keys, same weights
    frame, video = _static_video(4)
    with torch.no_grad():
        diff = zero_padded.forward_features(video) - teacher50.forward_features(frame)
    assert diff.abs().max() > 1e-3


def test_report_lists_what_could_not_be_inflated(tmp_path):
    torch.manual_seed(0)
    teacher = resnet2d.resnet18()
    torch.save(teacher.state_dict(), tmp_path / "resnet18.pth")
    model3d = build("stc_resnet3d_18", 400, frames=16)  # shortcut A: no downsample convs
    stc_before = {k: v.clone() for k, v in model3d.state_dict().items() if ".stc." in k}

    report = inflate_from_2d(model3d, tmp_path / "resnet18.pth")

    assert report.not_inflated["fc.weight"] == "shape (400, 512) vs 2D (1000, 512)"
    assert {k for k, why in report.not_inflated.items() if why == "no 2D counterpart"} == set(
        stc_before
    )
    assert set(report.not_inflated) == set(stc_before) | {"fc.weight", "fc.bias"}
    assert report.unused and all(".downsample." in k for k in report.unused)
    assert len(report.unused) == 3 * 6  # layer2..4: conv + BN (weight, bias, mean, var, count)
    after = model3d.state_dict()
    for key, value in stc_before.items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)
    torch.testing.assert_close(
        after["layer1.0.conv1.weight"].sum(dim=2), teacher.layer1[0].conv1.weight.detach()
    )
    torch.testing.assert_close(after["bn1.running_var"], teacher.bn1.running_var)
    assert f"not inflated {len(report.not_inflated)}," in str(report)
    assert "shapes differ: fc.weight (shape (400, 512) vs 2D (1000, 512))" in str(report)
    assert "no 2D counterpart (64): layer1.0.stc." in str(report)
