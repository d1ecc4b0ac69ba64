"""The neuron lane: the ternary integrate-and-fire of docs/integer-contract.md, as a mux."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .checks import signed_width

__all__ = ["NeuronLane"]


class NeuronLane(wiring.Component):
    """One neuron lane: the spike decision of a FIRE and the soft-reset value, in two stages.

    Hidden mode (``readout = 0``)::

        V = U + b
        s = +1 if V >= Θ, -1 if V <= -Θ, else 0        (spike, as a 2-bit code)
        U' = 0 if last else (V - R, V + R or V)         (soft reset: a mux, not a multiply)

    Readout mode (``readout = 1``): ``U' = U + b`` and no spike.

    The lane computes the spike and, for ``s != 0`` (``fired``), ``value = V - R*s``; the PE
    computes the other cases itself (``V = U + b`` with its own adder, or a clear when
    ``last``) and takes ``value`` when ``fired``. So that no adder feeds a comparator or
    another adder, the first stage (registered, one cycle before the FIRE) derives from ``b``,
    ``Θ`` and ``R`` the addends ``b - R``, ``b + R`` and the bounds ``Θ - b``, ``-Θ - b``; in the
    FIRE cycle the two sums ``U + …`` and the two comparisons ``U >= Θ - b``, ``U <= -Θ - b``
    run side by side.

    Latency: :attr:`prepare_latency` = 1 cycle: ``bias``, ``threshold``, ``reset`` and
    ``readout`` are sampled in cycle ``n`` for a FIRE whose ``membrane`` is on the port in
    cycle ``n + 1``; ``value``, ``fired`` and ``spike`` follow it combinationally.
    Throughput: one FIRE per cycle.

    Ports
    -----
    bias : In(signed(bias_bits))  -- ``b``
    threshold, reset : In(unsigned(membrane_bits - 1))  -- ``Θ >= 1``, ``R >= 1``
    readout : In(1)
    membrane : In(signed(membrane_bits))  -- ``U``
    value : Out(signed(membrane_bits))  -- ``V - R*s``, meaningful when ``fired``
    fired : Out(1)  -- ``s != 0``
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
            "bias": In(signed(bias_bits)),
            "threshold": In(unsigned(membrane_bits - 1)),
            "reset": In(unsigned(membrane_bits - 1)),
            "readout": In(1),
            "membrane": In(signed(membrane_bits)),
            "value": Out(signed(membrane_bits)),
            "fired": Out(1),
            "spike": Out(2),
        })

    @property
    def bias_bits(self) -> int:
        return self._bias_bits

    @property
    def membrane_bits(self) -> int:
        return self._membrane_bits

    @property
    def prepare_latency(self) -> int:
        """Cycles from ``bias``/``threshold``/``reset``/``readout`` to the FIRE they serve."""
        return 1

    def elaborate(self, platform):
        m = Module()
        wide = signed(self._membrane_bits + 1)
        fired_pos, fired_neg = Signal(wide), Signal(wide)
        upper, lower = Signal(wide), Signal(wide)
        readout = Signal()
        m.d.sync += [
            fired_pos.eq(self.bias - self.reset),
            fired_neg.eq(self.bias + self.reset),
            upper.eq(self.threshold - self.bias),
            lower.eq(-self.threshold - self.bias),
            readout.eq(self.readout),
        ]

        u = self.membrane
        above, below = Signal(), Signal()
        pos, neg = Signal(), Signal()
        m.d.comb += [
            # ``u >= upper`` and ``u <= lower`` as signs of differences: carry chains.
            above.eq(~(u - upper)[-1]),
            below.eq(~(lower - u)[-1]),
            pos.eq(~readout & above),
            neg.eq(~readout & below),
            self.spike.eq(Mux(pos, 0b01, Mux(neg, 0b11, 0b00))),
            self.fired.eq(~readout & (above | below)),
            # Θ >= 1, so ``above`` and ``below`` never hold together.
            self.value.eq(Mux(above, u + fired_pos, u + fired_neg)),
        ]
        return m
