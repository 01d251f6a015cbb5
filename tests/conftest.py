"""Fixtures shared by the test folders (helpers shared by them live in run_helpers.py, which
this file's folder being on sys.path makes importable)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def one_torch_thread():
    """torch on one thread for the session: tiny models run faster so, and several OpenMP
    threads on a busy 2-core machine slow each step down tenfold."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
