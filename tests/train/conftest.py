"""Fixtures for the training tests: a tiny synthetic dataset and one thread per process.

Helpers live in train_helpers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import make_tiny_dataset, tiny_config

from stc_ext.train import TrainResult, train

pytest.importorskip("av", reason="PyAV is needed to write and decode the synthetic videos")


@pytest.fixture(autouse=True, scope="session")
def _one_thread(one_torch_thread):
    """Every test here runs torch on one thread (tests/conftest.py says why)."""


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 9 videos (4 train, 4 held out, 1 test) of 12 frames at 32x32, splits 1, 2."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"), classes=3)


@pytest.fixture(scope="session")
def tiny_data_2cls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like ``tiny_data`` with 2 classes (for fine-tuning to another label set)."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny2"), classes=2)


@pytest.fixture(scope="session")
def finished_run(
    tiny_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, TrainResult]:
    """One finished epoch of the tiny run (read-only for the tests): (out_dir, result)."""
    out = tmp_path_factory.mktemp("finished")
    result = train(tiny_config(tiny_data, out, epochs=1, tensorboard=True))
    return out, result
