"""What is specific to the triton backend: the split H*W sum, determinism, rounding,
mixed layouts, autotune configs, fake/real consistency and when the backend exists.

tests/ops/test_stc.py runs the shared numerics tests for "triton" wherever it is
available (CUDA, or CPU under TRITON_INTERPRET=1).
"""

import os
import subprocess
import sys

import pytest
import torch

import stc_ext
from stc_ext import STCBlock
from stc_ext.ops.layout import accumulate_dtype, empty_output
from stc_ext.testing import (
    LOW_PRECISION,
    assert_close,
    block_outputs,
    random_feature_map,
    randomize_block,
    reference_outputs,
)

try:
    from stc_ext.ops.triton import ops as triton_ops
except ImportError:  # triton is not installed
    triton_ops = None

DEVICES = [
    d
    for d in ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "triton" in stc_ext.available_backends(d)
]
needs_backend = pytest.mark.skipif(
    not DEVICES, reason="the triton backend needs a CUDA GPU or TRITON_INTERPRET=1"
)
DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
_dtype_id = str


@pytest.fixture(params=DEVICES, ids=lambda d: f"triton-{d}")
def device(request):
    return request.param


@pytest.fixture
def forced_split(monkeypatch):
    """Make every H*W sum split into 16-position chunks; yields the splits planned."""
    planned = []
    plan = triton_ops._plan_split

    def recording_plan(programs, hw, device):
        result = plan(programs, hw, device)
        planned.append(result[0])
        return result

    monkeypatch.setattr(triton_ops, "_target_programs", lambda device: 1 << 30)
    monkeypatch.setattr(triton_ops, "_MIN_SPLIT_HW", 16)
    monkeypatch.setattr(triton_ops, "_plan_split", recording_plan)
    return planned


def _block_case(shape, dtype, channels_last, residual, device, seed):
    gen = torch.Generator().manual_seed(seed)
    n, c, t = shape[:3]
    block = randomize_block(STCBlock(c, t, reduction=2), generator=gen)
    block = (block.double() if dtype == torch.float64 else block.float()).to(device)
    x = random_feature_map(shape, dtype, channels_last, generator=gen).to(device)
    identity = None
    if residual:
        identity = random_feature_map(shape, dtype, channels_last, generator=gen).to(device)
    grad_y = torch.randn(shape, generator=gen, dtype=torch.float64).to(device)
    return block, x, identity, grad_y


# --- the split H*W sum -----------------------------------------------------------------


@needs_backend
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncthw", "cl3d"])
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_split_sum_matches_reference(
    device, forced_split, dtype, channels_last, residual, poisoned_outputs
):
    """pool and rescale_backward_sums with H*W = 90 cut into 3 splits (32, 32, 26 positions),
    checked through the whole block, forward and backward; the poisoned partials
    workspace shows any partial left unwritten."""
    shape = (2, 6, 3, 9, 10)
    block, x, identity, grad_y = _block_case(shape, dtype, channels_last, residual, device, 1)
    y, grads = block_outputs(block, x, identity, grad_y, "triton")
    assert forced_split and min(forced_split) == 3  # forward pool and backward sums split
    y_ref, grads_ref = reference_outputs(block, x, identity, grad_y, torch.float64)
    y_base, grads_base = None, [None] * len(grads)
    if dtype in LOW_PRECISION:
        y_base, grads_base = reference_outputs(block, x, identity, grad_y, dtype)
    assert_close("y", y, y_ref, dtype, y_base)
    for grad, grad_ref, grad_base in zip(grads, grads_ref, grads_base, strict=True):
        assert_close("grad", grad, grad_ref, dtype, grad_base, gradient=True)


@needs_backend
def test_split_and_unsplit_sums_agree(device, monkeypatch):
    """The two-stage H*W sum computes the same sums as the one-pass sum."""
    gen = torch.Generator().manual_seed(3)
    x = random_feature_map((2, 5, 2, 11, 13), torch.float32, generator=gen).to(device)
    dy = torch.randn(x.shape, generator=gen).to(device)
    y = torch.relu(torch.randn(x.shape, generator=gen)).to(device)
    unsplit = [triton_ops.pool(x), triton_ops.rescale_backward_sums(dy, x, y)]
    monkeypatch.setattr(triton_ops, "_target_programs", lambda device: 1 << 30)
    monkeypatch.setattr(triton_ops, "_MIN_SPLIT_HW", 16)
    split = [triton_ops.pool(x), triton_ops.rescale_backward_sums(dy, x, y)]
    for a, b in zip(unsplit, split, strict=True):
        # Only the summation order differs: fp32 rounding of 143-term sums.
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(triton_ops is None, reason="triton is not installed")
def test_split_plan(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(triton_ops, "_target_programs", lambda device: 528)
    assert triton_ops._plan_split(1024, 784, cpu) == (1, 784)  # the grid is full already
    assert triton_ops._plan_split(256, 196, cpu)[0] == 1  # too few positions to split
    for programs, hw in [(32, 784), (1, 3136), (1, 10**6), (100, 513)]:
        splits, per_split = triton_ops._plan_split(programs, hw, cpu)
        assert 1 < splits <= triton_ops._MAX_SPLITS
        assert per_split % 16 == 0 and (splits - 1) * per_split < hw <= splits * per_split
        assert per_split >= triton_ops._MIN_SPLIT_HW - 16
    monkeypatch.undo()
    assert triton_ops._plan_split(1, 10**6, cpu)[0] == 1  # sequential interpreter: never


# --- determinism and rounding --------------------------------------------------------------


@pytest.mark.slow  # > 1 s idle; make test runs it
@needs_backend
@pytest.mark.parametrize("deterministic", [False, True], ids=["default", "deterministic"])
def test_sums_are_bitwise_reproducible(device, forced_split, deterministic):
    x = random_feature_map((2, 7, 3, 12, 12), torch.float32, channels_last=True).to(device)
    dy, y = torch.randn_like(x), torch.relu(torch.randn_like(x))
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        first = [triton_ops.pool(x), triton_ops.rescale_backward_sums(dy, x, y)]
        second = [triton_ops.pool(x), triton_ops.rescale_backward_sums(dy, x, y)]
    finally:
        torch.use_deterministic_algorithms(previous)
    assert forced_split and min(forced_split) > 1
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


@needs_backend
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncthw", "cl3d"])
def test_rescale_rounds_once_to_nearest(device, dtype, channels_last):
    """x * g is one rounding of the accumulation-dtype product, to nearest even, as ATen
    does it (the interpreter would truncate bfloat16 if the kernels let it)."""
    gen = torch.Generator().manual_seed(11)
    x = random_feature_map((2, 12, 3, 5, 6), dtype, channels_last, generator=gen).to(device)
    g = torch.rand(2, 12, generator=gen, dtype=accumulate_dtype(dtype)).to(device)
    expected = (x.to(g.dtype) * g[:, :, None, None, None]).to(dtype)
    assert torch.equal(triton_ops.rescale(x, g, None), expected)


# --- layouts -------------------------------------------------------------------------------


def _mixed_layout_cases(device):
    gen = torch.Generator().manual_seed(5)
    shape = (2, 6, 3, 4, 5)
    ncthw = random_feature_map(shape, torch.float64, generator=gen).to(device)
    cl3d = random_feature_map(shape, torch.float64, True, generator=gen).to(device)
    permuted = random_feature_map(shape, torch.float64, generator=gen).to(device)
    permuted = permuted.transpose(3, 4).contiguous().transpose(3, 4)  # neither layout
    return [(ncthw, cl3d), (cl3d, ncthw), (permuted, cl3d), (cl3d, permuted)]


@needs_backend
def test_ops_accept_mixed_layouts(device, poisoned_outputs):
    """The other tensor arguments may have another layout than the first: each op computes
    in the first one's kernel layout and returns outputs with the strides layout.py says."""
    for a, b in _mixed_layout_cases(device):
        g = torch.rand(a.shape[:2], dtype=torch.float64, device=device)
        ds = torch.randn(a.shape[:3], dtype=torch.float64, device=device)
        mask = b > 0
        gb = g[:, :, None, None, None]

        y = triton_ops.rescale(a, g, b)
        assert y.stride() == empty_output(a).stride()
        torch.testing.assert_close(y, torch.relu(a * gb + b))

        sums = triton_ops.rescale_backward_sums(b, a, b)  # grad_y, y in another layout than x
        torch.testing.assert_close(sums, (b * a * mask).sum(dim=(3, 4)))

        dx, d_identity = triton_ops.rescale_backward_input(a, g, ds, b)
        assert dx.stride() == d_identity.stride() == empty_output(a).stride()
        da = a * (b > 0)
        torch.testing.assert_close(dx, gb * da + (ds / 20)[..., None, None])
        torch.testing.assert_close(d_identity, da)


@pytest.mark.slow  # > 1 s idle; make test runs it
@needs_backend
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncthw", "cl3d"])
def test_opcheck_kernels(device, channels_last):
    """Schemas, fake kernels and strides of the four triton ops. Under the interpreter the
    fake tensors take the ATen path (the interpreter cannot run them), so this also checks
    that path against the kernels."""
    x = random_feature_map((2, 8, 3, 4, 5), torch.float32, channels_last).to(device)
    y = torch.relu(random_feature_map((2, 8, 3, 4, 5), torch.float32, channels_last)).to(device)
    g = torch.rand(2, 8, device=device)
    s = torch.randn(2, 8, 3, device=device)
    dy = torch.randn_like(x)
    ops = triton_ops
    for op, args in [
        (ops.pool, (x,)),
        (ops.rescale, (x, g, None)),
        (ops.rescale, (x, g, dy)),
        (ops.rescale_backward_sums, (dy, x, None)),
        (ops.rescale_backward_sums, (dy, x, y)),
        (ops.rescale_backward_input, (dy, g, s, None)),
        (ops.rescale_backward_input, (dy, g, s, y)),
    ]:
        torch.library.opcheck(op, args)


@needs_backend
def test_kernel_ops_assert_what_their_memory_accesses_rely_on(device):
    x = torch.randn(2, 8, 4, 5, 5, device=device)
    with pytest.raises(RuntimeError, match="g must be"):
        triton_ops.rescale(x, torch.rand(2, 7, device=device), None)
    with pytest.raises(RuntimeError, match="g must be"):
        triton_ops.rescale(x.bfloat16(), torch.rand(2, 8, device=device).bfloat16(), None)
    with pytest.raises(RuntimeError, match="x must be a non-empty 5-D"):
        triton_ops.pool(torch.randn(2, 8, 4, device=device))
    with pytest.raises(RuntimeError, match="identity must match"):
        triton_ops.rescale(x, torch.rand(2, 8, device=device), x[..., :4])


# --- autotuning ----------------------------------------------------------------------------


@pytest.mark.skipif(triton_ops is None, reason="triton is not installed")
def test_autotune_configs_and_keys():
    ops = triton_ops
    tuned = [ops._rescale_tuned, ops._rescale_backward_input_tuned, ops._sum_tuned]
    if ops.INTERPRETED:  # one config each, so the interpreter never benchmarks
        assert all(len(k.configs) == 1 for k in [*tuned, ops._sum_fixed])
    for configs in (ops.GPU_ELEMENTWISE_CONFIGS, ops.GPU_SUM_CONFIGS):
        assert 1 < len(configs) <= 6
        for config in configs:
            tile = config.kwargs["TILE"]
            assert tile & (tile - 1) == 0 and tile >= ops.GPU_MAX_COL
    # Shape, layout and form are all in the key (the dtypes Triton adds by itself), so
    # one tuned choice is never reused for another layout or form.
    assert {"rows", "cols", "CHANNELS_LAST", "RESIDUAL"} <= set(ops._rescale_tuned.keys)
    keys = set(ops._rescale_backward_input_tuned.keys)
    assert {"rows", "cols", "CHANNELS_LAST", "RESIDUAL"} <= keys
    assert {"M", "C", "HW", "PRODUCT", "RESIDUAL", "CHANNELS_LAST"} <= set(ops._sum_tuned.keys)
    # Deterministic mode sums with one fixed config, whatever tuning picked.
    assert len(ops._sum_fixed.configs) == 1


@pytest.mark.skipif(triton_ops is None, reason="triton is not installed")
def test_column_block():
    block = triton_ops._column_block
    gpu = dict(tight=True, cap=triton_ops.GPU_MAX_COL)
    # ResNet stages (H*W for NCTHW, C for NTHWC): <= ~7% of the lanes padded.
    assert [block(c, **gpu) for c in (784, 196, 49, 16, 1)] == [64, 16, 4, 16, 1]
    assert [block(c, **gpu) for c in (256, 2048, 300)] == [256, 256, 64]
    assert block(196, tight=False, cap=1024) == 256


# --- availability --------------------------------------------------------------------------


def _backends_in_subprocess(code: str, interpret: bool) -> str:
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", code + "\nimport stc_ext\nprint(stc_ext.available_backends())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_backend_absent_without_triton():
    """No triton package: importing stc_ext still works; there is just no triton backend."""
    out = _backends_in_subprocess("import sys\nsys.modules['triton'] = None", interpret=True)
    assert "reference" in out and "triton" not in out


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present here")
@pytest.mark.skipif(triton_ops is None, reason="triton is not installed")
def test_backend_absent_without_gpu_or_interpreter():
    out = _backends_in_subprocess("", interpret=False)
    assert "reference" in out and "triton" not in out


# --- GPU code generation, checked without a GPU ---------------------------------------------

# Compiles every kernel (both layouts, the residual forms, bf16 and fp64) for sm_90 with
# Triton's bundled ptxas and prints the global load/store widths of each. Runs in a fresh
# process with the interpreter off, since the interpreter replaces @triton.jit kernels.
_COMPILE_FOR_SM90 = """
import re
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from stc_ext.ops.triton import kernels as K

ALIGNED = [["tt.divisibility", 16]]  # 16-aligned pointers and sizes, as at ResNet shapes

def compile_for_sm90(fn, pointers, ints, constexprs):
    names = fn.arg_names
    signature = {a: pointers.get(a) or ("i32" if a in ints else "constexpr") for a in names}
    consts = {(names.index(a),): v for a, v in constexprs.items()}
    attrs = {(names.index(a),): ALIGNED for a in [*pointers, *ints]}
    src = ASTSource(fn=fn, signature=signature, constexprs=consts, attrs=attrs)
    ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
    widths = re.findall(r"(ld|st)[.]global(?:[.]v([24]))?[.]b(32|64)", ptx.asm["ptx"])
    widest = {op: max(int(v or 1) * int(b) // 8 for o, v, b in widths if o == op)
              for op in ("ld", "st")}
    print(fn.__name__, widest["ld"], widest["st"])

for dt, acc in [("bf16", "fp32"), ("fp64", "fp64")]:
    for cl in [False, True]:
        io = dict(CHANNELS_LAST=cl, BLOCK_COL=64, TILE=4096)
        stats = ["M", "C", "T", "HW", "hw_per_split"]
        compile_for_sm90(K._sum_hw_kernel, dict(
            a_ptr=f"*{dt}", b_ptr=f"*{dt}", y_ptr=f"*{dt}", out_ptr=f"*{acc}"),
            stats, dict(PRODUCT=True, RESIDUAL=True, MEAN=True, MAX_P=256, **io))
        compile_for_sm90(K._rescale_kernel, dict(
            x_ptr=f"*{dt}", g_ptr=f"*{acc}", identity_ptr=f"*{dt}", y_ptr=f"*{dt}"),
            ["rows", "cols", "C", "T", "HW"], dict(RESIDUAL=True, **io))
        compile_for_sm90(K._rescale_backward_input_kernel, dict(
            grad_y_ptr=f"*{dt}", g_ptr=f"*{acc}", grad_s_ptr=f"*{acc}", y_ptr=f"*{dt}",
            grad_x_ptr=f"*{dt}", grad_identity_ptr=f"*{dt}"),
            ["rows", "cols", "C", "T", "HW"], dict(RESIDUAL=True, **io))
    compile_for_sm90(K._sum_splits_kernel, dict(part_ptr=f"*{acc}", out_ptr=f"*{acc}"),
                     ["M", "SPLITS", "HW"], dict(MEAN=True, BLOCK=1024))
"""


@pytest.mark.slow
@pytest.mark.skipif(triton_ops is None, reason="triton is not installed")
def test_kernels_compile_for_the_gpu_with_16_byte_accesses():
    """The interpreter accepts code the GPU compiler rejects: compile for sm_90 here (no
    GPU needed) and check that every feature-map access is 16 bytes wide."""
    pytest.importorskip("triton.backends.nvidia", reason="Triton's CUDA backend is absent")
    env = dict(os.environ, TRITON_DEFAULT_FP_FUSION="1")
    env.pop("TRITON_INTERPRET", None)
    result = subprocess.run(
        [sys.executable, "-c", _COMPILE_FOR_SM90],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.split()
    rows = [lines[i : i + 3] for i in range(0, len(lines), 3)]
    assert len(rows) == 14
    for name, load, store in rows:
        assert int(load) == 16, f"{name}: widest load {load} bytes"
        if name != "_sum_hw_kernel":  # it stores one value per (n, c, t)
            assert int(store) == 16, f"{name}: widest store {store} bytes"


# --- GPU only ------------------------------------------------------------------------------


@pytest.mark.skipif("cuda" not in DEVICES, reason="needs a CUDA GPU with Triton (real compilation)")
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncthw", "cl3d"])
def test_compile_traces_into_the_kernels(channels_last):
    """torch.compile(fullgraph=True) sees through the triton_ops and matches eager."""
    torch._dynamo.reset()
    x = random_feature_map((4, 64, 4, 14, 14), torch.bfloat16, channels_last).cuda()
    identity = torch.randn_like(x)
    g = torch.rand(4, 64, device="cuda")
    dy = torch.randn_like(x)

    def fn(x, identity, g, dy):
        s = triton_ops.pool(x)
        y = triton_ops.rescale(x, g, identity)
        sums = triton_ops.rescale_backward_sums(dy, x, y)
        dx, d_identity = triton_ops.rescale_backward_input(dy, g, sums, y)
        return s, y, sums, dx, d_identity

    eager = fn(x, identity, g, dy)
    compiled = torch.compile(fn, fullgraph=True)(x, identity, g, dy)
    for a, b in zip(compiled, eager, strict=True):
        torch.testing.assert_close(a, b)
