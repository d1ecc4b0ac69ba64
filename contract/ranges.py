"""Range analysis per op: the largest magnitude each tensor and each register of a graph can hold.

Every bound comes from the graph's own integers, with every spike taking the sign that helps
(docs/integer-contract.md, "Widths"; docs/transformer.md, "Widths"); no input can exceed it.
One rule per op:

| op | tensor bound | register bound |
| --- | --- | --- |
| ``SpikeEmbed`` | 1 | |
| ``TokenEmbed`` | ``max|table|`` | |
| ``Accumulate`` | ``A(W) = max_j sum_i |W_ji|`` (spikes in) | the accumulator: ``A(W)`` |
| ``Fire`` | 1 | membrane ``T (I + max|B|) + max(0, R - Θ)``, ``I`` the input's bound |
| ``SpikingLinear`` | 1 | membrane ``T (A(W) + max|B|) + max(0, R - Θ)`` |
| ``Attention`` | 1 | current ``max_h sum_δ max(0, d_h + P[h, δ])``, membrane as ``Fire``'s |
| ``ResidualAdd`` | ``x + shift_round(A(W), shift)`` | the accumulator: ``A(W)`` |
| ``Readout`` | ``T (A(W) + max|B|)`` (partial sums included) | the same |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import graph as g
from .ops import shift_round
from .widths import signed_bits

__all__ = ["Ranges", "analyse", "signed_bits"]


def _abs_max(arr) -> int:
    return int(np.abs(np.asarray(arr)).max(initial=0))


def _row_sum(weight) -> int:
    return int(np.abs(weight).sum(axis=1).max(initial=0))


def _overshoot(op) -> int:
    return int(np.maximum(np.asarray(op.reset) - np.asarray(op.threshold), 0).max(initial=0))


@dataclass(frozen=True)
class Ranges:
    """The bounds of one graph: per tensor, per op register, and by what holds them."""

    tensors: dict[str, int]
    registers: dict[str, int]  #: op name -> its membrane, accumulator or logit bound
    membrane: int  #: every neuron's membrane
    residual: int  #: every residual tensor
    accumulator: int  #: every accumulation that is not a membrane (projections into the residual)
    attn_current: int
    score: int  #: a head's score ``|q.k + P|`` before the ReLU
    logit: int

    @property
    def datapath(self) -> int:
        """The largest value a PE's register holds: membranes, residual, projections, logits."""
        return max(self.membrane, self.residual, self.accumulator, self.logit)


def analyse(graph: g.Graph) -> Ranges:
    """Bounds that no input can exceed, op by op (see the module docstring)."""
    steps = graph.timesteps
    tensors: dict[str, int] = {}
    registers: dict[str, int] = {}
    peaks = {"membrane": 0, "residual": 0, "accumulator": 0, "attn_current": 0, "score": 0,
             "logit": 0}

    def see(name: str, value: int) -> int:
        peaks[name] = max(peaks[name], value)
        return value

    for op in graph.ops:
        args = [tensors.get(t, 0) for t in op.inputs]
        if isinstance(op, g.SpikeEmbed):
            out = 1
        elif isinstance(op, g.TokenEmbed):
            out = see("residual", _abs_max(op.table))
        elif isinstance(op, g.Accumulate):
            out = registers[op.name] = see("accumulator", _row_sum(op.weight) * args[0])
        elif isinstance(op, g.Fire):
            registers[op.name] = see("membrane", steps * (args[0] + _abs_max(op.bias))
                                     + _overshoot(op))
            out = 1
        elif isinstance(op, g.SpikingLinear):
            registers[op.name] = see("membrane", steps * (_row_sum(op.weight) + _abs_max(op.bias))
                                     + _overshoot(op))
            out = 1
        elif isinstance(op, g.Attention):
            best = np.maximum(op.head_dim + op.score_bias, 0).sum(axis=1).max(initial=0)
            current = see("attn_current", int(best))
            see("score", op.head_dim + _abs_max(op.score_bias))
            registers[op.name] = see("membrane", steps * current + _overshoot(op))
            out = 1
        elif isinstance(op, g.ResidualAdd):
            acc = see("accumulator", _row_sum(op.weight))
            registers[op.name] = acc
            out = see("residual", args[0] + int(shift_round(np.array(acc), op.shift)))
        elif isinstance(op, g.Readout):
            out = registers[op.name] = see("logit", steps * (_row_sum(op.weight)
                                                             + _abs_max(op.bias)))
        else:
            raise TypeError(f"the range analysis has no rule for {type(op).__name__}")
        tensors[op.output] = out
    return Ranges(tensors, registers, **peaks)
