"""The CPU kernels' output cache (csrc/cpu/output_cache.h): a reused block never holds a
tensor the caller still has, and what is freed is reused."""

import subprocess
import sys

import pytest
import torch

import stc_ext
from stc_ext import STCBlock
from stc_ext.ops import native
from stc_ext.testing import randomize_block

pytestmark = pytest.mark.skipif(
    "cpu" not in stc_ext.available_backends("cpu"), reason="the C++ extension is not built"
)

SHAPE = (2, 64, 4, 32, 32)  # 2 MiB in float32: above the cache's 1 MiB threshold


def _rescale(x: torch.Tensor) -> torch.Tensor:
    g = torch.rand(x.shape[0], x.shape[1])
    return torch.ops.stc_ext.rescale(x, g, None)


def test_outputs_held_by_the_caller_are_never_reused():
    x = torch.randn(SHAPE)
    held = [_rescale(x) for _ in range(3)]
    view = _rescale(x)[1]  # only a view of this output is still alive
    copies = [t.clone() for t in held] + [view.clone()]
    for _ in range(5):
        out = _rescale(torch.randn(SHAPE))
        assert out.data_ptr() not in {t.data_ptr() for t in held}
        assert not out.data_ptr() <= view.data_ptr() < out.data_ptr() + out.nbytes
        del out
    for t, c in zip([*held, view], copies, strict=True):
        assert torch.equal(t, c)


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        (SHAPE, torch.float32),
        # ResNet-50's second stage at batch 8: 12.8 MB (6.4 MB in bf16), which whole 2 MiB
        # huge pages round up by more than an eighth; such blocks were once never reused.
        ((8, 512, 4, 14, 14), torch.float32),
        ((8, 512, 4, 14, 14), torch.bfloat16),
    ],
)
def test_freed_outputs_are_reused_and_can_be_released(shape, dtype):
    x = torch.randn(shape, dtype=dtype)
    native.release_cached_outputs()
    out = _rescale(x)
    pointer = out.data_ptr()
    del out
    assert native.cached_output_bytes() >= x.nbytes
    again = _rescale(x)
    assert again.data_ptr() == pointer
    native.release_cached_outputs()
    assert native.cached_output_bytes() == 0


def test_gradients_accumulate_across_steps():
    """Parameter and input gradients from cached blocks add up over two backward passes."""
    block = randomize_block(STCBlock(64, 4, backend="cpu"))
    x = torch.randn(SHAPE, requires_grad=True)
    grad_y = torch.randn(SHAPE)
    block(x).backward(grad_y)
    first = [x.grad.clone()] + [p.grad.clone() for p in block.parameters()]
    block(x).backward(grad_y)
    second = [x.grad] + [p.grad for p in block.parameters()]
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(b, 2 * a)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", "cached 0"), ("lots", "STC_EXT_CPU_CACHE_MB must be a whole number of megabytes")],
)
def test_cache_limit_from_the_environment(value, expected):
    code = (
        "import torch, stc_ext\n"
        "from stc_ext.ops import native\n"
        "stc_ext.available_backends('cpu')\n"
        f"out = torch.ops.stc_ext.rescale(torch.randn{SHAPE}, torch.rand(2, 64), None)\n"
        "del out\n"
        "print('cached', native.cached_output_bytes())\n"
    )
    env = {"STC_EXT_CPU_CACHE_MB": value, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert expected in result.stdout + result.stderr
