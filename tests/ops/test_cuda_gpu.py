"""GPU-only checks of the "cuda" backend (csrc/cuda), beyond the device-parametrized suites.

test_stc.py already runs the whole STC suite for "cuda" on a GPU machine (every dtype,
both layouts, odd shapes, poisoned outputs, forward and backward), and test_registration.py
runs opcheck, gradcheck, torch.compile(fullgraph=True) and autocast on CUDA tensors. Here:

* each kernel op against float64 at shapes and pointer offsets chosen to reach every
  kernel path: split and unsplit H*W sums, rows and channel runs that do not start on a
  16-byte boundary, misaligned views (scalar fallback), grid-stride loops, batch chunking
  past 2**31 elements;
* bitwise run-to-run determinism of the split H*W sums;
* CUDA-graph capture and replay of forward + backward.

Skipped without a GPU and an extension built with its CUDA kernels.
"""

from __future__ import annotations

import pytest
import torch

import stc_ext
from stc_ext import STCBlock
from stc_ext.testing import assert_close, block_outputs, random_feature_map, randomize_block

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or "cuda" not in stc_ext.available_backends("cuda"),
    reason="needs a CUDA GPU and stc_ext built with its CUDA kernels",
)

ops = torch.ops.stc_ext
DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
# (N, C, T, H, W) reaching each path of csrc/cuda/stc_sum.cuh and stc_map.cuh.
SHAPES = [
    (1, 1, 1, 1, 1),  # one element
    (2, 3, 2, 5, 7),  # nothing a multiple of the 16-byte pack
    (2, 16, 4, 7, 7),  # H*W = 49: NCTHW rows start off pack boundaries
    (1, 4, 2, 64, 64),  # few long rows: split NCTHW sum
    (1, 64, 1, 56, 56),  # few positions per block: split NTHWC sum
    (3, 33, 2, 3, 3),  # C not a multiple of the pack
    (2, 520, 1, 4, 4),  # several channel tiles
    (4, 64, 8, 28, 28),  # grid-stride loops
]
# Relative rounding error of one result in each dtype: half an ulp, except float32 (a
# whole ulp: grad_s/(H*W) is itself rounded twice) and float64 (slack).
ROUNDING = {
    torch.float64: 1e-13,
    torch.float32: 2**-23,
    torch.bfloat16: 2**-8,
    torch.float16: 2**-11,
}


def _feature_map(shape, dtype, channels_last, misaligned, gen):
    """Random CUDA tensor (N, C, T, H, W), NCTHW or channels_last_3d; misaligned: its data
    starts one element past the allocation (not 16-byte aligned)."""
    n, c, t, h, w = shape
    numel = n * c * t * h * w
    flat = torch.randn(numel + 1, generator=gen, dtype=torch.float64).to("cuda", dtype)
    flat = flat[1:] if misaligned else flat[:numel]
    if channels_last:
        return flat.view(n, t, h, w, c).permute(0, 4, 1, 2, 3)
    return flat.view(shape)


def _bcast(stat):
    """(N, C) or (N, C, T) -> broadcastable against (N, C, T, H, W)."""
    return stat.reshape(*stat.shape, *([1] * (5 - stat.dim())))


def _assert_statistic(name, got, want, scale, dtype):
    """got: accumulation-dtype (N, C, T); want: float64; scale: the summed magnitudes."""
    assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32), name
    assert torch.isfinite(got).all(), f"{name}: non-finite (unwritten?)"
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    error = ((got.double() - want).abs() - tol * (scale + 1e-3)).max().item()
    assert error <= 0, f"{name}: error exceeds tolerance by {error:.3e}"


def _assert_elementwise(name, got, want, scale, dtype, like):
    assert got.dtype == dtype and got.shape == want.shape, name
    assert got.stride() == like.stride(), f"{name}: layout {got.stride()} != {like.stride()}"
    assert torch.isfinite(got).all(), f"{name}: non-finite (unwritten?)"
    subnormal_spacing = torch.finfo(dtype).tiny * torch.finfo(dtype).eps
    bound = 2 * ROUNDING[dtype] * (want.abs() + scale) + subnormal_spacing
    excess = ((got.double() - want).abs() - bound).max().item()
    assert excess <= 0, f"{name}: error exceeds tolerance by {excess:.3e}"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncthw", "cl3d"])
@pytest.mark.parametrize("misaligned", [False, True], ids=["aligned", "misaligned"])
def test_kernel_ops_match_float64(shape, dtype, channels_last, misaligned, poisoned_outputs):
    seed = hash((shape, str(dtype), channels_last, misaligned)) % 2**31
    gen = torch.Generator().manual_seed(seed)
    n, c, t, h, w = shape
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    x, dy, y, identity = (
        _feature_map(shape, dtype, channels_last, misaligned, gen) for _ in range(4)
    )
    g = torch.rand(n, c, generator=gen, dtype=torch.float64).to("cuda", acc)
    ds = torch.randn(n, c, t, generator=gen, dtype=torch.float64).to("cuda", acc)
    xd, dyd, yd, idd = (v.double() for v in (x, dy, y, identity))
    mask = (yd > 0).double()

    s = ops.pool(x)
    _assert_statistic("pool", s, xd.mean((3, 4)), xd.abs().mean((3, 4)), dtype)
    for with_y in (False, True):
        r = ops.rescale_backward_sums(dy, x, y if with_y else None)
        terms = dyd * xd * (mask if with_y else 1.0)
        _assert_statistic(f"sums(y={with_y})", r, terms.sum((3, 4)), terms.abs().sum((3, 4)), dtype)

    gd = _bcast(g.double())
    out = ops.rescale(x, g, None)
    _assert_elementwise("rescale", out, xd * gd, 0.0, dtype, x)
    out = ops.rescale(x, g, identity)
    _assert_elementwise(
        "rescale+identity", out, (xd * gd + idd).clamp_min(0), (xd * gd).abs() + idd.abs(), dtype, x
    )

    pooled = _bcast(ds.double()) / (h * w)
    dx, d_identity = ops.rescale_backward_input(dy, g, ds, None)
    _assert_elementwise("grad_x", dx, gd * dyd + pooled, pooled.abs(), dtype, dy)
    assert d_identity.numel() == 0
    dx, d_identity = ops.rescale_backward_input(dy, g, ds, y)
    _assert_elementwise("grad_x(y)", dx, gd * dyd * mask + pooled, pooled.abs(), dtype, dy)
    _assert_elementwise("grad_identity", d_identity, dyd * mask, 0.0, dtype, dy)


@pytest.mark.parametrize("channels_last", [False, True], ids=["ncthw", "cl3d"])
def test_split_sums_are_bitwise_deterministic(channels_last):
    gen = torch.Generator().manual_seed(0)
    shape = (1, 4, 2, 64, 64) if not channels_last else (1, 64, 1, 56, 56)
    x, dy, y = (_feature_map(shape, torch.float32, channels_last, False, gen) for _ in range(3))
    assert torch.equal(ops.pool(x), ops.pool(x))
    assert torch.equal(ops.rescale_backward_sums(dy, x, y), ops.rescale_backward_sums(dy, x, y))


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncthw", "cl3d"])
def test_cuda_graph_capture_of_forward_and_backward(residual, channels_last):
    torch.manual_seed(0)
    shape = (2, 32, 4, 9, 9)
    block = randomize_block(STCBlock(32, 4, backend="cuda")).cuda()

    def fresh():
        return random_feature_map(shape, torch.float32, channels_last).cuda()

    static_x = fresh().requires_grad_()
    static_identity = fresh().requires_grad_() if residual else None
    static_grad_y = fresh()
    inputs = [static_x] + ([static_identity] if residual else [])

    def step():
        y = block(static_x, static_identity)
        y.backward(static_grad_y)
        return y

    def clear_grads():
        block.zero_grad(set_to_none=True)
        for tensor in inputs:
            tensor.grad = None

    side = torch.cuda.Stream()  # warm up on a side stream before capturing, as torch asks
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            clear_grads()
            step()
    torch.cuda.current_stream().wait_stream(side)
    clear_grads()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = step()

    for _ in range(2):  # replay on new data: every output must follow its inputs
        new_inputs, new_grad_y = [fresh() for _ in inputs], fresh()
        with torch.no_grad():
            for tensor, value in zip(inputs, new_inputs, strict=True):
                tensor.copy_(value)
            static_grad_y.copy_(new_grad_y)
        graph.replay()
        identity = new_inputs[1] if residual else None
        y_eager, grads_eager = block_outputs(block, new_inputs[0], identity, new_grad_y, "cuda")
        torch.cuda.synchronize()
        assert_close("y", static_y, y_eager, torch.float32)
        grads = [t.grad for t in inputs] + [p.grad for p in block.parameters()]
        for grad, grad_eager in zip(grads, grads_eager, strict=True):
            assert_close("grad", grad, grad_eager, torch.float32, gradient=True)


@pytest.mark.slow
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_properties(0).total_memory < 40 * 2**30,
    reason="needs a GPU with >= 40 GiB",
)
def test_more_elements_than_32_bit_indexing():
    """The launchers split the batch so each launch indexes with 32 bits."""
    shape = (5, 64, 8, 1024, 1024)  # 2.7e9 elements, 5.4 GB in bf16; 2**29 per sample
    torch.manual_seed(0)
    x = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    g = torch.rand(shape[0], shape[1], device="cuda")
    s = ops.pool(x)
    y = ops.rescale(x, g, None)
    for n in range(shape[0]):
        xn = x[n].float()
        torch.testing.assert_close(s[n], xn.mean((2, 3)), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(y[n], (xn * g[n].view(-1, 1, 1, 1)).bfloat16(), rtol=0, atol=0)
    del x, y


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two GPUs"
)
def test_tensors_on_a_non_current_device():
    x = random_feature_map((2, 8, 3, 4, 5), torch.float32).to("cuda:1")
    g = torch.rand(2, 8, device="cuda:1")
    with torch.cuda.device(0):
        s = ops.pool(x)
        y = ops.rescale(x, g, None)
    assert s.device == x.device and y.device == x.device
    torch.testing.assert_close(s, x.mean((3, 4)))
    torch.testing.assert_close(y, x * g[..., None, None, None])
