"""stc_ext/info.py and `stc info`: the environment report and the backends' self-check."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch

import stc_ext
from stc_ext import cli, info
from stc_ext.ops import backends, native


def test_environment_names_versions_and_every_backend():
    env = info.environment()
    assert env["stc_ext"]["version"] == stc_ext.__version__
    assert env["torch"]["version"] == str(torch.__version__)
    assert [b["name"] for b in env["backends"]] == list(backends.BACKEND_NAMES)
    for state in env["backends"]:
        if state["name"] == "reference":
            continue
        entry = backends.backend(state["name"])
        if entry.kernels is None:  # a missing backend says why, in the table's words
            assert state["state"] == f"missing: {entry.unavailable_reason}"
    json.dumps(env)  # plain data
    text = info.format_environment(env)
    for name in backends.BACKEND_NAMES:
        assert f"\n  {name} " in text


@pytest.mark.skipif(not native.is_loaded(), reason="the C++ extension is not built")
def test_the_compiler_is_read_from_the_built_library():
    path, compiler = info.extension_compiler()
    assert path is not None and compiler is not None
    assert "GCC" in compiler or "clang" in compiler
    readelf = shutil.which("readelf")
    if readelf:  # an independent reader agrees
        out = subprocess.run([readelf, "-p", ".comment", path], capture_output=True, text=True)
        assert compiler.split("; ")[0] in out.stdout


def test_elf_comment_of_a_file_that_is_not_elf(tmp_path):
    other = tmp_path / "x.so"
    other.write_bytes(b"MZ not an ELF file")
    assert info._elf_comment(other) == []


def test_info_command_prints_the_report(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "backends:" in out and "auto picks:" in out


@pytest.mark.slow  # > 1 s idle; make test runs it
def test_check_passes_on_every_available_backend(capsys):
    assert cli.main(["info", "--check", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for name in stc_ext.available_backends("cpu"):
        for dtype in ("float32", "bfloat16"):
            assert any(
                line.startswith("PASS") and f" {name} " in line and dtype in line
                for line in out.splitlines()
            ), (name, dtype, out)
    assert "FAIL" not in out
    assert "copy" in out and "GB/s" in out


def _broken_cpu_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """The "cpu" entry of the table with a rescale kernel that is slightly wrong."""
    if "cpu" not in stc_ext.available_backends("cpu"):
        pytest.skip("the C++ extension is not built")
    real = backends.backend("cpu")

    def rescale(x, g, identity):
        y = real.kernels.rescale(x, g, identity)
        return y * 1.01  # a 1% error: far outside every tolerance

    broken = backends.Backend(
        backends.Kernels(
            pool=real.kernels.pool,
            rescale=rescale,
            rescale_backward_sums=real.kernels.rescale_backward_sums,
            rescale_backward_input=real.kernels.rescale_backward_input,
        ),
        real.runs_on,
    )
    monkeypatch.setitem(backends.BACKENDS, "cpu", lambda: broken)
    monkeypatch.setattr(backends, "_loaded", {})


def test_a_broken_backend_fails_the_check(monkeypatch, capsys):
    _broken_cpu_backend(monkeypatch)
    assert cli.main(["info", "--check", "--device", "cpu", "--backends", "reference,cpu"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert any(line.startswith("FAIL  cpu ") and "float32" in line for line in lines)
    assert any(line.startswith("FAIL  cpu ") and "bfloat16" in line for line in lines)
    assert any(line.startswith("PASS  reference ") for line in lines)
    assert "max error" in captured.out  # the failing case says what was off
    assert "STC_EXT_DISABLE=cpu" in captured.err


def test_a_failing_backend_can_be_disabled_and_the_check_then_passes(monkeypatch, capsys):
    _broken_cpu_backend(monkeypatch)
    monkeypatch.setenv("STC_EXT_DISABLE", "cpu,triton")  # triton: only to keep the test short
    assert cli.main(["info", "--check", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "disabled by STC_EXT_DISABLE" in out
    assert not any(line.startswith(("PASS  cpu ", "FAIL  cpu ")) for line in out.splitlines())


def test_check_results_as_json(capsys):
    assert (
        cli.main(["info", "--check", "--device", "cpu", "--backends", "reference", "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["check"] and all(r["passed"] for r in report["check"])
    assert report["bandwidth"]["results"][0]["name"] == "copy"


def test_check_of_a_backend_that_cannot_run_is_an_error(capsys):
    assert cli.main(["info", "--check", "--device", "cpu", "--backends", "cuda"]) == 1
    assert "'cuda' cannot run on cpu" in capsys.readouterr().err


def test_check_on_an_absent_device_is_an_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert cli.main(["info", "--check", "--device", "cuda"]) == 1
    assert "cuda is not available here" in capsys.readouterr().err
