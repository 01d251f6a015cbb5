"""The "triton" backend: fused Triton kernels for the four STC kernel ops.

Registered only where its kernels can run: with a CUDA device (a working Triton GPU
driver is checked per call by ``supports``), or on CPU tensors when Triton's interpreter
is on (``TRITON_INTERPRET=1`` when this module is imported, as Triton itself decides
at kernel definition). Triton is optional: without it the backend is simply absent.
"""

from __future__ import annotations

import torch

from ..dispatch import Backend, Kernels, register_backend

try:
    from .kernels import interpreter_on
except ImportError:  # triton, an optional extra, is not installed
    interpreter_on = None

if interpreter_on is not None and (interpreter_on() or torch.cuda.is_available()):
    from . import ops

    register_backend(
        Backend(
            "triton",
            Kernels(
                pool=ops.pool,
                rescale=ops.rescale,
                backward_sums=ops.backward_sums,
                backward_input=ops.backward_input,
            ),
            supports=ops.supports,
        )
    )
