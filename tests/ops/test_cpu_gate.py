"""The "cpu" backend's C++ gate (csrc/cpu/gate_cpu.cpp through stc_ext/ops/native.py)
against the ATen gate of stc_ext/ops/gate.py, forward and backward."""

import pytest
import torch

import stc_ext
from stc_ext import STCBlock
from stc_ext.ops import gate, native
from stc_ext.testing import randomize_block

pytestmark = pytest.mark.skipif(
    "cpu" not in stc_ext.available_backends("cpu"), reason="the C++ extension is not built"
)


def _case(batch, channels, frames, branches, dtype, weight_dtype=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    block = randomize_block(
        STCBlock(channels, frames, reduction=3, branches=branches), generator=gen
    )
    block = block.to(weight_dtype or dtype)
    s = torch.randn(batch, channels, frames, generator=gen, dtype=torch.float64).to(dtype)
    sums = torch.randn(batch, channels, frames, generator=gen, dtype=torch.float64).to(dtype)
    return s, sums, block.params()


def _gates(s, sums, params):
    """(forward, backward) of the C++ gate and of the ATen gate on the same inputs."""
    g, state = native.gate_forward(s, params)
    g_ref, state_ref = gate.gate_forward(s, params)
    ds, grads = native.gate_backward(sums, s, params, state_ref)
    ds_ref, grads_ref = gate.gate_backward(sums, s, params, state_ref)
    return (g, state, ds, grads), (g_ref, state_ref, ds_ref, grads_ref)


# Batches that use every sample block of the C++ dense layers (8, 4, 1) and the largest
# one it takes; channels and hidden widths that are not multiples of a vector.
@pytest.mark.parametrize("batch", [1, 5, 13, native.GATE_MAX_BATCH])
@pytest.mark.parametrize("branches", ["stc", "tcb", "scb"])
@pytest.mark.parametrize(("channels", "frames"), [(37, 3), (20, 1), (300, 2)])
def test_matches_aten_gate_float64(batch, branches, channels, frames):
    s, sums, params = _case(batch, channels, frames, branches, torch.float64)
    (g, state, ds, grads), (g_ref, state_ref, ds_ref, grads_ref) = _gates(s, sums, params)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state, state_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ds, ds_ref, rtol=1e-12, atol=1e-12)
    for grad, grad_ref in zip(grads, grads_ref, strict=True):
        assert (grad is None) == (grad_ref is None)
        if grad is not None:
            assert grad.dtype == grad_ref.dtype and grad.shape == grad_ref.shape
            torch.testing.assert_close(grad, grad_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("weight_dtype", [torch.float32, torch.bfloat16], ids=str)
def test_float32_and_bf16_weights(weight_dtype):
    """float32 statistics with float32 or bf16 weights (a block converted with .to(bf16)):
    the C++ gate reads bf16 weights as they are, the ATen gate converts them first; both
    compute in float32, so they agree to float32 rounding of the sums."""
    s, sums, params = _case(6, 40, 4, "stc", torch.float32, weight_dtype)
    (g, state, ds, grads), (g_ref, state_ref, ds_ref, grads_ref) = _gates(s, sums, params)
    for a, b in [(g, g_ref), (state, state_ref), (ds, ds_ref)]:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for grad, grad_ref in zip(grads, grads_ref, strict=True):
        assert grad.dtype == weight_dtype
        tol = 1e-5 if weight_dtype == torch.float32 else 2**-7
        torch.testing.assert_close(grad.float(), grad_ref.float(), rtol=tol, atol=tol)


def test_large_batches_use_the_aten_gate():
    s, sums, params = _case(native.GATE_MAX_BATCH + 1, 16, 2, "stc", torch.float32)
    (g, state, ds, grads), (g_ref, state_ref, ds_ref, grads_ref) = _gates(s, sums, params)
    assert torch.equal(g, g_ref) and torch.equal(state, state_ref) and torch.equal(ds, ds_ref)
    assert all(torch.equal(a, b) for a, b in zip(grads, grads_ref, strict=True))


def test_results_do_not_depend_on_the_thread_count():
    """Each sum is taken by one thread in a fixed order."""
    s, sums, params = _case(9, 300, 4, "stc", torch.float32)
    previous = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            g, state = native.gate_forward(s, params)
            ds, grads = native.gate_backward(sums, s, params, state)
            results.append([g, state, ds, *grads])
    finally:
        torch.set_num_threads(previous)
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


@pytest.mark.parametrize("branches", ["stc", "scb"])
def test_opcheck(branches):
    s, sums, params = _case(3, 12, 2, branches, torch.float32)
    # The kernel ops have no autograd formula (the stc op's backward calls them).
    weights = [None if w is None else w.detach() for w in params.flat()]
    _, state = gate.gate_forward(s, params)
    ops = torch.ops.stc_ext
    torch.library.opcheck(ops.gate_forward.default, (s, *weights))
    torch.library.opcheck(ops.gate_backward.default, (sums, s, state.detach(), *weights))


def test_bad_weights_are_an_error():
    s, _, params = _case(2, 12, 2, "tcb", torch.float32)
    w1, b1, w2, b2 = params.tcb
    with pytest.raises(RuntimeError, match="weights do not match s"):
        torch.ops.stc_ext.gate_forward(s, w1[:, :5], b1, w2, b2, None, None, None, None)
    with pytest.raises(RuntimeError, match="all be given or all absent"):
        torch.ops.stc_ext.gate_forward(s, w1, None, w2, b2, None, None, None, None)
