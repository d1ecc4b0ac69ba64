"""The program sequencer: one byte in, every layer of the program, then the next token out.

For each byte of the stream the sequencer walks the layers of :class:`AcceleratorParams`, and
within a layer its output tiles ``τ`` and time steps ``t``; what a ``(τ, t)`` asks of the array
depends on the layer's kind (docs/architecture.md, "The layer program"):

| kind | tokens per tile and step |
| --- | --- |
| EMBED | one EVENT at the byte's embedding row (a one-lane word), RESADD with ``init`` |
| NORM | RESID, FIRE |
| LINEAR | the input tensor's words (the scanner emits an EVENT per non-zero spike), FIRE |
| ATTENTION | a score request: the score unit sends an ATTN per key worth adding, then the FIRE |
| RESIDUAL | the input tensor's words, RESADD |
| READOUT | the input tensor's words, FIRE, and after the last step a READOUT |

Between layers it waits until the pipeline is idle and then ``drain`` more cycles (the next
layer reads what this one wrote), unless the next layer reads nothing that a layer still in the
pipeline writes: then it starts at once (:attr:`AcceleratorParams.overlaps`; every token then
carries its layer, so that the array tells the two layers' tokens apart). A READOUT layer also
waits while the previous byte's logits are still streaming out of the logit memory
(``streaming``): the next token leaves before them, so the next byte may start meanwhile. The
current position's key/value slot and the number of keys it sees advance with every byte and
start again on a byte flagged ``restart``.

An encoder's program (a bidirectional attention) takes its sequence twice: first every byte
flagged ``prefill``, which runs the layers before the attention (the keys and values of every
position go to the caches) and sends nothing out, then every byte again unflagged, which runs
every layer but the cache writers, with the slot and the key count frozen at the sequence's
last position and length ``L``: the attention reads all ``L`` keys, its bias column starting
at ``i - (L - 1) + W - 1`` for position ``i``, and its FIRE the constants of ``L`` keys. The
READOUT of every position but the first adds its logits to the logit memory (``pool_add``), so
the logits sent after the last byte are the sum over the sequence (``Pool``).

Throughput: one request per cycle while the fetch stage (or the score unit) accepts.
"""

from __future__ import annotations

import logging

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import positive_int
from .params import AcceleratorParams, LayerKind, address_bits
from .score import score_request_layout
from .token import TokenKind, layer_flags, meta_layout, request_layout, token_layout

__all__ = ["BEAT_BITS", "SOURCE_ONE", "Sequencer"]

logger = logging.getLogger(__name__)

SOURCE_ONE = 0
"""Word source 0: a constant word whose lane 0 is a +1 spike (the embedding's one event)."""

BEAT_BITS = 11
"""Bits of a beat on ``tokens``: the byte, then ``restart``, ``hold`` and ``prefill``."""

_WORDS, _PRE, _TAIL, _READOUT = 0, 1, 2, 3

_CLASSES = data.StructLayout({
    "word_bank": 1,   # the next word, of the next bank row (WORDS, not the last word)
    "word": 1,        # the next word, of the next bank (WORDS, not the last word)
    "to_tail": 1,     # the step's FIRE or RESADD next (the last word; a NORM's RESID)
    "to_readout": 1,  # the tile's READOUT next (a READOUT layer's last FIRE)
    "step": 1,        # the next step of the tile
    "tile": 1,        # the next tile, from its first step
    "done": 1,        # the layer's last request: DRAIN
})
"""What taking the request on offer does to the sequencer's loops (one bit set)."""


def _load(cls, classes: dict) -> list:
    """Assignments of ``classes`` (from :func:`_classes`) to the register ``cls``."""
    return [cls[name].eq(value) for name, value in classes.items()]


def _classes(*, phase, word_last, bank_last, last_step, tile_last, readout) -> dict:
    """The class (:data:`_CLASSES`) of the request the loops' registers describe: a WORDS
    request ends its word loop or not, a TAIL (FIRE, RESADD or an attention's score request)
    ends its step, tile or layer, a READOUT its tile or layer."""
    phase, word_last, bank_last, last_step, tile_last, readout = (
        Value.cast(v) for v in (phase, word_last, bank_last, last_step, tile_last, readout))
    words, tail = phase == _WORDS, phase == _TAIL
    fires_last = tail & last_step & ~readout  # the tile's last FIRE, with no READOUT after
    leaves = fires_last | (phase == _READOUT)
    return {
        "word_bank": words & ~word_last & bank_last,
        "word": words & ~word_last & ~bank_last,
        "to_tail": (words & word_last) | (phase == _PRE),
        "to_readout": tail & last_step & readout,
        "step": tail & ~last_step,
        "tile": leaves & ~tile_last,
        "done": leaves & tile_last,
    }


class _Loop:
    """A loop's counter, from 0 to ``last`` (a number of the running layer), with two flags
    kept in registers beside it: ``at_last`` (the counter is at ``last``) and ``before_last``
    (at ``last - 1``). The class of the request after the one on offer then reads flags, not
    an adder and a comparison: on the iCE40 that adder and comparison, in front of the class's
    logic, were the critical path (``tile`` -> ``tile + 1 == last`` -> the class register)."""

    def __init__(self, name: str, count: int, *, last: int = 0):
        self.value = Signal(range(count), name=name)
        self.at_last = Signal(init=int(last == 0), name=f"{name}_at_last")
        self.before_last = Signal(init=int(last == 1), name=f"{name}_before_last")

    def restart(self, last) -> list:
        """``(register, value)`` pairs that start the loop again."""
        return [(self.value, 0), (self.at_last, last == 0), (self.before_last, last == 1)]

    def advance(self, last) -> list:
        """``(register, value)`` pairs of the next iteration."""
        return [(self.value, self.value + 1), (self.at_last, self.before_last),
                (self.before_last, self.value + 2 == last)]


def _assign(pairs) -> list:
    """``(register, value)`` pairs as assignments."""
    return [register.eq(value) for register, value in pairs]


def _one_hot_moves(m: Module, enable, moves) -> None:
    """Each register of ``moves`` (``(condition, [(register, value), ...])``, at most one
    condition high) takes the value of its high condition while ``enable``: an AND-OR over
    the conditions, instead of the priority chain of multiplexers that one ``If`` after
    another builds behind ``enable``."""
    cases = {}
    for cond, pairs in moves:
        for register, value in pairs:
            cases.setdefault(id(register), (register, []))[1].append((cond, value))
    for register, options in cases.values():
        value = 0
        for cond, option in options:
            value = value | Mux(cond, option, 0)
        with m.If(enable & Cat(*(cond for cond, _ in options)).any()):
            m.d.sync += register.eq(value)


class Sequencer(wiring.Component):
    """Runs the program for every byte (see the module docstring).

    Ports
    -----
    tokens : In(stream.Signature(unsigned(11)))  -- a byte; bit 8 set: it starts a new stream;
        bit 9 set: ``hold``, the byte only enters the context window (no layer runs, no output);
        bit 10 set: ``prefill``, an encoder's first pass (see the module docstring)
    requests : Out(stream.Signature(request_layout))  -- to the word fetch and the scanner
    score_requests : Out(stream.Signature(score_request_layout))  -- to the score unit
    idle : In(1)  -- fetch, scanner and score unit hold nothing
    flags : Out(StructLayout)  -- what the running layer's tokens mean to the rows
        (:func:`hw.token.layer_flags`), for a program whose tokens do not carry their layer
    attention : Out(1)  -- the running layer is an ATTENTION (the score unit reads the banks)
    layer : Out  -- index of the running layer (where layers overlap, its tokens carry it)
    running, draining : Out(1)  -- the program is issuing the layer's requests (states LAYER
        and RUN), or waiting for the array to finish it (DRAIN): the cycle profile's phases
    output : Out(1), resume : In(1)  -- the logits are ready; the streamer has sent their
        arg-max (it streams the logits after it)
    streaming : In(1)  -- the streamer is still sending the last logits: a READOUT layer waits
    pool_add : Out(1)  -- the READOUT adds to the logit memory (an encoder's later positions)
    """

    def __init__(self, params: AcceleratorParams, *, drain: int):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        self._params = params
        self._drain = positive_int("drain", drain)
        p = params
        self._meta_layout = meta_layout(token_layout(p), p.lanes)
        self._request_layout = request_layout(self._meta_layout, self.sources, p.raddr_bits)
        super().__init__({
            "tokens": In(stream.Signature(unsigned(BEAT_BITS))),
            "requests": Out(stream.Signature(self._request_layout)),
            "score_requests": Out(stream.Signature(score_request_layout(p))),
            "idle": In(1),
            "flags": Out(layer_flags(p)[0].shape()),
            "attention": Out(1),
            "layer": Out(range(len(p.layers))),
            "running": Out(1),
            "draining": Out(1),
            "output": Out(1),
            "resume": In(1),
            "streaming": In(1),
            "pool_add": Out(1),
        })

    @property
    def sources(self) -> int:
        """Word sources: :data:`SOURCE_ONE`, spike bank ``r`` as ``1 + r``, then the spike table
        (:attr:`source_table`) when the program has one."""
        return 1 + self._params.rows + int(self._params.spike_table is not None)

    @property
    def source_table(self) -> int:
        """The spike table's word source: ``1 + R``."""
        return 1 + self._params.rows

    @property
    def meta_layout(self) -> data.StructLayout:
        return self._meta_layout

    def layer_constants(self) -> list[dict]:
        """Per layer, the numbers the sequencer's counters start from."""
        p = self._params
        consts = []
        attention = 0
        flags = [{name: int(value[name]) for name in value.shape().members}
                 for value in layer_flags(p)]
        score_steps = p.timesteps if p.score_per_step else 1
        for index, layer in enumerate(p.layers):
            kind = layer.kind
            source = p.regions.get(layer.source) if layer.source else None
            dest = p.regions.get(layer.dest) if layer.dest else None
            words = p.words(index)
            n_in = layer.n_in
            c = {
                "kind": int(kind),
                "first": {LayerKind.NORM: _PRE, LayerKind.ATTENTION: _TAIL}.get(kind, _WORDS),
                "tiles_last": p.tiles[index] - 1,
                "words_last": words - 1,
                "lanes": p.cols,
                "last_lanes": (n_in - (words - 1) * p.cols) if words > 1 or n_in else 1,
                "n_in": n_in,
                "wbase": p.weight_bases[index],
                "cbase": p.const_bases[index],
                "in_base": source.base if source is not None and kind != LayerKind.ATTENTION
                else 0,
                "in_tiles": source.tiles if source is not None else 0,
                "out_base": dest.base if dest is not None else 0,
                "out_tiles": dest.tiles if dest is not None else 1,
                "cached": int(dest is not None and (dest.v_bank or dest.slots > 1)),
                "readout": int(kind == LayerKind.READOUT),
                # decoded here, so that a request's fields read a bit, not a comparison
                "embed": int(kind == LayerKind.EMBED),
                "resadd": int(kind in (LayerKind.EMBED, LayerKind.RESIDUAL)),
                "q_base": source.base if kind == LayerKind.ATTENTION else 0,
                "k_base": p.regions[layer.keys].base if layer.keys else 0,
                "v_base": p.regions[layer.values].base if layer.values else 0,
                "bias_base": attention * score_steps * p.model_tiles * p.distances,
                "table": int(layer.table),
                "cstep": p.tiles[index] * (p.window if kind == LayerKind.ATTENTION else 1)
                if layer.per_step else 0,
                "leak": p.leak_bases[index],
                "overlap": int(p.overlaps[index]),
            }
            c.update(flags[index])  # what its tokens mean to the rows (``flags``)
            if p.score_per_step:  # bias ROM rows from one step to the next
                c["bstep"] = p.model_tiles * p.distances if kind == LayerKind.ATTENTION else 0
            if p.scaled:  # the RESADD's scale set (step 0) and whether it moves per step
                c["scale"] = p.scale_bases[index]
                c["sstep"] = int(layer.scale is not None)
            if layer.table:  # word j: byte j of the window, E lanes, at table row ``t``
                c.update(in_base=0, in_tiles=1, lanes=p.embed_dim, last_lanes=p.embed_dim)
            if kind == LayerKind.EMBED:
                c["last_lanes"] = 1
            if kind == LayerKind.ATTENTION:
                attention += 1
            # a word's valid lanes as a mask (the last word's may be fewer), so that the
            # scanner's mask is a gate per lane, not a comparison
            c["lane_mask"] = (1 << c["lanes"]) - 1
            c["last_lane_mask"] = (1 << c.pop("last_lanes")) - 1
            consts.append(c)
        return consts

    def elaborate(self, platform):
        m = Module()
        p = self._params
        consts = self.layer_constants()
        logger.debug("layer constants %s", consts)

        # one register for the constants of the running layer: a field per key, each as wide
        # as its largest value needs; loaded with ``lc_layout.const(consts[layer])``
        lc_layout = data.StructLayout({
            key: range(max(c[key] for c in consts) + 1) for key in consts[0]
        })
        lc = Signal(lc_layout, name="lc")
        layer_loop = _Loop("layer", len(p.layers), last=len(p.layers) - 1)
        layer, last_layer = layer_loop.value, layer_loop.at_last

        w, tiles_d, dist = p.window, p.model_tiles, p.distances
        stride = p.timesteps * tiles_d
        addr_bits, raddr_bits = p.addr_bits, p.raddr_bits
        big = max(addr_bits, p.oaddr_bits, raddr_bits, address_bits(p.v_depth)) + 1
        byte = Signal(8)
        fresh = Signal(init=1)
        count = Signal(range(1, w + 1), init=1)
        cur = Signal(range(w))
        slot_base = Signal(big)
        attn_off = Signal(big)

        tile_loop = _Loop("tile", max(p.tiles))
        step_loop = _Loop("step", p.timesteps, last=p.timesteps - 1)
        word_loop = _Loop("word", max(c["words_last"] for c in consts) + 1)
        tile, step = tile_loop.value, step_loop.value
        last_step = step_loop.at_last  # a FIRE carries it; the leak's multiplier reads it
        phase = Signal(2)
        bank_loop = _Loop("bank", p.rows, last=p.rows - 1)
        bank = bank_loop.value
        row_addr = Signal(big)
        step_row = Signal(big)
        word_base = Signal(big)
        tile_base = Signal(big)
        c_addr = Signal(big)
        c_step_addr = Signal(big)  # c_addr + step * cstep: a FIRE's constants
        c_fire = c_step_addr if any(layer.per_step for layer in p.layers) else c_addr
        res_addr = Signal(big)
        out_step = Signal(big)
        out_origin = Signal(big)
        logit_base = Signal(big)
        bias_tile = Signal(big)
        bias_step = Signal(big)  # bias_tile + step * bstep: a per-step score bias's rows
        bias_row = bias_step if p.score_per_step else bias_tile

        # an encoder's pass (``prefill``: the first) and position in the second
        prefill = Signal()
        qpos, qidx = Signal(range(w)), Signal(range(w))
        if p.bidirectional:
            run_prefill = Array(Const(int(p.runs_in_prefill(i)), 1) for i in range(len(p.layers)))
            run_query = Array(Const(int(p.runs_in_query(i)), 1) for i in range(len(p.layers)))
            runs = Mux(prefill, run_prefill[layer], run_query[layer])
            m.d.comb += self.pool_add.eq(~prefill & (qidx != 0))
        else:
            runs = Const(1, 1)

        # the window of the last ``context`` bytes (oldest first), for a LINEAR of the table
        k = p.context
        window = Array(Signal(8, name=f"window{i}") for i in range(k))

        idle_r = Signal()
        m.d.sync += idle_r.eq(self.idle)
        wait = max(0, self._drain - 3)
        drain_loop = _Loop("drain", wait + 1, last=wait)
        # Flags the state machine's transitions read, kept in registers beside what they
        # describe (set wherever it is), so that no transition waits for a comparison or a
        # lookup by layer: ``drained`` (the drain is at ``wait``), ``last_layer`` (the loops'
        # flags), and ``readout_layer`` (the layer is a READOUT: it waits while the last
        # logits stream out).
        drained = drain_loop.at_last
        readout_layer = Signal(init=consts[0]["readout"])
        readouts = Array(Const(int(c["readout"]), 1) for c in consts)

        def first_layer():
            m.d.sync += _assign(layer_loop.restart(len(p.layers) - 1)
                                + [(readout_layer, consts[0]["readout"])])

        def next_layer():
            m.d.sync += _assign(layer_loop.advance(len(p.layers) - 1)
                                + [(readout_layer, readouts[layer + 1])])
        # ``attn_layer``: the layer is an ATTENTION (every request of it goes to the score
        # unit), loaded with ``lc``.
        attn_layer = Signal()
        # What the request on offer does to the loops once taken (one bit set), kept in a
        # register and computed a request ahead, so that the handshake enables each register
        # through one gate instead of through the loops' conditions (:func:`_classes`).
        cls = Signal(_CLASSES)
        # The state machine is one-hot, a register per state: IDLE (``waiting``: the byte
        # stream's ready), LAYER (``loading`` the layer's numbers), RUN (``issuing``: the
        # handshake that every loop register waits for is this flag and the consumer's ready,
        # an attention's the score unit's), DRAIN (``flushing``) and OUTPUT. Every enable and
        # transition reads these flags, not a decode of an encoded state; and the LAYER's
        # loads come after the RUN's moves, so that no register's next value waits for the
        # handshake (it only enables).
        waiting = Signal(init=1)
        loading, issuing, flushing, outputting = Signal(), Signal(), Signal(), Signal()

        # The numbers of the layer that the next LAYER state loads, in registers a cycle
        # ahead (the first layer's while IDLE, else those of the layer after the running
        # one), so that the LAYER's loads read registers, not a lookup by ``layer``.
        upcoming = Signal(data.StructLayout({
            "lc": lc_layout, "cls": _CLASSES, "attention": 1, "word_at_last": 1,
            "word_before_last": 1, "tile_at_last": 1, "tile_before_last": 1}))
        with m.Switch(Mux(waiting, 0, layer + 1)):
            for index, c in enumerate(consts):
                with m.Case(index):
                    m.d.sync += [
                        upcoming.lc.eq(lc_layout.const(c)),
                        *_load(upcoming.cls, _classes(
                            phase=c["first"], word_last=c["words_last"] == 0,
                            bank_last=p.rows == 1, last_step=p.timesteps == 1,
                            tile_last=c["tiles_last"] == 0, readout=c["readout"])),
                        upcoming.attention.eq(c["kind"] == LayerKind.ATTENTION),
                        upcoming.word_at_last.eq(c["words_last"] == 0),
                        upcoming.word_before_last.eq(c["words_last"] == 1),
                        upcoming.tile_at_last.eq(c["tiles_last"] == 0),
                        upcoming.tile_before_last.eq(c["tiles_last"] == 1),
                    ]

        def goto(state, new):
            m.d.sync += [state.eq(0), new.eq(1)]

        taken = Signal()
        m.d.comb += [
            self.tokens.ready.eq(waiting),
            self.requests.valid.eq(issuing & ~attn_layer),
            self.score_requests.valid.eq(issuing & attn_layer),  # its phase is its TAIL
            taken.eq(issuing & Mux(attn_layer, self.score_requests.ready,
                                   self.requests.ready)),
        ]

        # A LINEAR of the table reads byte ``word`` of the window: ``scan`` is a copy of the
        # window, loaded as a step starts and shifted as its words advance, so that byte
        # ``word`` is always ``scan[0]`` and neither the request's row address nor the next
        # word goes through the window's multiplexer.
        scan = [Signal(8, name=f"scan{i}") for i in range(k)]
        table_byte = scan[0] if k else Const(0, 8)

        def first_word_of_step():
            return [*word_loop.restart(lc.words_last), *bank_loop.restart(p.rows - 1),
                    *zip(scan, window, strict=True)]

        def first_step():
            return step_loop.restart(p.timesteps - 1)

        m.d.comb += [
            *(self.flags[name].eq(lc[name]) for name in self.flags.shape().members),
            self.attention.eq(attn_layer),
            self.layer.eq(layer),
        ]

        leak_index = Mux((lc.leak == 0) | last_step, 0, lc.leak + step) if p.leaky else 0
        req = self.requests.payload
        meta = req.meta
        tok = meta.token
        sreq = self.score_requests.payload
        is_embed = lc.embed
        if p.overlapping:
            m.d.comb += [tok.layer.eq(layer), sreq.fire.layer.eq(layer)]
        with m.Switch(phase):
            with m.Case(_WORDS):
                m.d.comb += [
                    tok.kind.eq(TokenKind.EVENT),
                    tok.addr.eq(word_base),  # an EMBED's: its tile's row of the byte
                    # the last word (its class leads to the TAIL) may have fewer lanes
                    meta.lane_mask.eq(Mux(cls.to_tail, lc.last_lane_mask, lc.lane_mask)),
                    req.src.eq(Mux(is_embed, SOURCE_ONE, 1 + bank)),
                    req.raddr.eq(row_addr),
                ]
                with m.If(lc.table):  # byte ``word`` of the window, step ``step``
                    m.d.comb += [
                        req.src.eq(self.source_table),
                        req.raddr.eq(Cat(step_row[:p.table_row_bits], table_byte)),
                    ]
            with m.Case(_PRE):
                m.d.comb += [tok.kind.eq(TokenKind.RESID), tok.addr.eq(res_addr)]
            with m.Case(_TAIL):
                with m.If(lc.resadd):
                    m.d.comb += [tok.kind.eq(TokenKind.RESADD), tok.addr.eq(res_addr),
                                 tok.init.eq(is_embed)]
                    if p.scaled:  # the multiplier of this step
                        m.d.comb += tok.scale.eq(lc.scale + Mux(lc.sstep, step, 0))
                with m.Else():
                    m.d.comb += [tok.kind.eq(TokenKind.FIRE), tok.addr.eq(c_fire),
                                 tok.oaddr.eq(out_origin + out_step), tok.last.eq(last_step)]
                    if p.leaky:  # the multiplier after this step (none after the last)
                        m.d.comb += tok.leak.eq(leak_index)
            with m.Case(_READOUT):
                m.d.comb += [tok.kind.eq(TokenKind.READOUT), tok.oaddr.eq(logit_base)]
        m.d.comb += [
            sreq.q_addr.eq(lc.q_base + res_addr),
            sreq.k_addr.eq(lc.k_base + slot_base + res_addr),
            sreq.v_addr.eq(lc.v_base + slot_base + res_addr),
            sreq.count.eq(count),
            sreq.slot.eq(cur),
            sreq.delta0.eq(qidx + w - count if p.bidirectional else 0),
            sreq.bias_base.eq(bias_row),
            sreq.fire.kind.eq(TokenKind.FIRE),
            sreq.fire.addr.eq(c_step_addr if any(layer.per_step for layer in p.layers
                                                 if layer.kind == LayerKind.ATTENTION)
                              else c_addr),
            sreq.fire.oaddr.eq(out_origin + out_step),
            sreq.fire.last.eq(last_step),
        ]
        if p.leaky and p.attentions:  # an attention FIRE leaks as any other
            m.d.comb += sreq.fire.leak.eq(leak_index)

        def next_word(bank_moves, row_next):
            return word_loop.advance(lc.words_last) + bank_moves + [
                (word_base, word_base + lc.lanes), (row_addr, row_next),
                *zip(scan, scan[1:], strict=False)]

        def next_step():
            moves = first_word_of_step() + step_loop.advance(p.timesteps - 1) + [
                (word_base, tile_base),
                (step_row, step_row + lc.in_tiles), (row_addr, step_row + lc.in_tiles),
                (res_addr, res_addr + tiles_d), (out_step, out_step + lc.out_tiles),
                (c_step_addr, c_step_addr + lc.cstep), (phase, lc.first),
            ]
            if p.score_per_step:
                moves.append((bias_step, bias_step + lc.bstep))
            return moves

        def next_tile():
            moves = first_step() + first_word_of_step() + tile_loop.advance(lc.tiles_last) + [
                (tile_base, tile_base + lc.n_in), (word_base, tile_base + lc.n_in),
                (row_addr, lc.in_base), (step_row, lc.in_base),
                (c_addr, c_addr + 1), (c_step_addr, c_addr + 1),
                (res_addr, tile + 1), (out_step, tile + 1),
                (logit_base, logit_base + p.rows), (bias_tile, bias_tile + dist),
                (phase, lc.first),
            ]
            if p.score_per_step:
                moves.append((bias_step, bias_tile + dist))
            return moves

        # the class of the request after the one on offer, were it taken now: the loops'
        # registers as the taken request leaves them, classified (off the handshake's path)
        stepping = cls.step | cls.tile
        words = cls.word | cls.word_bank
        after = _classes(
            phase=Mux(words, _WORDS, Mux(cls.to_tail, _TAIL,
                                         Mux(cls.to_readout, _READOUT, lc.first))),
            word_last=Mux(words, word_loop.before_last,
                          Mux(stepping, lc.words_last == 0, word_loop.at_last)),
            bank_last=Mux(cls.word_bank | stepping, p.rows == 1,
                          Mux(cls.word, bank_loop.before_last, bank_loop.at_last)),
            last_step=Mux(cls.step, step_loop.before_last,
                          Mux(cls.tile, p.timesteps == 1, step_loop.at_last)),
            tile_last=Mux(cls.tile, tile_loop.before_last, tile_loop.at_last),
            readout=lc.readout,
        )

        # State RUN: a request on offer every cycle; the loops advance as it is taken, by its
        # class, whatever the state's encoding (``issuing`` is high exactly in RUN).
        with m.If(taken):
            m.d.sync += _load(cls, after)
        _one_hot_moves(m, taken, [
            (cls.word_bank, next_word(bank_loop.restart(p.rows - 1), row_addr + 1)),
            (cls.word, next_word(bank_loop.advance(p.rows - 1), row_addr)),
            (cls.to_tail, [(phase, _TAIL)]),
            (cls.to_readout, [(phase, _READOUT)]),
            (cls.step, next_step()),
            (cls.tile, next_tile()),
        ])
        with m.If(waiting):  # IDLE
            with m.If(self.tokens.valid):
                restart, hold = self.tokens.payload[8], self.tokens.payload[9]
                m.d.sync += [byte.eq(self.tokens.payload[:8]), fresh.eq(0)]
                first_layer()
                if p.bidirectional:  # an encoder's query pass: the caches stay as they are
                    query = ~self.tokens.payload[10] & ~restart & ~fresh
                    m.d.sync += [prefill.eq(~query), qidx.eq(qpos),
                                 qpos.eq(Mux(query, qpos + 1, 0))]
                else:
                    query = Const(0, 1)
                m.d.sync += window[k - 1].eq(self.tokens.payload[:8])
                for i in range(k - 1):  # a new stream starts after zero bytes
                    m.d.sync += window[i].eq(Mux(restart | fresh, 0, window[i + 1]))
                with m.If(restart | fresh):
                    m.d.sync += [count.eq(1), cur.eq(0), slot_base.eq(0), attn_off.eq(0)]
                with m.Elif(~hold & ~query):  # a held byte is no position of the caches
                    with m.If(count != w):
                        m.d.sync += [count.eq(count + 1), attn_off.eq(attn_off + tiles_d)]
                    with m.If(cur == w - 1):
                        m.d.sync += [cur.eq(0), slot_base.eq(0)]
                    with m.Else():
                        m.d.sync += [cur.eq(cur + 1), slot_base.eq(slot_base + stride)]
                with m.If(~hold):
                    goto(waiting, loading)
        with m.If(loading):  # LAYER
            m.d.comb += self.running.eq(1)
            with m.If(~runs):  # a layer of the other pass of an encoder's program
                with m.If(last_layer):
                    goto(loading, waiting if p.bidirectional else outputting)
                with m.Else():
                    next_layer()
            m.d.sync += _assign(first_step() + first_word_of_step())
            # the new layer's numbers, from the registers of the next layer's (``upcoming``);
            # an EMBED's words start at the byte's row, so that a request's address needs no
            # adder
            wbase = upcoming.lc.wbase + Mux(upcoming.lc.embed, byte, 0)
            cbase = upcoming.lc.cbase + Mux(upcoming.attention, attn_off, 0)
            m.d.sync += [
                word_loop.value.eq(0), word_loop.at_last.eq(upcoming.word_at_last),
                word_loop.before_last.eq(upcoming.word_before_last),
                tile_loop.value.eq(0), tile_loop.at_last.eq(upcoming.tile_at_last),
                tile_loop.before_last.eq(upcoming.tile_before_last),
                lc.eq(upcoming.lc),
                tile_base.eq(wbase), word_base.eq(wbase),
                row_addr.eq(upcoming.lc.in_base), step_row.eq(upcoming.lc.in_base),
                phase.eq(upcoming.lc.first),
                attn_layer.eq(upcoming.attention),
                cls.eq(upcoming.cls),
                bias_tile.eq(upcoming.lc.bias_base),
                c_addr.eq(cbase), c_step_addr.eq(cbase),
                out_origin.eq(upcoming.lc.out_base + Mux(upcoming.lc.cached, slot_base, 0)),
            ]
            if p.score_per_step:
                m.d.sync += bias_step.eq(upcoming.lc.bias_base)
            m.d.sync += [res_addr.eq(0), out_step.eq(0), logit_base.eq(0)]
            # the logits of the previous byte may still be streaming out of the memory a
            # READOUT writes
            with m.If(runs & ~(readout_layer & self.streaming)):
                goto(loading, issuing)
        with m.If(issuing):  # RUN
            m.d.comb += self.running.eq(1)
            with m.If(taken & cls.done):
                with m.If(lc.overlap):  # the next layer reads nothing still in the pipeline
                    next_layer()
                    goto(issuing, loading)
                with m.Else():
                    goto(issuing, flushing)
            m.d.sync += _assign(drain_loop.restart(wait)) + [idle_r.eq(0)]
        with m.If(flushing):  # DRAIN
            m.d.comb += self.draining.eq(1)
            with m.If(~idle_r):
                m.d.sync += _assign(drain_loop.restart(wait))
            with m.Elif(drained):
                with m.If(last_layer):
                    if p.bidirectional:  # an encoder's first pass sends nothing
                        m.d.sync += [flushing.eq(0), waiting.eq(prefill),
                                     outputting.eq(~prefill)]
                    else:
                        goto(flushing, outputting)
                with m.Else():
                    next_layer()
                    goto(flushing, loading)
            with m.Else():
                m.d.sync += _assign(drain_loop.advance(wait))
        with m.If(outputting):  # OUTPUT
            m.d.comb += self.output.eq(1)
            with m.If(self.resume):
                goto(outputting, waiting)

        return m
