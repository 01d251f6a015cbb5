"""Fixtures for the data tests (helpers live in data_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_helpers import indexed_frames, write_frame_folder, write_video


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    """A 30-frame 48x64 mp4 whose frames encode their index."""
    return write_video(tmp_path / "clip.mp4", indexed_frames(30, 48, 64))


@pytest.fixture
def frame_folder(tmp_path: Path) -> Path:
    """A 12-frame folder of 48x64 JPEGs whose frames encode their index."""
    return write_frame_folder(tmp_path / "clip_frames", indexed_frames(12, 48, 64))
