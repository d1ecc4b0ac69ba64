"""The integer contract of SpikeForge: the one integer reference every check compares against.

See ``docs/integer-contract.md``. This package needs NumPy only: no torch, no floats in the
datapath.
"""

from .intmodel import ContractError, IntModel, Readout, SpikingLayer
from .ranges import Ranges, analyse, signed_bits
from .reference import accumulate, embed, fire, forward, next_token, readout

__all__ = [
    "ContractError",
    "IntModel",
    "Readout",
    "SpikingLayer",
    "Ranges",
    "accumulate",
    "analyse",
    "embed",
    "fire",
    "forward",
    "next_token",
    "readout",
    "signed_bits",
]
