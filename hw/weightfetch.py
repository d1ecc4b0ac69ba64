"""The weight fetch: an EVENT's weights from an external memory, over an AXI4 read port.

With the weights off chip (:attr:`AcceleratorParams.weights_offchip`) the rows have no weight
banks. The scanner's tokens go through a FIFO to this unit, which reads, for each EVENT, the
weight row at its ``addr`` (the ``P`` weights of the tile for one input: ``R`` beats, one per
array row, :func:`hw.layout.external_weight_image`) as one INCR burst and then sends the token
to the array with the ``R`` words on ``weights``; any other token passes in order. The FIFO
keeps room for every token of a word the scanner takes (``allow`` gates its words), because
the scanner itself cannot be stalled once it holds a word.

Latency: a token with weights leaves ``1 + latency + (R - 1) * interval + 1`` cycles after it
reached the head of the FIFO (the memory's ``latency`` and ``interval``); any other token 1
cycle. Throughput: one burst at a time (docs/architecture.md, "Weights off chip": what
overlapping bursts and one fetch per token would gain).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .axi import BURST_INCR, axi_read_signature
from .params import AcceleratorParams
from .token import TokenKind, token_layout

__all__ = ["WeightFetch", "scaled_address"]


def scaled_address(value, factor: int):
    """``value * factor`` for a constant ``factor``, as a sum of shifts (no multiplier for
    synthesis to map onto a DSP)."""
    total = 0
    for bit in range(factor.bit_length()):
        if factor >> bit & 1:
            total = total + (value << bit)
    return total


class WeightFetch(wiring.Component):
    """Tokens in, tokens with their weights out; EVENT weights read over ``bus``.

    Ports
    -----
    tokens : In(stream.Signature(token_layout, always_ready=True))  -- from the scanner
    allow : Out(1)  -- the FIFO has room for every token of one more scanner word
    out : Out(stream.Signature(token_layout, always_ready=True))  -- to the array
    weights : Out(ArrayLayout(unsigned(C * Wb), R))  -- an EVENT's weights, with ``out``
    bus : Out(axi_read_signature(bus_addr_bits, bus_data_bits))
    burst : Out(1)  -- a burst was requested this cycle (an AR handshake)
    busy : Out(1)  -- a token is queued, being fetched or on ``out``
    """

    def __init__(self, params: AcceleratorParams, *, lanes: int, readout_gap: int):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        if not params.weights_offchip:
            raise ValueError("a weight fetch belongs to a program whose weights are off chip")
        self._params = params
        self._lanes = lanes
        self._readout_gap = readout_gap
        p = params
        tokens = stream.Signature(token_layout(p), always_ready=True)
        super().__init__({
            "tokens": In(tokens),
            "allow": Out(1),
            "out": Out(tokens),
            "weights": Out(data.ArrayLayout(unsigned(p.cols * p.weight_bits), p.rows)),
            "bus": Out(axi_read_signature(p.bus_addr_bits, p.bus_data_bits)),
            "burst": Out(1),
            "busy": Out(1),
        })

    @property
    def depth(self) -> int:
        """Tokens the FIFO holds: room for two scanner words and the tokens in flight."""
        return 2 * self._lanes + 4

    def elaborate(self, platform):
        m = Module()
        p = self._params
        layout = token_layout(p)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=layout.size, depth=self.depth)
        m.d.comb += [
            fifo.w_en.eq(self.tokens.valid),
            fifo.w_data.eq(self.tokens.payload),
            # the scanner's word in hand may still send its last token, the one on its output
            # is not counted yet, and the next word sends at most ``lanes``
            self.allow.eq(fifo.level <= self.depth - self._lanes - 2),
        ]
        head = data.View(layout, fifo.r_data)
        held = Signal(layout)
        beat = Signal(range(p.rows))
        buffer = Signal.like(self.weights)
        bus = self.bus
        wb = p.cols * p.weight_bits
        m.d.comb += [
            self.weights.eq(buffer),
            bus.araddr.eq(scaled_address(head.addr, p.weight_row_bytes)),
            bus.arlen.eq(p.rows - 1),
            bus.arsize.eq(p.bus_beat_bytes.bit_length() - 1),
            bus.arburst.eq(BURST_INCR),
            self.burst.eq(bus.arvalid & bus.arready),
        ]
        gap = self._readout_gap
        hold = Signal()
        since = Signal(range(gap + 1), init=gap)
        if gap > 1:  # READOUT tokens stay ``gap`` cycles apart, as the scanner spaced them
            m.d.comb += hold.eq((head.kind == TokenKind.READOUT) & (since < gap - 1))
            with m.If(since != gap):
                m.d.sync += since.eq(since + 1)
        m.d.sync += self.out.valid.eq(0)
        with m.FSM(name="fetch") as fsm:
            with m.State("HEAD"):
                with m.If(fifo.r_rdy & (head.kind == TokenKind.EVENT)):
                    m.d.comb += bus.arvalid.eq(1)
                    with m.If(bus.arready):
                        m.d.comb += fifo.r_en.eq(1)
                        m.d.sync += [held.eq(head), beat.eq(0)]
                        m.next = "BEATS"
                with m.Elif(fifo.r_rdy & ~hold):
                    m.d.comb += fifo.r_en.eq(1)
                    m.d.sync += [self.out.valid.eq(1), self.out.payload.eq(head)]
                    if gap > 1:
                        with m.If(head.kind == TokenKind.READOUT):
                            m.d.sync += since.eq(0)
            with m.State("BEATS"):
                m.d.comb += bus.rready.eq(1)
                with m.If(bus.rvalid):
                    m.d.sync += [buffer[beat].eq(bus.rdata[:wb]), beat.eq(beat + 1)]
                    with m.If(beat == p.rows - 1):
                        m.d.sync += [self.out.valid.eq(1), self.out.payload.eq(held)]
                        m.next = "HEAD"
        m.d.comb += self.busy.eq(fifo.r_rdy | ~fsm.ongoing("HEAD") | self.out.valid)
        return m
