"""Fuse each transformer ``Accumulate`` with the ``Fire`` that alone reads it."""

from __future__ import annotations

from ..tir import Accumulate, Fire, SpikingLinear, TGraph
from .base import Pass

__all__ = ["FuseLinear"]


class FuseLinear(Pass):
    """The array runs accumulate-then-fire as one layer; the currents never reach memory."""

    def run(self, graph: TGraph) -> TGraph:
        ops = list(graph.ops)
        fused = {}
        for op in ops:
            if isinstance(op, Fire) and isinstance(graph.producers().get(op.inputs[0]),
                                                   Accumulate):
                acc = graph.producers()[op.inputs[0]]
                if len(graph.consumers(acc.output)) == 1 and acc.output != graph.output:
                    fused[acc.name] = SpikingLinear(
                        f"{acc.name}+{op.name}", acc.inputs, op.output, weight=acc.weight,
                        bias=op.bias, threshold=op.threshold, reset=op.reset)
                    fused[op.name] = None
        out = []
        for op in ops:
            if op.name in fused:
                if fused[op.name] is not None:
                    out.append(fused[op.name])
            else:
                out.append(op)
        return graph.replace_ops(out)
