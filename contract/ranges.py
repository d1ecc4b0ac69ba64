"""Range analysis per op: the largest magnitude each tensor and each register of a graph can hold.

Every bound comes from the graph's own integers, with every spike taking the sign that helps
(docs/integer-contract.md, "Widths"; docs/transformer.md, "Widths"); no input can exceed it.
One rule per op:

| op | tensor bound | register bound |
| --- | --- | --- |
| ``SpikeEmbed`` | 1 | |
| ``TokenEmbed`` | ``max|table|`` | |
| ``Accumulate`` | ``A(W) = max_j sum_i |W_ji|`` (spikes in) | the accumulator: ``A(W)`` |
| ``Fire`` | 1 | membrane ``T (I + max|B|) + max(0, R - Θ)``, ``I`` the input's bound (*) |
| ``SpikingLinear`` | 1 | membrane ``T (A(W) + max|B|) + max(0, R - Θ)`` |
| ``Attention`` | 1 | current ``max_h sum_δ max(0, d_h + P[h, δ])`` (**), membrane as ``Fire``'s |
| ``ResidualAdd`` | ``x + shift_round(A(W), shift)`` (***) | the accumulator: ``A(W)`` |
| ``Readout`` | ``T (A(W) + max|B|)`` (partial sums included) (*) | the same |
| ``Pool`` | ``W`` times its input's, ``W`` the bidirectional attention's window | the same |

(*) With a leak, step by step instead (:func:`membrane_bound`).
(**) Bidirectional: the sum over the ``W`` consecutive signed distances that sum most; per
step: the largest over the steps' score biases.
(***) A residual's per-step scale adds the largest :func:`leak_bound` of ``A(W)`` over its
steps' terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import graph as g
from .ops import shift_round

__all__ = ["Ranges", "accumulation_bound", "analyse", "leak_bound", "membrane_bound",
           "signed_bits"]


def signed_bits(bound: int) -> int:
    """Bits of a signed register that holds every value in ``[-bound, bound]``."""
    return int(bound).bit_length() + 1


def _abs_max(arr) -> int:
    return int(np.abs(np.asarray(arr)).max(initial=0))


def accumulation_bound(weight, input_bound: int = 1) -> int:
    """``A(W) · x``: the most one step's accumulation of inputs bounded by ``x`` can reach,
    ``A(W) = max_j sum_i |W_ji|`` (spikes in: ``x = 1``)."""
    return int(np.abs(np.asarray(weight)).sum(axis=1).max(initial=0)) * int(input_bound)


def leak_bound(terms, value: int) -> int:
    """The most :func:`contract.ops.leak` of ``|x| <= value`` can reach: each term of exponent
    ``e`` at most ``value 2^e`` (rounded up, plus the rounding's half for ``e < 0``)."""
    total = 0
    for sign, e in np.asarray(terms, dtype=np.int64).reshape(-1, 2):
        if sign:
            total += value << int(e) if e >= 0 else -(-value >> int(-e)) + 1
    return total


def membrane_bound(steps: int, current: int, bias, threshold, reset, leaks=None) -> int:
    """A neuron's membrane over ``steps`` steps of inputs bounded by ``current``, partial sums
    included: ``T (I + max|B|) + max(0, R - Θ)`` (a soft reset can overshoot by ``R - Θ``).

    With ``leaks`` (``[T - 1, ..., J, 2]``, the terms of the rescaling after each step), step by
    step: ``|V_t| <= |U_{t-1}| + I + max|B_t|`` and ``|U_t| <= leak(max(|V_t|, R_t - Θ_t))``
    for the largest of the step's multipliers.
    """
    overshoot = np.maximum(np.asarray(reset) - np.asarray(threshold), 0)
    if leaks is None:
        return steps * (int(current) + _abs_max(bias)) + int(overshoot.max(initial=0))
    bias, overshoot = (np.asarray(a) for a in (bias, overshoot))
    leaks = np.asarray(leaks, dtype=np.int64)
    u = peak = 0
    for t in range(steps):
        b = bias[t] if bias.ndim == 2 else bias
        o = overshoot[t] if overshoot.ndim == 2 else overshoot
        v = u + int(current) + _abs_max(b)
        peak = max(peak, v)
        if t + 1 < steps:
            w = max(v, int(np.max(o, initial=0)))
            codes = leaks[t].reshape(-1, *leaks.shape[-2:])
            u = max(leak_bound(code, w) for code in codes)
    return peak


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
            out = registers[op.name] = see("accumulator", accumulation_bound(op.weight, args[0]))
        elif isinstance(op, g.Fire):
            registers[op.name] = see("membrane", membrane_bound(
                steps, args[0], op.bias, op.threshold, op.reset, op.leak))
            out = 1
        elif isinstance(op, g.SpikingLinear):
            registers[op.name] = see("membrane", membrane_bound(
                steps, accumulation_bound(op.weight), op.bias, op.threshold, op.reset, op.leak))
            out = 1
        elif isinstance(op, g.Attention):
            terms = np.maximum(op.head_dim + op.score_bias, 0)  # [(T,) H, distances]
            if not op.causal:  # a position reads W consecutive signed distances at most
                pad = [(0, 0)] * (terms.ndim - 1) + [(1, 0)]
                sums = np.cumsum(np.pad(terms, pad), axis=-1)
                terms = sums[..., op.window:] - sums[..., :-op.window]
                best = terms.max(initial=0)
            else:
                best = terms.sum(axis=-1).max(initial=0)
            current = see("attn_current", int(best))
            see("score", op.head_dim + _abs_max(op.score_bias))
            registers[op.name] = see("membrane", membrane_bound(
                steps, current, 0, op.threshold, op.reset, op.leak))
            out = 1
        elif isinstance(op, g.ResidualAdd):
            acc = see("accumulator", accumulation_bound(op.weight))
            registers[op.name] = acc
            if op.scale is None:
                delta = int(shift_round(np.array(acc), op.shift))
            else:
                delta = max(leak_bound(terms, acc) for terms in op.scale)
            out = see("residual", args[0] + delta)
        elif isinstance(op, g.Readout):
            out = registers[op.name] = see("logit", membrane_bound(
                steps, accumulation_bound(op.weight), op.bias, 0, 0, op.leak))
        elif isinstance(op, g.Pool):
            windows = [a.window for a in graph.of_type(g.Attention) if not a.causal]
            if not windows:
                raise g.GraphError(f"node {op.name}: a pool needs a bidirectional attention,"
                                   " whose window bounds the sequence it pools")
            out = registers[op.name] = see("logit", max(windows) * args[0])
        else:
            raise TypeError(f"the range analysis has no rule for {type(op).__name__}")
        tensors[op.output] = out
    return Ranges(tensors, registers, **peaks)
