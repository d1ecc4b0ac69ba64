"""The integer contract of SpikeForge: the one integer reference every check compares against.

See ``docs/integer-contract.md``. This package needs NumPy only: no torch, no floats in the
datapath.
"""

from .intmodel import ContractError, IntModel, Readout, SpikingLayer
from .reference import accumulate, embed, fire, forward, next_token, readout
from .widths import Widths, derive_widths

__all__ = [
    "ContractError",
    "IntModel",
    "Readout",
    "SpikingLayer",
    "Widths",
    "accumulate",
    "derive_widths",
    "embed",
    "fire",
    "forward",
    "next_token",
    "readout",
]
