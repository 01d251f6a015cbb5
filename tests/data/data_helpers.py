"""Helpers for the data tests: tiny videos and frame folders whose frames encode their index.

Frame ``i`` is a flat gray image of level ``10 + 3 * i`` (so up to 82 frames), which survives
H.264/JPEG compression: :func:`frame_ids` reads the indices back from decoded frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av", reason="PyAV (the video decoder) is not installed")


def level(i: int) -> int:
    return 10 + 3 * i


def frame_ids(frames: torch.Tensor) -> np.ndarray:
    """Indices encoded in decoded frames ``uint8 (..., H, W, 3)`` -> ints of shape ``(...)``."""
    means = frames.float().mean(dim=(-3, -2, -1)).numpy()
    return np.rint((means - 10) / 3).astype(np.int64)


def indexed_frames(n: int, height: int, width: int) -> np.ndarray:
    if n > 82:
        raise ValueError("at most 82 indexed frames")
    levels = np.array([level(i) for i in range(n)], dtype=np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (n, height, width, 3)).copy()


def moving_frames(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture drifting 2 px per frame, ``uint8 (n, H, W, 3)``: frames that
    predict from one another, so P- and B-frames carry real work (unlike flat frames)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(height // 8 + 2, (width + 2 * n) // 8 + 2, 3))
    texture = np.kron(coarse, np.ones((8, 8, 1)))
    return np.stack([texture[:height, 2 * t : 2 * t + width] for t in range(n)]).astype(np.uint8)


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: int = 25,
    faststart: bool = False,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
    pix_fmt: str = "yuv420p",
    container_format: str | None = None,
) -> Path:
    """Encode ``uint8 (T, H, W, 3)`` (even H, W); by default H.264 mp4, near-lossless."""
    path.parent.mkdir(parents=True, exist_ok=True)
    container_options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=container_format, options=container_options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        stream.options = {"crf": "10", "preset": "ultrafast"} if options is None else options
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(folder: Path, frames: np.ndarray, pattern: str = "image_{:05d}.jpg") -> Path:
    """Save frames as images named ``pattern.format(i + 1)`` (Pillow, or PyAV without it)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        from PIL import Image
    except ImportError:
        Image = None
    for i, frame in enumerate(frames):
        target = folder / pattern.format(i + 1)
        if Image is not None:
            Image.fromarray(frame).save(target, quality=95)
        else:
            _write_image_with_av(target, frame)
    return folder


def _write_image_with_av(target: Path, frame: np.ndarray) -> None:
    with av.open(str(target), "w", format="image2") as container:
        codec = "png" if target.suffix == ".png" else "mjpeg"
        stream = container.add_stream(codec, rate=1)
        stream.height, stream.width = frame.shape[:2]
        stream.pix_fmt = "rgb24" if codec == "png" else "yuvj444p"
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
