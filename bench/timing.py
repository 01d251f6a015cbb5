"""Side-by-side timing for benchmarks on a shared machine.

Every implementation of a comparison runs once per round, in turn, so that load drift
hits them all alike; the ratios between them are what a noisy machine can still tell.
Each timing also records the process's CPU time (so CPU time / wall time shows how many
threads did work) and its minor page faults (first touches of fresh memory).
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    """Per call: wall-clock seconds (median and fastest round), CPU seconds per wall
    second (median), minor page faults (median)."""

    median: float
    fastest: float
    threads_busy: float
    page_faults: float


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_side_by_side(
    fns: dict[str, Callable[[], object]],
    rounds: int,
    warmup: int = 1,
    device: torch.device | None = None,
) -> dict[str, Timing]:
    """Runs each of ``fns`` once per round, in turn, for ``warmup`` + ``rounds`` rounds.

    The first ``warmup`` rounds are not recorded (compilation, first-touch of caches).
    A function's result is dropped (freed) before the next one runs.
    """
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else None
    walls: dict[str, list[float]] = {name: [] for name in fns}
    cpus: dict[str, list[float]] = {name: [] for name in fns}
    faults: dict[str, list[int]] = {name: [] for name in fns}
    for index in range(warmup + rounds):
        for name, fn in fns.items():
            faults_before = _minor_faults()
            cpu_before = time.process_time()
            start = time.perf_counter()
            result = fn()
            if sync is not None:
                sync()
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu_before
            del result
            if index >= warmup:
                walls[name].append(wall)
                cpus[name].append(cpu / wall)
                faults[name].append(_minor_faults() - faults_before)
    return {
        name: Timing(
            median=statistics.median(walls[name]),
            fastest=min(walls[name]),
            threads_busy=statistics.median(cpus[name]),
            page_faults=statistics.median(faults[name]),
        )
        for name in fns
    }


def copy_bandwidths(x: torch.Tensor, rounds: int) -> dict[str, float]:
    """GB/s of copying x (reading it and writing as many bytes: 2 |x|): into a buffer
    allocated once ("preallocated"), and into a fresh tensor ("fresh", x.clone(), which
    pays the first touch of new pages), from the median of ``rounds`` side-by-side rounds."""
    buffer = torch.empty_like(x).copy_(x)
    timings = time_side_by_side(
        {"preallocated": lambda: buffer.copy_(x), "fresh": lambda: x.clone()},
        rounds,
        device=x.device,
    )
    nbytes = 2 * x.numel() * x.element_size()
    return {name: nbytes / t.median / 1e9 for name, t in timings.items()}
