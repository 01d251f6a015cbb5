"""Fused Triton kernels for the stc_ext kernel ops (semantics: csrc/stc.cpp; launches: ops.py).

Memory traffic, in passes over an (N, C, T, H, W) tensor of the input dtype (one pass =
every element read, or written, once); everything per (n, c) or (n, c, t) is tiny:

    kernel                           op / form                 reads       writes    passes
    _sum_hw_kernel                   pool                      x           s         1
                                     rescale_backward_sums     dy, x       sums      2
                                       residual                dy, x, y    sums      3
    _rescale_kernel                  rescale                   x           y         2
                                       residual                x, identity y         3
    _rescale_backward_input_kernel   rescale_backward_input    dy          dx        2
                                       residual                dy, y       dx, d_id  4

    Forward: 3 passes (plain), 4 (residual). Backward: 4 (plain), 7 (residual).
    s, sums (N, C, T), g (N, C) and grad_s (N, C, T) are re-read per tile from L1/L2, never
    from DRAM in bulk. When the H*W sum is split, stage one writes SPLITS * N*C*T
    accumulation-dtype partials and _sum_splits_kernel reads them once: each split covers
    >= ~256 positions (ops._MIN_SPLIT_HW), so that is one 4-byte partial per >= 256
    elements summed, < 1% of a bf16 pass each way.

The ReLU mask of the residual form, relu(x*g + identity), is read back from y (y > 0 where
the pre-activation is positive, bar values that round to 0 in y's dtype) rather than
recomputed from x, identity and g:
    - rescale_backward_sums needs dy and x anyway; the mask costs one more pass either way
      (y, or identity), so 3 passes both ways;
    - rescale_backward_input needs only dy and the mask: 2 reads with y, 3 (dy, x,
      identity) when recomputing, so reading y saves a full pass (4 vs 5 with the writes);
    - and recomputation would keep identity alive for the backward, while the custom op
      (stc_ext/ops/registration.py) already saves y. A 1-bit mask saved by the forward
      would cost 1/16 of a bf16 pass to read but an extra write in the forward; y is free.

Layouts: both are viewed as a row-major matrix (rows x cols) whose cols are contiguous:
    NCTHW (CHANNELS_LAST=False): rows = N*C*T (one per (n, c, t)), cols = H*W
    NTHWC (CHANNELS_LAST=True):  rows = N*T*H*W (one per position), cols = C
so tiles are [rows, cols] with the contiguous axis last, which Triton turns into 16-byte
vector accesses when the row length and base pointer allow it. Every kernel accumulates in
the accumulation dtype, read off the statistic's pointer type (float32, or float64 for
float64 inputs); stores round once to the output dtype.

The H*W sums are deterministic: no atomics; each output is summed by one program in a fixed
order and split partials are added in split order by _sum_splits_kernel.
"""

import os

import triton
import triton.language as tl


def _interpreter_on() -> bool:
    """Is Triton's interpreter on (TRITON_INTERPRET=1), as Triton reads it when decorating?"""
    knobs = getattr(triton, "knobs", None)  # triton >= 3.4
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


# Triton decides when it defines a kernel (@triton.jit, i.e. when this module is imported)
# whether the kernel is compiled for the GPU or interpreted on CPU tensors: with
# TRITON_INTERPRET=1 at that moment, the kernels below are interpreted for the rest of the
# process, whatever the variable says later. INTERPRETED records that decision; the rest of
# stc_ext reads it from here and never reads TRITON_INTERPRET itself.
INTERPRETED = _interpreter_on()

# Triton 3.9's interpreter rounds float32 -> bfloat16 toward zero (and its explicit "rtne"
# mode drops the mantissa carry), while GPUs round to nearest even. Under the interpreter
# the kernels round by hand, so CPU tests see the numerics of the GPU.
_ROUND_BF16_BY_HAND = tl.constexpr(INTERPRETED)


@triton.jit
def _round_to(v, OUT: tl.constexpr):
    """v (float32/float64) rounded to nearest-even in the dtype OUT."""
    if _ROUND_BF16_BY_HAND and OUT == tl.bfloat16:
        bits = v.to(tl.float32).to(tl.uint32, bitcast=True)
        bits = bits + 0x7FFF + ((bits >> 16) & 1)
        return (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    return v.to(OUT)


@triton.jit
def _term(
    a_ptr,
    b_ptr,
    y_ptr,
    offs,
    mask,
    PRODUCT: tl.constexpr,
    RESIDUAL: tl.constexpr,
    ACC: tl.constexpr,
):
    # a (pool); a*b (rescale_backward_sums); a*b where y > 0 (its residual form).
    v = tl.load(a_ptr + offs, mask=mask, other=0.0).to(ACC)
    if PRODUCT:
        v = v * tl.load(b_ptr + offs, mask=mask, other=0.0).to(ACC)
    if RESIDUAL:
        y = tl.load(y_ptr + offs, mask=mask, other=0.0)
        v = tl.where(y > 0, v, 0.0)
    return v


@triton.jit
def _sum_hw_kernel(
    a_ptr,
    b_ptr,
    y_ptr,
    out_ptr,
    M,
    C,
    T,
    HW,  # M = N*C*T outputs (per split)
    hw_per_split,  # positions summed by one program along grid axis 1
    PRODUCT: tl.constexpr,  # the term is a*b (rescale_backward_sums), else a (pool)
    RESIDUAL: tl.constexpr,  # the residual form: a*b where y > 0
    MEAN: tl.constexpr,  # divide by H*W here (pool without a split)
    CHANNELS_LAST: tl.constexpr,
    BLOCK_COL: tl.constexpr,  # NCTHW: positions per step; NTHWC: channels per program
    MAX_P: tl.constexpr,  # NTHWC: positions per step at most (>= hw_per_split is useless)
    TILE: tl.constexpr,  # elements per step (autotuned)
):
    """out[split, n*C*T + c*T + t] = sum (or mean) over this split's positions of the term:
    a (pool), a*b (rescale_backward_sums) or a*b where y > 0 (its residual form).

    Grid: (row blocks (NCTHW) or N*T*channel blocks (NTHWC), splits)."""
    ACC: tl.constexpr = out_ptr.dtype.element_ty
    split = tl.program_id(1)
    hw_start = split * hw_per_split
    hw_end = tl.minimum(hw_start + hw_per_split, HW)
    out_ptr += split.to(tl.int64) * M
    if CHANNELS_LAST:
        # One (n, t) and BLOCK_COL channels; sweep the positions, channels contiguous.
        BLOCK_P: tl.constexpr = TILE // BLOCK_COL if TILE // BLOCK_COL < MAX_P else MAX_P
        c_blocks = tl.cdiv(C, BLOCK_COL)
        nt = tl.program_id(0) // c_blocks
        c = (tl.program_id(0) % c_blocks) * BLOCK_COL + tl.arange(0, BLOCK_COL)
        c_ok = c < C
        base = nt.to(tl.int64) * HW * C
        acc = tl.zeros([BLOCK_P, BLOCK_COL], ACC)
        for p0 in range(hw_start, hw_end, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            mask = (p < hw_end)[:, None] & c_ok[None, :]
            offs = base + p[:, None] * C + c[None, :]
            acc += _term(a_ptr, b_ptr, y_ptr, offs, mask, PRODUCT, RESIDUAL, ACC)
        total = tl.sum(acc, axis=0)
        if MEAN:
            total = total / HW
        n = nt // T
        t = nt % T
        tl.store(out_ptr + (n * C + c) * T + t, total, mask=c_ok)
    else:
        # BLOCK_R (n, c, t) rows, each H*W contiguous; sweep the positions.
        BLOCK_R: tl.constexpr = TILE // BLOCK_COL
        r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        r_ok = r < M
        base = r.to(tl.int64) * HW
        acc = tl.zeros([BLOCK_R, BLOCK_COL], ACC)
        for p0 in range(hw_start, hw_end, BLOCK_COL):
            p = p0 + tl.arange(0, BLOCK_COL)
            mask = r_ok[:, None] & (p < hw_end)[None, :]
            offs = base[:, None] + p[None, :]
            acc += _term(a_ptr, b_ptr, y_ptr, offs, mask, PRODUCT, RESIDUAL, ACC)
        total = tl.sum(acc, axis=1)
        if MEAN:
            total = total / HW
        tl.store(out_ptr + r, total, mask=r_ok)


@triton.jit
def _sum_splits_kernel(part_ptr, out_ptr, M, SPLITS, HW, MEAN: tl.constexpr, BLOCK: tl.constexpr):
    """out[i] = sum over s (in order) of part[s, i], divided by H*W for the mean."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = i < M
    acc = tl.zeros([BLOCK], out_ptr.dtype.element_ty)
    part_ptr += i
    for _ in range(SPLITS):
        acc += tl.load(part_ptr, mask=ok, other=0.0)
        part_ptr += M  # 64-bit pointer arithmetic: no int32 overflow at SPLITS * M
    if MEAN:
        acc = acc / HW
    tl.store(out_ptr + i, acc, mask=ok)


@triton.jit
def _tile(rows, cols, BLOCK_COL: tl.constexpr, TILE: tl.constexpr):
    """Row and column indices of this program's [TILE // BLOCK_COL, BLOCK_COL] tile.

    The grid is 1-D, column blocks fastest (grid axes 1 and 2 stop at 65535 programs)."""
    BLOCK_R: tl.constexpr = TILE // BLOCK_COL
    col_blocks = tl.cdiv(cols, BLOCK_COL)
    r = (tl.program_id(0) // col_blocks) * BLOCK_R + tl.arange(0, BLOCK_R)
    col = (tl.program_id(0) % col_blocks) * BLOCK_COL + tl.arange(0, BLOCK_COL)
    mask = (r < rows)[:, None] & (col < cols)[None, :]
    offs = r.to(tl.int64)[:, None] * cols + col[None, :]
    return r, col, mask, offs


@triton.jit
def _rescale_kernel(
    x_ptr,
    g_ptr,
    identity_ptr,
    y_ptr,
    rows,
    cols,
    C,
    T,
    HW,
    RESIDUAL: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,
    BLOCK_COL: tl.constexpr,
    TILE: tl.constexpr,
):
    """y = x*g[n, c], or in the residual form relu(x*g[n, c] + identity).
    Grid: row blocks * column blocks."""
    ACC: tl.constexpr = g_ptr.dtype.element_ty
    r, col, mask, offs = _tile(rows, cols, BLOCK_COL, TILE)
    if CHANNELS_LAST:
        n = r // (T * HW)
        g = tl.load(g_ptr + n[:, None] * C + col[None, :], mask=mask, other=0.0)
    else:
        g = tl.load(g_ptr + r // T, mask=r < rows, other=0.0)[:, None]
    v = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC) * g
    if RESIDUAL:
        v = v + tl.load(identity_ptr + offs, mask=mask, other=0.0).to(ACC)
        v = tl.where(v > 0, v, 0.0)
    tl.store(y_ptr + offs, _round_to(v, y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _rescale_backward_input_kernel(
    grad_y_ptr,
    g_ptr,
    grad_s_ptr,
    y_ptr,
    grad_x_ptr,
    grad_identity_ptr,
    rows,
    cols,
    C,
    T,
    HW,
    RESIDUAL: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,
    BLOCK_COL: tl.constexpr,
    TILE: tl.constexpr,
):
    """dy' = dy (in the residual form: dy where y > 0); dx = g[n, c]*dy' + grad_s[n, c, t]/(H*W);
    d_identity = dy' (residual form only).

    grad_s is laid out in the kernel's row order: (N, C, T) for NCTHW (one value per row),
    (N, T, C) for NTHWC (row // HW selects (n, t), the column c). Grid as _rescale_kernel.
    """
    ACC: tl.constexpr = g_ptr.dtype.element_ty
    r, col, mask, offs = _tile(rows, cols, BLOCK_COL, TILE)
    if CHANNELS_LAST:
        n = r // (T * HW)
        g = tl.load(g_ptr + n[:, None] * C + col[None, :], mask=mask, other=0.0)
        grad_s = tl.load(grad_s_ptr + (r // HW)[:, None] * C + col[None, :], mask=mask, other=0.0)
    else:
        g = tl.load(g_ptr + r // T, mask=r < rows, other=0.0)[:, None]
        grad_s = tl.load(grad_s_ptr + r, mask=r < rows, other=0.0)[:, None]
    dy = tl.load(grad_y_ptr + offs, mask=mask, other=0.0).to(ACC)
    if RESIDUAL:
        y = tl.load(y_ptr + offs, mask=mask, other=0.0)
        dy = tl.where(y > 0, dy, 0.0)
        tl.store(
            grad_identity_ptr + offs, _round_to(dy, grad_identity_ptr.dtype.element_ty), mask=mask
        )
    dx = g * dy + grad_s / HW
    tl.store(grad_x_ptr + offs, _round_to(dx, grad_x_ptr.dtype.element_ty), mask=mask)
