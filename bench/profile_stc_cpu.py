"""Where the time of the C++ CPU backend goes, per op, at each stage shape.

    .venv/bin/python -m bench.profile_stc_cpu [--dtype float32] [--residual] [--rounds 15]

For each of bench_stc's stage shapes (batch 8) prints, side by side in one process: the copy
of x into a preallocated buffer and into a fresh one; each step of the op (pool, gate
forward, rescale, rescale_backward_sums, gate backward, rescale_backward_input; the "cpu"
backend's gate and, for comparison, the ATen gate of stc_ext/ops/gate.py); the custom op's
forward and forward+backward as STCBlock runs it; torch.compile of the reference and the
eager reference. Columns: median and fastest ms, CPU seconds per wall second (how many of
the threads worked), minor page faults per call. "overhead" is the op's time less the sum of
its steps: dispatch, Python, autograd bookkeeping and allocations outside the kernels.
"""

from __future__ import annotations

import argparse

import torch

from stc_ext import STCBlock
from stc_ext.ops import stc_reference
from stc_ext.ops.backends import kernels
from stc_ext.ops.gate import gate_backward, gate_forward

from .bench_stc import BATCH, STAGES
from .timing import Timing, time_side_by_side


def _profile_stage(stage, dtype: torch.dtype, residual: bool, rounds: int) -> dict[str, Timing]:
    channels, frames, height, width = stage
    torch.manual_seed(0)
    k = kernels("cpu")
    block = STCBlock(channels, frames, backend="cpu").to(dtype)
    compiled_block = torch.compile(
        STCBlock(channels, frames, backend="reference").to(dtype), fullgraph=True
    )
    x = torch.randn(BATCH, channels, frames, height, width, dtype=dtype)
    identity = torch.randn_like(x) if residual else None
    grad_y = torch.randn_like(x)
    params = block.params()

    s = k.pool(x)
    g, state = k.gate_forward(s, params)
    y = k.rescale(x, g, identity)
    mask = y if residual else None
    sums = k.rescale_backward_sums(grad_y, x, mask)
    grad_s, _ = k.gate_backward(sums, s, params, state)
    buffer = torch.empty_like(x).copy_(x)
    x_grad = x.detach().requires_grad_()

    def forward_backward(module):
        return lambda: module(x_grad, identity).backward(grad_y)

    steps = {
        "pool": lambda: k.pool(x),
        "gate forward": lambda: k.gate_forward(s, params),
        "rescale": lambda: k.rescale(x, g, identity),
        "backward sums": lambda: k.rescale_backward_sums(grad_y, x, mask),
        "gate backward": lambda: k.gate_backward(sums, s, params, state),
        "backward input": lambda: k.rescale_backward_input(grad_y, g, grad_s, mask),
    }
    aten_gate = {  # for comparison: the ATen gate the other backends use
        "ATen gate forward": lambda: gate_forward(s, params),
        "ATen gate backward": lambda: gate_backward(sums, s, params, state),
    }
    with torch.no_grad():
        compiled_block(x, identity)  # compile outside the timed rounds
    compiled_block(x_grad, identity).backward(grad_y)
    fns = {
        "copy, preallocated": lambda: buffer.copy_(x),
        "copy, fresh (clone)": lambda: x.clone(),
        **steps,
        **aten_gate,
        "cpu forward": torch.no_grad()(lambda: block(x, identity)),
        "cpu forward+backward": forward_backward(block),
        "compiled forward": torch.no_grad()(lambda: compiled_block(x, identity)),
        "compiled forward+backward": forward_backward(compiled_block),
        "eager forward": torch.no_grad()(lambda: stc_reference(x, params, identity)),
    }
    return time_side_by_side(fns, rounds)


def _print_stage(stage, dtype, residual, timings: dict[str, Timing]) -> None:
    channels, frames, height, width = stage
    mb = BATCH * channels * frames * height * width * torch.finfo(dtype).bits / 8 / 1e6
    form = "residual" if residual else "plain"
    print(f"\n(C, T, HxW) = ({channels}, {frames}, {height}x{width}), batch {BATCH}, {dtype}, ")
    print(f"{form} form, |x| = {mb:.1f} MB")
    print("| step | median ms | fastest ms | CPU/wall | page faults |")
    print("|---|---|---|---|---|")
    for name, t in timings.items():
        print(
            f"| {name} | {1e3 * t.median:.3f} | {1e3 * t.fastest:.3f} | "
            f"{t.threads_busy:.2f} | {t.page_faults:.0f} |"
        )
    forward_steps = ("pool", "gate forward", "rescale")
    backward_steps = ("backward sums", "gate backward", "backward input")
    fwd = sum(timings[n].median for n in forward_steps)
    bwd = sum(timings[n].median for n in backward_steps)
    print(
        f"overhead (op - its steps, medians): forward "
        f"{1e3 * (timings['cpu forward'].median - fwd):.3f} ms, forward+backward "
        f"{1e3 * (timings['cpu forward+backward'].median - fwd - bwd):.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--residual", action="store_true")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds")
    for stage in STAGES:
        timings = _profile_stage(stage, dtype, args.residual, args.rounds)
        _print_stage(stage, dtype, args.residual, timings)


if __name__ == "__main__":
    main()
