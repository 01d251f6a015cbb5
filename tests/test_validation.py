"""stc_ext.validation.check_int: the shared integer-argument check."""

from __future__ import annotations

import numpy as np
import pytest

from stc_ext.validation import check_int


@pytest.mark.parametrize(
    "value, minimum, maximum", [(1, 1, None), (7, 1, None), (0, 0, None), (5, 2, 5), (2, 2, 5)]
)
def test_accepts_ints_in_range_and_returns_a_python_int(value, minimum, maximum):
    assert check_int("f", "n", value, minimum, maximum) == value
    numpy_value = check_int("f", "n", np.int64(value), minimum, maximum)
    assert type(numpy_value) is int and numpy_value == value


@pytest.mark.parametrize(
    "value, minimum, maximum, message",
    [
        (0, 1, None, "f: n must be a positive int, got 0"),
        (-3, 1, None, "f: n must be a positive int, got -3"),
        (True, 1, None, "f: n must be a positive int, got True"),
        (2.0, 1, None, "f: n must be a positive int, got 2.0"),
        ("2", 1, None, "f: n must be a positive int, got '2'"),
        (None, 1, None, "f: n must be a positive int, got None"),
        (31, 32, None, "f: n must be an int >= 32, got 31"),
        (-1, 0, None, "f: n must be an int >= 0, got -1"),
        (1, 2, 12, "f: n must be an int in 2..12, got 1"),
        (13, 2, 12, "f: n must be an int in 2..12, got 13"),
        (np.float64(3.0), 1, None, "f: n must be a positive int, got "),
    ],
)
def test_rejects_with_the_function_argument_and_value(value, minimum, maximum, message):
    with pytest.raises(ValueError) as raised:
        check_int("f", "n", value, minimum, maximum)
    assert str(raised.value).startswith(message)
