"""The systolic array: ``R`` rows of ``C`` PEs and neuron lanes; tokens move one row per cycle."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .layout import bias_bank_images, weight_bank_images
from .neuron import NeuronLane
from .params import AcceleratorParams, address_bits
from .pe import PEOp, ProcessingElement
from .token import TokenKind, token_layout

__all__ = ["ArrayRow", "SystolicArray", "logit_write_layout", "spike_write_layout"]

#: Cycles from a token on a row's ``tok_in`` to its PEs acting: bank read, bank data register,
#: neuron preparation and operation decode.
_ACT_LATENCY = 3


def _check_params(params) -> AcceleratorParams:
    if not isinstance(params, AcceleratorParams):
        raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
    return params


def array_token_layout(params: AcceleratorParams) -> data.StructLayout:
    """The token layout of an array built from ``params``."""
    return token_layout(params.addr_bits, params.oaddr_bits)


def spike_write_layout(params: AcceleratorParams) -> data.StructLayout:
    """A row's spike-bank write: address and ``C`` spike codes."""
    return data.StructLayout({
        "addr": unsigned(address_bits(params.spike_buffer_depth)),
        "data": data.ArrayLayout(unsigned(2), params.cols),
    })


def logit_write_layout(params: AcceleratorParams) -> data.StructLayout:
    """A logit-memory write: address and ``C`` membranes."""
    return data.StructLayout({
        "addr": unsigned(address_bits(params.logit_depth)),
        "data": data.ArrayLayout(signed(params.membrane_bits), params.cols),
    })


class ArrayRow(wiring.Component):
    """Row ``row`` of the array: ``C`` PEs, ``C`` neuron lanes, its weight and bias banks.

    In the cycle a token is on ``tok_in`` (cycle ``n``) the row presents its address to both
    banks (sync read ports); in cycle ``n + 1`` the token is on ``tok_out`` (the input of the
    next row) and the bank data is registered; in ``n + 2`` the neuron lanes prepare from the
    bias and the PE operation is decoded; in ``n + 3`` (:attr:`act_latency`) the PEs act on it
    (docs/architecture.md, "Rows"). A READOUT writes the ``C`` membranes on ``logits``
    (address ``oaddr + row``) in that cycle and clears them; a FIRE of a hidden layer writes its
    ``C`` spikes on ``spikes`` one cycle later, in ``n + 4`` (:attr:`write_latency`).

    Latency: 1 cycle from ``tok_in`` to ``tok_out``. Throughput: one token per cycle.
    """

    def __init__(self, params: AcceleratorParams, row: int):
        self._params = _check_params(params)
        if isinstance(row, bool) or not isinstance(row, int):
            raise TypeError(f"row must be an integer, not {row!r}")
        if not 0 <= row < params.rows:
            raise ValueError(f"row must lie in 0..{params.rows - 1}, not {row}")
        self._row = row
        tokens = stream.Signature(array_token_layout(params), always_ready=True)
        mb = params.membrane_bits
        super().__init__({
            "tok_in": In(tokens),
            "tok_out": Out(tokens),
            "threshold": In(unsigned(mb - 1)),
            "reset": In(unsigned(mb - 1)),
            "readout": In(1),
            "spikes": Out(stream.Signature(spike_write_layout(params), always_ready=True)),
            "logits": Out(stream.Signature(logit_write_layout(params), always_ready=True)),
        })

    @property
    def row(self) -> int:
        return self._row

    @property
    def latency(self) -> int:
        """Cycles from ``tok_in`` to ``tok_out``."""
        return 1

    @property
    def act_latency(self) -> int:
        """Cycles from ``tok_in`` to the cycle the PEs act (and a READOUT writes)."""
        return _ACT_LATENCY

    @property
    def write_latency(self) -> int:
        """Cycles from ``tok_in`` to the cycle a FIRE's spikes are on ``spikes``."""
        return _ACT_LATENCY + 1

    def elaborate(self, platform):
        m = Module()
        p = self._params
        cols = p.cols
        m.submodules.weights = weights = Memory(
            shape=unsigned(cols * p.weight_bits), depth=p.weight_depth,
            init=weight_bank_images(p)[self._row],
        )
        m.submodules.biases = biases = Memory(
            shape=unsigned(cols * p.bias_bits), depth=p.bias_depth,
            init=bias_bank_images(p)[self._row],
        )
        w_port = weights.read_port()
        b_port = biases.read_port()
        m.d.comb += [
            w_port.addr.eq(self.tok_in.payload.addr),
            b_port.addr.eq(self.tok_in.payload.addr),
        ]
        m.d.sync += [
            self.tok_out.valid.eq(self.tok_in.valid),
            self.tok_out.payload.eq(self.tok_in.payload),
        ]

        # Stage 1 (the cycle after tok_out): the bank data, registered off the block RAMs.
        w_layout = data.ArrayLayout(signed(p.weight_bits), cols)
        b_layout = data.ArrayLayout(signed(p.bias_bits), cols)
        w1, b1 = Signal(w_layout), Signal(b_layout)
        tok1 = Signal.like(self.tok_out.payload)
        kind1 = Signal(TokenKind)
        m.d.sync += [w1.eq(w_port.data), b1.eq(b_port.data), tok1.eq(self.tok_out.payload)]
        m.d.sync += kind1.eq(Mux(self.tok_out.valid, self.tok_out.payload.kind, TokenKind.SKIP))

        # Stage 2: the neuron lanes prepare from b1; the PE operation is decoded and its operand
        # chosen: the weight (inverted for a -1 spike, the PE adds the carry) or the bias. A
        # FIRE is an ADD of the bias (V = U + b), a CLEAR when ``last``, and the PE takes the
        # lane's ``V - R*s`` instead when the lane fires (``spiking`` and ``fired``).
        operand_bits = max(p.weight_bits, p.bias_bits)
        operand = Signal(data.ArrayLayout(signed(operand_bits), cols))
        carry = Signal()
        op = Signal(PEOp)
        fire, spiking, readout_tok = Signal(), Signal(), Signal()
        oaddr = Signal.like(tok1.oaddr)
        logit_addr = Signal.like(self.logits.payload.addr)
        m.d.sync += [
            carry.eq((kind1 == TokenKind.EVENT) & tok1.neg),
            fire.eq((kind1 == TokenKind.FIRE) & ~self.readout),
            spiking.eq((kind1 == TokenKind.FIRE) & ~self.readout & ~tok1.last),
            readout_tok.eq(kind1 == TokenKind.READOUT),
            oaddr.eq(tok1.oaddr),
            logit_addr.eq(tok1.oaddr + self._row),
        ]
        with m.Switch(kind1):
            with m.Case(TokenKind.EVENT):
                m.d.sync += op.eq(PEOp.ADD)
            with m.Case(TokenKind.FIRE):
                m.d.sync += op.eq(Mux(tok1.last & ~self.readout, PEOp.CLEAR, PEOp.ADD))
            with m.Case(TokenKind.READOUT):
                m.d.sync += op.eq(PEOp.CLEAR)
            with m.Default():
                m.d.sync += op.eq(PEOp.SKIP)

        # Stage 3: the PEs act; a READOUT writes the membranes, a FIRE's spikes are registered
        # and written in stage 4.
        m.d.comb += [
            self.logits.valid.eq(readout_tok),
            self.logits.payload.addr.eq(logit_addr),
        ]
        m.d.sync += [
            self.spikes.valid.eq(fire),
            self.spikes.payload.addr.eq(oaddr),
        ]
        for col in range(cols):
            pe = ProcessingElement(operand_bits=operand_bits, membrane_bits=p.membrane_bits)
            lane = NeuronLane(bias_bits=p.bias_bits, membrane_bits=p.membrane_bits)
            m.submodules[f"pe{col}"] = pe
            m.submodules[f"neuron{col}"] = lane
            m.d.comb += [
                lane.bias.eq(b1[col]),
                lane.threshold.eq(self.threshold),
                lane.reset.eq(self.reset),
                lane.readout.eq(self.readout),
                pe.op.eq(op),
                pe.operand.eq(operand[col]),
                pe.carry.eq(carry),
                pe.load.eq(lane.value),
                pe.take.eq(spiking & lane.fired),
                lane.membrane.eq(pe.membrane),
                self.logits.payload.data[col].eq(pe.membrane),
            ]
            m.d.sync += [
                operand[col].eq(Mux(
                    kind1 == TokenKind.EVENT, w1[col] ^ tok1.neg.replicate(operand_bits), b1[col]
                )),
                self.spikes.payload.data[col].eq(lane.spike),
            ]
        return m


class SystolicArray(wiring.Component):
    """The ``R x C`` array: a token enters row 0 and moves down one row per cycle.

    Row ``r`` presents the token's bank address ``r`` cycles after it is on ``tokens`` and acts
    :attr:`ArrayRow.act_latency` cycles later. Row ``r``'s spike writes come out on
    ``spikes[r]`` (each row owns its spike bank); the rows' logit writes are merged onto
    ``logits``, which is correct as long as READOUT tokens are at least ``R`` cycles apart
    (the scanner's ``readout_gap``).

    Latency: :attr:`latency` = ``R + 4`` cycles: a token on ``tokens`` in cycle ``n`` has all
    its effects (membranes, spike banks, logit memory) visible from cycle ``n + R + 4`` (the
    last row writes its spikes in cycle ``n + R - 1 + 4``).
    Throughput: one token per cycle.
    """

    def __init__(self, params: AcceleratorParams):
        self._params = _check_params(params)
        tokens = stream.Signature(array_token_layout(params), always_ready=True)
        mb = params.membrane_bits
        super().__init__({
            "tokens": In(tokens),
            "threshold": In(unsigned(mb - 1)),
            "reset": In(unsigned(mb - 1)),
            "readout": In(1),
            "spikes": Out(
                stream.Signature(spike_write_layout(params), always_ready=True)
            ).array(params.rows),
            "logits": Out(stream.Signature(logit_write_layout(params), always_ready=True)),
        })

    @property
    def latency(self) -> int:
        """Cycles from a token on ``tokens`` until all its effects are visible."""
        return self._params.rows - 1 + _ACT_LATENCY + 1 + 1

    def elaborate(self, platform):
        m = Module()
        p = self._params
        previous = wiring.flipped(self.tokens)
        logit_valid, logit_payload = 0, 0
        for r in range(p.rows):
            row = ArrayRow(p, r)
            m.submodules[f"row{r}"] = row
            wiring.connect(m, previous, row.tok_in)
            previous = row.tok_out
            m.d.comb += [
                row.threshold.eq(self.threshold),
                row.reset.eq(self.reset),
                row.readout.eq(self.readout),
            ]
            wiring.connect(m, row.spikes, wiring.flipped(self.spikes[r]))
            # At most one row writes in a cycle: an AND-OR, not a priority chain of muxes.
            enable = row.logits.valid.replicate(len(row.logits.payload.as_value()))
            logit_payload = logit_payload | (row.logits.payload.as_value() & enable)
            logit_valid = logit_valid | row.logits.valid
        m.d.comb += [self.logits.valid.eq(logit_valid), self.logits.payload.eq(logit_payload)]
        return m
