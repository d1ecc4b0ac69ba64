"""The threshold knob: scale every hidden threshold to trade accuracy for firing rate."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from ..errors import BuildError
from ..ir import Fire, Graph, SpikingLayer
from .base import Pass

__all__ = ["ScaleThresholds", "parse_scale"]


def parse_scale(value) -> Fraction:
    """An exact positive fraction from ``1.25``, ``"5/4"`` or a Fraction."""
    try:
        scale = value if isinstance(value, Fraction) else Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        raise BuildError(f"--threshold-scale must be a positive number, not {value!r}") from None
    if scale <= 0:
        raise BuildError(f"--threshold-scale must be positive, not {value}")
    return scale


class ScaleThresholds(Pass):
    """``Θ' = max(1, round_half_even(Θ * scale))``; the reset is unchanged."""

    changes_semantics = True

    def __init__(self, scale):
        self.scale = parse_scale(scale)

    def run(self, graph: Graph) -> Graph:
        def scaled(node):
            if isinstance(node, SpikingLayer | Fire):
                return replace(node, threshold=max(1, round(node.threshold * self.scale)))
            return node

        return graph.replace_nodes(scaled(n) for n in graph.nodes)
