"""The event scanner and the word fetch stage in front of it.

The fetch stage turns a stream of word read requests into a stream of words (one synchronous
memory read, prefetched so that back-to-back words cost no bubble); the scanner turns words into
tokens for the array, one per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import positive_int
from .skid import SkidBuffer
from .token import TokenKind, meta_layout, request_layout, word_layout

__all__ = ["Scanner", "WordFetch", "at_most", "connect_fetch", "lowest"]


def at_most(bits, n: int):
    """Whether at most ``n`` bits of ``bits`` are set: a tree of ORs and ANDs (per subtree,
    "at least ``k`` set" for ``k`` up to ``n + 1``), no carry chain (and nothing that
    synthesis would share behind a multiplexer)."""

    def tree(lo, hi):  # [at least 1 set, ..., at least n + 1 set]
        if hi - lo == 1:
            return [bits[lo]] + [0] * n
        mid = (lo + hi) // 2
        a, b = tree(lo, mid), tree(mid, hi)
        out = []
        for k in range(1, n + 2):
            term = a[k - 1] | b[k - 1]
            for i in range(1, k):  # ``i`` of them on the left, ``k - i`` on the right
                term = term | (a[i - 1] & b[k - i - 1])
            out.append(term)
        return out

    return ~Value.cast(tree(0, len(bits))[n])


def lowest(bits) -> Value:
    """The index of the lowest set bit of ``bits`` (0 when none is set): a priority encoder
    as a tree (depth ``log2`` of the width, not a chain of multiplexers)."""

    def tree(lo, hi):  # (any set, index of the lowest set), both of bits[lo:hi]
        if hi - lo == 1:
            return bits[lo], Const(lo, range(len(bits)))
        mid = lo + (1 << ((hi - lo - 1).bit_length() - 1))  # the left part a power of two
        (a_any, a_index), (b_any, b_index) = tree(lo, mid), tree(mid, hi)
        return a_any | b_any, Mux(a_any | ~b_any, a_index, b_index)

    return tree(0, len(bits))[1] if len(bits) > 1 else Const(0, 1)


class Scanner(wiring.Component):
    """The event scanner: one token per cycle from a stream of spike words.

    A word whose template token is an EVENT is scanned: one EVENT per non-zero spike among its
    valid lanes (``lane_mask``), lowest lane first (a priority encoder), with ``addr`` = the
    template's ``addr`` + lane and ``neg`` = the spike's sign. A word without a non-zero spike
    costs one cycle and emits nothing. In ``dense`` mode every valid lane is emitted, a zero
    spike as a SKIP token. Any other template (FIRE, READOUT) is emitted as it is, in one cycle;
    a READOUT waits until at least ``readout_gap`` cycles separate it from the previous one.

    ``token`` is the token layout (:func:`hw.token.token_layout`, or any with at least its
    ``kind``, ``addr`` and ``neg`` fields); the scanner passes the other fields on.

    Latency: 2 cycles from a word handshake to its first token on ``tokens``.
    Throughput: ``max(1, nnz)`` cycles per word (its valid lanes in dense mode), 1 per FIRE/READOUT;
    the next word is taken in the cycle the current one finishes, so there are no bubbles.

    Ports
    -----
    words : In(stream.Signature(word_layout))
    tokens : Out(stream.Signature(token_layout, always_ready=True))
    busy : Out(1)  -- a word is held or a token is on ``tokens``
    """

    def __init__(self, lanes: int, token: data.StructLayout, *, dense: bool = False,
                 readout_gap: int = 1):
        self._lanes = positive_int("lanes", lanes)
        self._readout_gap = positive_int("readout_gap", readout_gap)
        if not isinstance(dense, bool):
            raise TypeError(f"dense must be a bool, not {dense!r}")
        self._dense = dense
        if not isinstance(token, data.StructLayout):
            raise TypeError(f"token must be a data.StructLayout, not {token!r}")
        self._token_layout = token
        self._meta_layout = meta_layout(self._token_layout, lanes)
        self._word_layout = word_layout(self._meta_layout, lanes)
        super().__init__({
            "words": In(stream.Signature(self._word_layout)),
            "tokens": Out(stream.Signature(self._token_layout, always_ready=True)),
            "busy": Out(1),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def dense(self) -> bool:
        return self._dense

    @property
    def readout_gap(self) -> int:
        return self._readout_gap

    @property
    def token_layout(self) -> data.StructLayout:
        return self._token_layout

    @property
    def meta_layout(self) -> data.StructLayout:
        return self._meta_layout

    @property
    def word_layout(self) -> data.StructLayout:
        return self._word_layout

    @property
    def latency(self) -> int:
        """Cycles from a word handshake to its first token."""
        return 2

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes

        s_valid = Signal()
        s_meta = Signal(self._meta_layout)
        s_data = Signal(data.ArrayLayout(unsigned(2), lanes))
        s_mask = Signal(lanes)

        # ``index`` (the lowest set bit of ``s_mask``) and ``nonzero`` (``s_mask != 0``) are
        # registers beside the mask, found a token ahead: the token's address adder and its
        # enable then start at registers, not behind a priority encoder and a wide OR.
        index = Signal(range(lanes))
        nonzero = Signal()
        rest = Signal(lanes)  # the mask without its lowest set bit: no carry chain
        m.d.comb += rest.eq(s_mask & ~(1 << index))
        code = s_data[index]
        # ``single``: at most one bit of ``s_mask`` is set, kept in a register beside the mask,
        # so that ``words.ready`` does not wait for the subtraction in ``rest``; as an event
        # leaves, the rest holds at most one if the mask held at most two (no subtraction on
        # the way to ``single`` either).
        single = Signal()

        # the word's kind, decoded as it is taken: ``words.ready`` reads two flags
        is_event, is_readout = Signal(), Signal()
        hold = Signal()
        finishing = Signal()
        if self._readout_gap > 1:
            gap = self._readout_gap
            since = Signal(range(gap + 1), init=gap)
            # ``early``: ``since < gap - 1``, kept in a register beside ``since`` so that
            # ``words.ready`` does not wait for the comparison
            early = Signal()
            emitting_readout = s_valid & is_readout & ~hold
            m.d.comb += hold.eq(is_readout & early)
            with m.If(emitting_readout):
                m.d.sync += [since.eq(0), early.eq(1)]
            with m.Elif(since != gap):
                m.d.sync += [since.eq(since + 1), early.eq(since + 1 < gap - 1)]
        m.d.comb += [
            finishing.eq(s_valid & ((is_event & single) | (~is_event & ~hold))),
            self.words.ready.eq(~s_valid | finishing),
            self.busy.eq(s_valid | self.tokens.valid),
        ]

        m.d.sync += self.tokens.valid.eq(0)
        with m.If(s_valid):
            with m.If(is_event):
                with m.If(nonzero):
                    m.d.sync += [
                        self.tokens.valid.eq(1),
                        self.tokens.payload.eq(s_meta.token),
                        self.tokens.payload.addr.eq(s_meta.token.addr + index),
                        self.tokens.payload.neg.eq(code[1]),
                        s_mask.eq(rest),
                        index.eq(lowest(rest)),
                        nonzero.eq(~single),
                        single.eq(at_most(s_mask, 2)),
                    ]
                    with m.If(~code[0]):
                        m.d.sync += self.tokens.payload.kind.eq(TokenKind.SKIP)
            with m.Elif(~hold):
                m.d.sync += [self.tokens.valid.eq(1), self.tokens.payload.eq(s_meta.token)]
            with m.If(finishing):
                m.d.sync += s_valid.eq(0)

        # While the scanner is free it takes whatever is on ``words`` and its valid, so that
        # the registers' enables read the scanner's own flags, not the producer's valid.
        with m.If(self.words.ready):
            word = self.words.payload
            m.d.sync += [s_valid.eq(self.words.valid), s_meta.eq(word.meta), s_data.eq(word.data),
                         is_event.eq(word.meta.token.kind == TokenKind.EVENT),
                         is_readout.eq(word.meta.token.kind == TokenKind.READOUT)]
            mask = Signal(lanes)
            for lane in range(lanes):
                in_range = word.meta.lane_mask[lane]
                bit = in_range if self._dense else in_range & word.data[lane][0]
                m.d.comb += mask[lane].eq(bit)
            m.d.sync += [s_mask.eq(mask), single.eq(at_most(mask, 1)), nonzero.eq(mask.any()),
                         index.eq(lowest(mask))]
        return m


class WordFetch(wiring.Component):
    """One synchronous memory read between the sequencer's requests and the scanner's words.

    ``mem_addr``/``mem_en`` drive the read ports of every source memory (all with the same
    address); ``mem_data[src]`` is source ``src``'s read data, zero-extended to ``2*lanes``
    bits. The read data goes into a register straight from the block RAMs (whose clock-to-out
    time is long) before it is selected by ``src``. The two stages (read, register) stall
    together while the word on ``words`` is not taken; the read port holds its data while
    ``mem_en`` is low, so the word of the first stage waits in the port itself.

    Latency: 2 cycles. Throughput: one word per cycle (``requests.ready`` follows
    ``words.ready`` combinationally, so the next read is issued in the cycle the scanner takes
    the current word).

    Ports
    -----
    requests : In(stream.Signature(request_layout))
    words : Out(stream.Signature(word_layout))
    mem_addr : Out(raddr_bits), mem_en : Out(1)
    mem_data : In(ArrayLayout(unsigned(2*lanes), sources))
    busy : Out(1)  -- a read is in flight or a word is waiting on ``words``
    """

    def __init__(self, meta: data.StructLayout, *, lanes: int, sources: int, raddr_bits: int):
        if not isinstance(meta, data.StructLayout):
            raise TypeError(f"meta must be a data.StructLayout, not {meta!r}")
        self._lanes = positive_int("lanes", lanes)
        self._sources = positive_int("sources", sources)
        self._meta_layout = meta
        self._request_layout = request_layout(meta, sources, positive_int("raddr_bits", raddr_bits))
        self._word_layout = word_layout(meta, lanes)
        super().__init__({
            "requests": In(stream.Signature(self._request_layout)),
            "words": Out(stream.Signature(self._word_layout)),
            "mem_addr": Out(raddr_bits),
            "mem_en": Out(1),
            "mem_data": In(data.ArrayLayout(unsigned(2 * lanes), sources)),
            "busy": Out(1),
        })

    @property
    def request_layout(self) -> data.StructLayout:
        return self._request_layout

    @property
    def latency(self) -> int:
        """Cycles from a request handshake to its word on ``words``."""
        return 2

    def elaborate(self, platform):
        m = Module()
        f_valid, r_valid = Signal(), Signal()
        f_meta, r_meta = Signal(self._meta_layout), Signal(self._meta_layout)
        f_src, r_src = Signal(range(self._sources)), Signal(range(self._sources))
        # straight off the RAMs, and reset-less, like a block RAM's output register
        r_data = Signal.like(self.mem_data, reset_less=True)
        enable = Signal()
        m.d.comb += [
            enable.eq(~r_valid | self.words.ready),
            self.requests.ready.eq(enable),
            self.mem_en.eq(enable),
            self.mem_addr.eq(self.requests.payload.raddr),
            self.words.valid.eq(r_valid),
            self.words.payload.meta.eq(r_meta),
            self.words.payload.data.eq(r_data[r_src]),
            self.busy.eq(f_valid | r_valid),
        ]
        with m.If(enable):
            m.d.sync += [
                f_valid.eq(self.requests.valid),
                f_meta.eq(self.requests.payload.meta),
                f_src.eq(self.requests.payload.src),
                r_valid.eq(f_valid),
                r_meta.eq(f_meta),
                r_src.eq(f_src),
                r_data.eq(self.mem_data),
            ]
        return m


def connect_fetch(m: Module, seq, fetch: WordFetch, scanner: Scanner, allow=None) -> Value:
    """The sequencer's requests into ``fetch`` and its words into ``scanner``, each through a
    skid buffer (which registers the ready path between them); with ``allow``, a word goes to
    the scanner only while it is high. Returns "a request or word is still on its way", for
    the sequencer's idle."""
    m.submodules.requests = requests = SkidBuffer(seq.requests.payload.shape())
    wiring.connect(m, seq.requests, requests.i)
    wiring.connect(m, requests.o, fetch.requests)
    m.submodules.words = words = SkidBuffer(fetch.words.payload.shape())
    wiring.connect(m, fetch.words, words.i)
    if allow is None:
        wiring.connect(m, words.o, scanner.words)
    else:
        m.d.comb += [
            scanner.words.valid.eq(words.o.valid & allow),
            scanner.words.payload.eq(words.o.payload),
            words.o.ready.eq(scanner.words.ready & allow),
        ]
    return requests.busy | fetch.busy | words.busy | scanner.busy
