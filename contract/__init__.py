"""The integer contract of SpikeForge: the one integer reference every check compares against.

See ``docs/integer-contract.md``. One typed graph of spiking ops (:mod:`contract.graph`), one
function per op (:mod:`contract.ops`) and one executor (:func:`contract.graph.run`), one range
analysis (:mod:`contract.ranges`), one ONNX form (:mod:`contract.onnx_io`); the zoo's integer
models (:mod:`contract.zoo`) lower to that graph. This package needs NumPy only: no torch, no
floats in the datapath.
"""

from .ops import VOCAB, ContractError, accumulate, fire, next_token, readout
from .ranges import Ranges, analyse, signed_bits
from .zoo import IntModel, IntTransformer, Readout, SpikingLayer, embed, forward, forward_streams

__all__ = [
    "VOCAB",
    "ContractError",
    "IntModel",
    "IntTransformer",
    "Ranges",
    "Readout",
    "SpikingLayer",
    "accumulate",
    "analyse",
    "embed",
    "fire",
    "forward",
    "forward_streams",
    "next_token",
    "readout",
    "signed_bits",
]
