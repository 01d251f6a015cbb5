"""Reading frames from videos: encoded files (PyAV) and frame folders (one JPEG/PNG per frame).

:func:`open_video` picks the reader for a path: :class:`~.frame_folder.FrameFolderReader` for a
directory, :class:`~.video_file.VideoFileReader` (which seeks to the keyframe before a late
clip) for a file. Every reader has one entry point, ``read(select, num_frames)``, taking a
*selector* ``num_frames -> indices`` (see :mod:`.frame_reader`). Decoding stops after the last
selected frame.

Frames come back as ``uint8`` tensors of shape ``(*indices.shape, H, W, 3)`` (RGB, channels last).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .frame_folder import IMAGE_EXTENSIONS, FrameFolderReader
from .frame_reader import FrameReader, Selector
from .video_file import PacketIndex, VideoFileReader

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "FrameFolderReader",
    "FrameReader",
    "PacketIndex",
    "Selector",
    "VideoFileReader",
    "count_frames",
    "open_video",
    "read_video",
]

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".avi",
    ".webm",
    ".mkv",
    ".mov",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".flv",
    ".ogv",
    ".3gp",
)


def open_video(path: str | Path, thread_type: str = "SLICE") -> VideoFileReader | FrameFolderReader:
    """A reader for ``path``: a :class:`FrameFolderReader` for a directory, else a
    :class:`VideoFileReader`."""
    if os.path.isdir(path):
        return FrameFolderReader(path)
    return VideoFileReader(path, thread_type=thread_type)


def _all(n: int) -> np.ndarray:
    return np.arange(n)


def read_video(path: str | Path) -> torch.Tensor:
    """Decode every frame of a video file or frame folder: ``uint8 (T, H, W, 3)`` RGB."""
    frames, _ = open_video(path).read(_all)
    return frames


def count_frames(path: str | Path) -> int:
    """The number of decodable frames (by decoding: container headers are not trusted).

    For a frame folder, the number of images.
    """
    reader = open_video(path)
    if isinstance(reader, FrameFolderReader):
        return len(reader.frame_names())
    with reader:
        return reader.decode(set(), None)[1]
