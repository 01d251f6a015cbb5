"""`stc teacher` and `stc inflate`: the files they write feed `stc transfer` / `stc train`."""

from __future__ import annotations

import torch

from stc_ext import models
from stc_ext.cli import main
from stc_ext.models.inflate import inflate_tensor
from stc_ext.train import load_init_weights

TEACHER_FLAGS = [
    "--depth",
    "18",
    "--widths",
    "8,8,16,16",
    "--images",
    "48",
    "--test-images",
    "16",
    "--image-size",
    "32",
    "--short-side",
    "32",
    "--crop",
    "28",
    "--steps",
    "3",
    "--batch-size",
    "8",
    "--no-progress",
    "--threads",
    "1",
]


def test_teacher_then_inflate_then_init(tmp_path, capsys):
    teacher = tmp_path / "teacher.pt"
    assert main(["teacher", "--out", str(teacher), *TEACHER_FLAGS]) == 0
    assert "wrote" in capsys.readouterr().out and teacher.is_file()
    inflated = tmp_path / "inflated.pt"
    code = main(
        [
            "inflate",
            "--source",
            str(teacher),
            "--model",
            "stc_resnet3d_18",
            "--widths",
            "8,8,16,16",
            "--frames",
            "4",
            "--size",
            "32",
            "--out",
            str(inflated),
        ]
    )
    assert code == 0, capsys.readouterr().err
    model = models.build(
        "stc_resnet3d_18", 5, frames=4, size=32, widths=(8, 8, 16, 16), shortcut_type="B"
    )
    report = load_init_weights(model, inflated, frames=4)
    fresh = report["kept_fresh"]
    assert {"fc.weight", "fc.bias"} <= set(fresh)
    assert all(k.startswith("fc.") or ".stc." in k for k in fresh)
    state_2d = torch.load(teacher, weights_only=True)["state_dict"]
    for key in ("conv1.weight", "layer2.0.downsample.0.weight", "layer4.1.conv2.weight"):
        kernel = model.state_dict()[key]
        torch.testing.assert_close(kernel, inflate_tensor(state_2d[key], kernel.shape[2]))


def test_inflate_refuses_a_mismatched_structure(tmp_path, capsys):
    teacher = tmp_path / "teacher.pt"
    assert main(["teacher", "--out", str(teacher), *TEACHER_FLAGS]) == 0
    code = main(
        [
            "inflate",
            "--source",
            str(teacher),
            "--model",
            "resnet3d_18",
            "--frames",
            "4",
            "--size",
            "32",
            "--out",
            str(tmp_path / "x.pt"),
        ]
    )
    assert code == 1 and "does not fit" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
