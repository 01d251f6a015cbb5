"""STC_EXT_DISABLE: kernel backends turned off per call, without code changes."""

import warnings

import pytest
import torch

import stc_ext
from stc_ext import STCBlock
from stc_ext.ops import backends


def _kernel_backend_on_cpu() -> str:
    names = [b for b in stc_ext.available_backends("cpu") if b != "reference"]
    if not names:
        pytest.skip("no kernel backend runs on the CPU here")
    return names[0]


def test_a_disabled_backend_is_not_available(monkeypatch):
    name = _kernel_backend_on_cpu()
    monkeypatch.setenv("STC_EXT_DISABLE", f" {name} ,")
    assert name not in stc_ext.available_backends("cpu")
    assert name not in stc_ext.available_backends()
    monkeypatch.delenv("STC_EXT_DISABLE")  # read per call: back at once
    assert name in stc_ext.available_backends("cpu")


def test_auto_picks_the_next_backend(monkeypatch):
    if "cpu" not in stc_ext.available_backends("cpu"):
        pytest.skip("the C++ extension is not built")
    monkeypatch.setenv("STC_EXT_DISABLE", "cpu,cuda")
    monkeypatch.setattr(backends, "_fallback_warned", set())
    with pytest.warns(RuntimeWarning, match="cpu: disabled by STC_EXT_DISABLE"):
        assert backends.resolve_backend("auto", torch.device("cpu")) == "reference"
    block = STCBlock(4, 2)
    x = torch.randn(1, 4, 2, 3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        torch.testing.assert_close(block(x), stc_ext.stc_reference(x, block.params()))


def test_naming_a_disabled_backend_is_a_clear_error(monkeypatch):
    name = _kernel_backend_on_cpu()
    monkeypatch.setenv("STC_EXT_DISABLE", name)
    block = STCBlock(4, 2, backend=name)
    with pytest.raises(ValueError, match=f"backend '{name}' is disabled by STC_EXT_DISABLE"):
        block(torch.randn(1, 4, 2, 3, 3))


@pytest.mark.parametrize("value", ["cdua", "reference", "cpu,gpu"])
def test_a_bad_value_is_an_error(monkeypatch, value):
    monkeypatch.setenv("STC_EXT_DISABLE", value)
    with pytest.raises(ValueError, match="STC_EXT_DISABLE=.*kernel backends"):
        stc_ext.available_backends("cpu")
    with pytest.raises(ValueError, match="STC_EXT_DISABLE"):
        STCBlock(4, 2)(torch.randn(1, 4, 2, 3, 3))


def test_unset_or_empty_disables_nothing(monkeypatch):
    monkeypatch.setenv("STC_EXT_DISABLE", "")
    assert backends.disabled_backends() == frozenset()
    monkeypatch.delenv("STC_EXT_DISABLE")
    assert backends.disabled_backends() == frozenset()
