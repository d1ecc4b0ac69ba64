"""Fuse each ``Accumulate`` with the ``Fire`` that alone reads it into a ``SpikingLinear``."""

from __future__ import annotations

from contract.graph import Accumulate, Fire, Graph, SpikingLinear

from .base import Pass

__all__ = ["FuseLinear"]


class FuseLinear(Pass):
    """The array runs accumulate-then-fire as one layer; the currents never reach memory."""

    def run(self, graph: Graph) -> Graph:
        producers = graph.producers()
        fused = {}
        for op in graph.ops:
            acc = producers.get(op.inputs[0]) if op.inputs else None
            if isinstance(op, Fire) and isinstance(acc, Accumulate):
                if len(graph.consumers(acc.output)) == 1 and acc.output != graph.output:
                    fused[acc.name] = SpikingLinear(
                        f"{acc.name}+{op.name}", acc.inputs, op.output, weight=acc.weight,
                        bias=op.bias, threshold=op.threshold, reset=op.reset,
                        leak=op.leak, binary=op.binary)
                    fused[op.name] = None
        out = []
        for op in graph.ops:
            if op.name not in fused:
                out.append(op)
            elif fused[op.name] is not None:
                out.append(fused[op.name])
        return graph.replace_ops(out)
