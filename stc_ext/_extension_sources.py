"""Which C++/CUDA sources make up ``stc_ext._C`` and how to compile them.

One description serves both ``setup.py`` (ahead-of-time build) and the JIT fallback
(``stc_ext/ops/jit.py``), so the two cannot drift apart. Importable without importing
``stc_ext`` itself; torch is imported only inside the functions that need it.

The build's environment variables are read here, when a build asks (never at import):
``STC_EXT_FORCE_CPU=1`` builds the CPU kernels alone (``cuda_build_wanted``);
``TORCH_CUDA_ARCH_LIST`` picks the GPU architectures (``ensure_cuda_arch_list``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# -fno-trapping-math lets GCC turn the CPU kernels' ReLU mask into a vector select; with
# trapping math it stays a branch, about 10x slower on random data (csrc/cpu/stc_cpu.cpp).
CXX_FLAGS = ["-O3", "-std=c++17", "-fopenmp", "-fno-trapping-math"]
LINK_FLAGS = ["-fopenmp"]  # at::parallel_for runs on one thread without OpenMP
NVCC_FLAGS = ["-O3", "-std=c++17", "--use_fast_math", "-lineinfo"]
# Used when TORCH_CUDA_ARCH_LIST is unset and no GPU is visible (A100 and H100/H200).
FALLBACK_CUDA_ARCH_LIST = "8.0;9.0"


def csrc_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "csrc"


def extension_sources(with_cuda: bool, root: Path | None = None) -> list[str]:
    """Source files, relative to ``root`` when given (setup.py wants relative paths).

    The CUDA build adds ``csrc/cuda/*.cu`` (kernels, CUDA toolkit only) and
    ``csrc/cuda/*.cpp`` (the torch glue); subdirectories such as ``csrc/cuda/testing``
    are not part of the extension.
    """
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


def cuda_build_wanted() -> bool:
    """Build the CUDA kernels? Only when torch has CUDA and a CUDA toolkit was found.

    ``CUDA_HOME`` is None under a CPU-only torch even where nvcc is installed, while
    ``torch.cuda.is_available()`` is False on a GPU-less build host whose torch and toolkit
    could build the CUDA kernels perfectly well. ``STC_EXT_FORCE_CPU=1`` builds the CPU
    kernels alone.
    """
    if os.environ.get("STC_EXT_FORCE_CPU", "0") == "1":
        return False
    import torch
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.version.cuda is not None and CUDA_HOME is not None


def ensure_cuda_arch_list() -> str:
    """Sets ``TORCH_CUDA_ARCH_LIST`` when unset (the local GPU's arch, else
    FALLBACK_CUDA_ARCH_LIST: torch's build raises IndexError with neither) and returns it."""
    arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if not arch_list:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            arch_list = f"{major}.{minor}"
        else:
            arch_list = FALLBACK_CUDA_ARCH_LIST
        os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list
    return arch_list


def sources_digest(with_cuda: bool) -> str:
    """A hash of everything that decides the build's result: every file under csrc/ that
    the build can see (sources and headers) and the flags."""
    csrc = csrc_dir()
    files = [csrc / "stc.cpp", *csrc.glob("*.h"), *(csrc / "cpu").glob("*")]
    if with_cuda:
        files += [f for f in (csrc / "cuda").glob("*") if f.is_file()]
    digest = hashlib.sha256()
    for f in sorted(set(files)):
        digest.update(str(f.relative_to(csrc)).encode())
        digest.update(f.read_bytes())
    flags = CXX_FLAGS + LINK_FLAGS + (NVCC_FLAGS if with_cuda else [])
    digest.update(" ".join(flags).encode())
    return digest.hexdigest()
