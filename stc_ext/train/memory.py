"""How much memory a training configuration needs, estimated before the first step.

:func:`estimate_training_memory` runs the model's forward pass once on *fake* tensors
(``torch._subclasses.FakeTensorMode``: shapes, dtypes and devices, no data, no compute),
with the run's micro-batch, clip shape and AMP mode, and adds up the bytes of every tensor
autograd saves for the backward pass (the activations, counted once per storage); then the
parameters, their gradients, the optimiser's state (SGD with momentum: one tensor per
parameter; AdamW: two), DDP's gradient buckets and the input batches the loader keeps
ready. It does not count the allocator's caching and fragmentation, convolution
workspaces, temporary tensors of the backward pass or the loader workers' own memory: the
real peak is higher, so a warning when the estimate alone exceeds what is available is
conservative. :func:`available_memory` is the CPU's ``MemAvailable`` (``/proc/meminfo``)
or the GPU's free memory.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["MemoryEstimate", "available_memory", "estimate_training_memory", "format_bytes"]

logger = logging.getLogger("stc_ext.train")

#: Tensors per parameter an optimiser keeps (SGD: the momentum buffer; AdamW: two moments).
OPTIMIZER_STATES = {"sgd": 1, "adamw": 2}
#: Batches the DataLoader keeps ready per worker (its default ``prefetch_factor``).
PREFETCH = 2

GiB = 2**30


@dataclass
class MemoryEstimate:
    """Bytes a training configuration needs on one rank's device (see the module docstring)."""

    parameters: int
    gradients: int
    optimizer: int
    activations: int
    inputs: int

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer + self.activations + self.inputs

    def describe(self) -> str:
        """e.g. "13.2 GiB (activations 12.9 GiB, parameters 170 MiB, ...)"."""
        parts = [
            ("activations", self.activations),
            ("parameters", self.parameters),
            ("gradients", self.gradients),
            ("optimiser state", self.optimizer),
            ("input batches", self.inputs),
        ]
        detail = ", ".join(f"{name} {format_bytes(n)}" for name, n in parts)
        return f"{format_bytes(self.total)} ({detail})"


def format_bytes(n: float) -> str:
    """``n`` bytes as "1.5 GiB", "12.0 MiB" or "512 KiB"."""
    if n >= GiB:
        return f"{n / GiB:.1f} GiB"
    if n >= 2**20:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 2**10:.0f} KiB"


def _saved_activation_bytes(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    autocast_dtype: torch.dtype | None,
) -> int:
    """Bytes autograd saves in one forward pass of ``model`` on fake inputs shaped like
    ``inputs`` (the model's own tensors are left untouched: fake copies stand in for them)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.func import functional_call

    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved[storage._cdata] = storage.nbytes()
        return tensor

    device = next(iter(model.parameters())).device
    with FakeTensorMode(allow_non_fake_inputs=False) as mode:
        state = {
            name: mode.from_tensor(tensor)
            for name, tensor in (*model.named_parameters(), *model.named_buffers())
        }
        fake_inputs = [torch.empty(t.shape, dtype=t.dtype, device=device) for t in inputs]
        autocast = (
            torch.autocast(device.type, dtype=autocast_dtype)
            if autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
            functional_call(model, state, tuple(fake_inputs))
        own = {t.untyped_storage()._cdata for t in state.values()}
    return sum(nbytes for key, nbytes in saved.items() if key not in own)


def estimate_training_memory(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    *,
    optimizer: str = "sgd",
    autocast_dtype: torch.dtype | None = None,
    ddp: bool = False,
    workers: int = 0,
) -> MemoryEstimate:
    """The memory one training step of ``model`` on a micro-batch like ``inputs`` needs.

    Args:
        model: the network on its device, in train mode (it is not changed).
        inputs: one micro-batch of model inputs (e.g. ``(clips,)`` of shape
            ``(micro_batch, 3, T, H, W)``); only their shapes and dtypes are used, so
            ``meta`` tensors do (the pass runs on the model's device).
        optimizer: ``"sgd"`` or ``"adamw"`` (how many state tensors per parameter).
        autocast_dtype: the AMP dtype (None: float32).
        ddp: count DDP's gradient buckets (one more gradient-sized buffer).
        workers: loader worker processes (each keeps :data:`PREFETCH` batches ready).

    Raises:
        ValueError: the forward pass itself refuses the shapes (e.g. BatchNorm given one
            value per channel).
    """
    params = [p for p in model.parameters()]
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers())
    trainable = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    batch_bytes = sum(t.numel() * t.element_size() for t in inputs)
    activations = _saved_activation_bytes(model, inputs, autocast_dtype)
    return MemoryEstimate(
        parameters=param_bytes + buffer_bytes,
        gradients=trainable * (2 if ddp else 1),
        optimizer=trainable * OPTIMIZER_STATES.get(optimizer, 2),
        activations=activations,
        inputs=batch_bytes * (1 + PREFETCH * max(workers, 1)),
    )


def available_memory(device: torch.device) -> int | None:
    """Free bytes for ``device``: the GPU's free memory, or the machine's ``MemAvailable``;
    None when it cannot be told."""
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
        except RuntimeError:
            return None
        return int(free)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
