"""Checkpoints hold absolute paths: evaluate and resume work from any directory, and moved
data is named with the way to point at it."""

from __future__ import annotations

import os

import pytest
from train_helpers import TINY_FLAGS, copy_dataset

from stc_ext.cli import main
from stc_ext.train import load_checkpoint


@pytest.mark.slow  # > 5 s
def test_a_run_with_relative_paths_works_from_elsewhere(tiny_data, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    copy_dataset(tiny_data, work / "data")
    monkeypatch.chdir(work)
    train = ["train", *TINY_FLAGS, "--root", "data", "--out-dir", "run", "--epochs", "1"]
    assert main(train) == 0
    saved = load_checkpoint(work / "run" / "last.pt")["config"]
    assert saved["root"] == str(work / "data") and saved["out_dir"] == str(work / "run")

    monkeypatch.chdir(tmp_path)  # another working directory
    best, last = str(work / "run" / "best.pt"), str(work / "run" / "last.pt")
    evaluate = ["evaluate", "--checkpoint", best, "--workers", "0", "--no-progress"]
    assert main(evaluate) == 0
    assert main(["train", "--resume", last, "--epochs", "2"]) == 0
    capsys.readouterr()

    # The data moves: the recorded path is named, and --root points at the new place.
    os.rename(work / "data", tmp_path / "moved")
    assert main(evaluate) == 1
    err = capsys.readouterr().err
    assert f"--root: synthetic videos not found: {work / 'data'} (the path {best} recorded" in err
    assert main([*evaluate, "--root", "moved"]) == 0
    assert main(["train", "--resume", last, "--epochs", "3"]) == 1
    assert f"(the path {last} recorded; if the data moved, give root" in capsys.readouterr().err
    assert main(["train", "--resume", last, "--epochs", "3", "--root", "moved"]) == 0
    resumed = load_checkpoint(last)
    assert resumed["config"]["root"] == str(tmp_path / "moved")
    assert resumed["overrides"][-1]["changes"]["root"] == [
        str(work / "data"),
        str(tmp_path / "moved"),
    ]
