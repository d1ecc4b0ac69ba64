"""The weight fetch: an EVENT's weights from an external memory, over an AXI4 read port.

With the weights off chip (:attr:`AcceleratorParams.weights_offchip`) the rows have no weight
banks. The scanner's tokens go through a FIFO to this unit, which finds, for each EVENT, the
weight row at its ``addr`` (the ``P`` weights of the tile for one input: ``R`` beats, one per
array row, :func:`hw.layout.external_weight_image`) and sends the token to the array with the
``R`` words on ``weights``; any other token passes in order. The FIFO keeps room for every
token of a word the scanner takes (``allow`` gates its words), because the scanner itself
cannot be stalled once it holds a word.

**The row cache.** A row is read from the bus once per token (``flush``: a new byte starts)
and kept in a direct-mapped cache of :attr:`AcceleratorParams.weight_cache_depth` rows,
indexed by the row address's low bits and tagged by the whole address: the sequencer walks
a layer's tiles outermost and its steps inside, and a tile's rows are consecutive addresses no
more than the cache's depth, so an input that fires in several steps has its row read in the
first and found in the cache in the others. Weight traffic is then one row per tile and input
that fired in any step (``rtl_gen.memory.weight_rows``'s second count), not one per step.

Pipeline: the FIFO's head moves into a lookup register while its tag is read; a hit goes on,
a miss requests its row as one INCR burst (up to ``outstanding`` bursts on their way at once:
the next EVENTs request their rows while the first one's beats arrive), and both wait in
order in a second FIFO. At its head a miss collects its beats, writes them into the cache and
goes to the array; a hit reads its row from the cache and goes a cycle later, one a cycle.

Latency: a token that misses leaves the memory's ``latency + (R - 1) * interval`` and about 4
cycles after it reached the head of the FIFO; any other token about 4 cycles. Throughput: a
weight row per ``R * interval`` cycles while the FIFO holds EVENTs enough to cover the latency;
a token a cycle otherwise (docs/architecture.md, "Weights off chip").
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .axi import BURST_INCR, axi_read_signature
from .checks import positive_int
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
    flush : In(1)  -- a new byte starts (the unit is empty): every cached row is forgotten
    allow : Out(1)  -- the FIFO has room for every token of one more scanner word
    out : Out(stream.Signature(token_layout, always_ready=True))  -- to the array
    weights : Out(ArrayLayout(unsigned(C * Wb), R))  -- an EVENT's weights, with ``out``
    bus : Out(axi_read_signature(bus_addr_bits, bus_data_bits))
    burst : Out(1)  -- a burst was requested this cycle (an AR handshake)
    busy : Out(1)  -- a token is queued, being fetched or on ``out``
    """

    def __init__(self, params: AcceleratorParams, *, lanes: int, readout_gap: int,
                 outstanding: int = 4):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        if not params.weights_offchip:
            raise ValueError("a weight fetch belongs to a program whose weights are off chip")
        self._params = params
        self._lanes = lanes
        self._readout_gap = readout_gap
        self._outstanding = positive_int("outstanding", outstanding)
        p = params
        tokens = stream.Signature(token_layout(p), always_ready=True)
        super().__init__({
            "tokens": In(tokens),
            "flush": In(1),
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

    @property
    def outstanding(self) -> int:
        """Bursts requested and not yet received, at most."""
        return self._outstanding

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
        bus = self.bus
        wb = p.cols * p.weight_bits
        depth = p.weight_cache_depth
        index_bits = (depth - 1).bit_length()

        def index(addr):
            return addr[:index_bits] if index_bits else 0

        # The cache: rows, their tags (the whole row address) and a valid bit per entry.
        m.submodules.cache = cache = Memory(shape=unsigned(p.rows * wb), depth=depth, init=[])
        m.submodules.tags = tags = Memory(shape=unsigned(p.addr_bits), depth=depth, init=[])
        row_write, row_read = cache.write_port(), cache.read_port()
        tag_write = tags.write_port()
        tag_read = tags.read_port(transparent_for=(tag_write,))
        valid = Signal(depth)

        # Stage 1: the FIFO's head moves into ``req`` while its tag is read. An EVENT whose row
        # is cached goes on; one whose row is not requests it (while fewer than
        # ``outstanding`` bursts are on their way) and takes the cache entry; every token then
        # waits in order in ``flight``, with its "cached" bit.
        m.submodules.flight = flight = SyncFIFOBuffered(width=layout.size + 1,
                                                        depth=2 * self._outstanding + 2)
        head = data.View(layout, fifo.r_data)
        req = Signal(layout)
        req_valid = Signal()
        pending = Signal(range(self._outstanding + 1))
        is_event = req.kind == TokenKind.EVENT
        hit = valid.bit_select(index(req.addr), 1) & (tag_read.data == req.addr)
        passes = req_valid & flight.w_rdy & (~is_event | hit)
        leaves = passes | self.burst
        take = fifo.r_rdy & (~req_valid | leaves)
        m.d.comb += [
            bus.araddr.eq(scaled_address(req.addr, p.weight_row_bytes)),
            bus.arlen.eq(p.rows - 1),
            bus.arsize.eq(p.bus_beat_bytes.bit_length() - 1),
            bus.arburst.eq(BURST_INCR),
            bus.arvalid.eq(req_valid & is_event & ~hit & flight.w_rdy
                           & (pending != self._outstanding)),
            self.burst.eq(bus.arvalid & bus.arready),
            fifo.r_en.eq(take),
            tag_read.addr.eq(index(head.addr)),
            tag_read.en.eq(take),
            tag_write.addr.eq(index(req.addr)),
            tag_write.data.eq(req.addr),
            tag_write.en.eq(self.burst),
            flight.w_en.eq(leaves),
            flight.w_data.eq(Cat(req.as_value(), is_event & hit)),
        ]
        with m.If(take):
            m.d.sync += [req.eq(head), req_valid.eq(1)]
        with m.Elif(leaves):
            m.d.sync += req_valid.eq(0)
        with m.If(self.flush):
            m.d.sync += valid.eq(0)
        with m.Elif(self.burst):
            m.d.sync += valid.bit_select(index(req.addr), 1).eq(1)

        # Stage 2: the token at the head of ``flight``: a miss collects its row's beats (in
        # order: one ID), writes the row into the cache and goes to the array with it; a hit
        # reads its row from the cache and goes with the read data a cycle later; any other
        # token goes as it is.
        token = data.View(layout, flight.r_data[:layout.size])
        cached = flight.r_data[layout.size]
        beat = Signal(range(p.rows))
        buffer = Signal.like(self.weights)
        from_cache = Signal()  # ``out`` carries a hit: its words are the cache's read data
        m.d.comb += self.weights.eq(Mux(from_cache, row_read.data, buffer.as_value()))
        last_beat = bus.rvalid & bus.rready & (beat == p.rows - 1)
        with m.If(self.burst & ~last_beat):
            m.d.sync += pending.eq(pending + 1)
        with m.Elif(~self.burst & last_beat):
            m.d.sync += pending.eq(pending - 1)
        gap = self._readout_gap
        hold = Signal()
        since = Signal(range(gap + 1), init=gap)
        # A FIRE never follows a FIRE (the PE's lanes read its register, not the membrane of
        # the cycle after a FIRE took): the scanner spaces them by the words of a step, but
        # an all-zero word sends nothing into the FIFOs.
        fire_after_fire = ((token.kind == TokenKind.FIRE) & self.out.valid
                           & (self.out.payload.kind == TokenKind.FIRE))
        m.d.comb += hold.eq(fire_after_fire)
        if gap > 1:  # READOUT tokens stay ``gap`` cycles apart, as the scanner spaced them
            with m.If((token.kind == TokenKind.READOUT) & (since < gap - 1)):
                m.d.comb += hold.eq(1)
            with m.If(since != gap):
                m.d.sync += since.eq(since + 1)
        m.d.sync += [self.out.valid.eq(0), from_cache.eq(0)]
        m.d.comb += [
            row_write.addr.eq(index(token.addr)),
            row_write.data.eq(Cat(*[buffer[r] for r in range(p.rows - 1)], bus.rdata[:wb])),
            row_read.addr.eq(index(token.addr)),
        ]
        with m.If(flight.r_rdy):
            with m.If((token.kind == TokenKind.EVENT) & ~cached):
                m.d.comb += bus.rready.eq(1)
                with m.If(bus.rvalid):
                    m.d.sync += [buffer[beat].eq(bus.rdata[:wb]), beat.eq(beat + 1)]
                    with m.If(beat == p.rows - 1):
                        m.d.comb += [flight.r_en.eq(1), row_write.en.eq(1)]
                        m.d.sync += [self.out.valid.eq(1), self.out.payload.eq(token),
                                     beat.eq(0)]
            with m.Elif(token.kind == TokenKind.EVENT):
                m.d.comb += [flight.r_en.eq(1), row_read.en.eq(1)]
                m.d.sync += [self.out.valid.eq(1), self.out.payload.eq(token),
                             from_cache.eq(1)]
            with m.Elif(~hold):
                m.d.comb += flight.r_en.eq(1)
                m.d.sync += [self.out.valid.eq(1), self.out.payload.eq(token)]
                if gap > 1:
                    with m.If(token.kind == TokenKind.READOUT):
                        m.d.sync += since.eq(0)
        m.d.comb += self.busy.eq((fifo.level != 0) | req_valid | (flight.level != 0)
                                 | self.out.valid)
        return m
