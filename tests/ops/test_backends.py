"""stc_ext/ops/backends.py: the backend table, per-call backend choice and the fallback."""

import subprocess
import sys
import types
import warnings

import pytest
import torch

import stc_ext
from stc_ext import STCBlock
from stc_ext.ops import backends


def test_available_backends_here():
    names = stc_ext.available_backends()
    assert names[0] == "reference"
    assert set(names) <= {"reference", "cpu", "cuda", "triton"}


def test_the_table_has_one_entry_per_kernel_backend():
    assert set(backends.BACKENDS) == set(backends.BACKEND_NAMES) - {"reference"}
    for name in backends.BACKENDS:
        entry = backends.backend(name)
        # Either kernels or the reason there are none, never both or neither.
        assert (entry.kernels is None) == (entry.unavailable_reason is not None), name
        if entry.kernels is None:
            assert not entry.runs_on(torch.device("cpu")), name
            with pytest.raises(RuntimeError, match=f"backend {name!r} is not available here"):
                backends.kernels(name)


def test_the_public_function_lives_in_its_own_module():
    import stc_ext.ops.stc_function as module

    assert isinstance(module, types.ModuleType)
    assert stc_ext.stc is stc_ext.ops.stc is module.stc


def test_auto_picks_the_cpu_kernel_when_built():
    if "cpu" not in stc_ext.available_backends("cpu"):
        pytest.skip("the C++ extension is not built")
    assert backends.resolve_backend("auto", torch.device("cpu")) == "cpu"


def test_auto_falls_back_to_reference_with_one_warning(monkeypatch):
    monkeypatch.setitem(
        backends.BACKENDS, "cpu", lambda: backends._unavailable("no kernels in this test")
    )
    monkeypatch.setattr(backends, "_loaded", {})
    monkeypatch.setattr(backends, "_fallback_warned", set())
    block = STCBlock(4, 2)
    x = torch.randn(1, 4, 2, 3, 3)
    with pytest.warns(RuntimeWarning, match="reference") as record:
        y = block(x)
    assert "cpu: no kernels in this test" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        block(x)  # warned once only
    torch.testing.assert_close(y, stc_ext.stc_reference(x, block.params()))


def test_explicit_backend_that_cannot_run_is_an_error():
    block = STCBlock(4, 2, backend="cuda")
    with pytest.raises(ValueError, match="backend 'cuda' cannot run on cpu tensors"):
        block(torch.randn(1, 4, 2, 3, 3))


def test_triton_entry_follows_what_triton_decided():
    """TRITON_INTERPRET is Triton's decision at kernel definition, recorded in one place."""
    kernels = pytest.importorskip("stc_ext.ops.triton.kernels", reason="triton is not installed")
    on_cpu = backends.backend("triton").runs_on(torch.device("cpu"))
    assert on_cpu == kernels.INTERPRETED


@pytest.mark.slow
def test_import_loads_no_backend():
    """Importing stc_ext loads no kernels; the table loads an entry when it is first used."""
    code = (
        "import sys\n"
        "import stc_ext\n"
        "loaded = lambda: sorted(m for m in ('stc_ext._C', 'stc_ext.ops.triton.ops')"
        " if m in sys.modules)\n"
        "print(loaded())\n"
        "stc_ext.available_backends('cpu')\n"
        "print(loaded())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    at_import, after_use = result.stdout.splitlines()
    assert at_import == "[]"
    if "cpu" in stc_ext.available_backends("cpu"):
        assert "stc_ext._C" in after_use
