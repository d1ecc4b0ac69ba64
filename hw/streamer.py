"""The output streamer: the arg-max of the logits (256, or an encoder's classes), then the
logits in index order; and the logit memory they are read from."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .checks import positive_int
from .params import VOCAB, address_bits

__all__ = ["OutputStreamer", "logit_memory"]


def _beats(b, a):
    """``b`` is valid and larger than ``a`` (or ``a`` is not valid): on a tie ``a`` stays."""
    return b.valid & (~a.valid | (a.value - b.value)[-1])


class OutputStreamer(wiring.Component):
    """The arg-max of the logits (256, or an encoder's classes), then the logits in index
    order, read from the logit memory (``C`` logits per row).

    The arg-max is taken as the logits are written (``writes``: the logit memory's write port,
    a row of ``C`` logits at a time, rows in index order): a registered tree over the row's
    lanes (the lower index wins a tie; two cycles a level: compare, then select) and a running
    best, ``2 ceil(log2 C) + 3`` cycles behind the write. So the next token leaves as soon as
    the program ends, before the logits: a host that generates sends the next byte while they
    stream.

    On ``start`` (a level; sampled while idle, and raised only after the inference's last
    write) it sends the index of the largest logit (the lowest index on ties) on
    ``next_token`` once the arg-max has taken the last write, and
    pulses ``sent`` in the cycle that beat is accepted, clearing the arg-max for the next
    inference. Then it reads row 0 and, one cycle later, row 1, and sends logit ``j`` from lane
    ``j % C`` of row ``j // C`` on ``logits``, one per accepted beat, out of a register that
    takes a whole row straight from the memory (whose clock-to-out time is long). The read port
    holds the prefetched row while ``mem_en`` is low; in the cycle the last lane of a row is
    accepted the register takes it and the row after it is read, so there is no bubble.
    ``busy`` is high from ``start`` until the last logit (``outputs``) is accepted: the logit
    memory must not be written before.

    Latency: 1 cycle from ``start`` to the next token, 2 from its beat to the first logit.
    Throughput: one logit per cycle.

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
            "sent": Out(1),
            "busy": Out(1),
            "writes": In(stream.Signature(data.StructLayout({
                "addr": unsigned(address_bits(self._logit_depth)),
                "data": data.ArrayLayout(signed(mb), self._cols)}), always_ready=True)),
            "mem_addr": Out(address_bits(self._logit_depth)),
            "mem_en": Out(1),
            "mem_data": In(data.ArrayLayout(signed(mb), self._cols)),
            "logits": Out(stream.Signature(signed(mb))),
            "next_token": Out(stream.Signature(unsigned(8))),
        })

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

    def _argmax(self, m: Module):
        """The arg-max of the written logits: ``(index, settled)``; ``settled`` is low while
        a write is still in the pipeline. Cleared by ``sent``.

        No path compares and selects in one cycle: a tree level compares its pair in one cycle
        and selects in the next, and the running best takes the node that left the tree a
        cycle after it left, with the comparisons made in that cycle against both candidates
        for the best (the node before it and the best before that), so that the best's loop
        is a multiplexer (see :meth:`_running_best`)."""
        cols, mb = self._cols, self._logit_bits
        index_shape = unsigned(address_bits(self._logit_depth * cols))
        node = data.StructLayout({"valid": 1, "value": signed(mb), "index": index_shape})

        level = []
        base = Signal(index_shape)
        # ``addr * C`` as shifted adds: a constant product must not become a multiplier
        m.d.comb += base.eq(sum(self.writes.payload.addr << k
                                for k in range(cols.bit_length()) if cols >> k & 1))
        addr = self.writes.payload.addr

        def below(n):  # ``base < n``, i.e. ``addr < ceil(n / C)``: a comparison, no adder
            return addr < max(0, -(-n // cols))

        for lane in range(cols):  # stage 0: the row, lanes past the last output masked
            leaf = Signal(node, name=f"leaf{lane}")
            m.d.sync += [leaf.valid.eq(self.writes.valid & below(self._outputs - lane)),
                         leaf.value.eq(self.writes.payload.data[lane]),
                         leaf.index.eq(base + lane)]
            level.append(leaf)
        # ``settled`` comes from a register: a register is valid in the next cycle if it
        # fills now, from a write (a leaf) or from a valid register before it; so ``busy`` is
        # any register valid now. Only a write to a row with a logit to compare fills a leaf.
        fills = [self.writes.valid & below(self._outputs)]
        depth = 0
        while len(level) > 1:  # pairs, lower index on the left
            depth += 1
            nxt = []
            for i in range(0, len(level), 2):
                pair = level[i:i + 2]
                held = [Signal(node, name=f"pair{depth}_{i + j}") for j in range(len(pair))]
                wins = Signal(name=f"wins{depth}_{i // 2}")
                out = Signal(node, name=f"max{depth}_{i // 2}")
                m.d.sync += [h.eq(x) for h, x in zip(held, pair, strict=True)]
                if len(pair) == 2:
                    m.d.sync += [wins.eq(_beats(pair[1], pair[0])),
                                 out.eq(Mux(wins, held[1].as_value(), held[0].as_value()))]
                else:
                    m.d.sync += out.eq(held[0])
                fills += [h.valid for h in held]
                nxt.append(out)
            fills += [x.valid for x in level]
            level = nxt
        best = self._running_best(m, level[0], node)
        fills.append(level[0].valid)  # the node the best takes next cycle
        busy = Signal()
        m.d.sync += busy.eq(Cat(*fills).any())
        return best.index[:8], ~busy

    def _running_best(self, m: Module, head, node):
        """The best of every node that has left the tree (``head``) since ``sent``.

        ``x`` is ``head`` a cycle later, and the best takes ``x`` if it beats the best before
        it. That comparison is made a cycle ahead against both candidates for that best:
        ``x`` as it beats the node before it (``p``), or the best now (``q``); the best took
        that node or not (``took``), so the choice is a multiplexer of three registers.
        ``sent`` marks the best stale (a register) instead of clearing it, so that the
        handshake does not reach the best's multiplexers; the next node replaces it. ``sent``
        comes only when nothing is in flight, so no comparison made before it is used after.
        """
        x, best, current = Signal(node), Signal(node), Signal(node)
        stale, p, q, took = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [current.eq(best), current.valid.eq(best.valid & ~stale)]
        m.d.sync += [x.eq(head), p.eq(_beats(head, x)), q.eq(_beats(head, current))]
        takes = Mux(took, p, q)
        m.d.sync += took.eq(takes)
        with m.If(takes):
            m.d.sync += best.eq(x)
        m.d.sync += stale.eq(self.sent | (stale & ~x.valid))
        return best

    def elaborate(self, platform):
        m = Module()
        cols = self._cols
        token, settled = self._argmax(m)
        index = Signal(range(self._outputs))
        lane = Signal(range(cols))
        addr = Signal.like(self.mem_addr)
        row = Signal.like(self.mem_data, reset_less=True)  # read only once loaded
        m.d.comb += [self.logits.payload.eq(row[lane]), self.next_token.payload.eq(token)]

        # ``addr`` is the next row to read; it is always on ``mem_addr``, so that only the
        # read enable depends on the handshake.
        m.d.comb += self.mem_addr.eq(addr)
        # The state machine is one-hot (a flag register per state), so that the handshake
        # that sends the token reads a flag, not a decode of an encoded state.
        idle = Signal(init=1)
        sending, first, streaming = Signal(), Signal(), Signal()

        def goto(state, new):
            m.d.sync += [state.eq(0), new.eq(1)]

        m.d.comb += self.busy.eq(~idle | self.start)
        with m.If(idle & self.start):
            goto(idle, sending)
        with m.If(sending):
            m.d.comb += self.next_token.valid.eq(settled)
            with m.If(settled & self.next_token.ready):
                m.d.comb += [self.sent.eq(1), self.mem_en.eq(1)]
                m.d.sync += addr.eq(addr + 1)
                goto(sending, first)
        # ``row`` takes the read data in one place: after the token's read (FIRST) and as the
        # last lane of a row leaves (the next row's read, issued a row ahead)
        take_row = Signal()
        with m.If(take_row):
            m.d.sync += row.eq(self.mem_data)
        with m.If(first):  # (``index`` and ``lane`` start here, off the token's handshake)
            m.d.comb += [self.mem_en.eq(1), take_row.eq(1)]
            m.d.sync += [addr.eq(addr + 1), index.eq(0), lane.eq(0)]
            goto(first, streaming)
        with m.If(streaming):
            m.d.comb += self.logits.valid.eq(1)
            with m.If(self.logits.ready):
                m.d.sync += index.eq(index + 1)
                with m.If(index == self._outputs - 1):
                    m.d.sync += addr.eq(0)
                    goto(streaming, idle)
                with m.Elif(lane == cols - 1):
                    m.d.comb += [self.mem_en.eq(1), take_row.eq(1)]
                    m.d.sync += [lane.eq(0), addr.eq(addr + 1)]
                with m.Else():
                    m.d.sync += lane.eq(lane + 1)
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
    m.d.comb += [streamer.writes.valid.eq(write.en), streamer.writes.payload.addr.eq(write.addr),
                 streamer.writes.payload.data.eq(write.data)]  # the arg-max sees every write
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
