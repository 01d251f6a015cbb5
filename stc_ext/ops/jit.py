"""Just-in-time build of the extension, for installs that did not compile ``stc_ext._C``.

Compiles the same sources with the same flags as setup.py (both read
``stc_ext/_extension_sources.py``) through ``torch.utils.cpp_extension.load`` and ninja,
and loads the result as a plain library: importing it runs the ``TORCH_LIBRARY``
registrations, exactly as importing ``stc_ext._C`` does. Nothing here runs unless asked
for: ``STC_EXT_JIT=1`` when the extension is first needed (``stc_ext.ops.native.load``), or
``stc_ext.ops.native.jit_build()``.

The build directory is keyed by the torch version, Python version, CUDA or CPU, and a hash
of the sources and flags, because torch's own JIT cache is keyed by none of the first three
(a library built against one torch does not load under another). The JIT build needs the
C++ sources, i.e. a source checkout or an editable install.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import torch

from .. import _extension_sources as sources

LIBRARY_NAME = "stc_ext_jit"


def _default_root() -> Path:
    root = os.environ.get("STC_EXT_JIT_DIR") or os.environ.get("TORCH_EXTENSIONS_DIR")
    if root:
        return Path(root)
    return Path.home() / ".cache" / "torch_extensions"


def build_directory(with_cuda: bool, root: str | os.PathLike | None = None) -> Path:
    """Where the JIT build for this torch, Python, device kind and source tree lives:
    ``<root>/stc_ext/<torch>-py<X.Y>-<cpu|cuXX.Y>-<hash>``. ``root`` defaults to
    ``STC_EXT_JIT_DIR``, else ``TORCH_EXTENSIONS_DIR``, else ``~/.cache/torch_extensions``."""
    device = f"cu{torch.version.cuda}" if with_cuda else "cpu"
    python = f"py{sys.version_info.major}.{sys.version_info.minor}"
    key = f"{torch.__version__}-{python}-{device}-{sources.sources_digest(with_cuda)[:16]}"
    key = re.sub(r"[^A-Za-z0-9._-]", "_", key)
    return Path(root if root is not None else _default_root()) / "stc_ext" / key


def build(
    with_cuda: bool | None = None,
    root: str | os.PathLike | None = None,
    verbose: bool = False,
) -> str:
    """Compiles (or reuses) and loads the extension; returns the loaded library's path.

    Args:
        with_cuda: build the CUDA kernels too; default: when torch has CUDA and a CUDA
            toolkit is found (as setup.py decides).
        root: parent of the build directory (see ``build_directory``).
        verbose: show the compiler's output.

    Raises:
        FileNotFoundError: the C++ sources are not there (not a source checkout).
        RuntimeError: the build failed (torch's message carries the compiler output).
    """
    from torch.utils.cpp_extension import load

    if not (sources.csrc_dir() / "stc.cpp").is_file():
        raise FileNotFoundError(
            f"stc_ext: the JIT build needs the C++ sources, not found at {sources.csrc_dir()} "
            "(install from a source checkout)"
        )
    if with_cuda is None:
        with_cuda = sources.cuda_build_wanted()
    if with_cuda:
        sources.ensure_cuda_arch_list()
    directory = build_directory(with_cuda, root)
    directory.mkdir(parents=True, exist_ok=True)
    return load(
        name=LIBRARY_NAME,
        sources=sources.extension_sources(with_cuda),
        extra_cflags=list(sources.CXX_FLAGS),
        extra_cuda_cflags=list(sources.NVCC_FLAGS) if with_cuda else None,
        extra_ldflags=list(sources.LINK_FLAGS),
        extra_include_paths=[str(sources.csrc_dir())],
        build_directory=str(directory),
        with_cuda=with_cuda,
        is_python_module=False,
        verbose=verbose,
    )
