"""Double backward (``create_graph=True``, then a second grad) through the STC op: every
backend, float64, small odd shapes, both forms, both layouts."""

import pytest
import torch

import stc_ext
from stc_ext import STCBlock
from stc_ext.ops import STCParams, stc
from stc_ext.testing import random_feature_map, randomize_block


def _block_and_inputs(device, branches, residual, channels_last):
    gen = torch.Generator().manual_seed(7)
    block = randomize_block(STCBlock(5, 3, reduction=2, branches=branches).double(), generator=gen)
    x = random_feature_map((2, 5, 3, 3, 2), torch.float64, channels_last, generator=gen)
    identity = torch.randn(x.shape, generator=gen, dtype=torch.float64) if residual else None
    if identity is not None and channels_last:
        identity = identity.to(memory_format=torch.channels_last_3d)
    block = block.to(device)
    x = x.to(device).requires_grad_()
    identity = None if identity is None else identity.to(device).requires_grad_()
    return block, x, identity


def _run_gradgradcheck(backend, device, branches, residual, channels_last, fast_mode=True):
    block, x, identity = _block_and_inputs(device, branches, residual, channels_last)
    flat = block.params().flat()  # None where a branch is absent
    weights = [w.detach().clone().requires_grad_() for w in flat if w is not None]

    def fn(x, identity, *present):
        it = iter(present)
        params = STCParams.from_flat([None if w is None else next(it) for w in flat])
        return stc(x, params, identity, backend=backend)

    assert torch.autograd.gradgradcheck(
        fn, (x, identity, *weights), eps=1e-6, atol=1e-6, fast_mode=fast_mode
    )


@pytest.mark.slow  # > 1 s idle; make test runs it
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncthw", "cl3d"])
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("branches", ["stc", "tcb", "scb"])
def test_gradgradcheck_kernel_backends(backend_device, branches, residual, channels_last):
    backend, device = backend_device
    _run_gradgradcheck(backend, device, branches, residual, channels_last)


@pytest.mark.slow
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_gradgradcheck_full_jacobian(backend_device, residual):
    """The whole second-order Jacobian (not fast mode's random projection), one case each."""
    backend, device = backend_device
    _run_gradgradcheck(backend, device, "stc", residual, False, fast_mode=False)


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_gradgradcheck_reference(residual):
    _run_gradgradcheck("reference", "cpu", "stc", residual, False)


def test_second_derivatives_match_the_reference(backend_device):
    """The Hessian-vector product d/dx <grad_x, v> agrees with the reference's, and is not 0."""
    backend, device = backend_device
    results = []
    for name in ("reference", backend):
        block, x, identity = _block_and_inputs(device, "stc", True, False)
        block.backend = name
        y = block(x, identity)
        v = torch.ones_like(y)
        (grad_x,) = torch.autograd.grad((y * y).sum(), x, create_graph=True)
        second = torch.autograd.grad((grad_x * v).sum(), [x, *block.parameters()])
        results.append(second)
    for ref, got in zip(*results, strict=True):
        assert ref.abs().max() > 0
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-10)


@pytest.mark.slow
def test_compiled_backward_keeps_the_kernels():
    """AOTAutograd traces the backward with grad mode off: the compiled backward still runs
    the kernel ops, not the differentiable fallback."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    if "cpu" not in stc_ext.available_backends("cpu"):
        pytest.skip("the C++ extension is not built")
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(str(gm.graph))
        return make_boxed_func(gm.forward)

    torch._dynamo.reset()
    block, x, identity = _block_and_inputs("cpu", "stc", True, False)
    block.backend = "cpu"
    compiled = torch.compile(
        block, backend=aot_autograd(fw_compiler=capture, bw_compiler=capture), fullgraph=True
    )
    compiled(x, identity).sum().backward()
    forward_graph, backward_graph = graphs
    assert "stc_ext.stc" in forward_graph
    assert "stc_ext.rescale_backward_input" in backward_graph
    assert x.grad is not None and identity.grad is not None
