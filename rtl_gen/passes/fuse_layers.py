"""Fuse each ``Accumulate`` with the ``Fire`` that follows it into a ``SpikingLayer``."""

from __future__ import annotations

from ..ir import Accumulate, Fire, Graph, SpikingLayer
from .base import Pass

__all__ = ["FuseLayers"]


class FuseLayers(Pass):
    """The array runs accumulate-then-fire as one layer: make the IR say so."""

    def run(self, graph: Graph) -> Graph:
        out = []
        nodes = list(graph.nodes)
        index = 0
        while index < len(nodes):
            node = nodes[index]
            following = nodes[index + 1] if index + 1 < len(nodes) else None
            if isinstance(node, Accumulate) and isinstance(following, Fire):
                out.append(
                    SpikingLayer(
                        f"{node.name}+{following.name}",
                        node.weight,
                        following.bias,
                        following.threshold,
                        following.reset,
                    )
                )
                index += 2
            else:
                out.append(node)
                index += 1
        return graph.replace_nodes(out)
