"""Benchmarks are timed with pytest-benchmark; each row also records achieved GB/s."""

import pytest
import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@pytest.fixture
def record_bandwidth(benchmark):
    """Call after the benchmark ran: stores min_bytes and GB/s (min bytes / median time)."""

    def record(min_bytes: int) -> None:
        median = benchmark.stats.stats.median
        benchmark.extra_info["min_bytes"] = min_bytes
        benchmark.extra_info["GB/s"] = round(min_bytes / median / 1e9, 2)

    return record
