"""Which accelerator a graph runs on, in one place (Amaranth-free, so the build's first steps
can ask before any hardware is imported).

A fused chain ``SpikeEmbed, SpikingLinear*, Readout`` with one threshold and reset per layer
runs on the layer-chain accelerator (``hw.Accelerator``), which checks windows at their last
position; every other graph runs on the layer-program accelerator (``hw.transformer``), a byte
at a time, and is checked at every position of whole streams.
"""

from __future__ import annotations

from .ir import Graph, Readout, SpikeEmbed, SpikingLinear
from .passes import FuseLinear

__all__ = ["checks_streams", "is_chain"]


def is_chain(graph: Graph) -> bool:
    """Whether a fused graph is what the layer-chain accelerator runs (see the module)."""
    first, *middle, last = graph.ops if len(graph.ops) >= 3 else (None, None)
    if not isinstance(first, SpikeEmbed) or not isinstance(last, Readout):
        return False
    chain = [first, *middle, last]
    wired = all(b.inputs == (a.output,) for a, b in zip(chain, chain[1:], strict=False))
    return wired and all(isinstance(op, SpikingLinear) and op.threshold.ndim == 0
                         and op.reset.ndim == 0 for op in middle)


def checks_streams(graph: Graph) -> bool:
    """Whether a build of ``graph`` (fused or not) checks whole byte streams at every position
    (the layer-program accelerator) rather than windows at their last position (a chain)."""
    return not is_chain(FuseLinear().run(graph))
