"""Builds stc_ext._C: the CPU kernels always, the CUDA kernels when torch has CUDA.

Install with ``pip install --no-build-isolation -e .`` so the build uses the torch that is
already installed (an isolated build would fetch another one). The CUDA kernels are built
when torch has CUDA and a CUDA toolkit is found (``STC_EXT_FORCE_CPU=1`` skips them), for
the architectures in ``TORCH_CUDA_ARCH_LIST`` (default: the local GPU's, else 8.0;9.0); both
variables are read in stc_ext/_extension_sources.py, which the JIT build shares.
``MAX_JOBS`` limits the parallel compile jobs (ninja).
"""

import importlib.util
from pathlib import Path

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

ROOT = Path(__file__).resolve().parent


def _load_sources_module():
    spec = importlib.util.spec_from_file_location(
        "_stc_extension_sources", ROOT / "stc_ext" / "_extension_sources.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _extension():
    sources = _load_sources_module()
    with_cuda = sources.cuda_build_wanted()
    if with_cuda:
        sources.ensure_cuda_arch_list()
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
