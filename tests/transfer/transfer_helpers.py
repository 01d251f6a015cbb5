"""Helpers for the transfer tests: tiny videos, a teacher file, a tiny transfer config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from stc_ext.data import synthetic
from stc_ext.models.resnet2d import resnet2d
from stc_ext.transfer import TransferConfig

TEACHER_WIDTHS = [8, 8, 16, 16]
TIMECODE_FRAMES = 20


def make_unlabeled_videos(root: Path) -> Path:
    """12 varied synthetic videos (the class folders only organise the files)."""
    synthetic.generate(root, classes=3, videos_per_class=4, seed=5, frames=12, size=32, varied=True)
    return root / "videos"


def timecode(video: int, frame: int) -> tuple[int, int, int]:
    """The flat colour of ``frame`` of timecode video ``video``."""
    return 8 + 12 * frame, 30 + 50 * video, 128


def read_timecode(pixels: torch.Tensor) -> tuple[int, int]:
    """(video, frame) of a decoded uint8 (H, W, 3) timecode frame."""
    r, g, _ = pixels.double().mean(dim=(0, 1)).tolist()
    return round((g - 30) / 50), round((r - 8) / 12)


def make_timecode_videos(root: Path, count: int = 4) -> Path:
    for video in range(count):
        frames = np.empty((TIMECODE_FRAMES, 32, 32, 3), dtype=np.uint8)
        for t in range(TIMECODE_FRAMES):
            frames[t] = timecode(video, t)
        synthetic.write_video(root / f"video{video}.mp4", frames)
    return root


def make_teacher_file(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    torch.save(resnet2d(18, widths=TEACHER_WIDTHS).state_dict(), path)
    return path


def tiny_transfer_config(
    video_dir: Path, teacher_path: Path, out: Path, **changes: Any
) -> TransferConfig:
    """A few-second CPU run: STC-ResNet-10 (8-wide) student, 4-frame 32px clips, 32-D fc."""
    values: dict[str, Any] = dict(
        videos=str(video_dir),
        teacher="resnet18",
        teacher_weights=str(teacher_path),
        teacher_widths=TEACHER_WIDTHS,
        model="stc_resnet3d_10",
        widths=[8, 8, 8, 8],
        frames=4,
        teacher_frames=4,
        stride=2,
        size=32,
        short_side=32,
        embed_dim=32,
        epochs=2,
        batch_size=4,
        micro_batch_size=2,
        lr=0.05,
        workers=0,
        val_fraction=0.25,
        out_dir=str(out),
        progress=False,
        tensorboard=False,
        seed=7,
    )
    values.update(changes)
    return TransferConfig(**values)
