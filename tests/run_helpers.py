"""Helpers for tests of training runs (tests/train, tests/transfer)."""

from __future__ import annotations

import faulthandler
import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp


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


def become_rank(rank: int, world: int, port: int) -> None:
    """In a spawned worker: the environment torchrun would give ``rank`` of ``world``, one
    torch thread, and a watchdog that ends a deadlocked rank with its stack."""
    faulthandler.dump_traceback_later(240, exit=True)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)


def run_ranks(worker: Callable[..., None], results: Path, *args: Any, world: int = 2) -> list:
    """Runs ``worker(rank, world, port, *args, results)`` in ``world`` spawned processes
    (as torchrun would start them) and returns what each wrote to ``results/rank<r>.json``."""
    results.mkdir(parents=True, exist_ok=True)
    mp.start_processes(
        worker,
        args=(world, free_port(), *args, str(results)),
        nprocs=world,
        join=True,
        start_method="spawn",
    )
    return [json.loads((results / f"rank{r}.json").read_text()) for r in range(world)]
