"""stc_ext: Spatio-temporal Channel Correlation networks (Diba et al., ECCV 2018).

``STCBlock`` is the block, backed by fused kernels (C++ on CPU; CUDA and Triton on GPU)
with a plain PyTorch reference; ``available_backends()`` says which run here.
"""

from . import models
from .nn import STCBlock
from .ops import STCParams, available_backends, stc, stc_reference

__version__ = "0.1.0"

__all__ = [
    "STCBlock",
    "STCParams",
    "__version__",
    "available_backends",
    "models",
    "stc",
    "stc_reference",
]
