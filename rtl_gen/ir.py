"""The typed IR: the contract's graph (:mod:`contract.graph`), one frozen dataclass per op.

The compiler works on the same graph the integer reference executes: the front end makes one
from an ONNX file, the passes rewrite it (``FuseLinear`` adds the fused
:class:`SpikingLinear`), the interpreter is the contract's executor, and the hardware plan
lowers it to a layer program. Arrays are read-only int64 NumPy arrays.
"""

from contract.graph import (
    Accumulate,
    Attention,
    Fire,
    Graph,
    GraphError,
    Kind,
    Op,
    Readout,
    ResidualAdd,
    SpikeEmbed,
    SpikingLinear,
    TokenEmbed,
    Trace,
    frozen_array,
)

__all__ = [
    "Accumulate",
    "Attention",
    "Fire",
    "Graph",
    "GraphError",
    "Kind",
    "Op",
    "Readout",
    "ResidualAdd",
    "SpikeEmbed",
    "SpikingLinear",
    "TokenEmbed",
    "Trace",
    "frozen_array",
]
