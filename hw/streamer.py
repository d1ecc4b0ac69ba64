"""The output streamer: the logits (256, or an encoder's classes) in index order, then their
arg-max; and the logit memory they are read from."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .checks import positive_int
from .params import VOCAB, address_bits

__all__ = ["OutputStreamer", "logit_memory"]


class OutputStreamer(wiring.Component):
    """Reads the logit memory (``C`` logits per row) and streams the logits, then the arg-max.

    On ``start`` (a level; sampled while idle) it reads row 0 and, one cycle later, row 1; it
    sends logit ``j`` from lane ``j % C`` of row ``j // C`` on ``logits``, one per accepted beat,
    out of a register that takes a whole row straight from the memory (whose clock-to-out time
    is long). The read port holds the prefetched row while ``mem_en`` is low; in the cycle the
    last lane of a row is accepted the register takes it and the row after it is read, so
    there is no bubble. After the last logit (``outputs``: 256, or an encoder's classes) it
    sends the index of the largest logit (the lowest index on ties) on ``next_token``, and
    pulses ``finished`` in the cycle that beat is accepted.

    Latency: 2 cycles from ``start`` to the first logit. Throughput: one logit per cycle.

    ``cols`` lanes of ``logit_bits`` per row, ``logit_depth`` rows.
    """

    def __init__(self, *, cols: int, logit_bits: int, logit_depth: int, outputs: int = VOCAB):
        self._cols = positive_int("cols", cols)
        self._logit_bits = positive_int("logit_bits", logit_bits)
        self._logit_depth = positive_int("logit_depth", logit_depth)
        self._outputs = positive_int("outputs", outputs)
        if not 2 <= outputs <= VOCAB:
            raise ValueError(f"outputs must be 2 to {VOCAB}, not {outputs}")
        if self._cols * self._logit_depth < outputs:
            raise ValueError(f"a logit memory of {logit_depth} rows of {cols} lanes cannot hold"
                             f" {outputs} logits")
        mb = self._logit_bits
        super().__init__({
            "start": In(1),
            "finished": Out(1),
            "mem_addr": Out(address_bits(self._logit_depth)),
            "mem_en": Out(1),
            "mem_data": In(data.ArrayLayout(signed(mb), self._cols)),
            "logits": Out(stream.Signature(signed(mb))),
            "next_token": Out(stream.Signature(unsigned(8))),
        })

    @property
    def latency(self) -> int:
        """Cycles from ``start`` to the first logit on ``logits``."""
        return 2

    @property
    def cols(self) -> int:
        return self._cols

    @property
    def logit_bits(self) -> int:
        return self._logit_bits

    @property
    def logit_depth(self) -> int:
        return self._logit_depth

    @property
    def outputs(self) -> int:
        """Logits per inference."""
        return self._outputs

    def elaborate(self, platform):
        m = Module()
        cols = self._cols
        index = Signal(range(self._outputs))
        lane = Signal(range(cols))
        addr = Signal.like(self.mem_addr)
        best = Signal(signed(self._logit_bits))
        best_index = Signal(unsigned(8))
        row = Signal.like(self.mem_data)
        value = row[lane]
        # The arg-max compares a registered copy of each accepted logit one cycle later, off
        # the memory's read path; the last one is folded in combinationally on next_token.
        candidate = Signal(signed(self._logit_bits))
        candidate_index = Signal(unsigned(8))
        candidate_valid = Signal()
        wins = Signal()
        m.d.comb += [
            self.logits.payload.eq(value),
            # ``candidate > best`` as the sign of ``best - candidate``: one carry chain.
            wins.eq(candidate_valid & ((candidate_index == 0) | (best - candidate)[-1])),
            self.next_token.payload.eq(Mux(wins, candidate_index, best_index)),
        ]
        m.d.sync += candidate_valid.eq(0)
        with m.If(wins):
            m.d.sync += [best.eq(candidate), best_index.eq(candidate_index)]
        with m.If(self.logits.valid & self.logits.ready):
            m.d.sync += [
                candidate.eq(value),
                candidate_index.eq(index),
                candidate_valid.eq(1),
            ]

        # ``addr`` is the next row to read; it is always on ``mem_addr``, so that only the
        # read enable depends on the handshake.
        m.d.comb += self.mem_addr.eq(addr)
        with m.FSM(name="streamer"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += self.mem_en.eq(1)
                    m.d.sync += [index.eq(0), lane.eq(0), addr.eq(addr + 1)]
                    m.next = "FIRST"
            with m.State("FIRST"):
                m.d.comb += self.mem_en.eq(1)
                m.d.sync += [row.eq(self.mem_data), addr.eq(addr + 1)]
                m.next = "LOGITS"
            with m.State("LOGITS"):
                m.d.comb += self.logits.valid.eq(1)
                with m.If(self.logits.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == self._outputs - 1):
                        m.next = "TOKEN"
                    with m.Elif(lane == cols - 1):
                        m.d.comb += self.mem_en.eq(1)
                        m.d.sync += [lane.eq(0), addr.eq(addr + 1), row.eq(self.mem_data)]
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)
            with m.State("TOKEN"):
                m.d.comb += self.next_token.valid.eq(1)
                with m.If(self.next_token.ready):
                    m.d.comb += self.finished.eq(1)
                    m.d.sync += addr.eq(0)
                    m.next = "IDLE"
        return m


def logit_memory(m: Module, streamer: OutputStreamer, writes, add=None) -> Memory:
    """The logit memory between the array's merged logit writes (``writes``: a stream of
    ``addr`` and ``C`` logits) and the streamer's read port, added to ``m``.

    With ``add`` (an encoder's pooling) a write lands a cycle later: while ``add`` is high it
    writes the sum of the logits and the word already at its address (read through a second
    port as the write arrives; consecutive writes go to consecutive rows), else the logits.
    """
    mem = Memory(shape=unsigned(streamer.cols * streamer.logit_bits),
                 depth=streamer.logit_depth, init=[])
    m.submodules.logit_memory = mem
    write, read = mem.write_port(), mem.read_port()
    m.d.comb += [
        read.addr.eq(streamer.mem_addr),
        read.en.eq(streamer.mem_en),
        streamer.mem_data.eq(read.data),
    ]
    if add is None:
        m.d.comb += [write.en.eq(writes.valid), write.addr.eq(writes.payload.addr),
                     write.data.eq(writes.payload.data)]
        return mem
    lanes = data.ArrayLayout(signed(streamer.logit_bits), streamer.cols)
    old = mem.read_port()
    valid, added = Signal(), Signal()
    addr, logits = Signal.like(writes.payload.addr), Signal(lanes)
    m.d.comb += old.addr.eq(writes.payload.addr)
    m.d.sync += [valid.eq(writes.valid), added.eq(add), addr.eq(writes.payload.addr),
                 logits.eq(writes.payload.data)]
    before = data.View(lanes, old.data)
    total = Signal(lanes)
    for lane in range(streamer.cols):
        m.d.comb += total[lane].eq(logits[lane] + Mux(added, before[lane], 0))
    m.d.comb += [write.en.eq(valid), write.addr.eq(addr), write.data.eq(total)]
    return mem
