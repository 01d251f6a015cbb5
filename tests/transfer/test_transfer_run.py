"""`transfer` / `stc transfer`: training engineering, the exported init, exact resume."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from run_helpers import stop_at
from transfer_helpers import make_teacher_file, tiny_transfer_config

from stc_ext import models
from stc_ext.cli import main
from stc_ext.train import (
    ConfigError,
    EvalConfig,
    TrainConfig,
    Trainer,
    evaluate,
    load_checkpoint,
    load_init_weights,
    resolve_train_config,
    train,
)
from stc_ext.transfer import TransferTask, resolve_transfer_config, transfer


@pytest.fixture(scope="module")
def uninterrupted(unlabeled_videos, teacher_file, tmp_path_factory):
    """2 epochs x 4 steps (9 training videos -> 18 pairs, batch 4), dropout on."""
    out = tmp_path_factory.mktemp("transfer")
    trainer = Trainer(
        tiny_transfer_config(unlabeled_videos, teacher_file, out, dropout=0.5), TransferTask()
    )
    trainer.setup()
    initial = {k: v.clone() for k, v in trainer.model.student.state_dict().items()}
    result = trainer.fit()
    return out, result, trainer, initial


def test_run_trains_the_student_and_reports_held_out_pairs(uninterrupted, teacher_file):
    out, result, trainer, initial = uninterrupted
    assert not result.interrupted and result.steps == 8 and len(result.history) == 2
    assert result.task == "transfer" and result.classes == ["different", "same"]
    assert all(0.0 <= row["val_top1"] <= 1.0 for row in result.history)  # 3 videos, 6 pairs
    # The teacher is exactly the file's (weights and BN statistics); the student moved.
    saved_teacher = torch.load(teacher_file, weights_only=True)
    for key, value in trainer.model.teacher.state_dict().items():
        assert torch.equal(value, saved_teacher[key]), key
    student = trainer.model.student.state_dict()
    changed = [k for k in initial if not torch.equal(initial[k], student[k])]
    assert len(changed) > len(initial) // 2
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["task"] == "transfer" and len(checkpoint["teacher_sha256"]) == 64
    assert not any(k.startswith("teacher.") for k in checkpoint["model"])
    # The student's init weights are the model state's own tensors: stored once in the file.
    init = checkpoint["init_model"]
    assert "fc.weight" not in init and len(init) == len(student) - 2
    assert all(
        init[k].untyped_storage().data_ptr()
        == checkpoint["model"]["student." + k].untyped_storage().data_ptr()
        for k in init
    )
    for name in ("student.pt", "best.pt", "config.json", "metrics.csv"):
        assert (out / name).is_file(), name


@pytest.mark.slow  # > 1 s idle; make test runs it
def test_mid_epoch_stop_and_resume_is_bitwise_exact(
    uninterrupted, unlabeled_videos, teacher_file, tmp_path
):
    reference = load_checkpoint(uninterrupted[0] / "last.pt")
    out = tmp_path / "run"
    first = transfer(
        tiny_transfer_config(unlabeled_videos, teacher_file, out, dropout=0.5),
        on_step=stop_at(epoch=0, step=2),
    )
    assert first.interrupted and first.steps == 3
    assert load_checkpoint(out / "last.pt")["batches_done"] == 6
    config = resolve_transfer_config({"resume": str(out / "last.pt"), "workers": 1})
    assert config.dropout == 0.5 and config.teacher == "resnet18"
    second = transfer(config)
    assert not second.interrupted and second.steps == 8
    resumed = load_checkpoint(out / "last.pt")
    assert reference["model"].keys() == resumed["model"].keys()
    assert [
        k for k in reference["model"] if not torch.equal(reference["model"][k], resumed["model"][k])
    ] == []
    for a, b in zip(reference["history"], resumed["history"], strict=True):
        for key in ("train_loss", "train_top1", "val_loss", "val_top1", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-12), key
    exported = torch.load(out / "student.pt", weights_only=True)["model"]
    expected = torch.load(uninterrupted[0] / "student.pt", weights_only=True)["model"]
    assert all(torch.equal(exported[k], expected[k]) for k in expected)


@pytest.mark.parametrize("source", ["student.pt", "last.pt"])
def test_the_transferred_student_initialises_fine_tuning(uninterrupted, source):
    out = uninterrupted[0]
    student = torch.load(out / "student.pt", weights_only=True)
    assert student["config"]["model"] == "stc_resnet3d_10" and "fc.weight" not in student["model"]
    model = models.build("stc_resnet3d_10", 5, frames=4, size=32, widths=(8, 8, 8, 8))
    fc_before = model.fc.weight.clone()
    report = load_init_weights(model, out / source, frames=4)
    assert sorted(report["kept_fresh"]) == ["fc.bias", "fc.weight"]
    assert len(report["loaded"]) == len(student["model"])
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in student["model"].items())
    assert torch.equal(model.fc.weight, fc_before)


def test_stc_train_fine_tunes_from_the_export(uninterrupted, tiny_target, tmp_path, capsys):
    code = main(
        [
            "train",
            "--dataset",
            "synthetic",
            "--root",
            str(tiny_target),
            "--model",
            "stc_resnet3d_10",
            "--widths",
            "8,8,8,8",
            "--frames",
            "4",
            "--size",
            "32",
            "--short-side",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--no-progress",
            "--no-tensorboard",
            "--threads",
            "1",
            "--init",
            str(uninterrupted[0] / "student.pt"),
            "--val-fraction",  # each class is one group of clips: nothing to hold out
            "0",
            "--out-dir",
            str(tmp_path / "finetune"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "finished: 1/1 epochs" in capsys.readouterr().out


def test_cli_transfer_runs_and_prints_pair_accuracy(
    unlabeled_videos, teacher_file, tmp_path, capsys
):
    code = main(
        [
            "transfer",
            "--videos",
            str(unlabeled_videos),
            "--teacher",
            "resnet18",
            "--teacher-weights",
            str(teacher_file),
            "--teacher-widths",
            "8,8,16,16",
            "--model",
            "resnet3d_10",
            "--widths",
            "8,8,8,8",
            "--frames",
            "4",
            "--teacher-frames",
            "2",
            "--size",
            "32",
            "--short-side",
            "32",
            "--embed-dim",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            "6",
            "--workers",
            "0",
            "--no-progress",
            "--no-tensorboard",
            "--threads",
            "1",
            "--out-dir",
            str(tmp_path / "cli"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "held-out pair acc" in captured.out and "student init:" in captured.out
    assert (tmp_path / "cli" / "student.pt").is_file()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"videos": None}, "videos: is required"),
        ({"teacher_weights": None}, "teacher_weights: is required"),
        (
            {"teacher_weights": "/nonexistent/teacher.pt"},
            "teacher_weights: /nonexistent/teacher.pt: not found",
        ),
        ({"val_fraction": 1.5}, r"val_fraction: must be in \[0, 1\), got 1.5"),
        ({"teacher_frames": 0}, "teacher_frames: must be positive, got 0"),
        ({"teacher_widths": [8, 8, 8, 8]}, "shape"),
        ({"batch_size": 40, "micro_batch_size": None}, "batch_size: 40 is larger than the 18"),
    ],
)
def test_configuration_errors_are_named(unlabeled_videos, teacher_file, tmp_path, changes, message):
    config = tiny_transfer_config(unlabeled_videos, teacher_file, tmp_path / "bad", **changes)
    with pytest.raises(ConfigError, match=message):
        transfer(config)


def test_resume_is_refused_with_another_teacher_or_task(uninterrupted, tmp_path):
    last = uninterrupted[0] / "last.pt"
    other_teacher = make_teacher_file(tmp_path / "other.pt", seed=1)
    config = resolve_transfer_config(
        {"resume": str(last), "teacher_weights": str(other_teacher), "out_dir": str(tmp_path / "x")}
    )
    with pytest.raises(ConfigError, match="another teacher"):
        transfer(config)
    with pytest.raises(ConfigError, match="'transfer' run"):
        resolve_train_config({"resume": str(last)})
    with pytest.raises(ConfigError, match="'transfer' run"):
        train(TrainConfig(resume=str(last), out_dir=str(tmp_path / "y")))
    with pytest.raises(ConfigError, match="not a classifier"):
        evaluate(EvalConfig(checkpoint=str(last), progress=False))


@pytest.mark.slow  # a fresh interpreter imports torch
def test_init_from_a_transfer_checkpoint_needs_nothing_from_the_transfer_package(uninterrupted):
    # train never imports transfer: the checkpoint itself says which weights initialise.
    script = (
        "import sys, torch\n"
        "from stc_ext import models\n"
        "from stc_ext.train import load_init_weights\n"
        "model = models.build('stc_resnet3d_10', 5, frames=4, size=32, widths=(8, 8, 8, 8))\n"
        f"report = load_init_weights(model, {str(uninterrupted[0] / 'last.pt')!r}, frames=4)\n"
        "assert sorted(report['kept_fresh']) == ['fc.bias', 'fc.weight'], report\n"
        "assert 'stc_ext.transfer' not in sys.modules, 'stc_ext.train imported stc_ext.transfer'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_init_from_an_older_transfer_checkpoint_points_to_its_student(uninterrupted, tmp_path):
    old = torch.load(uninterrupted[0] / "last.pt", weights_only=True)
    del old["init_model"]  # as written before checkpoints carried their init weights
    torch.save(old, tmp_path / "old.pt")
    model = models.build("stc_resnet3d_10", 5, frames=4, size=32, widths=(8, 8, 8, 8))
    with pytest.raises(ConfigError, match="^init: .*predates .* use the file its run exported"):
        load_init_weights(model, tmp_path / "old.pt", frames=4)
