"""The sequencer: context, layers, output tiles and time steps, as word read requests."""

from __future__ import annotations

import logging

from amaranth.hdl import Array, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import positive_int
from .params import AcceleratorParams
from .token import TokenKind, meta_layout, request_layout, token_layout

__all__ = ["Sequencer"]

logger = logging.getLogger(__name__)

_WORD, _FIRE, _READOUT = 0, 1, 2


def const_multiply(value, constant: int):
    """``value * constant`` for a positive constant, as a sum of shifts (no multiplier)."""
    terms = [value.shift_left(bit) for bit in range(constant.bit_length()) if constant >> bit & 1]
    if not terms:
        raise ValueError(f"constant must be positive, not {constant}")
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def layer_constants_register(consts: list[dict]) -> tuple[data.StructLayout, Signal]:
    """One register for the constants of the running layer: a struct with a field per key of
    ``consts`` (one dict per layer, non-negative integers), each as wide as its largest value
    needs. The sequencer loads it with ``layout.const(consts[layer])`` at a layer's start."""
    lc_layout = data.StructLayout({
        key: range(max(c[key] for c in consts) + 1) for key in consts[0]
    })
    return lc_layout, Signal(lc_layout, name="lc")


class Sequencer(wiring.Component):
    """Runs one inference: it takes the context, then walks layers, tiles and time steps.

    For each layer ``l`` (hidden layers, then the readout), output tile ``τ`` and step ``t`` it
    requests the layer's input words (the spike table for ``l = 0``, otherwise the spike banks
    written by layer ``l-1``), then a FIRE (``last`` on ``t = T-1``), then for the readout a
    READOUT; each request carries the token template the scanner completes. Between layers it
    waits until the fetch stage and the scanner are idle (``idle``) and then ``drain`` more
    cycles, so the next layer reads what this one wrote. ``threshold``, ``reset``, ``readout``
    and ``side`` (the spike-bank side the running layer writes) come from a per-layer constant
    table. When the readout has drained, ``output`` rises and stays high until ``resume``.
    ``drain`` is the array's latency: the first read of the next layer (or of the logit memory)
    comes at least ``drain`` cycles after the last token of this layer left the scanner.

    ``spike_counts[l*T + t]`` counts the ``count`` beats of the scanner (non-zero spikes of
    tile 0); the counters are cleared when an inference starts.

    Throughput: one request per cycle while the fetch stage accepts; ``k`` cycles to take the
    context; ``drain`` cycles between layers once the scanner is idle.
    """

    def __init__(self, params: AcceleratorParams, *, drain: int):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        self._params = params
        self._drain = positive_int("drain", drain)
        p = params
        self._meta_layout = meta_layout(
            token_layout(p.addr_bits, p.oaddr_bits), p.lanes, p.count_bits
        )
        self._request_layout = request_layout(self._meta_layout, self.sources, p.raddr_bits)
        super().__init__({
            "tokens": In(stream.Signature(unsigned(8))),
            "requests": Out(stream.Signature(self._request_layout)),
            "idle": In(1),
            "count": In(stream.Signature(unsigned(p.count_bits), always_ready=True)),
            "threshold": Out(unsigned(p.membrane_bits - 1)),
            "reset": Out(unsigned(p.membrane_bits - 1)),
            "readout": Out(1),
            "side": Out(1),
            "output": Out(1),
            "resume": In(1),
            "spike_counts": Out(
                data.ArrayLayout(unsigned(p.spike_count_bits), p.spike_counters)
            ),
        })

    @property
    def sources(self) -> int:
        """Word sources: 0 is the spike table, ``1 + side*R + bank`` a spike bank."""
        return 1 + 2 * self._params.rows

    @property
    def meta_layout(self) -> data.StructLayout:
        return self._meta_layout

    def _layer_constants(self):
        p = self._params
        consts = []
        for layer in range(p.n_hidden + 1):
            n_in = p.n_ins[layer]
            lanes = p.embed_dim if layer == 0 else p.cols
            words = p.words[layer]
            hidden = layer < p.n_hidden
            layer_p = p.layers[layer] if hidden else None
            consts.append({
                "table": int(layer == 0),
                "side_in": (layer - 1) % 2,
                "side_out": layer % 2,
                "readout": int(not hidden),
                "words_last": words - 1,
                "lanes": lanes,
                "last_lanes": n_in - (words - 1) * lanes,
                "tiles_last": p.tiles[layer] - 1,
                "n_in": n_in,
                "in_tiles": p.tiles[layer - 1] if layer else 0,
                "out_tiles": p.tiles[layer],
                "threshold": layer_p.threshold if hidden else 1,
                "reset": layer_p.reset if hidden else 1,
                "wbase": p.weight_bases[layer],
                "bbase": p.bias_bases[layer],
                "cbase": layer * p.timesteps,
            })
        return consts

    def elaborate(self, platform):
        m = Module()
        p = self._params
        consts = self._layer_constants()
        logger.debug("layer constants %s", consts)

        lc_layout, lc = layer_constants_register(consts)
        layer = Signal(range(p.n_hidden + 1))

        addr_bits, oaddr_bits, raddr_bits = p.addr_bits, p.oaddr_bits, p.raddr_bits
        position = Signal(range(p.context))
        contexts = Array(
            Signal(unsigned(raddr_bits), name=f"ctx_base{i}") for i in range(p.context)
        )
        tile = Signal(range(max(p.tiles)))
        step = Signal(range(p.timesteps))
        word = Signal(range(max(p.words)))
        phase = Signal(2)
        bank = Signal(range(p.rows))
        row_addr = Signal(raddr_bits)
        step_base = Signal(raddr_bits)
        word_base = Signal(addr_bits)
        tile_base = Signal(addr_bits)
        bias_addr = Signal(addr_bits)
        spike_addr = Signal(oaddr_bits)
        logit_base = Signal(oaddr_bits)
        count_index = Signal(p.count_bits)
        # `idle` is registered (`idle_r`, held low while requests go out) so that the busy
        # signals of the pipeline do not reach the FSM combinationally. The last token is on the
        # scanner's output at the latest two cycles before `idle_r` rises; the next layer's
        # first read (two cycles after DRAIN ends: LAYER, then RUN) and the streamer's first read
        # (one cycle after) must come `drain` cycles after that token.
        idle_r = Signal()
        m.d.sync += idle_r.eq(self.idle)
        wait = max(0, self._drain - 3)
        drain = Signal(range(wait + 1))

        m.d.comb += [
            self.threshold.eq(lc.threshold),
            self.reset.eq(lc.reset),
            self.readout.eq(lc.readout),
            self.side.eq(lc.side_out),
        ]
        # One incrementer per counter, enabled by a decode of the index: no wide multiplexer
        # between the counters and a shared adder.
        for index in range(p.spike_counters):
            counter = self.spike_counts[index]
            with m.If(self.count.valid & (self.count.payload == index)):
                m.d.sync += counter.eq(counter + 1)

        req = self.requests.payload
        meta = req.meta
        with m.Switch(phase):
            with m.Case(_WORD):
                m.d.comb += [
                    meta.token.kind.eq(TokenKind.EVENT),
                    meta.token.addr.eq(word_base),
                    meta.nlanes.eq(lc.lanes),
                    meta.count.eq(tile == 0),
                    meta.count_index.eq(count_index),
                ]
                with m.If(word == lc.words_last):
                    m.d.comb += meta.nlanes.eq(lc.last_lanes)
                with m.If(lc.table):
                    m.d.comb += [req.src.eq(0), req.raddr.eq(contexts[word] + step)]
                with m.Else():
                    m.d.comb += [
                        req.src.eq(1 + bank + Mux(lc.side_in, p.rows, 0)),
                        req.raddr.eq(row_addr),
                    ]
            with m.Case(_FIRE):
                m.d.comb += [
                    meta.token.kind.eq(TokenKind.FIRE),
                    meta.token.addr.eq(bias_addr),
                    meta.token.oaddr.eq(spike_addr),
                    meta.token.last.eq(step == p.timesteps - 1),
                ]
            with m.Case(_READOUT):
                m.d.comb += [
                    meta.token.kind.eq(TokenKind.READOUT),
                    meta.token.oaddr.eq(logit_base),
                ]

        def next_tile():
            with m.If(tile == lc.tiles_last):
                m.next = "DRAIN"
            with m.Else():
                m.d.sync += [
                    tile.eq(tile + 1),
                    step.eq(0),
                    word.eq(0),
                    phase.eq(_WORD),
                    tile_base.eq(tile_base + lc.n_in),
                    word_base.eq(tile_base + lc.n_in),
                    bias_addr.eq(bias_addr + 1),
                    spike_addr.eq(tile + 1),
                    step_base.eq(0),
                    row_addr.eq(0),
                    bank.eq(0),
                    logit_base.eq(logit_base + p.rows),
                    count_index.eq(lc.cbase),
                ]

        with m.FSM(name="sequencer"):
            with m.State("CONTEXT"):
                m.d.comb += self.tokens.ready.eq(1)
                with m.If(self.tokens.valid):
                    base = const_multiply(self.tokens.payload, p.timesteps)
                    m.d.sync += [contexts[position].eq(base), position.eq(position + 1)]
                    with m.If(position == p.context - 1):
                        m.d.sync += [position.eq(0), layer.eq(0), self.spike_counts.eq(0)]
                        m.next = "LAYER"
            with m.State("LAYER"):
                with m.Switch(layer):
                    for index, c in enumerate(consts):
                        with m.Case(index):
                            m.d.sync += [
                                lc.eq(lc_layout.const(c)),
                                tile_base.eq(c["wbase"]),
                                word_base.eq(c["wbase"]),
                                bias_addr.eq(c["bbase"]),
                                count_index.eq(c["cbase"]),
                            ]
                m.d.sync += [
                    tile.eq(0), step.eq(0), word.eq(0), phase.eq(_WORD), bank.eq(0),
                    row_addr.eq(0), step_base.eq(0), spike_addr.eq(0), logit_base.eq(0),
                ]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.requests.valid.eq(1)
                with m.If(self.requests.ready):
                    with m.Switch(phase):
                        with m.Case(_WORD):
                            with m.If(word == lc.words_last):
                                m.d.sync += phase.eq(_FIRE)
                            with m.Else():
                                m.d.sync += [
                                    word.eq(word + 1),
                                    word_base.eq(word_base + lc.lanes),
                                ]
                                with m.If(bank == p.rows - 1):
                                    m.d.sync += [bank.eq(0), row_addr.eq(row_addr + 1)]
                                with m.Else():
                                    m.d.sync += bank.eq(bank + 1)
                        with m.Case(_FIRE):
                            with m.If(step == p.timesteps - 1):
                                with m.If(lc.readout):
                                    m.d.sync += phase.eq(_READOUT)
                                with m.Else():
                                    next_tile()
                            with m.Else():
                                m.d.sync += [
                                    step.eq(step + 1),
                                    phase.eq(_WORD),
                                    word.eq(0),
                                    word_base.eq(tile_base),
                                    step_base.eq(step_base + lc.in_tiles),
                                    row_addr.eq(step_base + lc.in_tiles),
                                    bank.eq(0),
                                    spike_addr.eq(spike_addr + lc.out_tiles),
                                    count_index.eq(count_index + 1),
                                ]
                        with m.Case(_READOUT):
                            next_tile()
                m.d.sync += [drain.eq(0), idle_r.eq(0)]
            with m.State("DRAIN"):
                with m.If(~idle_r):
                    m.d.sync += drain.eq(0)
                with m.Elif(drain == wait):
                    with m.If(layer == p.n_hidden):
                        m.next = "OUTPUT"
                    with m.Else():
                        m.d.sync += layer.eq(layer + 1)
                        m.next = "LAYER"
                with m.Else():
                    m.d.sync += drain.eq(drain + 1)
            with m.State("OUTPUT"):
                m.d.comb += self.output.eq(1)
                with m.If(self.resume):
                    m.next = "CONTEXT"
        return m
