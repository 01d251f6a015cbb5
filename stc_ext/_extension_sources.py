"""Which C++/CUDA sources make up ``stc_ext._C`` and how to compile them.

One description serves both ``setup.py`` (ahead-of-time build) and the JIT fallback, so
the two cannot drift apart. Importable without importing ``stc_ext`` itself.
"""

from __future__ import annotations

from pathlib import Path

# -fno-trapping-math: lets GCC vectorise the ReLU-mask selects (see csrc/cpu/stc_cpu.cpp).
CXX_FLAGS = ["-O3", "-std=c++17", "-fopenmp", "-fno-trapping-math"]
LINK_FLAGS = ["-fopenmp"]  # at::parallel_for runs on one thread without OpenMP
NVCC_FLAGS = ["-O3", "-std=c++17", "--use_fast_math", "-lineinfo"]


def csrc_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "csrc"


def extension_sources(with_cuda: bool, root: Path | None = None) -> list[str]:
    """Source files, relative to ``root`` when given (setup.py wants relative paths)."""
    csrc = csrc_dir()
    files = [csrc / "stc.cpp", *sorted((csrc / "cpu").glob("*.cpp"))]
    if with_cuda:
        files += sorted((csrc / "cuda").glob("*.cu")) + sorted((csrc / "cuda").glob("*.cpp"))
    if root is not None:
        return [str(f.relative_to(root)) for f in files]
    return [str(f) for f in files]


def compile_args(with_cuda: bool) -> dict[str, list[str]]:
    args = {"cxx": list(CXX_FLAGS)}
    if with_cuda:
        args["nvcc"] = list(NVCC_FLAGS)
    return args
