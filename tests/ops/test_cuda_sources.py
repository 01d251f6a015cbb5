"""The CUDA backend's sources, checked where no GPU (or no CUDA torch) is available.

* Every ``csrc/cuda/*.cu`` compiles with nvcc for sm_80 and sm_90, with the flags the
  extension build passes (torch's ``COMMON_NVCC_FLAGS`` and ``_extension_sources.NVCC_FLAGS``).
* ``csrc/cuda/testing/emulate.cu`` runs the kernels' own per-thread code on the CPU for
  every op, dtype and layout, against a float64 reference, under AddressSanitizer and
  UBSan (an out-of-bounds index fails), and checks that every code path was reached.
* The torch glue ``csrc/cuda/stc_cuda.cpp`` compiles (syntax only) against the installed
  torch's headers; a CPU-only torch lacks one generated c10/cuda header, stubbed here.

What needs a GPU (numerics on the device, graphs, races) is in test_cuda_gpu.py and the
backend- and device-parametrized suites (test_stc.py, test_registration.py). The compiles
and the emulation take tens of seconds each: they are marked slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from stc_ext import _extension_sources as sources

CUDA_DIR = sources.csrc_dir() / "cuda"
NVCC = shutil.which("nvcc")
ARCHS = ("80", "90")
KERNEL_SOURCES = sorted(CUDA_DIR.glob("*.cu"))

needs_nvcc = pytest.mark.skipif(
    NVCC is None, reason="nvcc is not on PATH: the CUDA sources cannot be compiled here"
)


def _torch_nvcc_flags() -> list[str]:
    """The flags torch's build adds to every nvcc call (half/bf16 operators disabled...)."""
    from torch.utils import cpp_extension

    return list(getattr(cpp_extension, "COMMON_NVCC_FLAGS", []))


def _run(command: list[str], timeout: int, env: dict[str, str] | None = None):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def _cuda_include_dir() -> Path | None:
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    if NVCC is not None:
        candidates.append(str(Path(NVCC).resolve().parent.parent))
    candidates.append("/usr/local/cuda")
    for root in candidates:
        if root and (Path(root) / "include" / "cuda_runtime_api.h").is_file():
            return Path(root) / "include"
    return None


def test_kernel_sources_are_there():
    names = {p.name for p in KERNEL_SOURCES}
    assert {"stc_sum.cu", "stc_map.cu"} <= names
    assert (CUDA_DIR / "stc_cuda.cpp").is_file() and (CUDA_DIR / "stc_kernels.cuh").is_file()
    # The CPU build must not see the CUDA files; the CUDA build sees kernels and glue only.
    assert not any("cuda" in Path(f).parts for f in sources.extension_sources(with_cuda=False))
    cuda_files = {Path(f).name for f in sources.extension_sources(with_cuda=True)}
    assert names | {"stc_cuda.cpp"} <= cuda_files and "emulate.cu" not in cuda_files


@pytest.mark.slow
@needs_nvcc
@pytest.mark.parametrize("source", KERNEL_SOURCES, ids=lambda p: p.name)
def test_cu_file_compiles_for_sm80_and_sm90(source: Path, tmp_path: Path):
    command = [
        NVCC,
        "-c",
        *_torch_nvcc_flags(),
        *sources.NVCC_FLAGS,
        "-Xcompiler",
        "-fPIC",
        f"-I{sources.csrc_dir()}",
        "--threads",
        "2",
    ]
    for arch in ARCHS:
        command += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
    command += [str(source), "-o", str(tmp_path / f"{source.stem}.o")]
    result = _run(command, timeout=1200)
    assert result.returncode == 0, f"nvcc failed on {source.name}:\n{result.stderr[-6000:]}"


@pytest.mark.slow
@needs_nvcc
def test_kernels_emulated_on_cpu_match_float64(tmp_path: Path):
    exe = tmp_path / "emulate"
    source = CUDA_DIR / "testing" / "emulate.cu"
    base = [NVCC, *_torch_nvcc_flags(), "-std=c++17", "-O0", str(source), "-o", str(exe)]
    sanitizers = []
    for flag in ("-fsanitize=address", "-fsanitize=undefined", "-fno-sanitize-recover=all"):
        sanitizers += ["-Xcompiler", flag]
    sanitizers += ["-lasan", "-lubsan"]
    build = _run(base + sanitizers, timeout=900)
    if build.returncode != 0:
        if "sanitize" not in build.stderr and "asan" not in build.stderr:
            pytest.fail(f"emulate.cu does not compile:\n{build.stderr[-6000:]}")
        warnings.warn("no AddressSanitizer here: the emulation runs without it", stacklevel=1)
        build = _run(base, timeout=900)
        assert build.returncode == 0, f"emulate.cu does not compile:\n{build.stderr[-6000:]}"
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0"}
    result = _run([str(exe)], timeout=900, env=env)
    assert result.returncode == 0, (
        f"the emulated kernels failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    assert "0 failures" in result.stdout


@pytest.mark.slow
def test_glue_compiles_against_torch_headers(tmp_path: Path):
    from torch.utils.cpp_extension import include_paths

    cxx = shutil.which(os.environ.get("CXX", "c++"))
    if cxx is None:
        pytest.skip("no C++ compiler on PATH")
    cuda_include = _cuda_include_dir()
    if cuda_include is None:
        pytest.skip("no CUDA toolkit headers found (CUDA_HOME, nvcc, /usr/local/cuda)")
    torch_includes = include_paths()
    generated = Path("c10") / "cuda" / "impl" / "cuda_cmake_macros.h"
    if not any((Path(d) / generated).is_file() for d in torch_includes):
        (tmp_path / generated).parent.mkdir(parents=True)
        (tmp_path / generated).write_text("#pragma once\n")  # only a CUDA torch generates it
    command = [cxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-isystem", str(tmp_path)]
    for directory in [*torch_includes, str(cuda_include)]:
        command += ["-isystem", directory]
    command += [f"-I{sources.csrc_dir()}", str(CUDA_DIR / "stc_cuda.cpp")]
    result = _run(command, timeout=600)
    assert result.returncode == 0, f"stc_cuda.cpp does not compile:\n{result.stderr[-6000:]}"
    assert "warning" not in result.stderr, result.stderr[-6000:]
