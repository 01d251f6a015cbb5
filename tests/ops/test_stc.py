"""Every fused STC backend against the reference, forward and backward."""

import os
import zlib

import pytest
import torch

from stc_ext import STCBlock
from stc_ext.testing import (
    assert_close,
    block_outputs,
    check_against_reference,
    random_feature_map,
    randomize_block,
    reference_outputs,
)

# (N, C, T, H, W): odd sizes on purpose: T=1, H != W, 7x7, C not a power of two,
# batch 1, a single pixel, more channels than one CPU channel block (256).
SHAPES = [
    (2, 12, 3, 5, 7),
    (1, 6, 1, 7, 7),
    (3, 10, 4, 1, 1),
    (2, 300, 2, 3, 2),
    (2, 16, 8, 14, 14),
]
SEED_OFFSET = int(os.environ.get("STC_TEST_SEED", "0"))  # vary to draw other inputs
DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]


def _check_against_reference(backend, device, shape, dtype, channels_last, residual, branches):
    case = repr((shape, dtype, channels_last, residual, branches)).encode()
    gen = torch.Generator().manual_seed(zlib.crc32(case) + SEED_OFFSET)
    check_against_reference(
        backend, device, shape, dtype, channels_last, residual, branches, generator=gen
    )


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncthw", "cl3d"])
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_matches_reference(backend_device, shape, dtype, channels_last, residual, poisoned_outputs):
    backend, device = backend_device
    _check_against_reference(backend, device, shape, dtype, channels_last, residual, "stc")


@pytest.mark.parametrize("branches", ["tcb", "scb"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_single_branch_matches_reference(
    backend_device, branches, dtype, residual, poisoned_outputs
):
    backend, device = backend_device
    _check_against_reference(backend, device, (2, 12, 3, 5, 7), dtype, False, residual, branches)


def test_other_layouts_are_handled(backend_device):
    """An input that is neither NCTHW nor channels_last_3d (a permuted view) is still right."""
    backend, device = backend_device
    block = randomize_block(STCBlock(8, 4).double()).to(device)
    x = torch.randn(2, 4, 8, 6, 5, dtype=torch.float64, device=device).permute(0, 2, 1, 4, 3)
    assert not x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last_3d)
    grad_y = torch.randn(x.shape, dtype=torch.float64, device=device)
    y, grads = block_outputs(block, x, None, grad_y, backend)
    y_ref, grads_ref = reference_outputs(block, x, None, grad_y, torch.float64)
    assert_close("y", y, y_ref, torch.float64)
    for grad, grad_ref in zip(grads, grads_ref, strict=True):
        assert_close("grad", grad, grad_ref, torch.float64, gradient=True)


def test_deterministic(backend_device):
    """Two runs on the same inputs give bitwise identical outputs and gradients."""
    backend, device = backend_device
    block = randomize_block(STCBlock(24, 4)).to(device)
    x = random_feature_map((2, 24, 4, 9, 9), torch.float32).to(device)
    identity = torch.randn_like(x)
    grad_y = torch.randn_like(x)
    first = block_outputs(block, x, identity, grad_y, backend)
    second = block_outputs(block, x, identity, grad_y, backend)
    assert torch.equal(first[0], second[0])
    for a, b in zip(first[1], second[1], strict=True):
        assert torch.equal(a, b)


def test_poisoning_is_active(poisoned_outputs):
    """The poisoned_outputs fixture really fills fresh allocations with NaN."""
    assert torch.isnan(torch.empty(64)).all()
    assert torch.isnan(torch.empty_like(torch.ones(2, 3, 4, 5, 6))).all()
