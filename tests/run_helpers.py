"""Helpers for tests of training runs (tests/train, tests/transfer)."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable, Iterable
from typing import Any

import torch


def stop_at(epoch: int, step: int) -> Callable[[Any, int, int], None]:
    """An ``on_step`` callback that asks the trainer to stop after ``step`` of ``epoch``."""

    def on_step(trainer: Any, e: int, s: int) -> None:
        if (e, s) == (epoch, step):
            trainer.request_stop()

    return on_step


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a gloo rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digest(tensors: Iterable[torch.Tensor]) -> str:
    """SHA-1 of the tensors' bytes, in order: equal digests mean bitwise equal tensors."""
    h = hashlib.sha1()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
