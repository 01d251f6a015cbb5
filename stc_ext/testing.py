"""Helpers for testing STC kernels against the reference (used by tests/ and bench/).

Tolerances, by the dtype of the block's input x:

* float64: max error <= 1e-10 * (1 + max|expected|).
* float32: max error <= 1e-5 * (1 + max|expected|).
* float16/bfloat16: the rule flash-attention uses: the kernel's max error against the
  float64 result must be at most 2x (3x for gradients) the max error of plain PyTorch
  computing the same thing in that dtype, plus a small absolute slack.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from .nn import STCBlock
from .ops.reference import stc_reference

LOW_PRECISION = (torch.float16, torch.bfloat16)


@contextlib.contextmanager
def poisoned_allocations(warn_only: bool = False) -> Iterator[None]:
    """Inside, every torch.empty is filled with NaN, so an output element a kernel forgets
    to write shows up as non-finite. Works through deterministic mode (``warn_only``: warn
    instead of raising on an op that has no deterministic implementation)."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.utils.deterministic.fill_uninitialized_memory = previous[2]


def random_feature_map(
    shape: Sequence[int], dtype: torch.dtype, channels_last: bool = False, generator=None
) -> Tensor:
    """Random (N, C, T, H, W) input whose per-(n, c, t) means vary widely, so the gate's
    gradient terms are as large as the direct ones and a wrong one cannot hide."""
    n, c, t = shape[:3]
    x = torch.randn(*shape, generator=generator, dtype=torch.float64)
    x += 2.0 * torch.randn(n, c, t, 1, 1, generator=generator, dtype=torch.float64)
    x = x.to(dtype)
    return x.to(memory_format=torch.channels_last_3d) if channels_last else x


def randomize_block(block: STCBlock, scale: float = 3.0, generator=None) -> STCBlock:
    """Redraw every parameter so the bottlenecks are far from their near-linear start."""
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(
                torch.randn(p.shape, generator=generator, dtype=p.dtype)
                * scale
                / max(1, p.shape[-1]) ** 0.5
            )
    return block


def block_outputs(
    block: STCBlock,
    x: Tensor,
    identity: Tensor | None,
    grad_y: Tensor,
    backend: str,
) -> tuple[Tensor, list[Tensor]]:
    """y and the gradients [dx, (d_identity,) *d_params] of block(x, identity) on ``backend``."""
    block = copy.copy(block)
    block.backend = backend
    x = x.detach().clone().requires_grad_()
    inputs = [x]
    if identity is not None:
        identity = identity.detach().clone().requires_grad_()
        inputs.append(identity)
    y = block(x, identity)
    grads = torch.autograd.grad(y, [*inputs, *block.parameters()], grad_y.to(y.dtype))
    return y.detach(), [g.detach() for g in grads]


def reference_outputs(
    block: STCBlock,
    x: Tensor,
    identity: Tensor | None,
    grad_y: Tensor,
    compute_dtype: torch.dtype,
) -> tuple[Tensor, list[Tensor]]:
    """Like block_outputs, but plain PyTorch in ``compute_dtype`` (float64 for the oracle).

    For float64 the inputs and weights are upcast first; for a low-precision dtype the
    inputs stay in it and the arithmetic runs in it (the baseline for the tolerance rule).
    """
    if compute_dtype == torch.float64:
        block = copy.deepcopy(block).double()
        x = x.double()
        identity = None if identity is None else identity.double()
    x = x.detach().clone().requires_grad_()
    inputs = [x]
    if identity is not None:
        identity = identity.detach().clone().requires_grad_()
        inputs.append(identity)
    y = stc_reference(x, block.params(), identity, compute_dtype=compute_dtype)
    grads = torch.autograd.grad(y, [*inputs, *block.parameters()], grad_y.to(y.dtype))
    return y.detach(), [g.detach() for g in grads]


def _max_error(a: Tensor, b: Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def assert_close(
    name: str,
    actual: Tensor,
    expected: Tensor,
    input_dtype: torch.dtype,
    baseline: Tensor | None = None,
    gradient: bool = False,
) -> None:
    """Assert ``actual`` is within the tolerance for ``input_dtype`` of the float64 ``expected``.

    ``baseline`` (plain PyTorch in ``input_dtype``) is required for float16/bfloat16.
    """
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
    if not torch.isfinite(actual).all():
        raise AssertionError(f"{name}: non-finite values (an unwritten output?)")
    scale = 1.0 + expected.abs().max().item()
    error = _max_error(actual, expected)
    if input_dtype == torch.float64:
        bound = 1e-10 * scale
    elif input_dtype == torch.float32:
        bound = 1e-5 * scale
    else:
        if baseline is None:
            raise ValueError("assert_close: low precision needs the plain-PyTorch baseline")
        bound = (3.0 if gradient else 2.0) * _max_error(baseline, expected) + 1e-4 * scale
    if not error <= bound:
        raise AssertionError(
            f"{name}: max error {error:.3e} exceeds {bound:.3e} for {input_dtype} inputs"
        )


def check_against_reference(
    backend: str,
    device: torch.device | str,
    shape: Sequence[int],
    dtype: torch.dtype,
    channels_last: bool = False,
    residual: bool = False,
    branches: str = "stc",
    generator: torch.Generator | None = None,
) -> None:
    """Run a randomised ``STCBlock`` on ``backend`` and compare y and every gradient with
    the float64 reference, by the tolerances above; raises ``AssertionError`` naming the
    first tensor out of tolerance.

    ``shape``: (N, C, T, H, W) of x. Inputs, weights and the incoming gradient are drawn
    from ``generator`` (on the CPU, then moved to ``device``).
    """
    n, c, t = shape[:3]
    block = STCBlock(c, t, reduction=4, branches=branches)
    randomize_block(block, generator=generator)
    block = block.double() if dtype == torch.float64 else block.float()
    x = random_feature_map(shape, dtype, channels_last, generator=generator)
    identity = (
        random_feature_map(shape, dtype, channels_last, generator=generator) if residual else None
    )
    # Drawn in x's dtype so that every path, the float64 oracle included, sees the same
    # values: the comparison then measures the arithmetic, not the rounding of inputs.
    grad_y = torch.randn(tuple(shape), generator=generator, dtype=torch.float64).to(dtype)
    block, x, grad_y = block.to(device), x.to(device), grad_y.to(device)
    identity = None if identity is None else identity.to(device)

    y, grads = block_outputs(block, x, identity, grad_y, backend)
    y_ref, grads_ref = reference_outputs(block, x, identity, grad_y, torch.float64)
    y_base, grads_base = (None, [None] * len(grads))
    if dtype in LOW_PRECISION:
        y_base, grads_base = reference_outputs(block, x, identity, grad_y, dtype)

    if y.dtype != dtype or y.shape != x.shape:
        raise AssertionError(f"y: {y.dtype} {tuple(y.shape)}, expected {dtype} {tuple(x.shape)}")
    if channels_last and not y.is_contiguous(memory_format=torch.channels_last_3d):
        raise AssertionError("y: a channels_last_3d input gave an output in another layout")
    assert_close("y", y, y_ref, dtype, y_base)
    names = ["grad_x"] + (["grad_identity"] if residual else [])
    names += [name for name, _ in block.named_parameters()]
    for name, grad, grad_ref, grad_base in zip(names, grads, grads_ref, grads_base, strict=True):
        assert_close(name, grad, grad_ref, dtype, grad_base, gradient=True)
