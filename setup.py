"""Builds stc_ext._C: the CPU kernels always, the CUDA kernels when torch has CUDA.

Install with ``pip install --no-build-isolation -e .`` so the build uses the torch that is
already installed (an isolated build would fetch another one).
"""

import importlib.util
import os
from pathlib import Path

from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = Path(__file__).resolve().parent


def _load_sources_module():
    spec = importlib.util.spec_from_file_location(
        "_stc_extension_sources", ROOT / "stc_ext" / "_extension_sources.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _want_cuda() -> bool:
    # CUDA_HOME is None under a CPU-only torch even where nvcc exists (see PITFALLS.md).
    if os.environ.get("STC_EXT_FORCE_CPU", "0") == "1":
        return False
    import torch

    return torch.version.cuda is not None and CUDA_HOME is not None


def _extension():
    sources = _load_sources_module()
    with_cuda = _want_cuda()
    if with_cuda and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            os.environ["TORCH_CUDA_ARCH_LIST"] = f"{major}.{minor}"
        else:
            os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0"
    kind = CUDAExtension if with_cuda else CppExtension
    return kind(
        name="stc_ext._C",
        sources=sources.extension_sources(with_cuda, root=ROOT),
        include_dirs=[str(ROOT / "csrc")],
        extra_compile_args=sources.compile_args(with_cuda),
        extra_link_args=list(sources.LINK_FLAGS),
    )


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
