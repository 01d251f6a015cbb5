"""`stc transfer` shares the engine's safeguards: one run per folder, undecodable
videos counted per video and listed."""

from __future__ import annotations

import csv
import shutil

import pytest
from transfer_helpers import tiny_transfer_config

from stc_ext.train import ConfigError, Trainer
from stc_ext.transfer import TransferTask, transfer


def test_a_second_transfer_into_the_same_folder_is_refused(
    unlabeled_videos, teacher_file, tmp_path
):
    first = Trainer(tiny_transfer_config(unlabeled_videos, teacher_file, tmp_path), TransferTask())
    first.setup()
    try:
        second = Trainer(
            tiny_transfer_config(unlabeled_videos, teacher_file, tmp_path, overwrite=True),
            TransferTask(),
        )
        with pytest.raises(ConfigError, match=f"out_dir: {tmp_path} is in use by another run"):
            second.setup()
    finally:
        first.close()


def test_undecodable_videos_are_counted_once_per_video(unlabeled_videos, teacher_file, tmp_path):
    videos = shutil.copytree(unlabeled_videos, tmp_path / "videos")
    broken = sorted(videos.rglob("*.mp4"))[0]
    broken.write_bytes(b"")
    out = tmp_path / "run"
    # 48 px: a micro-batch a skip leaves one pair still gives BatchNorm several values.
    config = tiny_transfer_config(
        videos, teacher_file, out, epochs=1, max_skipped_fraction=0.5, size=48, short_side=48
    )
    result = transfer(config)
    # The video is in two pairs (or more) an epoch, but it is one video of the split.
    assert sum(result.skipped.values()) == 1
    listed = list(csv.DictReader((out / "skipped.tsv").open(), delimiter="\t"))
    assert [row["path"] for row in listed] == [str(broken)]
    split = listed[0]["split"]
    assert result.history[0][f"{split}_skipped"] == 1
