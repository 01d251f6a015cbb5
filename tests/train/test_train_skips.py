"""Undecodable videos are counted, named and limited; a run never trains on nothing or on a
non-finite loss.

The broken files are real: a zero-byte .mp4, an .mp4 cut in half and a text file renamed
.avi, among good synthetic videos.
"""

from __future__ import annotations

import csv
import json
import logging

import pytest
import torch
from train_helpers import TINY_FLAGS, break_videos, copy_dataset, tiny_config

from stc_ext.cli import main
from stc_ext.train import TrainingError, format_train_summary, load_checkpoint, train
from stc_ext.train.config import ConfigError


def _config(data, out, **changes):
    # 48 px keeps the last stage's feature map above one value per channel, so that a
    # micro-batch shrunk to one clip by skips can still train (BatchNorm).
    return tiny_config(data, out, size=48, short_side=48, **changes)


@pytest.fixture(scope="module")
def broken_data(tiny_data, tmp_path_factory):
    """The tiny dataset with 3 of its 12 training videos broken (zero bytes, half, text);
    its 12 validation videos (held out of the training list) are good."""
    data = copy_dataset(tiny_data, tmp_path_factory.mktemp("broken") / "data")
    return data, break_videos(data, 3)


def test_skipped_videos_are_counted_named_and_kept_in_the_checkpoint(broken_data, tmp_path, caplog):
    data, broken = broken_data
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="stc_ext"):
        result = train(_config(data, out, epochs=2, max_skipped_fraction=0.5))
    names = {str(p) for p in broken}
    # Console: the count and the first names, per epoch.
    epochs_warned = [r.getMessage() for r in caplog.records if "skipped undecodable" in r.message]
    assert len(epochs_warned) == 2
    assert all("3 of 12 training videos" in m and str(broken[0]) in m for m in epochs_warned)
    # The log: a count per epoch.
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["train_skipped"] for r in rows] == ["3", "3"]
    assert [json.loads(line)["val_skipped"] for line in (out / "metrics.jsonl").open()] == [0, 0]
    # The file lists all of them, with the epochs they were skipped in.
    listed = list(csv.DictReader((out / "skipped.tsv").open(), delimiter="\t"))
    assert {r["path"] for r in listed} == names
    assert all(r["split"] == "train" and r["epochs"] == "1,2" and r["reason"] for r in listed)
    # The checkpoint keeps them.
    saved = load_checkpoint(out / "last.pt")
    assert set(saved["skipped"]["run"]["train"]) == names
    assert [row["train_skipped"] for row in saved["history"]] == [3, 3]
    # The result and its summary.
    assert result.skipped == {"train": 3, "val": 0}
    assert "skipped as undecodable over the run: 3 training videos" in format_train_summary(result)


def test_too_many_undecodable_videos_stop_the_run(broken_data, tmp_path):
    data, broken = broken_data
    with pytest.raises(TrainingError) as info:
        train(_config(data, tmp_path / "run", epochs=1))  # the default allows 5%: none of 12
    message = str(info.value)
    assert "training videos could not be decoded in epoch 1" in message
    assert "max_skipped_fraction (0.05" in message
    assert any(str(p) in message for p in broken)
    assert not (tmp_path / "run" / "best.pt").exists()


def test_a_step_without_any_decodable_video_stops_the_run(tiny_data, tmp_path):
    data = copy_dataset(tiny_data, tmp_path / "data")
    break_videos(data, split="all")  # every video of the training list
    with pytest.raises(TrainingError, match=r"step 1 \(step 1 of epoch 1\) has no sample"):
        train(_config(data, tmp_path / "run", epochs=2, max_skipped_fraction=1.0))
    assert not (tmp_path / "run" / "best.pt").exists()
    assert not (tmp_path / "run" / "last.pt").exists()


def test_every_undecodable_video_stops_the_command(tiny_data, tmp_path, capsys):
    data = copy_dataset(tiny_data, tmp_path / "data")
    break_videos(data, split="all")
    out = tmp_path / "run"
    flags = [*TINY_FLAGS, "--size", "48", "--short-side", "48", "--epochs", "2"]
    assert main(["train", *flags, "--root", str(data), "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "\nstc train: error:" in err
    assert "none of its 4 videos could be decoded" in err
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()


def test_undecodable_validation_videos_are_counted_and_limited(tiny_data, tmp_path):
    data = copy_dataset(tiny_data, tmp_path / "data")
    broken = break_videos(data, 4, split="val")  # 4 of the 12 held-out videos
    result = train(_config(data, tmp_path / "run", epochs=1, max_skipped_fraction=0.4))
    assert result.history[0]["val_skipped"] == 4 and result.skipped["val"] == 4
    assert result.history[0]["train_skipped"] == 0
    with pytest.raises(TrainingError, match="4 of the 12 validation videos could not be decoded"):
        train(_config(data, tmp_path / "run2", epochs=1, max_skipped_fraction=0.3))
    assert str(broken[0]) in (tmp_path / "run" / "skipped.tsv").read_text()


def test_max_skipped_fraction_is_checked(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match=r"max_skipped_fraction: must be in \[0, 1\]"):
        train(_config(tiny_data, tmp_path, max_skipped_fraction=1.5))


def _poison_after(step_to_poison):
    """NaN classifier biases after a step: the next loss is NaN (the classifier, because
    the C++ STC residual kernel's ReLU maps NaN features to 0)."""

    def on_step(trainer, epoch, step):
        if trainer.step == step_to_poison:
            with torch.no_grad():
                trainer.model.fc.bias.fill_(float("nan"))

    return on_step


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    out = tmp_path / "run"
    # Steps 1-3 are epoch 1 (saved); NaN weights after step 4 make step 5's loss NaN.
    with pytest.raises(TrainingError) as info:
        train(tiny_config(tiny_data, out, epochs=3), on_step=_poison_after(4))
    message = str(info.value)
    assert "loss is not finite" in message and "at step 5 (step 2 of epoch 2)" in message
    assert f"{out / 'last.pt'} (step 3) holds the last good state" in message
    saved = load_checkpoint(out / "last.pt")
    assert saved["step"] == 3 and saved["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in saved["model"].values() if t.is_floating_point())
    best = load_checkpoint(out / "best.pt")
    assert best["step"] == 3 and all(
        torch.isfinite(t).all() for t in best["model"].values() if t.is_floating_point()
    )
    # The run goes on from the last good state.
    resumed = train(tiny_config(tiny_data, out, epochs=2, resume=str(out / "last.pt")))
    assert resumed.epochs_done == 2 and resumed.steps == 6


def test_skips_that_leave_batchnorm_one_clip_are_named(broken_data, tmp_path):
    data, _ = broken_data
    # At 32 px a one-clip micro-batch gives the last BatchNorm layers one value per channel.
    config = tiny_config(data, tmp_path / "run", epochs=1, max_skipped_fraction=0.5)
    with pytest.raises(TrainingError) as info:
        train(config)
    message = str(info.value)
    assert "a BatchNorm layer got one value per channel" in message
    assert "undecodable videos left 1 of its 2 clips" in message
    assert "micro_batch_size of at least 2 (more if videos are skipped)" in message
