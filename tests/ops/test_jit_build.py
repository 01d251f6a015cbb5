"""The JIT fallback (stc_ext/ops/jit.py, loaded by stc_ext/ops/native.py): used only when
asked for, never breaking import.

Each scenario runs in a fresh interpreter in which ``stc_ext._C`` cannot be imported (as
on an install that did not build it): the op library can be registered once per process,
and this one already loaded the built extension. Each takes seconds (a fresh interpreter,
or a compile): they are marked slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from stc_ext import _extension_sources as sources
from stc_ext.ops import jit

# Makes `import stc_ext._C` fail, as where the extension was not built.
_HIDE_EXTENSION = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class _HideBuiltExtension(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "stc_ext._C":
                raise ImportError("stc_ext._C hidden by the test")
            return None

    sys.meta_path.insert(0, _HideBuiltExtension())
    """
)

# The CPU kernels, loaded through the JIT build, against plain PyTorch.
_CHECK_KERNELS = textwrap.dedent(
    """
    import torch
    import stc_ext
    from stc_ext.ops import native

    assert native.is_loaded(), native.unavailable_reason()
    assert "cpu" in stc_ext.available_backends("cpu")
    ops = torch.ops.stc_ext
    x = torch.randn(2, 5, 3, 4, 6, dtype=torch.float64)
    dy, y = torch.randn_like(x), torch.randn_like(x)
    g, ds = torch.rand(2, 5, dtype=torch.float64), torch.randn(2, 5, 3, dtype=torch.float64)
    mask = (y > 0).to(x.dtype)
    torch.testing.assert_close(ops.pool(x), x.mean((3, 4)))
    torch.testing.assert_close(ops.rescale(x, g, None), x * g[..., None, None, None])
    torch.testing.assert_close(ops.rescale_backward_sums(dy, x, y), (dy * mask * x).sum((3, 4)))
    dx, _ = ops.rescale_backward_input(dy, g, ds, None)
    torch.testing.assert_close(dx, g[..., None, None, None] * dy + ds[..., None, None] / 24)
    """
)


def _run_python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ)
    environment.pop("STC_EXT_JIT", None)
    environment.pop("TRITON_INTERPRET", None)  # the checks below count the C++ backends only
    environment["STC_EXT_JIT_DIR"] = str(tmp_path / "jit")
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", _HIDE_EXTENSION + code],
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _can_compile() -> str | None:
    """Why a JIT build cannot run here, or None."""
    from torch.utils.cpp_extension import is_ninja_available

    if not is_ninja_available():
        return "ninja is not available"
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        return "no C++ compiler on PATH"
    return None


def test_build_directory_is_keyed_by_torch_python_and_sources(tmp_path: Path):
    directory = jit.build_directory(with_cuda=False, root=tmp_path)
    assert directory.parent == tmp_path / "stc_ext"
    name = directory.name
    assert name.startswith(torch.__version__.replace("+", "_"))
    assert f"py{sys.version_info.major}.{sys.version_info.minor}" in name and "-cpu-" in name
    assert name.endswith(sources.sources_digest(with_cuda=False)[:16])
    assert jit.build_directory(with_cuda=False, root=tmp_path) == directory  # stable


@pytest.mark.slow
def test_without_opt_in_import_works_and_nothing_is_built(tmp_path: Path):
    result = _run_python(
        textwrap.dedent(
            """
            import stc_ext
            from stc_ext.ops import native
            assert not native.is_loaded()
            assert "hidden by the test" in native.unavailable_reason()
            assert stc_ext.available_backends("cpu") == ["reference"]
            """
        ),
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "jit").exists()


@pytest.mark.slow
def test_failed_jit_build_warns_and_import_still_works(tmp_path: Path):
    result = _run_python(
        textwrap.dedent(
            """
            import stc_ext
            from stc_ext.ops import native
            assert not native.is_loaded()
            assert "JIT build failed" in native.unavailable_reason()
            assert stc_ext.available_backends("cpu") == ["reference"]
            """
        ),
        tmp_path,
        STC_EXT_JIT="1",
        CXX=shutil.which("false") or "/bin/false",  # a "compiler" that always fails
    )
    assert result.returncode == 0, result.stderr
    assert "JIT build of the extension failed" in result.stderr


@pytest.mark.slow
def test_jit_build_compiles_loads_and_is_reused(tmp_path: Path):
    reason = _can_compile()
    if reason is not None:
        pytest.skip(f"cannot JIT-compile here: {reason}")
    # Opt in at import: compiles the CPU extension (~30 s) into a fresh directory.
    first = _run_python(_CHECK_KERNELS, tmp_path, STC_EXT_JIT="1", MAX_JOBS="2")
    assert first.returncode == 0, first.stderr[-6000:]
    libraries = list((tmp_path / "jit").rglob(f"{jit.LIBRARY_NAME}.so"))
    assert len(libraries) == 1
    built = libraries[0].stat().st_mtime_ns

    # The explicit call reuses that build instead of compiling again.
    second = _run_python(
        "from stc_ext.ops import native\n"
        f"native.jit_build(root={str(tmp_path / 'jit')!r})\n" + _CHECK_KERNELS,
        tmp_path,
    )
    assert second.returncode == 0, second.stderr[-6000:]
    assert libraries[0].stat().st_mtime_ns == built


@pytest.mark.slow
def test_stc_ext_jit_is_read_when_the_extension_is_needed(tmp_path: Path):
    """STC_EXT_JIT is read on each call while the extension is missing, not frozen at import."""
    result = _run_python(
        textwrap.dedent(
            """
            import os
            import stc_ext
            from stc_ext.ops import native
            assert "JIT" not in native.load()  # not asked for: no build tried
            os.environ["STC_EXT_JIT"] = "1"
            assert "JIT build failed" in native.load()  # asked for now: tried (and failed)
            """
        ),
        tmp_path,
        CXX=shutil.which("false") or "/bin/false",
    )
    assert result.returncode == 0, result.stderr
    assert "JIT build of the extension failed" in result.stderr
