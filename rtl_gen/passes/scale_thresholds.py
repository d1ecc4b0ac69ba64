"""The threshold knob: scale every neuron's threshold to trade accuracy for firing rate."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np

from contract.graph import Attention, Fire, Graph, SpikingLinear

from ..errors import BuildError
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
    """``Θ' = max(1, round_half_even(Θ * scale))`` for every neuron (per neuron, per channel or
    per key count alike); resets are unchanged."""

    changes_semantics = True

    def __init__(self, scale):
        self.scale = parse_scale(scale)

    def _scaled(self, threshold: np.ndarray) -> np.ndarray:
        flat = [max(1, round(int(t) * self.scale)) for t in threshold.reshape(-1)]
        return np.array(flat, dtype=np.int64).reshape(threshold.shape)

    def run(self, graph: Graph) -> Graph:
        def scaled(op):
            if isinstance(op, Fire | SpikingLinear | Attention):
                return replace(op, threshold=self._scaled(op.threshold))
            return op

        return graph.replace_ops(scaled(op) for op in graph.ops)
