"""The custom op stc_ext::stc (stc_ext/ops/registration.py) and the native kernel ops'
fake kernels (stc_ext/ops/native.py): gradcheck, opcheck, torch.compile, autocast.

Parametrized over the devices of the native backends ("cpu" on CPU tensors, "cuda" on CUDA
tensors); the backend has the device's name.
"""

import copy

import pytest
import torch

import stc_ext
from stc_ext import STCBlock
from stc_ext.testing import assert_close, random_feature_map, randomize_block

DEVICES = [
    pytest.param(
        "cpu",
        marks=pytest.mark.skipif(
            "cpu" not in stc_ext.available_backends("cpu"), reason="the C++ extension is not built"
        ),
    ),
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(
            not torch.cuda.is_available() or "cuda" not in stc_ext.available_backends("cuda"),
            reason="needs a CUDA GPU and stc_ext built with its CUDA kernels",
        ),
    ),
]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """A device whose native backend is built; the backend has the device's name."""
    return request.param


def _op_args(block, x, identity, backend):
    return (x, identity, *block.params().flat(), backend)


@pytest.mark.slow
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncthw", "cl3d"])
@pytest.mark.parametrize("branches", ["stc", "tcb", "scb"])
def test_gradcheck(device, residual, channels_last, branches):
    block = randomize_block(STCBlock(6, 3, reduction=2, branches=branches).double()).to(device)
    for p in block.parameters():
        p.requires_grad_(True)
    x = random_feature_map((2, 6, 3, 3, 4), torch.float64, channels_last).to(device)
    x.requires_grad_()
    identity = torch.randn_like(x).requires_grad_() if residual else None

    def fn(x, identity, *weights):
        return torch.ops.stc_ext.stc(x, identity, *weights, device)[0]

    weights = [w for w in block.params().flat()]
    assert torch.autograd.gradcheck(fn, (x, identity, *weights), eps=1e-6, atol=1e-7)


@pytest.mark.slow  # > 1 s idle; make test runs it
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncthw", "cl3d"])
def test_opcheck_stc(device, dtype, residual, channels_last):
    block = randomize_block(STCBlock(8, 2)).to(device, dtype)
    x = random_feature_map((2, 8, 2, 3, 5), dtype, channels_last).to(device).requires_grad_()
    identity = torch.randn_like(x).requires_grad_() if residual else None
    torch.library.opcheck(torch.ops.stc_ext.stc.default, _op_args(block, x, identity, device))


@pytest.mark.slow  # > 1 s idle; make test runs it
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncthw", "cl3d"])
def test_opcheck_kernels(device, dtype, channels_last):
    x = random_feature_map((2, 8, 3, 4, 5), dtype, channels_last).to(device)
    y = torch.relu(random_feature_map((2, 8, 3, 4, 5), dtype, channels_last)).to(device)
    g = torch.rand(2, 8, device=device)
    s = torch.randn(2, 8, 3, device=device)
    ops = torch.ops.stc_ext
    torch.library.opcheck(ops.pool.default, (x,))
    torch.library.opcheck(ops.rescale.default, (x, g, None))
    torch.library.opcheck(ops.rescale.default, (x, g, torch.randn_like(x)))
    torch.library.opcheck(ops.rescale_backward_sums.default, (torch.randn_like(x), x, None))
    torch.library.opcheck(ops.rescale_backward_sums.default, (torch.randn_like(x), x, y))
    torch.library.opcheck(ops.rescale_backward_input.default, (torch.randn_like(x), g, s, None))
    torch.library.opcheck(ops.rescale_backward_input.default, (torch.randn_like(x), g, s, y))


@pytest.mark.slow
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_compile_fullgraph_matches_eager(device, residual):
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(0)
    block = randomize_block(STCBlock(16, 4, backend=device), generator=gen).to(device)
    x = random_feature_map((2, 16, 4, 6, 6), torch.float32, generator=gen).to(device)
    identity = torch.randn(x.shape, generator=gen).to(device) if residual else None
    grad_y = torch.randn(x.shape, generator=gen).to(device)
    compiled = torch.compile(block, fullgraph=True)

    def run(module):
        xi = x.clone().requires_grad_()
        y = module(xi, identity)
        y.backward(grad_y)
        grads = [xi.grad] + [p.grad.clone() for p in block.parameters()]
        block.zero_grad(set_to_none=True)
        return y.detach(), grads

    y_eager, grads_eager = run(block)
    y_compiled, grads_compiled = run(compiled)
    assert_close("y", y_compiled, y_eager, torch.float32)
    for g_c, g_e in zip(grads_compiled, grads_eager, strict=True):
        assert_close("grad", g_c, g_e, torch.float32, gradient=True)


def test_autocast_bf16_activations_with_fp32_weights(device):
    """Under autocast a conv hands the block bf16 activations while its weights stay fp32."""
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(3, 12, kernel_size=1).to(device)
    block = randomize_block(STCBlock(12, 4, backend=device)).to(device)
    x = torch.randn(2, 3, 4, 6, 6, device=device)
    with torch.autocast(device, dtype=torch.bfloat16):
        features = conv(x)
        y = block(features, features)
    assert features.dtype == torch.bfloat16 and y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in block.parameters())
    f64 = features.detach().double()
    expected = stc_ext.stc_reference(f64, copy.deepcopy(block).double().params(), f64)
    # bf16 output rounding (relative 2**-8) bounds the error.
    assert (y.double() - expected).abs().max() <= 2**-7 * (1 + expected.abs().max())
