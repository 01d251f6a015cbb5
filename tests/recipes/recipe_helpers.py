"""Tiny datasets in every format the recipes read (all from one synthetic dataset), teacher
files, and an in-process runner for the recipes' `stc` commands."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import torch

from stc_ext.data import synthetic
from stc_ext.models.resnet2d import resnet2d
from stc_ext.transfer.teacher import TEACHER_FORMAT

#: `stc train`/`stc transfer` flags that shrink every run of a recipe to seconds.
TINY_TRAIN = (
    "--epochs 1 --batch-size 4 --workers 0 --threads 1 --no-progress --no-tensorboard "
    "--amp none --widths 8,8,8,8 --size 32 --short-side 32"
)
TINY_EVAL = "--workers 0 --threads 1 --no-progress"
TEACHER_WIDTHS = [8, 8, 8, 8]


def make_recipe_data(root: Path) -> dict[str, Path]:
    """A 2-class synthetic dataset (8 training videos in two groups and 1 test video per
    class) laid out as UCF101 (splits 1-3 equal), HMDB51 and Kinetics, plus teachers."""
    synthetic.generate(
        root / "synth", classes=2, videos_per_class=9, seed=3, frames=12, size=32,
        test_fraction=0.1,
    )  # fmt: skip
    videos, splits = root / "synth" / "videos", root / "synth" / "splits"
    for split in (2, 3):
        shutil.copy(splits / "trainlist01.txt", splits / f"trainlist0{split}.txt")
        shutil.copy(splits / "testlist01.txt", splits / f"testlist0{split}.txt")
    train = [line.split()[0] for line in (splits / "trainlist01.txt").read_text().splitlines()]
    test = (splits / "testlist01.txt").read_text().split()
    # HMDB51: <class>_test_split<n>.txt, "<video> 1" (train) / "<video> 2" (test).
    hmdb = root / "hmdb51_splits"
    hmdb.mkdir()
    for cls in sorted({rel.split("/")[0] for rel in train}):
        lines = [f"{Path(rel).name} {1 if rel in train else 2}" for rel in train + test]
        mine = [line for line in lines if f"v_{cls}_" in line]
        for split in (1, 2, 3):
            (hmdb / f"{cls}_test_split{split}.txt").write_text("\n".join(mine) + "\n")
    # Kinetics: <root>/<label>/<youtube_id>_<start>_<end>.mp4 and the CSVs.
    kinetics = root / "kinetics"
    for name, listed in (("train", train), ("val", test)):
        rows = ["label,youtube_id,time_start,time_end,split"]
        for rel in listed:
            cls, stem = rel.split("/")[0], Path(rel).stem
            target = kinetics / name / cls / f"{stem}_000000_000010.mp4"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(videos / rel, target)
            rows.append(f"{cls},{stem},0,10,{name}")
        (kinetics / f"{name}.csv").write_text("\n".join(rows) + "\n")
    torch.manual_seed(0)
    teacher = resnet2d(18, widths=TEACHER_WIDTHS)
    torch.save(teacher.state_dict(), root / "teacher_torchvision.pth")
    torch.save(
        {
            "format": TEACHER_FORMAT,
            "state_dict": teacher.state_dict(),
            "arch": {"depth": 18, "widths": TEACHER_WIDTHS, "num_classes": 1000},
        },
        root / "teacher_stc.pt",
    )
    return {
        "videos": videos,
        "splits": splits,
        "hmdb51": hmdb,
        "kinetics": kinetics,
        "teacher_torchvision": root / "teacher_torchvision.pth",
        "teacher_stc": root / "teacher_stc.pt",
    }


def run_in_process(command: list[str]) -> None:
    """Stands in for ``recipe_common.run_command``: runs the planned `stc` command through
    the same parser and library in this process (no interpreter start-up per command).
    Only the recipes' commands are replaced: ``subprocess`` itself is left alone (libraries
    such as matplotlib run programs through it)."""
    from recipe_common import stc_args

    from stc_ext.cli import main

    code = main(stc_args(command))
    if code != 0:
        raise subprocess.CalledProcessError(code, command)
