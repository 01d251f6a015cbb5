"""stc_ext/ops/checks.py, the argument contract, and the kernel ops' internal assertions."""

import pytest
import torch

import stc_ext
from stc_ext import STCBlock

GOOD = (2, 8, 4, 5, 5)


@pytest.mark.parametrize(
    "x, identity, error, message",
    [
        (
            torch.randn(2, 8, 4, 5),
            None,
            ValueError,
            r"STCBlock: x must be 5-D \(N, C, T, H, W\), got shape \(2, 8, 4, 5\)",
        ),
        (torch.randn(0, 8, 4, 5, 5), None, ValueError, "x must not be empty"),
        (torch.randn(2, 6, 4, 5, 5), None, ValueError, "x must have 8 channels"),
        (torch.randn(2, 8, 3, 5, 5), None, ValueError, "T\\*C = 32"),
        (torch.ones(GOOD, dtype=torch.int64), None, ValueError, "x must be float16"),
        (torch.randn(GOOD), torch.randn(2, 8, 4, 5, 4), ValueError, "identity must have x's shape"),
        (
            torch.randn(GOOD),
            torch.randn(GOOD, dtype=torch.float64),
            ValueError,
            "identity must have x's dtype",
        ),
        (
            torch.randn(GOOD),
            torch.randn(GOOD, device="meta"),
            ValueError,
            "identity must be on x's device",
        ),
        ([1.0], None, TypeError, "x must be a torch.Tensor"),
    ],
)
@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_bad_inputs(x, identity, error, message, backend):
    block = STCBlock(8, 4, backend=backend)
    with pytest.raises(error, match=message):
        block(x, identity)


def test_frames_mismatch_names_frames_for_scb_only_block():
    block = STCBlock(8, 4, branches="scb")
    with pytest.raises(ValueError, match=r"T = 4 frames \(dim 2\)"):
        block(torch.randn(1, 8, 2, 3, 3))


def test_weights_on_another_device_are_an_error():
    block = STCBlock(8, 4).to("meta")
    with pytest.raises(ValueError, match="tcb.fc1.weight must be on x's device"):
        block(torch.randn(GOOD))


@pytest.mark.skipif("cpu" not in stc_ext.available_backends("cpu"), reason="extension not built")
def test_kernel_ops_assert_what_their_memory_accesses_rely_on():
    """Called directly, past the contract, the C++ ops refuse what would index out of bounds."""
    x = torch.randn(GOOD)
    with pytest.raises(RuntimeError, match="g must have shape"):
        torch.ops.stc_ext.rescale(x, torch.rand(2, 7), None)
    with pytest.raises(RuntimeError, match="g must have dtype Float for BFloat16 inputs"):
        torch.ops.stc_ext.rescale(x.bfloat16(), torch.rand(2, 8, dtype=torch.bfloat16), None)
    with pytest.raises(RuntimeError, match="x must be 5-D"):
        torch.ops.stc_ext.pool(torch.randn(2, 8, 4))
    with pytest.raises(RuntimeError, match="identity must have shape"):
        torch.ops.stc_ext.rescale(x, torch.rand(2, 8), torch.randn(2, 8, 4, 5, 4))
