"""A row of the array: ``C`` PEs and neuron lanes and the banks they read.

Beside its weight bank a row has a constant bank (bias, threshold and reset per neuron, so that
one array runs layers with per-channel and per-key-count constants) and, only when the program
needs them, a residual bank (the residual stream of its ``C`` channels, every step) and a V
bank (its ``C`` channels of every cached value).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .bank import RegisteredBank
from .layout import const_bank_images, const_lane_bits, weight_bank_images
from .neuron import NeuronLane, leak_layout
from .params import ACT_LATENCY, AcceleratorParams, address_bits
from .pe import PEOp, ProcessingElement
from .shift import shift_round
from .token import TokenKind, layer_flags, token_layout

__all__ = ["ACT_LATENCY", "ArrayRow", "logit_write_layout", "spike_write_layout"]


def spike_write_layout(p: AcceleratorParams) -> data.StructLayout:
    return data.StructLayout({
        "addr": unsigned(address_bits(max(p.spike_depth, p.v_depth))),
        "data": data.ArrayLayout(unsigned(2), p.cols),
    })


def logit_write_layout(p: AcceleratorParams) -> data.StructLayout:
    return data.StructLayout({
        "addr": unsigned(address_bits(p.logit_depth)),
        "data": data.ArrayLayout(signed(p.membrane_bits), p.cols),
    })


class ArrayRow(wiring.Component):
    """Row ``row``: ``C`` PEs, ``C`` neuron lanes; weight, constant, residual and V banks.

    Timing: a token on ``tok_in`` in cycle ``n`` addresses every
    bank; it is on ``tok_out`` in ``n + 1``; the bank data is registered in ``n + 2``; the PEs act
    in ``n + 3`` (:data:`ACT_LATENCY`); a FIRE's spikes (to ``spikes``, or to the V bank when
    ``dest_v``) and a RESADD's new residual are written in ``n + 4``. Per kind:

    - EVENT: ``U += ±w`` (weight bank at ``addr``, sign ``neg``).
    - FIRE: ``V = U + b``, spike by ``Θ``, ``R`` (constant bank at ``addr``; no ``-1`` when
      ``binary``); spikes written at ``oaddr``; ``U`` soft-reset (and rescaled by the leak set
      ``leak`` in a program whose neurons leak), or cleared when ``last``. In ``readout`` mode
      ``U += b`` (rescaled the same way).
    - READOUT: membranes to ``logits`` at ``oaddr + row``; ``U = 0``.
    - ATTN: lane ``c`` adds ``±scores[head(c)]`` by the sign of its cached value spike (V bank at
      ``addr``), nothing for a zero spike.
    - RESID: ``U += x`` (residual bank at ``addr``).
    - RESADD: the residual at ``addr`` takes ``x + shift(U)`` (``shift(U)`` when ``init``),
      the shift chosen by ``shift_sel`` among :attr:`AcceleratorParams.shifts`; ``U = 0``. In
      a program whose residual adds scale per step, ``shift(U)`` is the two terms
      ``Σ_j sign_j shift_round(U, e_j)`` of the token's ``scale`` set instead.

    What a token means in its layer (``readout``, ``binary``, ``dest_v``, ``shift_sel``:
    :func:`hw.token.layer_flags`) the row decodes from the token's ``layer`` in a program in
    which tokens of two layers may be in the array at once
    (:attr:`AcceleratorParams.overlapping`), and otherwise reads on ``flags``.

    ``fired`` is the number of non-zero spikes the row wrote in the previous cycle, and
    ``fired_layer`` (with tokens that carry their layer) the layer of the FIRE that wrote them.

    Latency: 1 cycle from ``tok_in`` to ``tok_out``. Throughput: one token per cycle.
    """

    def __init__(self, params: AcceleratorParams, row: int):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < params.rows:
            raise ValueError(f"row must be an integer in 0..{params.rows - 1}, not {row!r}")
        self._params = params
        self._row = row
        tokens = stream.Signature(token_layout(params), always_ready=True)
        super().__init__({
            "tok_in": In(tokens),
            "tok_out": Out(tokens),
            "spikes": Out(stream.Signature(spike_write_layout(params), always_ready=True)),
            "logits": Out(stream.Signature(logit_write_layout(params), always_ready=True)),
            "fired": Out(range(params.cols + 1)),
            # tokens carry their layer, or all tokens in the array are the running layer's
            **({"fired_layer": Out(range(len(params.layers)))} if params.overlapping else
               {"flags": In(layer_flags(params)[0].shape())}),
            # weights off chip: an EVENT's word, in the cycle after the token on ``tok_in``
            **({"weight": In(unsigned(params.cols * params.weight_bits))}
               if params.weights_offchip else {}),
        })

    @property
    def act_latency(self) -> int:
        return ACT_LATENCY

    @property
    def write_latency(self) -> int:
        """Cycles from ``tok_in`` to a FIRE's spikes or a RESADD's residual being written."""
        return ACT_LATENCY + 1

    def elaborate(self, platform):
        m = Module()
        p, r = self._params, self._row
        cols, mb = p.cols, p.membrane_bits
        bb, kb = p.bias_bits, p.const_bits
        lane_bits = const_lane_bits(p)

        # Every bank is read in two cycles, straight into a register per block RAM
        # (:class:`hw.bank.RegisteredBank`): a token on ``tok_in`` in cycle ``n`` has its words
        # in ``w1``, ``k1``, ``x1`` and ``v1`` in ``n + 2``.
        addr = self.tok_in.payload.addr
        banks = []
        m.submodules.consts = consts = RegisteredBank(
            shape=unsigned(cols * lane_bits), depth=p.const_depth, init=const_bank_images(p)[r])
        banks.append(consts)
        if not p.weights_offchip:  # off chip, the weight fetch supplies an EVENT's word
            m.submodules.weights = weights = RegisteredBank(
                shape=unsigned(cols * p.weight_bits), depth=p.weight_depth,
                init=weight_bank_images(p)[r])
            banks.append(weights)
        if p.has_residual:  # the residual banks exist only for a program with a residual
            m.submodules.residual = residual = RegisteredBank(
                shape=unsigned(cols * p.residual_bits), depth=p.residual_depth, writable=True)
            banks.append(residual)
        if p.attentions:  # the value caches exist only for a program that attends
            m.submodules.values = values = RegisteredBank(
                shape=unsigned(2 * cols), depth=p.v_depth, writable=True)
            banks.append(values)
        for bank in banks:
            m.d.comb += bank.addr.eq(addr)
        m.d.sync += [
            self.tok_out.valid.eq(self.tok_in.valid),
            self.tok_out.payload.eq(self.tok_in.payload),
        ]

        # Stage 1: the bank data, registered off the block RAMs.
        w1 = Signal(data.ArrayLayout(signed(p.weight_bits), cols))
        k1 = Signal(data.ArrayLayout(unsigned(lane_bits), cols))
        x1 = Signal(data.ArrayLayout(signed(p.residual_bits), cols))
        v1 = Signal(data.ArrayLayout(unsigned(2), cols))
        tok1 = Signal.like(self.tok_out.payload)
        kind1 = Signal(TokenKind)
        if p.attentions:
            m.d.comb += v1.eq(values.data)
        if p.has_residual:
            m.d.comb += x1.eq(residual.data)
        if p.weights_offchip:  # the word arrives with ``tok_out``
            m.d.sync += w1.eq(self.weight)
        else:
            m.d.comb += w1.eq(weights.data)
        m.d.comb += k1.eq(consts.data)
        m.d.sync += [tok1.eq(self.tok_out.payload),
                     kind1.eq(Mux(self.tok_out.valid, self.tok_out.payload.kind, TokenKind.SKIP))]
        # the kinds that choose the PEs' operand, one flag each (a bias for every other kind)
        is_event, is_attn, is_resid, is_other = Signal(), Signal(), Signal(), Signal()
        kind0 = self.tok_out.payload.kind
        chosen = [(is_event, TokenKind.EVENT), (is_attn, TokenKind.ATTN),
                  (is_resid, TokenKind.RESID)]
        m.d.sync += [flag.eq(self.tok_out.valid & (kind0 == kind)) for flag, kind in chosen]
        m.d.sync += is_other.eq(~self.tok_out.valid
                                | ~kind0.as_value().matches(*(kind for _, kind in chosen)))
        flags = layer_flags(p)  # what the token means in its layer
        flags1 = Signal(flags[0].shape())
        if p.overlapping:
            with m.Switch(tok1.layer):
                for index, value in enumerate(flags):
                    with m.Case(index):
                        m.d.comb += flags1.eq(value)
        else:
            m.d.comb += flags1.eq(self.flags)

        # Stage 2: operands and operation; the lanes prepare from the constants.
        operand = Signal(data.ArrayLayout(signed(p.operand_bits), cols))
        carry = Signal(cols)
        op = Signal(PEOp)
        fire, spiking, readout_tok, resadd = Signal(), Signal(), Signal(), Signal()
        leaking = Signal()  # a FIRE but the last step's: the lanes' rescaled value is taken
        oaddr = Signal.like(tok1.oaddr)
        logit_addr = Signal.like(self.logits.payload.addr)
        x2 = Signal.like(x1)
        res_addr2, init2 = Signal.like(tok1.addr), Signal()
        dest_v2, shift2 = Signal(), Signal.like(flags1.shift_sel)
        scale2 = Signal.like(tok1.scale) if p.scaled else None
        m.d.sync += [
            fire.eq((kind1 == TokenKind.FIRE) & ~flags1.readout),
            spiking.eq((kind1 == TokenKind.FIRE) & ~flags1.readout & ~tok1.last),
            leaking.eq((kind1 == TokenKind.FIRE) & ~tok1.last),
            readout_tok.eq(kind1 == TokenKind.READOUT),
            resadd.eq(kind1 == TokenKind.RESADD),
            oaddr.eq(tok1.oaddr),
            logit_addr.eq(tok1.oaddr + r),
            x2.eq(x1), res_addr2.eq(tok1.addr), init2.eq(tok1.init),
            dest_v2.eq(flags1.dest_v), shift2.eq(flags1.shift_sel),
        ]
        scale_terms = None
        if p.scaled:  # the RESADD's scale set, by the token's ``scale``
            m.d.sync += scale2.eq(tok1.scale)
            exps = p.scale_exponents
            scale_terms = Signal(leak_layout(len(exps)).elem_shape)
            with m.Switch(scale2):
                for index, terms in enumerate(p.scale_sets):
                    with m.Case(index):
                        m.d.comb += scale_terms.eq(scale_terms.shape().const([
                            {"sign": int(sign), "sel": exps.index(int(e)) if sign else 0}
                            for sign, e in terms]))
        with m.Switch(kind1):
            with m.Case(TokenKind.EVENT, TokenKind.ATTN, TokenKind.RESID):
                m.d.sync += op.eq(PEOp.ADD)
            with m.Case(TokenKind.FIRE):
                m.d.sync += op.eq(Mux(tok1.last & ~flags1.readout, PEOp.CLEAR, PEOp.ADD))
            with m.Case(TokenKind.READOUT, TokenKind.RESADD):
                m.d.sync += op.eq(PEOp.CLEAR)
            with m.Default():
                m.d.sync += op.eq(PEOp.SKIP)

        ob = p.operand_bits
        exponents = p.leak_exponents if p.leaky else None
        leak = None
        if exponents is not None:  # the leak sets, by the FIRE token's ``leak``
            layout = leak_layout(len(exponents))
            leak = Signal(layout)
            with m.Switch(tok1.leak):
                for index, terms in enumerate(p.leak_sets):
                    with m.Case(index):
                        m.d.comb += leak.eq(layout.const([
                            [{"sign": int(sign), "sel": exponents.index(int(e)) if sign else 0}
                             for sign, e in code] for code in terms]))
        lanes = []
        for col in range(cols):
            pe = ProcessingElement(operand_bits=ob, membrane_bits=mb)
            lane = NeuronLane(bias_bits=bb, membrane_bits=mb, leak_exponents=exponents)
            if leak is not None:
                m.d.comb += lane.leak.eq(leak)
            m.submodules[f"pe{col}"] = pe
            m.submodules[f"neuron{col}"] = lane
            lanes.append((pe, lane))
            word = k1[col]
            bias = word[:bb].as_signed()
            score = Signal(signed(ob), name=f"score{col}")  # the unsigned score, widened
            m.d.comb += [
                score.eq(tok1.scores[p.head_of_lane(r, col)]),
                lane.bias.eq(bias),
                lane.threshold.eq(word[bb:bb + kb]),
                lane.reset.eq(word[bb + kb:bb + 2 * kb]),
                lane.readout.eq(flags1.readout),
                lane.binary.eq(flags1.binary),
                pe.op.eq(op),
                pe.operand.eq(operand[col]),
                pe.carry.eq(carry[col]),
                pe.load.eq(lane.value),
                pe.take.eq(leaking if leak is not None else spiking & lane.fired),
                # the FIRE's comparisons and sums read the register, not the membrane's
                # multiplexer: a FIRE never follows a FIRE (the only op that takes), so the
                # two differ only in cycles in which the lane's outputs go unused
                lane.membrane.eq(pe.register),
                self.logits.payload.data[col].eq(pe.membrane),
            ]
            # an AND-OR over the one-hot kinds: the operand's gates see one flag per source
            v_nz, v_neg = v1[col][0], v1[col][1]
            options = [(is_event, w1[col] ^ tok1.neg.replicate(ob), tok1.neg),
                       (is_other, bias, 0)]
            if p.attentions:
                options.append((is_attn, Mux(v_nz, score ^ v_neg.replicate(ob), 0),
                                v_nz & v_neg))
            if p.has_residual:
                options.append((is_resid, x1[col], 0))
            value, carried = 0, 0
            for flag, option, carry_in in options:
                value = value | Mux(flag, option, 0)
                carried = carried | (flag & carry_in)
            m.d.sync += [operand[col].eq(value), carry[col].eq(carried)]

        # Stage 3: the PEs act; a READOUT writes the membranes; a FIRE's spikes and a RESADD's
        # shifted membranes are registered for stage 4.
        m.d.comb += [self.logits.valid.eq(readout_tok),
                     self.logits.payload.addr.eq(logit_addr)]
        spikes4 = Signal(data.ArrayLayout(unsigned(2), cols))
        fire4, resadd4, init4, dest_v4 = Signal(), Signal(), Signal(), Signal()
        oaddr4, res_addr4 = Signal.like(oaddr), Signal.like(res_addr2)
        x4 = Signal.like(x2)
        shifted4 = Signal(data.ArrayLayout(signed(p.residual_bits), cols))
        m.d.sync += [fire4.eq(fire), resadd4.eq(resadd), init4.eq(init2), oaddr4.eq(oaddr),
                     res_addr4.eq(res_addr2), x4.eq(x2), dest_v4.eq(dest_v2)]
        for col, (pe, lane) in enumerate(lanes):
            m.d.sync += spikes4[col].eq(lane.spike)
            if scale_terms is None:  # the rounding's sum registered, its shift in stage 4
                m.d.comb += shifted4[col].eq(shift_round(m, pe.membrane, p.shifts, shift2,
                                                         p.residual_bits, registered=True))
            else:
                shifted = 0
                for term in scale_terms:
                    part = shift_round(m, pe.membrane, p.scale_exponents, term.sel,
                                       p.residual_bits)
                    shifted = shifted + Mux(term.sign == 0, 0, Mux(term.sign[-1], -part, part))
                m.d.sync += shifted4[col].eq(shifted)

        # Stage 4: the writes.
        m.d.comb += [
            self.spikes.valid.eq(fire4 & ~dest_v4),
            self.spikes.payload.addr.eq(oaddr4),
            self.spikes.payload.data.eq(spikes4),
        ]
        if p.attentions:
            m.d.comb += [values.w_en.eq(fire4 & dest_v4), values.w_addr.eq(oaddr4),
                         values.w_data.eq(spikes4)]
        if p.has_residual:
            m.d.comb += [residual.w_en.eq(resadd4), residual.w_addr.eq(res_addr4)]
        for col in range(cols if p.has_residual else 0):
            m.d.comb += residual.w_data.word_select(col, p.residual_bits).eq(
                Mux(init4, 0, x4[col]) + shifted4[col])
        nonzero = [spikes4[col][0] for col in range(cols)]
        # Registered here, summed over the rows (and registered again) by the array: the
        # 64-lane popcount of one cycle was the design's critical path on the ECP5.
        m.d.sync += self.fired.eq(Mux(fire4, sum(nonzero), 0))
        if p.overlapping:  # the FIRE's layer, three cycles behind ``tok1``
            layer = tok1.layer
            for stage in range(3):
                delayed = Signal.like(layer, name=f"layer{stage + 2}")
                m.d.sync += delayed.eq(layer)
                layer = delayed
            m.d.comb += self.fired_layer.eq(layer)
        return m
