"""Model selection never sees the test list: the validation set is held out of the training
list (UCF101/HMDB51/synthetic) or is a validation list (Kinetics/lists); resume keeps it;
``val_fraction`` 0 means no validation; ``stc evaluate`` says what selected the checkpoint."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
from train_helpers import tiny_config

from stc_ext.train import (
    ClassifyTask,
    ConfigError,
    EvalConfig,
    TrainConfig,
    evaluate,
    format_eval_table,
    format_train_summary,
    load_checkpoint,
    resolve_train_config,
    train,
)

ACTIONS = ["ApplyEyeMakeup", "Archery", "Basketball"]


def _ucf101_fixture(root: Path) -> tuple[Path, Path]:
    """UCF101 layout with empty video files (nothing is decoded here): split 1 tests groups
    1-7 and trains on 8-25, 4 or 5 clips per group."""
    videos, splits = root / "UCF-101", root / "ucfTrainTestlist"
    splits.mkdir(parents=True)
    (splits / "classInd.txt").write_text(
        "".join(f"{i} {a}\n" for i, a in enumerate(ACTIONS, start=1))
    )
    train_lines, test_lines = [], []
    for label, action in enumerate(ACTIONS, start=1):
        (videos / action).mkdir(parents=True)
        for g in range(1, 26):
            for c in range(1, 5 + g % 2):
                rel = f"{action}/v_{action}_g{g:02d}_c{c:02d}.avi"
                (videos / rel).touch()
                (test_lines if g <= 7 else train_lines).append(rel)
                if g > 7:
                    train_lines[-1] += f" {label}"
    (splits / "trainlist01.txt").write_text("\n".join(train_lines) + "\n")
    (splits / "testlist01.txt").write_text("\n".join(test_lines) + "\n")
    return videos, splits


def _names(dataset) -> set[str]:
    return {r.path.name for r in dataset.records}


def _group(name: str) -> str:
    return name.rsplit("_c", 1)[0]


def test_no_test_video_reaches_training_or_selection(tmp_path):
    videos, splits = _ucf101_fixture(tmp_path)
    config = TrainConfig(dataset="ucf101", root=str(videos), annotations=str(splits))
    task = ClassifyTask()
    data = task.build_data(config)
    test = {Path(line).name for line in (splits / "testlist01.txt").read_text().split()}
    listed = {
        Path(line.split()[0]).name for line in (splits / "trainlist01.txt").read_text().splitlines()
    }
    train, val = _names(data.train), _names(data.val)
    assert not (train | val) & test
    assert train | val == listed and not train & val
    assert not {_group(n) for n in train} & {_group(n) for n in val}  # group-wise disjoint
    assert {r.label for r in data.train.records} == {0, 1, 2}
    selection = task.checkpoint_extras({})["selection"]
    assert selection["source"] == "held-out" and selection["fraction"] == 0.1
    assert sorted(Path(v).name for v in selection["videos"]) == sorted(val)
    assert all(not v.startswith("/") for v in selection["videos"])  # relative to the root


def test_zero_fraction_and_val_every_zero_mean_no_validation(tmp_path):
    videos, splits = _ucf101_fixture(tmp_path)
    for change in ({"val_fraction": 0.0}, {"val_every": 0}):
        task = ClassifyTask()
        config = TrainConfig(dataset="ucf101", root=str(videos), annotations=str(splits), **change)
        data = task.build_data(config)
        listed = (splits / "trainlist01.txt").read_text().splitlines()
        assert data.val is None and len(data.train) == len(listed)
        assert task.selection["source"] == "none"
        assert "best.pt is the last epoch" in data.summary
    with pytest.raises(ConfigError, match=r"^val_fraction: must be in \[0, 1\)"):
        TrainConfig(val_fraction=1.0).validate()


def test_kinetics_and_lists_select_on_their_validation_list(tiny_data, tmp_path):
    # "Class/video label", labels 0-based as list files have them (the UCF101 list's 1-based
    # labels would make a class "0" without videos, which training refuses).
    lines = [
        f"{path} {int(label) - 1}"
        for path, label in (
            line.split()
            for line in (tiny_data / "splits" / "trainlist01.txt").read_text().splitlines()
        )
    ]
    (tmp_path / "train.txt").write_text("\n".join(lines[:-3]))
    (tmp_path / "val.txt").write_text("\n".join(lines[-3:]))
    task = ClassifyTask()
    config = TrainConfig(
        dataset="list",
        root=str(tiny_data / "videos"),
        annotations=str(tmp_path / "train.txt"),
        val_annotations=str(tmp_path / "val.txt"),
    )
    data = task.build_data(config)
    assert len(data.val) == 3 and len(data.train) == len(lines) - 3  # nothing held out
    assert task.selection["source"] == "list"
    assert task.selection["list"] == str(tmp_path / "val.txt")


def test_every_class_one_group_cannot_hold_anything_out(tmp_path):
    videos, splits = _ucf101_fixture(tmp_path)
    listed = (splits / "trainlist01.txt").read_text().splitlines()
    only = [line for line in listed if "_g08_" in line]
    (splits / "trainlist01.txt").write_text("\n".join(only) + "\n")
    config = TrainConfig(dataset="ucf101", root=str(videos), annotations=str(splits))
    with pytest.raises(ConfigError, match="^val_fraction: .*no group of clips can be held out"):
        ClassifyTask().build_data(config)


@pytest.fixture(scope="module")
def one_epoch(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("selected")
    train(tiny_config(tiny_data, out, epochs=1))
    return out


@pytest.mark.slow  # > 1 s idle; make test runs it
def test_resume_keeps_the_validation_split(one_epoch, tiny_data, tmp_path):
    saved = load_checkpoint(one_epoch / "last.pt")["selection"]
    assert saved["source"] == "held-out" and saved["num_videos"] == 12
    for change in ({"val_fraction": 0.0}, {"val_every": 0}):
        config = resolve_train_config({"resume": str(one_epoch / "last.pt"), "epochs": 2, **change})
        with pytest.raises(ConfigError, match="^resume: .*would change the validation set"):
            train(config)
    # A checkpoint from before the hold-out (validated on the test list) is refused too.
    old = torch.load(one_epoch / "last.pt", weights_only=True)
    del old["selection"]
    torch.save(old, tmp_path / "old.pt")
    config = resolve_train_config({"resume": str(tmp_path / "old.pt"), "epochs": 2})
    with pytest.raises(ConfigError, match="made before validation was held out"):
        train(config)
    # The same split resumes, and the continued run records the same one.
    out = tmp_path / "continued"
    out.mkdir()
    torch.save(torch.load(one_epoch / "last.pt", weights_only=True), out / "last.pt")
    config = resolve_train_config(
        {"resume": str(out / "last.pt"), "epochs": 2, "out_dir": str(out)}
    )
    assert train(config).epochs_done == 2
    assert load_checkpoint(out / "last.pt")["selection"] == saved


@pytest.mark.slow  # > 1 s idle; make test runs it
def test_without_validation_best_is_the_last_epoch(tiny_data, tmp_path):
    result = train(tiny_config(tiny_data, tmp_path, val_fraction=0.0, epochs=2))
    assert result.steps == 12  # 24 training videos (nothing held out) / batch 4, 2 epochs
    assert all(math.isnan(row["val_loss"]) for row in result.history)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == 2 and best["selection"]["source"] == "none"
    assert "no validation: best.pt is the last epoch (2)" in format_train_summary(result)


def test_evaluate_reports_what_selected_the_checkpoint(one_epoch, tmp_path, caplog):
    report = evaluate(
        EvalConfig(
            checkpoint=str(one_epoch / "best.pt"),
            workers=0,
            progress=False,
            out=str(tmp_path / "t.json"),
        )
    )
    selection = report.splits[0].selection
    assert selection["source"] == "held-out" and selection["fraction"] == 0.1
    assert selection["reported_videos_that_selected"] == 0 and "videos" not in selection
    assert "held out of the training list" in format_eval_table(report)
    # Reporting on the training list includes the videos that selected the checkpoint: said.
    with caplog.at_level(logging.WARNING, logger="stc_ext.train"):
        on_train = evaluate(
            EvalConfig(
                checkpoint=str(one_epoch / "best.pt"),
                subset="train",
                workers=0,
                progress=False,
                out=str(tmp_path / "train.json"),
            )
        )
    assert on_train.splits[0].selection["reported_videos_that_selected"] == 12
    assert "12 of the 24 videos reported on also selected this checkpoint" in caplog.text
