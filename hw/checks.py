"""Constructor argument checks shared by the components: precise errors naming the argument."""

from __future__ import annotations

import numpy as np

__all__ = ["positive_int", "signed_width"]


def positive_int(name: str, value) -> int:
    """``value`` as an int if it is a positive integer; TypeError or ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def signed_width(name: str, value, minimum: int = 1) -> int:
    """A signed register width of at least ``minimum`` bits."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer number of bits, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum} bits, not {value}")
    return value
