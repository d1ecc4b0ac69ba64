"""The neuron lane: the ternary integrate-and-fire of docs/integer-contract.md, as a mux."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .checks import signed_width

__all__ = ["NeuronLane"]


class NeuronLane(wiring.Component):
    """One neuron lane, combinational: it turns a PE's membrane into its post-FIRE value.

    Hidden mode (``readout = 0``)::

        V = U + b
        s = +1 if V >= Θ, -1 if V <= -Θ, else 0        (spike, as a 2-bit code)
        U' = 0 if last else (V - R, V + R or V)         (soft reset: a mux, not a multiply)

    Readout mode (``readout = 1``): ``U' = U + b`` and no spike.

    Latency: 0 cycles (combinational); the PE takes ``value`` with a LOAD.

    Ports
    -----
    membrane : In(signed(membrane_bits))  -- ``U``
    bias : In(signed(bias_bits))  -- ``b``
    threshold, reset : In(unsigned(membrane_bits - 1))  -- ``Θ >= 1``, ``R >= 1``
    last, readout : In(1)
    value : Out(signed(membrane_bits))  -- ``U'``
    spike : Out(2)  -- code of ``s``: bit 0 non-zero, bit 1 negative
    """

    def __init__(self, *, bias_bits: int, membrane_bits: int):
        self._bias_bits = signed_width("bias_bits", bias_bits)
        self._membrane_bits = signed_width("membrane_bits", membrane_bits, 2)
        if bias_bits > membrane_bits:
            raise ValueError(
                f"bias_bits ({bias_bits}) must not exceed membrane_bits ({membrane_bits})"
            )
        super().__init__({
            "membrane": In(signed(membrane_bits)),
            "bias": In(signed(bias_bits)),
            "threshold": In(unsigned(membrane_bits - 1)),
            "reset": In(unsigned(membrane_bits - 1)),
            "last": In(1),
            "readout": In(1),
            "value": Out(signed(membrane_bits)),
            "spike": Out(2),
        })

    @property
    def bias_bits(self) -> int:
        return self._bias_bits

    @property
    def membrane_bits(self) -> int:
        return self._membrane_bits

    @property
    def latency(self) -> int:
        """Combinational: 0 cycles."""
        return 0

    def elaborate(self, platform):
        m = Module()
        v = Signal(signed(self._membrane_bits))
        pos = Signal()
        neg = Signal()
        m.d.comb += [
            v.eq(self.membrane + self.bias),
            pos.eq(~self.readout & (v >= self.threshold)),
            neg.eq(~self.readout & (v <= -self.threshold)),
            self.spike.eq(Mux(pos, 0b01, Mux(neg, 0b11, 0b00))),
        ]
        with m.If(self.readout):
            m.d.comb += self.value.eq(v)
        with m.Elif(self.last):
            m.d.comb += self.value.eq(0)
        with m.Elif(pos):
            m.d.comb += self.value.eq(v - self.reset)
        with m.Elif(neg):
            m.d.comb += self.value.eq(v + self.reset)
        with m.Else():
            m.d.comb += self.value.eq(v)
        return m
