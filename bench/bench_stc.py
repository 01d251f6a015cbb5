"""STC block speed: eager reference vs torch.compile(reference) vs each fused backend.

Shapes are the four stages of a 3D ResNet-50 on 16x112x112 clips. Rows report time and
achieved bandwidth, where the minimum bytes count each input read once and each output
written once: forward x, y (2 |x|); forward+backward x, y, dy, dx (4 |x|).

    pytest bench/bench_stc.py                      # CPU, batch 8, float32
    STC_BENCH_BATCH=32 STC_BENCH_DTYPE=bfloat16 pytest bench/bench_stc.py   # GPU sizes
"""

import os

import pytest
import torch

import stc_ext
from stc_ext import STCBlock

from .conftest import synchronize

STAGES = [(256, 8, 28, 28), (512, 4, 14, 14), (1024, 2, 7, 7), (2048, 1, 4, 4)]
BATCH = int(os.environ.get("STC_BENCH_BATCH", "8"))
DTYPE = getattr(torch, os.environ.get("STC_BENCH_DTYPE", "float32"))
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
ROUNDS = int(os.environ.get("STC_BENCH_ROUNDS", "5"))


def _implementations() -> list[str]:
    # "triton" is here wherever it runs for real (CUDA); under TRITON_INTERPRET=1 on CPU
    # it only checks numerics, so timing it would mean nothing.
    kernels = [
        b
        for b in stc_ext.available_backends(DEVICE)
        if b != "reference" and not (b == "triton" and DEVICE.type == "cpu")
    ]
    return ["eager", "compiled", *kernels]


def _block_fn(impl: str, block: STCBlock):
    if impl == "eager":
        block.backend = "reference"
        return block
    if impl == "compiled":
        block.backend = "reference"
        return torch.compile(block, fullgraph=True)
    block.backend = impl
    return block


@pytest.mark.parametrize("mode", ["forward", "forward+backward"])
@pytest.mark.parametrize("impl", _implementations())
@pytest.mark.parametrize("stage", STAGES, ids=lambda s: "C{}-T{}-{}x{}".format(*s))
def test_stc_block(benchmark, record_bandwidth, stage, impl, mode):
    channels, frames, height, width = stage
    torch.manual_seed(0)
    block = STCBlock(channels, frames).to(DEVICE)
    if DTYPE != torch.float32:
        block = block.to(DTYPE)
    x = torch.randn(BATCH, channels, frames, height, width, device=DEVICE, dtype=DTYPE)
    grad_y = torch.randn_like(x)
    fn = _block_fn(impl, block)
    benchmark.group = f"stc {mode} C{channels} T{frames} {height}x{width} {DTYPE}"

    if mode == "forward":

        def step():
            with torch.no_grad():
                fn(x)
            synchronize(DEVICE)
    else:
        x.requires_grad_(True)

        def step():
            fn(x).backward(grad_y)
            synchronize(DEVICE)

    step()  # compile / warm up outside the timed rounds
    benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=1)
    passes = 2 if mode == "forward" else 4
    record_bandwidth(passes * x.numel() * x.element_size())
