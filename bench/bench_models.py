"""Training-step benchmark: STC-ResNet-18 and STC-ResNeXt-101 against the same nets without STC.

    .venv/bin/python -m pytest bench/bench_models.py [--benchmark-json out.json]
    .venv/bin/python -m pytest bench/bench_models.py -k "resnet3d_18 and not resnext"

One row per (net, STC placement, STC backend), for both placements ("block": an STC block in
every residual block; "stage": one in the last block of each stage): the time of a training
step (forward, cross-entropy, backward). CPU: batch 1, 16 x 112 x 112 clips, float32 (a full
batch would take minutes per step). GPU, when present: batch 32, bf16 autocast, 16 frames,
synchronised timing.

The STC share of step time is measured two ways and written to each row's ``extra_info``
and to a summary at the end of the run:

* ``stc_share_vs_plain``: (step with STC - step without) / step with STC, from the
  fastest rounds of the two nets run alternately (each timed STC round is preceded by a
  step of the plain net), so that load drift on a shared machine hits both alike;
* ``stc_share_blocks``: the model's STC blocks alone (forward + backward of every block on
  tensors of the shapes it sees in the net) / step with STC. Less noisy on a shared CPU,
  blind to second-order effects (e.g. caches) that the first includes.

``stc_min_bytes`` is the least memory traffic of all STC blocks in a step (forward reads
X and the shortcut and writes Y; backward reads dY, X and Y and writes dX and the
shortcut's gradient: 8 passes over X); ``stc_GBps`` is that over the blocks' time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

import stc_ext
from stc_ext import STCBlock
from stc_ext.models import build

FRAMES, SIZE, CLASSES = 16, 112, 400
PAIRS = (("resnet3d_18", "stc_resnet3d_18"), ("resnext3d_101", "stc_resnext3d_101"))


@dataclass(frozen=True)
class DeviceConfig:
    batch: int
    autocast_dtype: torch.dtype | None
    rounds: int


CONFIGS = {
    "cpu": DeviceConfig(batch=1, autocast_dtype=None, rounds=3),
    "cuda": DeviceConfig(batch=32, autocast_dtype=torch.bfloat16, rounds=10),
}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

PLACEMENTS = ("block", "stage")

# Row kinds: "plain" (no STC), "step" (STC net, one backend), "blocks" (its STC blocks alone).
CASES = []
for _device in DEVICES:
    for _plain, _stc in PAIRS:
        CASES.append(pytest.param(_device, _plain, None, None, "plain", id=f"{_device}-{_plain}"))
        for _placement in PLACEMENTS:
            for _kind in ("step", "blocks"):
                for _backend in stc_ext.available_backends(_device):
                    _suffix = "-blocks" if _kind == "blocks" else ""
                    CASES.append(
                        pytest.param(
                            _device,
                            _stc,
                            _placement,
                            _backend,
                            _kind,
                            id=f"{_device}-{_stc}-{_placement}{_suffix}-{_backend}",
                        )
                    )

# (device, model, placement, backend, kind) -> fastest round in seconds, for the shares.
_RESULTS: dict[tuple[str, str, str | None, str | None, str], float] = {}
_SUMMARY: list[str] = []


def _sync(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def _autocast(device: str, config: DeviceConfig):
    return torch.autocast(
        device, dtype=config.autocast_dtype, enabled=config.autocast_dtype is not None
    )


def _model_and_batch(
    device: str, name: str, placement: str | None, backend: str | None, config: DeviceConfig
):
    torch.manual_seed(0)
    kwargs = {"backend": backend, "placement": placement} if backend is not None else {}
    model = build(name, CLASSES, frames=FRAMES, size=SIZE, **kwargs).to(device)
    x = torch.randn(config.batch, 3, FRAMES, SIZE, SIZE, device=device)
    y = torch.randint(0, CLASSES, (config.batch,), device=device)
    return model, x, y


def _training_step(device: str, model, x, y, config: DeviceConfig) -> Callable[[], None]:
    sync = _sync(device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with _autocast(device, config):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        sync()

    return step


def _blocks_only(device: str, model, x, config: DeviceConfig) -> tuple[Callable[[], None], int]:
    """Forward + backward of every STC block of ``model`` on inputs of the shapes (and
    dtypes) it sees in a step; returns the callable and the blocks' minimum bytes."""
    shapes: list[tuple[STCBlock, torch.Size, torch.dtype]] = []
    hooks = [
        m.register_forward_hook(
            lambda mod, inp, out: shapes.append((mod, inp[0].shape, inp[0].dtype))
        )
        for m in model.modules()
        if isinstance(m, STCBlock)
    ]
    with torch.no_grad(), _autocast(device, config):
        model(x)
    for hook in hooks:
        hook.remove()
    gen = torch.Generator(device=device).manual_seed(0)
    work = []
    min_bytes = 0

    def rand(shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        return torch.randn(shape, device=device, generator=gen).to(dtype)

    for block, shape, dtype in shapes:
        inp, identity = rand(shape, dtype).requires_grad_(), rand(shape, dtype).requires_grad_()
        work.append((block, inp, identity, rand(shape, dtype)))
        min_bytes += 8 * shape.numel() * torch.finfo(dtype).bits // 8
    sync = _sync(device)

    def run() -> None:
        for block, inp, identity, grad in work:
            inp.grad = identity.grad = None
            block(inp, identity).backward(grad)
        sync()

    return run, min_bytes


class _SummaryPlugin:
    """Prints the shares after pytest-benchmark's tables (test output itself is captured)."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if _SUMMARY:
            terminalreporter.write_sep("-", "STC share of training-step time (fastest rounds)")
            for line in _SUMMARY:
                terminalreporter.write_line(line)


@pytest.fixture(scope="module", autouse=True)
def stc_share_summary(request):
    plugin = _SummaryPlugin()
    if not request.config.pluginmanager.has_plugin("stc-share-summary"):
        request.config.pluginmanager.register(plugin, "stc-share-summary")
    yield


@pytest.mark.parametrize(("device", "name", "placement", "backend", "kind"), CASES)
def test_training_step(benchmark, device, name, placement, backend, kind):
    config = CONFIGS[device]
    model, x, y = _model_and_batch(device, name, placement, backend, config)
    benchmark.group = f"train-step {name.removeprefix('stc_')} {device} batch {config.batch}"
    benchmark.extra_info.update(
        device=device,
        model=name,
        placement=placement,
        backend=backend,
        kind=kind,
        batch=config.batch,
        frames=FRAMES,
        size=SIZE,
        dtype=str(config.autocast_dtype or torch.float32).removeprefix("torch."),
    )
    setup = None
    plain_times: list[float] = []
    if kind == "blocks":
        run, min_bytes = _blocks_only(device, model, x, config)
    else:
        run = _training_step(device, model, x, y, config)
        min_bytes = 0
    if kind == "step":
        plain_name = dict((stc, plain) for plain, stc in PAIRS)[name]
        plain_step = _training_step(
            device, *_model_and_batch(device, plain_name, None, None, config), config
        )

        def setup() -> None:  # untimed by pytest-benchmark; timed here
            start = time.perf_counter()
            plain_step()
            plain_times.append(time.perf_counter() - start)

    benchmark.pedantic(run, setup=setup, rounds=config.rounds, iterations=1, warmup_rounds=1)
    seconds = benchmark.stats.stats.min
    _RESULTS[(device, name, placement, backend, kind)] = seconds

    if kind == "step":
        plain = min(plain_times[1:] or plain_times)  # the first ran before the warm-up round
        share = (seconds - plain) / seconds
        benchmark.extra_info.update(plain_seconds=plain, stc_share_vs_plain=share)
        _SUMMARY.append(
            f"{device} {name} {placement} [{backend}]: step {seconds:.3f} s vs {plain:.3f} s "
            f"without STC (alternating) -> {100 * share:.1f}%"
        )
    elif kind == "blocks":
        benchmark.extra_info["stc_min_bytes"] = min_bytes
        benchmark.extra_info["stc_GBps"] = min_bytes / seconds / 1e9
        step = _RESULTS.get((device, name, placement, backend, "step"))
        if step is not None:
            share = seconds / step
            benchmark.extra_info["stc_share_blocks"] = share
            _SUMMARY.append(
                f"{device} {name} {placement} [{backend}]: STC blocks alone {seconds:.3f} s of a "
                f"{step:.3f} s step -> {100 * share:.1f}% ({min_bytes / seconds / 1e9:.2f} GB/s)"
            )
