"""Helpers for the training tests: tiny datasets and configs, state comparison."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from stc_ext.data import read_ucf101, synthetic
from stc_ext.data.holdout import hold_out
from stc_ext.train import TrainConfig

#: ``stc train`` flags of ``tiny_config`` (add --root and --out-dir).
TINY_FLAGS = [
    "--dataset",
    "synthetic",
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
    "--batch-size",
    "4",
    "--micro-batch-size",
    "2",
    "--lr",
    "0.05",
    "--workers",
    "0",
    "--no-progress",
    "--no-tensorboard",
]


def make_tiny_dataset(root: Path, classes: int) -> Path:
    """A tiny synthetic dataset under ``root`` with UCF101-style splits 1 and 2 (2 = 1).

    Per class: 8 training videos in two groups of 4 (``_g01``, ``_g02``), one of which the
    default 10% hold-out keeps for validation, and 1 test video (``_g03``).
    """
    synthetic.generate(
        root, classes=classes, videos_per_class=9, seed=3, frames=12, size=32, test_fraction=0.1
    )
    splits = root / "splits"
    shutil.copy(splits / "trainlist01.txt", splits / "trainlist02.txt")
    shutil.copy(splits / "testlist01.txt", splits / "testlist02.txt")
    return root


def break_videos(root: Path, count: int | None = None, split: str = "train") -> list[Path]:
    """Replace ``count`` (None: all) videos of a tiny dataset's training list by broken
    files, in turn: a zero-byte .mp4, an .mp4 cut in half, a text file renamed .avi (the
    split list then names the .avi). ``split``: which part of the list (as the default 10%
    hold-out divides it): ``"train"``, ``"val"`` or ``"all"``. Returns the broken files."""
    listed = read_ucf101(root / "videos", root / "splits", 1, "train")
    held = hold_out(listed, "synthetic", 0.1)
    part = {"train": held.train, "val": held.val, "all": listed}[split]
    chosen = {record.path for record in part.records[:count]}
    list_file = root / "splits" / "trainlist01.txt"
    lines = list_file.read_text().splitlines()
    broken = []
    for i, line in enumerate(lines):
        rel, label = line.split()
        video = root / "videos" / rel
        if video not in chosen:
            continue
        kind = len(broken) % 3
        if kind == 0:
            video.write_bytes(b"")
        elif kind == 1:
            data = video.read_bytes()
            video.write_bytes(data[: len(data) // 2])
        else:
            video.unlink()
            video = video.with_suffix(".avi")
            video.write_text("this is not a video, only text with a video's name\n")
            lines[i] = f"{Path(rel).with_suffix('.avi').as_posix()} {label}"
        broken.append(video)
    list_file.write_text("\n".join(lines) + "\n")
    return broken


def copy_dataset(source: Path, target: Path) -> Path:
    """A private copy of a (session-scoped) tiny dataset, to break or move."""
    shutil.copytree(source, target)
    return target


def tiny_config(data: Path, out_dir: Path, **changes: Any) -> TrainConfig:
    """A few-second CPU run: STC-ResNet-10 with 8-wide stages on 4-frame 32px clips."""
    values: dict[str, Any] = dict(
        dataset="synthetic",
        root=str(data),
        model="stc_resnet3d_10",
        widths=[8, 8, 8, 8],
        frames=4,
        stride=2,
        size=32,
        short_side=32,
        epochs=2,
        batch_size=4,
        micro_batch_size=2,
        lr=0.05,
        workers=0,
        out_dir=str(out_dir),
        progress=False,
        tensorboard=False,
        seed=7,
    )
    values.update(changes)
    return TrainConfig(**values)


def state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Keys whose tensors differ in any bit (empty when the states are identical)."""
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def optimizer_buffers_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two SGD state_dicts hold bitwise equal momentum buffers."""
    if a["state"].keys() != b["state"].keys():
        return False
    return all(
        torch.equal(a["state"][k]["momentum_buffer"], b["state"][k]["momentum_buffer"])
        for k in a["state"]
    )
