"""Dtype and memory-layout conventions every backend of the stc_ext ops follows.

Feature maps are (N, C, T, H, W), NCTHW-contiguous or channels_last_3d; any other layout
is made NCTHW-contiguous first. Outputs take the layout the kernel used, and per-(n, c)
or per-(n, c, t) statistics use the accumulation dtype. Fake kernels rely on these
helpers to report exactly the strides the real kernels produce.
"""

from __future__ import annotations

import torch
from torch import Tensor

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64 inputs, float32 for every other supported dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def is_channels_last(x: Tensor) -> bool:
    """True when a kernel indexes x as NTHWC (channels_last_3d and not NCTHW-contiguous)."""
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d)


def kernel_layout(x: Tensor) -> Tensor:
    """x in the layout a kernel indexes: itself if NCTHW- or NTHWC-dense, else a contiguous copy."""
    if x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last_3d):
        return x
    return x.contiguous()


def empty_output(x: Tensor) -> Tensor:
    """An uninitialised tensor shaped like x, with the strides a kernel output for x has."""
    return torch.empty_like(kernel_layout(x))


def empty_statistic(x: Tensor, with_time: bool = True) -> Tensor:
    """An uninitialised (N, C, T) (or (N, C)) tensor in x's accumulation dtype."""
    shape = x.shape[:3] if with_time else x.shape[:2]
    return x.new_empty(shape, dtype=accumulate_dtype(x.dtype))
