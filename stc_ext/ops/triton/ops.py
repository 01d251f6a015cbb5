"""The triton backend's four kernel ops: ``torch.library.triton_op`` wrappers of kernels.py.

Each op has the schema and semantics of its csrc/stc.cpp counterpart (its annotations are
its schema; ``triton_op`` registers it, fake kernel included, where it is defined below) and
follows stc_ext/ops/layout.py for output dtypes and strides. Because the
Triton launches go through ``wrap_triton``, ``torch.compile`` traces into them on CUDA.

Where Triton cannot run the tensors (CPU without the interpreter, CUDA under the
interpreter, fake tensors under the interpreter) the ops compute the same result with
ATen ops instead, so they trace and run everywhere; the backend only claims the devices
where the kernels really run (``supports``).

Launch plan (host side, from the shape):
- the contiguous axis (H*W for NCTHW, C for NTHWC) is cut into BLOCK_COL-wide column
  blocks (a power of two wasting <= ~7% of lanes on GPU); the autotuned TILE sets how
  many rows a program handles (TILE // BLOCK_COL);
- the H*W sum is split over grid axis 1 when the unsplit grid would not fill the
  GPU (< 4 programs per SM) and H*W is long enough; partials are summed in order by a
  second launch, so the result does not depend on timing;
- autotuning picks TILE and num_warps from a short list per (shape, dtype, layout,
  form). Under ``torch.use_deterministic_algorithms(True)`` the H*W sums use one fixed
  config, so their summation order, and so their bits, do not depend on what autotuning
  picked in this process. Under the interpreter every list has one config.
"""

from __future__ import annotations

import functools

import torch
import triton
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake
from torch.library import triton_op, wrap_triton

from ..layout import (
    accumulate_dtype,
    empty_output,
    empty_statistic,
    is_channels_last,
    kernel_layout,
)
from .kernels import (
    INTERPRETED,
    _rescale_backward_input_kernel,
    _rescale_kernel,
    _sum_hw_kernel,
    _sum_splits_kernel,
)

# --- autotune configs ---------------------------------------------------------------
# TILE = elements a program touches per step. Memory-bound: what matters is enough bytes
# in flight per SM (16 or 32 elements per thread) without spilling the accumulator tile
# (ptxas for sm_90: at most ~140 registers, no spills, for every config below).
GPU_ELEMENTWISE_CONFIGS = [
    triton.Config({"TILE": 2048}, num_warps=4),
    triton.Config({"TILE": 4096}, num_warps=4),
    triton.Config({"TILE": 4096}, num_warps=8),
    triton.Config({"TILE": 8192}, num_warps=8),
]
GPU_SUM_CONFIGS = [
    triton.Config({"TILE": 2048}, num_warps=4),
    triton.Config({"TILE": 4096}, num_warps=8),
    triton.Config({"TILE": 8192}, num_warps=8),
]
GPU_MAX_COL = 256  # widest column block; every TILE holds at least one row of it
# The interpreter pays per program and per loop step, not per element: one big tile.
INTERPRETER_CONFIGS = [triton.Config({"TILE": 16384}, num_warps=1)]
INTERPRETER_MAX_COL = 1024

if INTERPRETED:
    _ELEMENTWISE_CONFIGS = _SUM_CONFIGS = INTERPRETER_CONFIGS
    _MAX_COL = INTERPRETER_MAX_COL
else:
    _ELEMENTWISE_CONFIGS, _SUM_CONFIGS = GPU_ELEMENTWISE_CONFIGS, GPU_SUM_CONFIGS
    _MAX_COL = GPU_MAX_COL
_SUM_DEFAULT = _SUM_CONFIGS[0]
_NOMINAL_TILE = 4096  # used to size the split before a config is chosen
_SUM_SPLITS_BLOCK = 1024

_ELEMENTWISE_KEY = ["rows", "cols", "CHANNELS_LAST", "RESIDUAL"]
_rescale_tuned = triton.autotune(_ELEMENTWISE_CONFIGS, key=_ELEMENTWISE_KEY)(_rescale_kernel)
_rescale_backward_input_tuned = triton.autotune(_ELEMENTWISE_CONFIGS, key=_ELEMENTWISE_KEY)(
    _rescale_backward_input_kernel
)
_SUM_KEY = ["M", "C", "HW", "hw_per_split", "PRODUCT", "RESIDUAL", "CHANNELS_LAST"]
_sum_tuned = triton.autotune(_SUM_CONFIGS, key=_SUM_KEY)(_sum_hw_kernel)
_sum_fixed = triton.autotune([_SUM_DEFAULT], key=_SUM_KEY)(_sum_hw_kernel)

# --- split of the H*W sum -------------------------------------------------------------
_PROGRAMS_PER_SM = 4
_MIN_SPLIT_HW = 256  # positions per split, at least (smaller splits cost more than they save)
_MAX_SPLITS = 64


@functools.cache
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _target_programs(device: torch.device) -> int:
    """Programs the H*W-sum grid should have to fill the device (1: never split)."""
    if device.type != "cuda":
        return 1  # the interpreter runs programs one after another
    index = device.index if device.index is not None else torch.cuda.current_device()
    return _PROGRAMS_PER_SM * _sm_count(index)


def _plan_split(programs: int, hw: int, device: torch.device) -> tuple[int, int]:
    """(splits, positions per split) for an H*W-sum grid of ``programs`` per split."""
    splits = 1
    target = _target_programs(device)
    if programs < target:
        splits = max(1, min(triton.cdiv(target, programs), hw // _MIN_SPLIT_HW, _MAX_SPLITS))
    per_split = triton.cdiv(triton.cdiv(hw, splits), 16) * 16  # 16-aligned chunk starts
    return triton.cdiv(hw, per_split), per_split


def _column_block(cols: int, tight: bool = not INTERPRETED, cap: int = _MAX_COL) -> int:
    """Power-of-two width of a column block: as wide as ``cap`` allows and, if ``tight``,
    narrow enough that padding the last block wastes at most ~7% of the lanes."""
    block = min(triton.next_power_of_2(cols), cap)
    if tight:
        while block > 1 and triton.cdiv(cols, block) * block * 100 > cols * 107:
            block //= 2
    return block


# --- helpers -----------------------------------------------------------------------------


def _runs_triton(t: Tensor) -> bool:
    """Can the Triton kernels run on (or, on CUDA, be traced for) this tensor?"""
    if t.device.type == "cuda":
        return not INTERPRETED
    return INTERPRETED and t.device.type == "cpu" and not is_fake(t)


def _in_layout_of(t: Tensor, x: Tensor) -> Tensor:
    """t in x's kernel layout (x already is NCTHW-contiguous or channels_last_3d)."""
    if is_channels_last(x):
        return t.contiguous(memory_format=torch.channels_last_3d)
    return t.contiguous()


# Internal assertions, not argument checking: stc_ext.stc checks the user's arguments
# (stc_ext/ops/checks.py). These keep only what the kernels' memory accesses rely on, for
# whoever calls the ops themselves.
def _check_feature_map(t: Tensor, name: str, like: Tensor | None = None) -> None:
    if t.dim() != 5 or t.numel() == 0:
        raise RuntimeError(
            f"stc_ext internal op: {name} must be a non-empty 5-D (N, C, T, H, W) tensor, "
            f"got shape {tuple(t.shape)}"
        )
    if like is not None and (t.shape, t.dtype, t.device) != (like.shape, like.dtype, like.device):
        raise RuntimeError(
            f"stc_ext internal op: {name} must match {tuple(like.shape)} {like.dtype} on "
            f"{like.device}, got {tuple(t.shape)} {t.dtype} on {t.device}"
        )


def _check_statistic(s: Tensor, name: str, shape: tuple[int, ...], x: Tensor) -> None:
    dtype = accumulate_dtype(x.dtype)
    if (tuple(s.shape), s.dtype, s.device) != (shape, dtype, x.device):
        raise RuntimeError(
            f"stc_ext internal op: {name} must be {shape} {dtype} on {x.device} for "
            f"{x.dtype} inputs, got {tuple(s.shape)} {s.dtype} on {s.device}"
        )


def _sum_hw(a: Tensor, b: Tensor | None, y: Tensor | None, mean: bool) -> Tensor:
    """(N, C, T) sums (or means) over H, W of a, a*b, or a*b where y > 0; a in kernel layout."""
    n, c, t, h, w = a.shape
    hw = h * w
    m = n * c * t
    out = empty_statistic(a)
    channels_last = is_channels_last(a)
    block_col = _column_block(c if channels_last else hw)
    if channels_last:
        programs = n * t * triton.cdiv(c, block_col)
    else:
        programs = triton.cdiv(m, max(1, _NOMINAL_TILE // block_col))
    splits, per_split = _plan_split(programs, hw, a.device)
    target = out if splits == 1 else a.new_empty((splits, m), dtype=out.dtype)
    kernel = _sum_fixed if torch.are_deterministic_algorithms_enabled() else _sum_tuned

    def grid(meta):
        if meta["CHANNELS_LAST"]:
            blocks = meta["M"] // meta["C"] * triton.cdiv(meta["C"], meta["BLOCK_COL"])
        else:
            blocks = triton.cdiv(meta["M"], meta["TILE"] // meta["BLOCK_COL"])
        return (blocks, splits)

    wrap_triton(kernel)[grid](
        a,
        a if b is None else b,
        a if y is None else y,
        target,
        m,
        c,
        t,
        hw,
        per_split,
        PRODUCT=b is not None,
        RESIDUAL=y is not None,
        MEAN=mean and splits == 1,
        CHANNELS_LAST=channels_last,
        BLOCK_COL=block_col,
        MAX_P=triton.next_power_of_2(per_split) if channels_last else 1,  # NCTHW ignores it
    )
    if splits > 1:
        wrap_triton(_sum_splits_kernel)[(triton.cdiv(m, _SUM_SPLITS_BLOCK),)](
            target,
            out,
            m,
            splits,
            hw,
            MEAN=mean,
            BLOCK=_SUM_SPLITS_BLOCK,
        )
    return out


def _elementwise_grid(meta: dict) -> tuple[int]:
    """One program per [TILE // BLOCK_COL, BLOCK_COL] tile of the (rows, cols) matrix."""
    row_blocks = triton.cdiv(meta["rows"], meta["TILE"] // meta["BLOCK_COL"])
    return (row_blocks * triton.cdiv(meta["cols"], meta["BLOCK_COL"]),)


def _broadcast(stat: Tensor) -> Tensor:
    """(N, C) or (N, C, T) statistic viewed for broadcasting against (N, C, T, H, W)."""
    return stat.reshape(*stat.shape, *([1] * (5 - stat.dim())))


# --- the ops -------------------------------------------------------------------------------


@triton_op("stc_ext::triton_pool", mutates_args=())
def pool(x: Tensor) -> Tensor:
    """s (N, C, T): the spatial means of x (N, C, T, H, W), in the accumulation dtype."""
    _check_feature_map(x, "x")
    x = kernel_layout(x)
    if not _runs_triton(x):
        return empty_statistic(x).copy_(x.to(accumulate_dtype(x.dtype)).mean(dim=(3, 4)))
    return _sum_hw(x, None, None, mean=True)


@triton_op("stc_ext::triton_rescale", mutates_args=())
def rescale(x: Tensor, g: Tensor, identity: Tensor | None) -> Tensor:
    """y = x * g[n, c], or in the residual form relu(x * g[n, c] + identity); x's kernel
    layout and dtype."""
    _check_feature_map(x, "x")
    _check_statistic(g, "g", tuple(x.shape[:2]), x)
    x = kernel_layout(x)
    if identity is not None:
        _check_feature_map(identity, "identity", like=x)
        identity = _in_layout_of(identity, x)
    y = empty_output(x)
    if not _runs_triton(x):
        v = x.to(g.dtype) * _broadcast(g)
        if identity is not None:
            v = torch.relu(v + identity.to(g.dtype))
        return y.copy_(v)
    n, c, t, h, w = x.shape
    channels_last = is_channels_last(x)
    rows, cols = (n * t * h * w, c) if channels_last else (n * c * t, h * w)
    wrap_triton(_rescale_tuned)[_elementwise_grid](
        x,
        g.contiguous(),
        x if identity is None else identity,
        y,
        rows,
        cols,
        c,
        t,
        h * w,
        RESIDUAL=identity is not None,
        CHANNELS_LAST=channels_last,
        BLOCK_COL=_column_block(cols),
    )
    return y


@triton_op("stc_ext::triton_rescale_backward_sums", mutates_args=())
def rescale_backward_sums(grad_y: Tensor, x: Tensor, y: Tensor | None) -> Tensor:
    """sums (N, C, T) = sum over H, W of dy' * x; dy' = grad_y, or in the residual form (y
    given) grad_y where y > 0."""
    _check_feature_map(x, "x")
    _check_feature_map(grad_y, "grad_y", like=x)
    x = kernel_layout(x)
    grad_y = _in_layout_of(grad_y, x)
    if y is not None:
        _check_feature_map(y, "y", like=x)
        y = _in_layout_of(y, x)
    if not _runs_triton(x):
        acc = accumulate_dtype(x.dtype)
        v = grad_y.to(acc) * x.to(acc)
        if y is not None:
            v = torch.where(y > 0, v, 0.0)
        return empty_statistic(x).copy_(v.sum(dim=(3, 4)))
    return _sum_hw(grad_y, x, y, mean=False)


@triton_op("stc_ext::triton_rescale_backward_input", mutates_args=())
def rescale_backward_input(
    grad_y: Tensor, g: Tensor, grad_s: Tensor, y: Tensor | None
) -> tuple[Tensor, Tensor]:
    """dx = g[n, c] * dy' + grad_s[n, c, t] / (H*W) and d_identity = dy' (empty in the plain
    form, y absent); dy' as in rescale_backward_sums."""
    _check_feature_map(grad_y, "grad_y")
    _check_statistic(g, "g", tuple(grad_y.shape[:2]), grad_y)
    _check_statistic(grad_s, "grad_s", tuple(grad_y.shape[:3]), grad_y)
    grad_y = kernel_layout(grad_y)
    if y is not None:
        _check_feature_map(y, "y", like=grad_y)
        y = _in_layout_of(y, grad_y)
    n, c, t, h, w = grad_y.shape
    grad_x = empty_output(grad_y)
    grad_identity = empty_output(grad_y) if y is not None else grad_y.new_empty((0,))
    if not _runs_triton(grad_y):
        dy = grad_y if y is None else torch.where(y > 0, grad_y, 0.0)
        grad_x.copy_(dy.to(g.dtype) * _broadcast(g) + _broadcast(grad_s / (h * w)))
        if y is not None:
            grad_identity.copy_(dy)
        return grad_x, grad_identity
    channels_last = is_channels_last(grad_y)
    if channels_last:
        rows, cols = n * t * h * w, c
        grad_s = grad_s.transpose(1, 2).contiguous()  # (N, T, C): read along c
    else:
        rows, cols = n * c * t, h * w
        grad_s = grad_s.contiguous()
    wrap_triton(_rescale_backward_input_tuned)[_elementwise_grid](
        grad_y,
        g.contiguous(),
        grad_s,
        grad_y if y is None else y,
        grad_x,
        grad_x if y is None else grad_identity,
        rows,
        cols,
        c,
        t,
        h * w,
        RESIDUAL=y is not None,
        CHANNELS_LAST=channels_last,
        BLOCK_COL=_column_block(cols),
    )
    return grad_x, grad_identity


@functools.cache
def _gpu_ready() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        triton.runtime.driver.active.get_current_target()
    except (RuntimeError, OSError):  # no usable driver (e.g. "0 active drivers")
        return False
    return True


def supports(device: torch.device) -> bool:
    """CUDA tensors with a working Triton GPU driver; CPU tensors under the interpreter."""
    if INTERPRETED:
        return device.type == "cpu"
    return device.type == "cuda" and _gpu_ready()
