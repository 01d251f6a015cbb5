"""Helpers for the tests of stc predict / stc extract: a tiny synthetic dataset (`stc synth`),
a model trained on it for one epoch with `stc train`, and a real-looking clip.

``tiny_run()`` is built once per test session (cached) in a temporary folder removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch


class TinyRun(NamedTuple):
    root: Path  # the synthetic dataset (videos/<Class>/*.mp4, splits/)
    checkpoint: Path  # an `stc train` checkpoint (stc_resnet3d_10, 8-wide, 4-frame 32px clips)
    classes: list[str]


@functools.cache
def tiny_run() -> TinyRun:
    from stc_ext import cli

    folder = Path(tempfile.mkdtemp(prefix="stc-inference-tests-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    data, run = folder / "data", folder / "run"
    assert (
        cli.main(
            [
                "synth",
                "--out",
                str(data),
                "--classes",
                "3",
                "--videos-per-class",
                "2",
                "--frames",
                "20",
                "--size",
                "32",
                "--test-fraction",
                "0.5",
            ]
        )
        == 0
    )
    previous = torch.get_num_threads()
    try:
        assert (
            cli.main(
                [
                    "train",
                    "--dataset",
                    "synthetic",
                    "--root",
                    str(data),
                    "--model",
                    "stc_resnet3d_10",
                    "--widths",
                    "8,8,8,8",
                    "--frames",
                    "4",
                    "--stride",
                    "2",
                    "--size",
                    "32",
                    "--short-side",
                    "32",
                    "--epochs",
                    "1",
                    "--batch-size",
                    "3",
                    "--workers",
                    "0",
                    "--out-dir",
                    str(run),
                    "--no-progress",
                    "--no-tensorboard",
                    "--val-fraction",
                    "0",  # too few videos to hold any out
                    "--threads",
                    "1",
                    "--seed",
                    "3",
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(previous)
    checkpoint = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    return TinyRun(data, run / "last.pt", list(checkpoint["classes"]))


def write_real_looking_clip(
    path: Path,
    frames: int = 37,
    width: int = 176,
    height: int = 144,
    rate: Fraction = Fraction(30000, 1001),
) -> Path:
    """A camera-like clip: textured background panning, a bright blob moving across it, sensor
    noise; NTSC frame rate, an odd frame count, H.264 in mp4 (written with PyAV)."""
    import av

    rng = np.random.default_rng(5)
    texture = rng.integers(40, 200, size=(height + frames, width + 2 * frames, 3)).astype(
        np.float32
    )
    for _ in range(3):  # smooth it into blotches
        texture = (texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1)) / 3
    yy, xx = np.mgrid[0:height, 0:width]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            image = texture[t : t + height, 2 * t : 2 * t + width].copy()
            cx, cy = 20 + 3 * t, height / 2 + 20 * np.sin(t / 6)
            image[(xx - cx) ** 2 + (yy - cy) ** 2 < 150] = (250, 220, 40)
            image += rng.normal(0, 6, image.shape)
            rgb = np.clip(image, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_broken_files(folder: Path) -> list[Path]:
    """A truncated mp4 and a text file named .avi: unreadable 'videos'."""
    folder.mkdir(parents=True, exist_ok=True)
    truncated = folder / "truncated.mp4"
    source = next(tiny_run().root.glob("videos/*/*.mp4"))
    truncated.write_bytes(source.read_bytes()[:600])
    text = folder / "notes.avi"
    text.write_text("not a video\n")
    return [truncated, text]
