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


def write_video(path: Path, frames: np.ndarray, fps: int = 25, faststart: bool = False) -> Path:
    """Encode ``uint8 (T, H, W, 3)`` as H.264 mp4 (even H, W)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "ultrafast"}
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
