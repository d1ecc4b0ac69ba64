"""A top level for synthesis, place and route: the accelerator with few pins."""

from __future__ import annotations

from amaranth.hdl import Array, Module, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .params import AcceleratorParams

__all__ = ["SynthTop"]


class SynthTop(wiring.Component):
    """:class:`Accelerator` with its wide status outputs behind a selector, so that the design
    fits an FPGA package while nothing is optimized away.

    Ports
    -----
    tokens, logits, next_token : the accelerator's streams, unchanged.
    stat_select : In(range(N + 1))  -- ``N = (L+1)*T``
    stat : Out(unsigned(32))  -- ``spike_counts[stat_select]`` for ``stat_select < N``,
        ``cycles`` for ``stat_select = N`` (combinational).
    """

    def __init__(self, params: AcceleratorParams):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        self._params = params
        super().__init__({
            "tokens": In(stream.Signature(unsigned(8))),
            "logits": Out(stream.Signature(signed(params.membrane_bits))),
            "next_token": Out(stream.Signature(unsigned(8))),
            "stat_select": In(range(params.spike_counters + 1)),
            "stat": Out(unsigned(32)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        m.submodules.accelerator = acc = Accelerator(p)
        wiring.connect(m, wiring.flipped(self.tokens), acc.tokens)
        wiring.connect(m, acc.logits, wiring.flipped(self.logits))
        wiring.connect(m, acc.next_token, wiring.flipped(self.next_token))
        stats = Array([*(acc.spike_counts[i] for i in range(p.spike_counters)), acc.cycles])
        m.d.comb += self.stat.eq(stats[self.stat_select])
        return m
