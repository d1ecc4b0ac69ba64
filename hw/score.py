"""The score unit: ternary query-key dot products over the cached keys, as ATTN tokens.

For one request (an attention tile ``τ`` at step ``t`` of the current position) the unit reads
the query word (every spike bank at once: the ``P`` channels of the tile), then the cached key
word of each of the ``count`` positions of the window, newest first, one per cycle. For each key
it computes, per head of the tile, ``max(0, q . k + P[h, δ])`` (``δ`` the key's distance,
counted from the request's ``delta0``; an encoder's attention reads every cached position, from
the last, and ``δ`` is the signed distance plus ``W - 1``): a
lane contributes ``+1`` when both spikes are non-zero and of the same sign, ``-1`` when of
opposite signs (an AND and an XOR), the head's sum is two popcounts and a subtraction, the bias
comes from a small ROM. A key whose scores are all zero is skipped (event-driven); any other
becomes an ATTN token carrying the scores and the address of the key's cached values. After the
last key the request's FIRE token follows, in order.

Latency: 8 cycles from a request to its first token (query read, first key read, key register,
popcounts of groups of 8 lanes, their sums per head, the bias added, ReLU, output register).
Throughput: one key per cycle; a request is taken in the cycle after the previous one has read
its last key, in which that one issues its FIRE (its keys and its FIRE still in the pipeline:
the FIRE is kept in registers of its own), so a request costs ``count + 2`` cycles.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .layout import pack
from .params import AcceleratorParams, LayerKind, address_bits
from .token import TokenKind, token_layout

__all__ = ["ScoreUnit", "bias_rom_image", "popcount", "score_request_layout"]


def popcount(bits) -> object:
    """The number of set bits of ``bits``, as a balanced tree of adders."""
    values = [bits[i] for i in range(len(bits))]
    if not values:
        return 0
    while len(values) > 1:
        paired = [values[i] + values[i + 1] for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            paired.append(values[-1])
        values = paired
    return values[0]


def score_request_layout(p: AcceleratorParams) -> data.StructLayout:
    """What the sequencer asks: addresses of the query and of the current position's key and
    value, how many keys, the current slot, the bias ROM row of distance 0 (attention layer
    ``a``, tile ``τ``: ``(a * tiles + τ) * D``; with a per-step score bias at step ``t``:
    ``((a * T + t) * tiles + τ) * D``; ``D`` is :attr:`~hw.AcceleratorParams.distances`), the
    bias column of the first (newest) key, ``delta0`` (0 for a causal attention), and the FIRE
    to send after them."""
    attention_layers = attention_count(p) * (p.timesteps if p.score_per_step else 1)
    return data.StructLayout({
        "q_addr": unsigned(p.raddr_bits),
        "k_addr": unsigned(p.raddr_bits),
        "v_addr": unsigned(address_bits(p.v_depth)),
        "count": range(1, p.window + 1),
        "slot": range(p.window),
        "delta0": range(p.distances),
        "bias_base": range(max(1, attention_layers * p.model_tiles * p.distances)),
        "fire": token_layout(p),
    })


def attention_count(p: AcceleratorParams) -> int:
    return sum(layer.kind == LayerKind.ATTENTION for layer in p.layers)


def bias_rom_image(p: AcceleratorParams) -> list[int]:
    """Row ``(a * tiles + τ) * D + δ``: the score biases of tile ``τ``'s heads for bias column
    ``δ`` (the distance, or in an encoder's program the signed distance plus ``W - 1``; ``D``
    columns, :attr:`~hw.AcceleratorParams.distances`) in attention layer ``a``,
    ``heads_per_tile`` lanes of ``score_bias_bits`` bits. In a program with a per-step score
    bias every attention layer has a block per step ``t``: row
    ``((a * T + t) * tiles + τ) * D + δ``."""
    image = []
    bits = score_bias_bits(p)
    hpt = p.heads_per_tile
    steps = p.timesteps if p.score_per_step else 1
    for layer in p.layers:
        if layer.kind != LayerKind.ATTENTION:
            continue
        bias = np.broadcast_to(layer.score_bias, (steps, p.heads, p.distances))
        for step in range(steps):
            for tile in range(p.model_tiles):
                for delta in range(p.distances):
                    heads = [bias[step, tile * hpt + h, delta] if tile * hpt + h < p.heads
                             else 0 for h in range(hpt)]
                    image.append(pack(heads, bits))
    return image


def score_bias_bits(p: AcceleratorParams) -> int:
    """Signed width of a score bias."""
    biggest = max((int(abs(layer.score_bias).max(initial=0)) for layer in p.layers
                   if layer.kind == LayerKind.ATTENTION), default=0)
    return biggest.bit_length() + 1


class ScoreUnit(wiring.Component):
    """Scores of the cached keys for one attention tile and step (see the module docstring).

    Ports
    -----
    requests : In(stream.Signature(score_request_layout))
    tokens : Out(stream.Signature(token_layout, always_ready=True))
    mem_addr, mem_en : Out -- the read address of every spike bank
    mem_data : In(ArrayLayout(unsigned(2C), R)) -- their read data
    busy : Out(1) -- a request is in the pipeline
    """

    def __init__(self, params: AcceleratorParams):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        self._params = params
        p = params
        super().__init__({
            "requests": In(stream.Signature(score_request_layout(p))),
            "tokens": Out(stream.Signature(token_layout(p), always_ready=True)),
            "mem_addr": Out(p.raddr_bits),
            "mem_en": Out(1),
            "mem_data": In(data.ArrayLayout(unsigned(2 * p.cols), p.rows)),
            "busy": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from a request handshake to its first token."""
        return 8

    def elaborate(self, platform):
        m = Module()
        p = self._params
        w, lanes, dh, hpt = p.window, p.pes, p.head_dim, p.heads_per_tile
        stride = p.timesteps * p.model_tiles
        req = Signal(score_request_layout(p))

        # Issue: one read a cycle, the query first, then the keys newest first; ``left`` keys
        # still to read. The FIRE follows the last key down the pipeline.
        left = Signal(range(w + 1))
        slot = Signal(range(w))
        k_addr, v_addr = Signal.like(req.k_addr), Signal.like(req.v_addr)
        # the bias ROM row of the next key: the request's ``bias_base + delta0``, then one a key
        # (carried down the pipeline with the key: the next request may be taken meanwhile)
        rows = max(1, len(bias_rom_image(p)))
        delta = Signal(range(rows))
        # ``ending``: the cycle after the last key's read, which issues the FIRE; the next
        # request may be taken in it (a register, set as the last key is read)
        active, query, ending, q_data = Signal(), Signal(), Signal(), Signal()
        # the read address (the query's, then each key's) is a register of its own, loaded
        # with the query's or the key's address as they are: nothing between it and the
        # spike banks' address multiplexer
        addr = Signal.like(self.mem_addr)
        m.d.comb += [self.mem_addr.eq(addr), self.mem_en.eq(1)]
        pipeline_busy = Signal()
        m.d.comb += [
            self.requests.ready.eq(~active | ending),
            self.busy.eq(active | pipeline_busy),
        ]
        # D: the read was issued last cycle; its data is on the port.
        valid_d, fire_d = Signal(), Signal()
        # the request's FIRE, kept from its last key on (the next request may be taken then),
        # and from its stage 3 in a second register: a request of one key issues its FIRE
        # three cycles after the one before, which leaves the pipeline five after
        fire_next, fire_tok = Signal.like(req.fire), Signal.like(req.fire)
        delta_d, vaddr_d = Signal.like(delta), Signal.like(v_addr)
        m.d.sync += [valid_d.eq(0), fire_d.eq(0), q_data.eq(active & query)]
        with m.If(ending):
            m.d.sync += [active.eq(0), ending.eq(0), valid_d.eq(1), fire_d.eq(1),
                         fire_next.eq(req.fire)]
        with m.If(self.requests.valid & self.requests.ready):
            m.d.sync += [req.eq(self.requests.payload), active.eq(1), query.eq(1),
                         addr.eq(self.requests.payload.q_addr),
                         left.eq(self.requests.payload.count), slot.eq(self.requests.payload.slot),
                         k_addr.eq(self.requests.payload.k_addr),
                         v_addr.eq(self.requests.payload.v_addr),
                         delta.eq(self.requests.payload.bias_base
                                  + self.requests.payload.delta0)]
        with m.Elif(active & query):
            m.d.sync += [query.eq(0), addr.eq(k_addr)]
        with m.Elif(active & ~ending):
            m.d.sync += [valid_d.eq(1), delta_d.eq(delta), vaddr_d.eq(v_addr),
                         left.eq(left - 1), delta.eq(delta + 1), ending.eq(left == 1)]
            with m.If(slot == 0):  # the oldest slot next: wrap round the window
                k_next = k_addr + (w - 1) * stride
                m.d.sync += [slot.eq(w - 1), k_addr.eq(k_next), addr.eq(k_next),
                             v_addr.eq(v_addr + (w - 1) * stride)]
            with m.Else():
                k_next = k_addr - stride
                m.d.sync += [slot.eq(slot - 1), k_addr.eq(k_next), addr.eq(k_next),
                             v_addr.eq(v_addr - stride)]
        q_reg = Signal(2 * lanes)
        with m.If(q_data):
            m.d.sync += q_reg.eq(self.mem_data)

        # K: the key word registered off the block RAMs.
        k_reg = Signal(2 * lanes)
        delta2, vaddr2 = Signal.like(delta), Signal.like(v_addr)
        valid2, fire2 = Signal(), Signal()
        m.d.sync += [k_reg.eq(self.mem_data), delta2.eq(delta_d), vaddr2.eq(vaddr_d),
                     valid2.eq(valid_d), fire2.eq(fire_d)]

        # Stage 3: per-lane products, and their popcounts in groups of 8 lanes.
        group = 8
        counts = data.ArrayLayout(unsigned((dh).bit_length()), hpt)
        parts = []  # per head: (plus, minus) registers of its groups' popcounts
        for head in range(hpt):
            members = range(head * dh, min((head + 1) * dh, lanes))
            plus, minus = [], []
            for lane in members:
                q0, q1 = q_reg[2 * lane], q_reg[2 * lane + 1]
                k0, k1 = k_reg[2 * lane], k_reg[2 * lane + 1]
                both, opposite = q0 & k0, q1 ^ k1
                plus.append(both & ~opposite)
                minus.append(both & opposite)
            head_parts = ([], [])
            for start in range(0, len(plus), group):
                for bits, out in ((plus, head_parts[0]), (minus, head_parts[1])):
                    chunk = bits[start:start + group]
                    packed = Signal(len(chunk), name=f"lanes{head}_{start}_{len(out)}")
                    count = Signal(range(len(chunk) + 1), name=f"count{head}_{start}_{len(out)}")
                    m.d.comb += packed.eq(sum(b << i for i, b in enumerate(chunk)))
                    m.d.sync += count.eq(popcount(packed))
                    out.append(count)
            parts.append(head_parts)
        delta3, vaddr3, valid3, fire3 = (Signal.like(delta), Signal.like(v_addr), Signal(),
                                         Signal())
        m.d.sync += [delta3.eq(delta2), vaddr3.eq(vaddr2), valid3.eq(valid2), fire3.eq(fire2)]

        # Stage 3b: the groups summed per head; the bias ROM is read.
        pos3, neg3 = Signal(counts), Signal(counts)
        vaddr3b, valid3b, fire3b = Signal.like(v_addr), Signal(), Signal()
        for head, (plus, minus) in enumerate(parts):
            m.d.sync += [pos3[head].eq(sum(plus)), neg3[head].eq(sum(minus))]
        bias_bits = score_bias_bits(p)
        image = bias_rom_image(p)
        m.submodules.bias_rom = rom = Memory(
            shape=unsigned(hpt * bias_bits), depth=max(1, len(image)), init=image)
        rom_port = rom.read_port()
        m.d.comb += rom_port.addr.eq(delta3)
        m.d.sync += [vaddr3b.eq(vaddr3), valid3b.eq(valid3), fire3b.eq(fire3)]
        with m.If(fire3):
            m.d.sync += fire_tok.eq(fire_next)

        # Stage 4: ``pos - neg + bias`` per head.
        dot4 = []
        vaddr4, valid4, fire4 = Signal.like(v_addr), Signal(), Signal()
        for head in range(hpt):
            bias = rom_port.data.word_select(head, bias_bits).as_signed()
            total = Signal(signed(max(bias_bits, dh.bit_length() + 1) + 2), name=f"dot{head}")
            m.d.sync += total.eq(pos3[head] - neg3[head] + bias)
            dot4.append(total)
        m.d.sync += [vaddr4.eq(vaddr3b), valid4.eq(valid3b), fire4.eq(fire3b)]

        # Stage 5: score = max(0, dot) per head; ATTN if any is non-zero.
        scores5 = Signal(data.ArrayLayout(unsigned(p.score_bits), hpt))
        vaddr5, valid5, fire5, any5 = Signal.like(v_addr), Signal(), Signal(), Signal()
        nonzero = []
        for head, total in enumerate(dot4):
            positive = ~total[-1] & (total != 0)
            nonzero.append(positive)
            m.d.sync += scores5[head].eq(Mux(positive, total, 0))
        any_nonzero = Signal()
        m.d.comb += any_nonzero.eq(sum(b << i for i, b in enumerate(nonzero)) != 0)
        m.d.sync += [vaddr5.eq(vaddr4), valid5.eq(valid4), fire5.eq(fire4),
                     any5.eq(any_nonzero)]

        tok = self.tokens.payload
        m.d.comb += self.tokens.valid.eq(valid5 & (fire5 | any5))
        with m.If(fire5):
            m.d.comb += tok.eq(fire_tok)
        with m.Else():
            m.d.comb += [tok.kind.eq(TokenKind.ATTN), tok.addr.eq(vaddr5), tok.scores.eq(scores5)]
        m.d.comb += pipeline_busy.eq(valid_d | valid2 | valid3 | valid3b | valid4 | valid5 | q_data)
        return m
