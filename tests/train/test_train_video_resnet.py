"""`stc train --init FILE` fine-tunes torchvision's video ResNets (plain and STC) from a
torchvision-keyed weights file, like the other models."""

from __future__ import annotations

import pytest
import torch
from train_helpers import tiny_config

from stc_ext import models
from stc_ext.train import train

NARROW = [8, 8, 8, 8]


@pytest.mark.slow  # > 1 s idle; make test runs it
@pytest.mark.parametrize("name", ["r2plus1d_18", "stc_r3d_18"])
def test_train_init_from_a_torchvision_file(name, tiny_data, tmp_path):
    torch.manual_seed(0)
    # What torch.save(torchvision_model.state_dict()) writes: bare keys, a 400-way classifier.
    source = models.build(name.removeprefix("stc_"), 400, frames=4, size=32, widths=NARROW)
    torch.save(source.state_dict(), tmp_path / "kinetics.pth")
    config = tiny_config(
        tiny_data,
        tmp_path / "run",
        model=name,
        widths=NARROW,
        init=str(tmp_path / "kinetics.pth"),
        epochs=1,
        lr=1e-9,  # lr ~ 0: the trained weights are still the loaded ones
    )
    result = train(config)
    report = result.init_report
    assert report["reinitialised"] == ["fc.weight", "fc.bias"]  # 400 -> 3 classes
    assert bool(report["kept_fresh"]) == name.startswith("stc_")
    assert all(".stc." in k for k in report["kept_fresh"])
    trained = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    assert trained["fc.weight"].shape == (3, 8)
    for key, value in source.state_dict().items():
        if not key.startswith("fc.") and value.is_floating_point() and "running" not in key:
            torch.testing.assert_close(trained[key], value, rtol=0, atol=1e-6)
