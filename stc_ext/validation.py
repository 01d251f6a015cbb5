"""Argument checks shared by the packages (data, transfer, ...).

A leaf module: it imports nothing from stc_ext, so every subpackage can use it without an
import cycle. Errors name the function and the argument, in the library's words (the CLI adds
flag names).
"""

from __future__ import annotations

import operator

__all__ = ["check_int"]


def check_int(
    where: str, name: str, value: object, minimum: int = 1, maximum: int | None = None
) -> int:
    """``value`` as a Python ``int`` in ``[minimum, maximum]``, or a ``ValueError`` naming it.

    Accepts anything with ``__index__`` (``int``, numpy integers), but not ``bool`` and not
    floats, even integral ones. ``where`` is the function or class that checks: the message
    reads ``"{where}: {name} must be a positive int, got 0"``. Cheap enough for per-item paths
    (the message is only built on failure).
    """
    if not isinstance(value, bool):
        try:
            number = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            pass
        else:
            if number >= minimum and (maximum is None or number <= maximum):
                return number
    if maximum is not None:
        expected = f"an int in {minimum}..{maximum}"
    elif minimum == 1:
        expected = "a positive int"
    else:
        expected = f"an int >= {minimum}"
    raise ValueError(f"{where}: {name} must be {expected}, got {value!r}")
