"""``stc info``: what this installation is made of, and a self-test of its STC backends.

``environment()`` gathers versions (stc_ext, Python, torch, CUDA, cuDNN, Triton, the compiler
the extension was built with), the devices, and every backend's state: available, disabled by
``STC_EXT_DISABLE``, or missing and why (the backend table's reason). ``check_backends()``
runs each backend available on a device against the float64 reference on small random
inputs (both layouts, plain and residual forms, forward and backward, the test suite's
tolerances from :mod:`stc_ext.testing`); ``measure_bandwidth()`` times one stage-sized forward
per backend next to a plain copy. The CLI (``stc info [--check]``) prints them.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import os
import platform
import statistics
import struct
import sys
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .ops import backends

__all__ = [
    "BandwidthResult",
    "CheckResult",
    "check_backends",
    "check_dtypes",
    "environment",
    "extension_compiler",
    "format_environment",
    "measure_bandwidth",
]

# (N, C, T, H, W) for the self-check: odd sizes (H != W, C not a power of two, T = 1, a
# single pixel), small enough that every backend, Triton's interpreter included, takes
# well under a second per dtype.
CHECK_SHAPES = ((2, 12, 3, 5, 7), (1, 6, 1, 7, 7), (3, 10, 4, 1, 1))
# One stage of a 3D ResNet-50 on 16x112x112 clips (C, T, H, W), and the batch timed per device.
BANDWIDTH_STAGE = (256, 8, 28, 28)
BANDWIDTH_BATCH = {"cpu": 2, "cuda": 32}


# ---------------------------------------------------------------------------- environment


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _elf_comment(path: str | os.PathLike) -> list[str]:
    """The strings in an ELF file's ``.comment`` section, where GCC and Clang record
    themselves (e.g. ``GCC: (Debian 12.2.0-14) 12.2.0``); ``[]`` if there is none."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return []
    wide = data[4] == 2  # ELFCLASS64
    order = "<" if data[5] == 1 else ">"
    if wide:
        (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x3A)
        layout = order + "IIQQQQ"  # name, type, flags, addr, offset, size
    else:
        (shoff,) = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x2E)
        layout = order + "IIIIII"
    if shoff == 0 or shstrndx >= shnum:
        return []
    sections = [struct.unpack_from(layout, data, shoff + i * shentsize) for i in range(shnum)]
    names_offset = sections[shstrndx][4]
    for name, _, _, _, offset, size in sections:
        end = data.index(b"\0", names_offset + name)
        if data[names_offset + name : end] == b".comment":
            raw = data[offset : offset + size].split(b"\0")
            return list(dict.fromkeys(s.decode("utf-8", "replace") for s in raw if s))
    return []


def _loaded_extension_path() -> str | None:
    """The file of the loaded compiled extension (``stc_ext._C``, or a JIT build)."""
    module = sys.modules.get("stc_ext._C")
    if module is not None and getattr(module, "__file__", None):
        return module.__file__
    try:  # a JIT build is loaded as a plain library: find it among the process's mappings
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if Path(path).name.startswith("stc_ext_jit"):
                    return path
    except OSError:
        pass
    return None


def extension_compiler() -> tuple[str | None, str | None]:
    """(path of the loaded extension, the compiler it was built with), None where unknown.

    The compiler is read from the library's ELF ``.comment`` section, which the compiler
    itself writes at build time, so it is right for setup.py and JIT builds alike.
    """
    from .ops import native

    if native.load() is not None:
        return None, None
    path = _loaded_extension_path()
    if path is None:
        return None, None
    try:
        compilers = _elf_comment(path)
    except (OSError, struct.error, ValueError):
        compilers = []
    return path, "; ".join(compilers) or None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _backend_states(devices: list[torch.device]) -> list[dict[str, Any]]:
    try:
        disabled = backends.disabled_backends()
        disable_error = None
    except ValueError as exc:
        disabled, disable_error = frozenset(), str(exc)
    states = [
        {
            "name": "reference",
            "available_on": [d.type for d in devices],
            "state": "available (plain PyTorch, the oracle)",
        }
    ]
    for name in backends.BACKENDS:
        entry = backends.backend(name)
        runs_on = [d.type for d in devices if entry.runs_on(d)]
        if name in disabled:
            state = f"disabled by {backends.DISABLE_VARIABLE}"
            runs_on = []
        elif entry.kernels is None:
            state = f"missing: {entry.unavailable_reason}"
        elif not runs_on:
            state = "built, but no device here runs it (no CUDA GPU)"
        else:
            state = "available"
        states.append({"name": name, "available_on": runs_on, "state": state})
    if disable_error is not None:
        states.append(
            {"name": backends.DISABLE_VARIABLE, "available_on": [], "state": disable_error}
        )
    return states


def _devices() -> list[torch.device]:
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    return devices


def environment() -> dict[str, Any]:
    """What ``stc info`` reports, as plain data (JSON-serialisable)."""
    from . import __version__
    from .ops import native

    extension_error = native.load()
    path, compiler = extension_compiler()
    has_cuda_kernels = extension_error is None and native.has_cuda_kernels()
    devices = _devices()
    cuda_devices = []
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        props = torch.cuda.get_device_properties(i)
        cuda_devices.append(
            {
                "index": i,
                "name": props.name,
                "capability": f"{props.major}.{props.minor}",
                "memory_gib": round(props.total_memory / 2**30, 1),
            }
        )
    backend_states = _backend_states(devices)  # loads each backend (and Triton's kernels)
    triton_kernels = sys.modules.get("stc_ext.ops.triton.kernels")
    auto = {}
    for device in devices:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the reference fallback's warning
                auto[device.type] = backends.resolve_backend("auto", device)
        except ValueError as exc:  # a bad STC_EXT_DISABLE
            auto[device.type] = f"error: {exc}"
    return {
        "stc_ext": {"version": __version__, "location": str(Path(__file__).parent)},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": {
            "version": str(torch.__version__),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
            "threads": torch.get_num_threads(),
        },
        "triton": {
            "version": _package_version("triton"),
            "interpreter": None if triton_kernels is None else triton_kernels.INTERPRETED,
            "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET"),
        },
        "extension": {
            "loaded": extension_error is None,
            "path": path,
            "compiler": compiler,
            "cuda_kernels": has_cuda_kernels,
            "error": extension_error,
        },
        "devices": {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "cuda": cuda_devices},
        "backends": backend_states,
        "auto": auto,
        "variables": {
            name: os.environ.get(name)
            for name in (backends.DISABLE_VARIABLE, "STC_EXT_JIT", "TORCH_CUDA_ARCH_LIST")
        },
    }


def format_environment(env: dict[str, Any]) -> str:
    """``environment()`` as the aligned text ``stc info`` prints."""
    torch_info, triton, ext = env["torch"], env["triton"], env["extension"]
    triton_line = triton["version"] or "not installed"
    if triton["interpreter"] is not None:
        triton_line += " (interpreter on)" if triton["interpreter"] else " (compiled kernels)"
    if ext["loaded"]:
        extension = f"loaded from {ext['path'] or '?'}"
        extension += f"\n{'':16}compiler: {ext['compiler'] or 'unknown'}"
        extension += f"\n{'':16}CUDA kernels: {'yes' if ext['cuda_kernels'] else 'no'}"
    else:
        extension = f"not loaded: {ext['error']}"
    rows = [
        ("stc_ext", f"{env['stc_ext']['version']} ({env['stc_ext']['location']})"),
        ("python", f"{env['python']} on {env['platform']}"),
        ("torch", f"{torch_info['version']} ({torch_info['threads']} CPU threads)"),
        ("CUDA (torch)", torch_info["cuda"] or "none (CPU build)"),
    ]
    if torch_info["cudnn"]:
        rows.append(("cuDNN", str(torch_info["cudnn"])))
    rows += [("triton", triton_line), ("extension", extension)]
    rows.append(("CPU", f"{env['devices']['cpu']} ({env['devices']['cpu_count']} cores)"))
    for gpu in env["devices"]["cuda"]:
        rows.append(
            (
                f"cuda:{gpu['index']}",
                f"{gpu['name']} (sm {gpu['capability']}, {gpu['memory_gib']} GiB)",
            )
        )
    if not env["devices"]["cuda"]:
        rows.append(("GPU", "none visible"))
    lines = [f"{name:<16}{value}" for name, value in rows]
    lines.append("backends:")
    for state in env["backends"]:
        where = f" on {', '.join(state['available_on'])}" if state["available_on"] else ""
        lines.append(f"  {state['name']:<14}{state['state']}{where}")
    lines.append("auto picks:      " + ", ".join(f"{d}: {b}" for d, b in env["auto"].items()))
    set_vars = {k: v for k, v in env["variables"].items() if v is not None}
    if set_vars:
        lines.append("environment:     " + ", ".join(f"{k}={v}" for k, v in set_vars.items()))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- self-check


@dataclass
class CheckResult:
    """One backend in one dtype against the reference: passed, or the cases that failed."""

    backend: str
    device: str
    dtype: str
    cases: int
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    def line(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        text = (
            f"{status}  {self.backend:<9} {self.device:<5} {self.dtype:<9} "
            f"{self.cases - len(self.failures)}/{self.cases} cases ({self.seconds:.2f} s)"
        )
        return text + "".join(f"\n      {failure}" for failure in self.failures)


def _check_device(device: torch.device | str | None) -> torch.device:
    """``device``, or CUDA when present, else the CPU; raises ValueError if it is absent."""
    if device is None:
        return _devices()[-1]
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} is not available here (no CUDA GPU visible)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {device}")
    return device


def _check_names(device: torch.device, names: list[str] | None) -> list[str]:
    """``names`` (default: every backend available on ``device``); each must run there."""
    available = backends.available_backends(device)
    if names is None:
        return available
    absent = [n for n in names if n not in available]
    if absent:
        raise ValueError(
            f"backends {', '.join(map(repr, absent))} cannot run on {device} here; "
            f"available: {', '.join(available)}"
        )
    return list(names)


def check_dtypes(device: torch.device) -> tuple[torch.dtype, ...]:
    """The dtypes checked on ``device``: float32 and bfloat16, plus float16 on CUDA."""
    if device.type == "cuda":
        return (torch.float32, torch.bfloat16, torch.float16)
    return (torch.float32, torch.bfloat16)


def _check_one(backend: str, device: torch.device, dtype: torch.dtype) -> CheckResult:
    from .testing import check_against_reference, poisoned_allocations

    result = CheckResult(backend, device.type, str(dtype).replace("torch.", ""), 0)
    start = time.perf_counter()
    cases = itertools.product(CHECK_SHAPES, (False, True), (False, True))
    for shape, channels_last, residual in cases:
        result.cases += 1
        case = (shape, str(dtype), channels_last, residual)
        generator = torch.Generator().manual_seed(zlib.crc32(repr(case).encode()))
        try:
            # Unwritten outputs show up as NaN; deterministic mode only warns on GPU
            # matmuls that have no deterministic variant.
            with warnings.catch_warnings(), poisoned_allocations(warn_only=True):
                warnings.simplefilter("ignore", UserWarning)
                check_against_reference(
                    backend, device, shape, dtype, channels_last, residual, generator=generator
                )
        except Exception as exc:  # a self-test reports whatever goes wrong, and goes on
            layout = "channels_last_3d" if channels_last else "NCTHW"
            form = "residual" if residual else "plain"
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            result.failures.append(
                f"x {tuple(shape)} {layout} {form}: {type(exc).__name__}: {message}"
            )
    result.seconds = time.perf_counter() - start
    return result


def check_backends(
    device: torch.device | str | None = None, names: list[str] | None = None
) -> list[CheckResult]:
    """Every backend available on ``device`` (default: CUDA if present, else CPU), or those
    in ``names``, against the float64 reference: one ``CheckResult`` per backend and dtype.

    Each result covers ``CHECK_SHAPES`` x {NCTHW, channels_last_3d} x {plain, residual},
    forward and every gradient, with ``stc_ext.testing``'s tolerances.

    Raises:
        ValueError: ``device`` is not there.
    """
    device = _check_device(device)
    names = _check_names(device, names)
    # The inputs are tiny: on a busy CPU, more threads only add synchronisation (10x here).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [_check_one(n, device, dtype) for n in names for dtype in check_dtypes(device)]
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- bandwidth


@dataclass
class BandwidthResult:
    """Achieved bandwidth of one forward pass: minimum bytes (x read once, y written once)
    over the median time; ``note`` says why a backend was not timed."""

    name: str
    gbps: float | None
    milliseconds: float | None
    note: str = ""


def _median_seconds(fn, device: torch.device, rounds: int) -> float:
    fn()  # warm up (and, for the first call of a backend, load it)
    times = []
    for _ in range(rounds):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_bandwidth(
    device: torch.device | str | None = None,
    names: list[str] | None = None,
    rounds: int = 5,
) -> tuple[tuple[int, ...], list[BandwidthResult]]:
    """Time ``STCBlock``'s forward on one ResNet-50 stage shape per backend, and a copy.

    Returns ``(shape, results)``: the (N, C, T, H, W) timed and one result per backend, the
    first being ``"copy"`` (``out.copy_(x)`` into a reused buffer: what memory allows). Both
    move 2 |x| bytes. Triton under its interpreter is not timed (it would time numpy).
    """
    from .nn import STCBlock

    device = _check_device(device)
    names = _check_names(device, names)
    shape = (BANDWIDTH_BATCH.get(device.type, 2), *BANDWIDTH_STAGE)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=generator).to(device)
    out = torch.empty_like(x)
    moved = 2 * x.numel() * x.element_size()

    def result(name: str, seconds: float) -> BandwidthResult:
        return BandwidthResult(name, moved / seconds / 1e9, seconds * 1e3)

    results = [result("copy", _median_seconds(lambda: out.copy_(x), device, rounds))]
    block = STCBlock(shape[1], shape[2]).to(device)
    for name in names:
        if name == "triton" and device.type == "cpu":
            results.append(BandwidthResult(name, None, None, "interpreted: not timed"))
            continue
        block.backend = name
        with torch.inference_mode():
            seconds = _median_seconds(lambda: block(x), device, rounds)
        results.append(result(name, seconds))
    return shape, results
