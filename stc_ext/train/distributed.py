"""Process-group set-up for ``torchrun``, the few collectives training needs, and signals.

``torchrun --nproc_per_node=K stc train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`setup` joins the group (NCCL on CUDA devices, gloo on the CPU) and
picks the device. Without those variables everything runs as a single process and every
helper here is a no-op, so the training code has one path. :class:`StopSignals` turns the
first Ctrl-C (SIGINT, or the SIGTERM ``torchrun`` forwards) into a stop request.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .config import ConfigError

__all__ = [
    "DistInfo",
    "StopSignals",
    "all_gather_objects",
    "all_reduce_",
    "barrier",
    "expected_world_size",
    "local_world_size",
    "rank_and_world",
    "setup",
    "teardown",
]

logger = logging.getLogger("stc_ext.train")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, world size, device, and whether it made the group."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None
    owns_group: bool  # True when setup() initialised the group (teardown destroys it)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"environment variable {name} must be an integer, got {value!r}"
        ) from None


def _pick_device(request: str, local_rank: int) -> torch.device:
    if request == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(request)
    except RuntimeError:
        raise ConfigError(f"not a device: {request!r}", field="device") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{request}: CUDA is not available here (use cpu or auto)", field="device"
            )
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        elif device.index >= torch.cuda.device_count():
            raise ConfigError(f"{request}: only {torch.cuda.device_count()} GPU(s)", field="device")
    elif device.type != "cpu":
        raise ConfigError(f"{request}: only cpu and cuda devices are supported", field="device")
    return device


def setup(device: str = "auto") -> DistInfo:
    """Join the ``torchrun`` process group if there is one, and choose this rank's device.

    An already initialised default group (e.g. made by the caller) is used as it is.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = _env_int("LOCAL_RANK", rank)
        chosen = _pick_device(device, local_rank)
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        return DistInfo(rank, world, local_rank, chosen, dist.get_backend(), owns_group=False)
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    chosen = _pick_device(device, local_rank)
    if world <= 1:
        return DistInfo(0, 1, 0, chosen, None, owns_group=False)
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch has no torch.distributed")
    backend = "nccl" if chosen.type == "cuda" else "gloo"
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    # The group stays up for later calls in this process (train, then evaluate): joining a
    # fresh group on the same MASTER_PORT can race with the old store. It goes at exit.
    atexit.register(_destroy_at_exit)
    return DistInfo(rank, world, local_rank, chosen, backend, owns_group=True)


def _destroy_at_exit() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def teardown(info: DistInfo) -> None:
    """Destroy the process group if ``setup`` created it (else it goes at process exit)."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def expected_world_size() -> int:
    """The world size ``setup`` will see (from the group or ``WORLD_SIZE``), without joining."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return max(1, _env_int("WORLD_SIZE", 1))


def local_world_size() -> int:
    """How many ranks run on this machine (``torchrun``'s ``LOCAL_WORLD_SIZE``; 1 without)."""
    return max(1, _env_int("LOCAL_WORLD_SIZE", 1))


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place sum (or "max") over ranks; the identity without a process group."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, by rank (``[obj]`` without a process group)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


class StopSignals:
    """While active (``with``), the first SIGINT/SIGTERM sets ``requested``; a second aborts.

    Only the main thread can install signal handlers; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning(
            "%s received: finishing this step and saving a checkpoint "
            "(press Ctrl-C again to abort without saving)",
            signal.Signals(signum).name,
        )

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
