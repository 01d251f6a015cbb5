"""STC block speed: eager reference vs torch.compile(reference) vs each fused backend.

Shapes are the four stages of a 3D ResNet-50 on 16x112x112 clips (batch 8 by default).
Every (stage, dtype, form) is measured side by side in one process: each implementation
runs once per round, in turn, with a copy of x into a preallocated buffer and into a
fresh one (``x.clone()``, which pays the first touch of new pages), so that the ratios
hold on a busy machine (bench/timing.py). Forms: "plain" ``x * g`` and "residual"
``relu(x * g + identity)``; modes: forward (no grad) and forward+backward.

GB/s counts the minimum bytes: each input read once and each output written once
(plain forward x, y: 2 |x|; residual forward x, identity, y: 3 |x|; forward+backward adds
dy and dx, and in the residual form d_identity: 4 |x| and 6 |x|). Copy GB/s counts 2 |x|.

    .venv/bin/python -m bench.bench_stc [--dtypes float32,bfloat16] [--forms plain,residual]
                                        [--stages 1,2]
    .venv/bin/python -m pytest bench/bench_stc.py -s   # the same, one test per stage/dtype/form

Each (stage, dtype, form) is measured in a fresh process (``--same-process`` turns that
off): glibc's malloc adapts its mmap and trim thresholds to the sizes freed before, which
changes which implementation pays page faults and heap trims. Measured: the cpu backend's
bfloat16 forward at the first stage took 2.3 ms in a fresh process and 7.4 ms after the
float32 rows of the same stage had run in it (its kernels 2.6 ms either way; the rest
was a heap trim at a free).

Environment: STC_BENCH_BATCH (8), STC_BENCH_ROUNDS (7), STC_BENCH_DTYPES
(float32,bfloat16). The summary table gives, for the first kernel backend ("cpu" on a CPU),
its speed-up over the compiled and the eager reference and its share of the copy bandwidth.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import pytest
import torch

import stc_ext
from stc_ext import STCBlock

from .timing import Timing, time_side_by_side

STAGES = [(256, 8, 28, 28), (512, 4, 14, 14), (1024, 2, 7, 7), (2048, 1, 4, 4)]
BATCH = int(os.environ.get("STC_BENCH_BATCH", "8"))
ROUNDS = int(os.environ.get("STC_BENCH_ROUNDS", "7"))
DTYPES = os.environ.get("STC_BENCH_DTYPES", "float32,bfloat16").split(",")
FORMS = ("plain", "residual")
MODES = ("forward", "forward+backward")
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# Minimum passes over |x| (see the module docstring).
PASSES = {
    ("plain", "forward"): 2,
    ("residual", "forward"): 3,
    ("plain", "forward+backward"): 4,
    ("residual", "forward+backward"): 6,
}


def implementations(device: torch.device = DEVICE) -> list[str]:
    """ "eager", "compiled" and the kernel backends that really run on ``device`` (Triton
    under its CPU interpreter only checks numerics, so timing it would mean nothing)."""
    kernels = [
        b
        for b in stc_ext.available_backends(device)
        if b != "reference" and not (b == "triton" and device.type == "cpu")
    ]
    return ["eager", "compiled", *kernels]


@dataclass(frozen=True)
class Result:
    """One (stage, dtype, form): per mode and implementation the timing, and the copy
    bandwidths in GB/s measured in the same rounds."""

    stage: tuple[int, int, int, int]
    dtype: str
    form: str
    timings: dict[str, dict[str, Timing]]  # mode -> implementation -> timing
    copy_gbps: dict[str, float]  # "preallocated", "fresh"
    x_bytes: int

    def gbps(self, mode: str, impl: str) -> float:
        passes = PASSES[(self.form, mode)]
        return passes * self.x_bytes / self.timings[mode][impl].median / 1e9


def _block_fn(impl: str, block: STCBlock):
    if impl == "eager":
        block.backend = "reference"
        return block
    if impl == "compiled":
        block.backend = "reference"
        return torch.compile(block, fullgraph=True)
    block.backend = impl
    return block


def measure(stage, dtype_name: str, form: str, rounds: int = ROUNDS) -> Result:
    """Times every implementation on one stage shape, dtype and form, side by side."""
    channels, frames, height, width = stage
    dtype = getattr(torch, dtype_name)
    torch._dynamo.reset()  # each call compiles afresh (dynamo's recompile limit is per code)
    sync = torch.cuda.synchronize if DEVICE.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    x = torch.randn(BATCH, channels, frames, height, width, device=DEVICE, dtype=dtype)
    identity = torch.randn_like(x) if form == "residual" else None
    grad_y = torch.randn_like(x)
    x_grad = x.detach().requires_grad_()
    identity_grad = None if identity is None else identity.detach().requires_grad_()
    buffer = torch.empty_like(x)

    timings: dict[str, dict[str, Timing]] = {}
    copy_gbps: dict[str, float] = {}
    for mode in MODES:
        fns = {}
        if mode == "forward":
            fns["copy, preallocated"] = lambda: buffer.copy_(x)
            fns["copy, fresh"] = lambda: x.clone()
        for impl in implementations():
            block = STCBlock(channels, frames).to(DEVICE, dtype)
            fn = _block_fn(impl, block)
            if mode == "forward":

                def step(fn=fn):
                    with torch.no_grad():
                        out = fn(x, identity)
                    sync()
                    return out
            else:

                def step(fn=fn, block=block):
                    x_grad.grad = None
                    if identity_grad is not None:
                        identity_grad.grad = None
                    block.zero_grad(set_to_none=True)
                    fn(x_grad, identity_grad).backward(grad_y)
                    sync()

            step()  # compile outside the timed rounds
            fns[impl] = step
        measured = time_side_by_side(fns, rounds, device=DEVICE)
        if mode == "forward":
            for kind in ("preallocated", "fresh"):
                t = measured.pop(f"copy, {kind}")
                copy_gbps[kind] = 2 * x.numel() * x.element_size() / t.median / 1e9
        timings[mode] = measured
    return Result(tuple(stage), dtype_name, form, timings, copy_gbps, x.numel() * x.element_size())


def _measure_with_threads(stage, dtype_name: str, form: str, rounds: int, threads: int):
    torch.set_num_threads(threads)
    return measure(stage, dtype_name, form, rounds)


def measure_in_fresh_process(stage, dtype_name: str, form: str, rounds: int = ROUNDS) -> Result:
    """:func:`measure` in a new Python process (with this one's thread count), so that no
    earlier measurement's allocations shape this one's (see the module docstring)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
        args = (stage, dtype_name, form, rounds, torch.get_num_threads())
        return pool.submit(_measure_with_threads, *args).result()


def _flag(ok: bool) -> str:
    return "" if ok else " **(below floor)**"


def summary_table(results: list[Result]) -> str:
    """Markdown: per stage, dtype, form and mode the times, the first kernel backend's
    ratios (speed-up over compiled and eager) and bandwidth, and the copy bandwidths.
    Floors (the project's CPU goals): >= 1.2x compiled, >= 1x eager everywhere; >= 50% of the
    preallocated copy's GB/s at the first two stages."""
    kernel = next((i for i in implementations() if i not in ("eager", "compiled")), None)
    lines = [
        "| stage (C, T, HxW) | dtype | form | mode | eager ms | compiled ms | "
        f"{kernel} ms | vs compiled | vs eager | {kernel} GB/s | copy GB/s prealloc / fresh "
        "| % of prealloc copy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, t, h, w = r.stage
        for mode in MODES:
            ms = {impl: 1e3 * tm.median for impl, tm in r.timings[mode].items()}
            row = f"| ({c}, {t}, {h}x{w}) | {r.dtype} | {r.form} | {mode} | "
            row += f"{ms['eager']:.2f} | {ms['compiled']:.2f} | "
            if kernel is None:
                lines.append(row + "- | - | - | - | - | - |")
                continue
            vs_compiled = ms["compiled"] / ms[kernel]
            vs_eager = ms["eager"] / ms[kernel]
            gbps = r.gbps(mode, kernel)
            share = gbps / r.copy_gbps["preallocated"]
            bandwidth_floor = r.stage not in [tuple(s) for s in STAGES[:2]] or share >= 0.5
            row += (
                f"{ms[kernel]:.2f} | {vs_compiled:.2f}x{_flag(vs_compiled >= 1.2)} | "
                f"{vs_eager:.2f}x{_flag(vs_eager >= 1.0)} | {gbps:.2f} | "
                f"{r.copy_gbps['preallocated']:.1f} / {r.copy_gbps['fresh']:.1f} | "
                f"{100 * share:.0f}%{_flag(bandwidth_floor)} |"
            )
            lines.append(row)
    return "\n".join(lines)


# --- pytest entry point: one test per (stage, dtype, form), the table at the end ----------

_RESULTS: list[Result] = []


class _SummaryPlugin:
    def pytest_terminal_summary(self, terminalreporter) -> None:
        if _RESULTS:
            terminalreporter.write_sep("-", "STC block, side by side (medians)")
            for line in summary_table(_RESULTS).splitlines():
                terminalreporter.write_line(line)


@pytest.fixture(scope="module", autouse=True)
def _stc_summary(request):
    if not request.config.pluginmanager.has_plugin("stc-bench-summary"):
        request.config.pluginmanager.register(_SummaryPlugin(), "stc-bench-summary")
    yield


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("stage", STAGES, ids=lambda s: "C{}-T{}-{}x{}".format(*s))
def test_stc_block(stage, dtype_name, form):
    _RESULTS.append(measure_in_fresh_process(stage, dtype_name, form))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--forms", default=",".join(FORMS))
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--stages",
        default=",".join(str(i) for i in range(1, len(STAGES) + 1)),
        help="which stages to measure, 1-based (default: all %(default)s)",
    )
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="measure every row in this process (default: each in a fresh one)",
    )
    args = parser.parse_args()
    try:
        stages = [STAGES[int(i) - 1] for i in args.stages.split(",")]
        if any(int(i) < 1 for i in args.stages.split(",")):
            raise ValueError
    except (ValueError, IndexError):
        parser.error(f"--stages: expected numbers from 1 to {len(STAGES)}, got {args.stages!r}")
    run = measure if args.same_process else measure_in_fresh_process
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, stc_ext {stc_ext.__version__}, {DEVICE}, "
        f"{torch.get_num_threads()} threads, batch {BATCH}, {args.rounds} rounds"
    )
    results = []
    for stage in stages:
        for dtype_name in args.dtypes.split(","):
            for form in args.forms.split(","):
                results.append(run(stage, dtype_name, form, args.rounds))
                print("\n".join(summary_table(results[-1:]).splitlines()[2:]), flush=True)
    print()
    print(summary_table(results))


if __name__ == "__main__":
    main()
