"""The STC op layer: from ``stc()`` to the kernels.

Data path, one module per step:

    STCBlock.forward (stc_ext/nn.py)
    -> stc()                    stc_function.py: checks the arguments (checks.py), picks the
                                backend for x's device (backends.py)
    -> torch.ops.stc_ext.stc    registration.py: the custom op, its fake kernel and autograd;
                                forward pool -> gate (gate.py) -> rescale, backward
                                rescale_backward_sums -> gate backward -> rescale_backward_input
    -> backend table            backends.py: {"cpu", "cuda", "triton"}, each loaded on first use
    -> kernels                  "cpu"/"cuda": csrc/ (loaded by native.py, which also registers
                                their fake kernels, or built by jit.py); "triton": triton/ops.py
                                and triton/kernels.py

"reference" (reference.py) is plain PyTorch, the oracle the kernels are tested against.
params.py holds the weights as the op takes them; layout.py the dtype and stride conventions
every backend and fake kernel follows.

Environment variables (none is read when stc_ext is imported):

    STC_EXT_DISABLE=cuda   turn kernel backends off (comma-separated: cpu, cuda, triton):
                           "auto" skips them, naming one is an error; read by backends.py
                           on every call
    STC_EXT_JIT=1          build the extension just in time where stc_ext._C was not built;
                           read by native.load() on each call while the extension is missing
    STC_EXT_CPU_CACHE_MB   megabytes of freed C++ CPU outputs (>= 1 MiB each) kept for reuse,
                           so training steps skip fresh-page faults (default 1024, 0: off);
                           read once, at the first large CPU output (csrc/cpu/output_cache.cpp;
                           native.release_cached_outputs() empties it)
    TRITON_INTERPRET=1     run the Triton kernels on CPU tensors; Triton fixes it when it
                           defines the kernels (triton/kernels.py, ``INTERPRETED``)
    STC_EXT_FORCE_CPU=1,   build-time choices, read when a build runs
    TORCH_CUDA_ARCH_LIST   (stc_ext/_extension_sources.py)
    STC_EXT_JIT_DIR        where JIT builds go, read per build (jit.py)
"""

from .backends import available_backends, resolve_backend
from .params import STCParams
from .reference import stc_reference
from .stc_function import stc

__all__ = ["STCParams", "available_backends", "resolve_backend", "stc", "stc_reference"]
