"""The STC op layer: reference, custom op registration, backend dispatch."""

from .dispatch import available_backends, resolve_backend
from .params import STCParams
from .reference import stc_reference
from .stc import stc

__all__ = ["STCParams", "available_backends", "resolve_backend", "stc", "stc_reference"]
