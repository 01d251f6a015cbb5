"""The "triton" backend: the four STC kernel ops as Triton kernels (kernels.py) behind
``torch.library.triton_op`` wrappers (ops.py).

Triton is optional. stc_ext/ops/backends.py loads ops.py the first time the backend is
looked up and decides there whether it can run: with a CUDA GPU, or on CPU tensors under
Triton's interpreter (see ``kernels.INTERPRETED``).
"""
