"""Fixtures for the transfer tests: one thread per process, tiny unlabeled videos, a teacher.

Helpers live in transfer_helpers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from transfer_helpers import make_teacher_file, make_timecode_videos, make_unlabeled_videos


@pytest.fixture(autouse=True, scope="session")
def _one_thread(one_torch_thread):
    """Every test here runs torch on one thread (tests/conftest.py says why)."""


@pytest.fixture(scope="session")
def unlabeled_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 varied synthetic videos of 12 frames at 32x32 (folder of .mp4 files, no labels)."""
    pytest.importorskip("av", reason="PyAV is needed to write and decode the videos")
    return make_unlabeled_videos(tmp_path_factory.mktemp("unlabeled"))


@pytest.fixture(scope="session")
def timecode_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 videos whose frames tell their video (green) and frame index (red)."""
    pytest.importorskip("av", reason="PyAV is needed to write and decode the videos")
    return make_timecode_videos(tmp_path_factory.mktemp("timecode"))


@pytest.fixture(scope="session")
def teacher_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A narrow random ResNet-18 state_dict (torchvision keys), widths 8,8,16,16."""
    return make_teacher_file(tmp_path_factory.mktemp("teacher") / "teacher.pt")


@pytest.fixture(scope="session")
def tiny_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A labelled synthetic dataset (3 classes x 5 videos) to fine-tune on."""
    pytest.importorskip("av", reason="PyAV is needed to write and decode the videos")
    from stc_ext.data import synthetic

    root = tmp_path_factory.mktemp("target")
    synthetic.generate(root, classes=3, videos_per_class=5, seed=3, frames=12, size=32)
    return root
