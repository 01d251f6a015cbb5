"""Every recipe in python/ runs end to end at tiny scale (synthetic data in each dataset's
layout, 8-wide nets, 4-frame 32px clips, one epoch) and prints its table, so none rots."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from recipe_helpers import TEACHER_WIDTHS, TINY_EVAL, TINY_TRAIN

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("in_process")]

COMMON = ["--extra", TINY_TRAIN + " --frames 4", "--eval-extra", TINY_EVAL]
COMMON_NO_FRAMES = ["--extra", TINY_TRAIN, "--eval-extra", TINY_EVAL]


def _ucf(data) -> list[str]:
    return ["--root", str(data["videos"]), "--annotations", str(data["splits"])]


def _kinetics(data) -> list[str]:
    k = data["kinetics"]
    return [
        "--kinetics-root", str(k / "train"), "--kinetics-train-csv", str(k / "train.csv"),
        "--kinetics-val-root", str(k / "val"), "--kinetics-val-csv", str(k / "val.csv"),
    ]  # fmt: skip


def _selection(eval_json: Path) -> dict:
    return json.loads(eval_json.read_text())["splits"][0]["selection"]


def test_table3_scratch(recipe_data, tmp_path, capsys):
    recipe = importlib.import_module("ucf101_scratch")
    argv = [*_ucf(recipe_data), "--model", "stc_resnet3d_10", "--frames", "4", "--splits", "1,2"]
    assert recipe.main([*argv, "--out", str(tmp_path), *COMMON_NO_FRAMES]) == 0
    out = capsys.readouterr().out
    assert "mean top-1 over splits [1, 2]" in out and "held out" in out
    eval_json = tmp_path / "ucf101_scratch_stc_resnet3d_10_f4" / "eval.json"
    assert _selection(eval_json)["source"] == "held-out"
    assert [s["split"] for s in json.loads(eval_json.read_text())["splits"]] == [1, 2]


def test_table5_and_table6(recipe_data, tmp_path, capsys):
    table5 = importlib.import_module("table5_branches")
    argv = [*_ucf(recipe_data), "--model", "stc_resnet3d_10", "--out", str(tmp_path), *COMMON]
    assert table5.main(argv) == 0
    assert "TCB + SCB" in capsys.readouterr().out
    table6 = importlib.import_module("table6_stride")
    assert table6.main([*argv, "--strides", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "stride 1" in out and "stride 2" in out and "47.9" in out


def test_table5_synthetic_with_seeds(tmp_path, capsys):
    table5 = importlib.import_module("table5_branches")
    argv = ["--synthetic", "--classes", "2", "--videos-per-class", "9", "--seeds", "0,1"]
    assert table5.main([*argv, "--out", str(tmp_path), *COMMON]) == 0
    out = capsys.readouterr().out
    assert "none (plain 3D ResNet)" in out and "TCB + SCB" in out and "(n=2)" in out
    root = tmp_path / "table5_synthetic"
    for row in ("none", "scb", "tcb", "stc"):
        tops = []
        for seed in (0, 1):
            eval_json = root / row / f"seed{seed}" / "eval.json"
            assert _selection(eval_json)["source"] == "held-out"
            tops.append(json.loads(eval_json.read_text())["average"]["top1"])
        # The printed per-seed figures are the reports'.
        assert " / ".join(f"{100 * t:.1f}" for t in tops) in out


def test_table4_and_table8_share_the_kinetics_runs(recipe_data, tmp_path, capsys):
    table4 = importlib.import_module("table4_frames")
    hmdb = [
        "--hmdb51-root",
        str(recipe_data["videos"]),
        "--hmdb51-annotations",
        str(recipe_data["hmdb51"]),
    ]
    ucf = [
        "--ucf101-root",
        str(recipe_data["videos"]),
        "--ucf101-annotations",
        str(recipe_data["splits"]),
    ]
    argv = [*_kinetics(recipe_data), *ucf, *hmdb, "--models", "stc_resnet3d_10", "--frames", "4"]
    assert table4.main([*argv, "--splits", "1", "--out", str(tmp_path), *COMMON_NO_FRAMES]) == 0
    out = capsys.readouterr().out
    assert "Table 4" in out and "stc_resnet3d_10" in out
    kinetics = tmp_path / "kinetics" / "stc_resnet3d_10_f4"
    assert _kinetics_selection(kinetics)["source"] == "list"
    for dataset in ("ucf101", "hmdb51"):
        eval_json = tmp_path / f"{dataset}_from_kinetics" / "stc_resnet3d_10_f4" / "eval.json"
        assert _selection(eval_json)["source"] == "held-out"
    table8 = importlib.import_module("table8_kinetics")
    argv = [*_kinetics(recipe_data), "--rows", "stc_resnet3d_10:4", "--out", str(tmp_path)]
    assert table8.main([*argv, *COMMON_NO_FRAMES]) == 0
    out = capsys.readouterr().out
    assert "Table 8" in out and "chosen on this same validation list" in out
    selection = _selection(tmp_path / "table8" / "stc_resnet3d_10_f4" / "eval_val.json")
    assert selection["source"] == "list" and selection["reported_videos_that_selected"] == 2


def _kinetics_selection(run_dir: Path) -> dict:
    from stc_ext.train import load_checkpoint

    return load_checkpoint(run_dir / "best.pt")["selection"]


def test_finetune_from_a_kinetics_checkpoint(recipe_data, tmp_path, capsys):
    # Table 4's fine-tuning step alone, from given Kinetics weights (a fresh Kinetics run).
    recipe = importlib.import_module("finetune_from_kinetics")
    argv = [*_kinetics(recipe_data), *_ucf(recipe_data), "--model", "stc_resnet3d_10"]
    argv += ["--frames", "4", "--splits", "1", "--out", str(tmp_path), *COMMON_NO_FRAMES]
    assert recipe.main(argv) == 0
    assert "fine-tuned from Kinetics" in capsys.readouterr().out


def test_table7_small(recipe_data, tmp_path, capsys):
    recipe = importlib.import_module("table7_transfer")
    argv = [
        "--teacher-weights", str(recipe_data["teacher_stc"]), "--widths", "8,8,8,8",
        "--classes", "2", "--videos-per-class", "9", "--unlabeled-per-class", "2",
        "--out", str(tmp_path), "--extra", TINY_TRAIN + " --frames 4",
    ]  # fmt: skip
    assert recipe.main(argv) == 0
    out = capsys.readouterr().out
    assert "STC-ResNet-Transferred" in out
    eval_json = tmp_path / "table7" / "3D-ResNet-Baseline" / "eval.json"
    assert _selection(eval_json)["source"] == "held-out"


def test_table7_paper_scale_recipe_at_tiny_scale(recipe_data, tmp_path, capsys):
    recipe = importlib.import_module("table7_paper")
    argv = [
        "--teacher-weights", str(recipe_data["teacher_torchvision"]),
        "--videos", str(recipe_data["videos"]),
        "--ucf101-root", str(recipe_data["videos"]),
        "--ucf101-annotations", str(recipe_data["splits"]),
        "--datasets", "ucf101", "--splits", "1", "--depth", "18",
        "--widths", ",".join(map(str, TEACHER_WIDTHS)), "--frames", "4", "--out", str(tmp_path),
        "--extra", TINY_TRAIN, "--transfer-extra", "--teacher-frames 4 --embed-dim 16",
        "--eval-extra", TINY_EVAL,
    ]  # fmt: skip
    assert recipe.main(argv) == 0
    out = capsys.readouterr().out
    for row in ("3D-ResNet-Baseline", "3D-ResNet-Inflation", "STC-ResNet-Inflation"):
        assert row in out
    assert "equal its Kinetics-pretrained figures" in out
