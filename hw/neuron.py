"""The neuron lane: the ternary integrate-and-fire of docs/integer-contract.md, as a mux."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .checks import signed_width
from .shift import shift_round

__all__ = ["LEAK_TERMS", "NeuronLane", "leak_layout"]

#: terms of a leak multiplier (``contract.ops.LEAK_TERMS``)
LEAK_TERMS = 2


def leak_layout(exponents: int) -> data.ArrayLayout:
    """A leak set: for each spike ``s`` (index ``s + 1``), its terms ``(sign, sel)``: ``sign``
    in -1..1 and ``sel`` the exponent's index in the program's exponents."""
    term = data.StructLayout({"sign": signed(2), "sel": range(max(1, exponents))})
    return data.ArrayLayout(data.ArrayLayout(term, LEAK_TERMS), 3)


class NeuronLane(wiring.Component):
    """One neuron lane: the spike decision of a FIRE and the soft-reset value, in two stages.

    Hidden mode (``readout = 0``)::

        V = U + b
        s = +1 if V >= Θ, -1 if V <= -Θ, else 0        (spike, as a 2-bit code)
        U' = 0 if last else (V - R, V + R or V)         (soft reset: a mux, not a multiply)

    Readout mode (``readout = 1``): ``U' = U + b`` and no spike. ``binary``: no ``-1`` spikes.

    With ``leak_exponents`` (a program whose neurons leak) the lane also rescales: ``value`` is
    ``Λ_s(V - R s)`` for every ``s`` (readout mode: ``Λ_0(U + b)``), ``Λ_s`` the terms of
    ``leak[s + 1]`` (``sum_j sign_j shift_round(x, e[sel_j])``), and the PE takes it for every
    FIRE but the last step's.

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

    def __init__(self, *, bias_bits: int, membrane_bits: int,
                 leak_exponents: tuple[int, ...] | None = None):
        self._bias_bits = signed_width("bias_bits", bias_bits)
        self._membrane_bits = signed_width("membrane_bits", membrane_bits, 2)
        if bias_bits > membrane_bits:
            raise ValueError(
                f"bias_bits ({bias_bits}) must not exceed membrane_bits ({membrane_bits})"
            )
        if leak_exponents is not None and (not leak_exponents or any(
                not isinstance(e, int) for e in leak_exponents)):
            raise ValueError(f"leak_exponents must be a tuple of integers, not"
                             f" {leak_exponents!r}")
        self._exponents = None if leak_exponents is None else tuple(leak_exponents)
        ports = {
            "bias": In(signed(bias_bits)),
            "threshold": In(unsigned(membrane_bits - 1)),
            "reset": In(unsigned(membrane_bits - 1)),
            "readout": In(1),
            "binary": In(1),
            "membrane": In(signed(membrane_bits)),
            "value": Out(signed(membrane_bits)),
            "fired": Out(1),
            "spike": Out(2),
        }
        if self._exponents is not None:
            ports["leak"] = In(leak_layout(len(self._exponents)))
        super().__init__(ports)

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
        readout, binary = Signal(), Signal()
        m.d.sync += [
            fired_pos.eq(self.bias - self.reset),
            fired_neg.eq(self.bias + self.reset),
            upper.eq(self.threshold - self.bias),
            lower.eq(-self.threshold - self.bias),
            readout.eq(self.readout),
            binary.eq(self.binary),
        ]

        u = self.membrane
        above, below = Signal(), Signal()
        pos, neg = Signal(), Signal()
        m.d.comb += [
            # ``u >= upper`` and ``u <= lower`` as signs of differences: carry chains.
            above.eq(~(u - upper)[-1]),
            below.eq(~(lower - u)[-1] & ~binary),
            pos.eq(~readout & above),
            neg.eq(~readout & below),
            self.spike.eq(Mux(pos, 0b01, Mux(neg, 0b11, 0b00))),
            self.fired.eq(pos | neg),
        ]
        if self._exponents is None:
            # Θ >= 1, so ``above`` and ``below`` never hold together.
            m.d.comb += self.value.eq(Mux(above, u + fired_pos, u + fired_neg))
            return m

        bias = Signal(signed(self._bias_bits))
        leak = Signal.like(self.leak)
        m.d.sync += [bias.eq(self.bias), leak.eq(self.leak)]
        before = Signal(wide)  # V - R s, or U + b when no spike (and in readout mode)
        m.d.comb += before.eq(Mux(pos, u + fired_pos, Mux(neg, u + fired_neg, u + bias)))
        terms = Signal.like(leak[0])
        m.d.comb += terms.eq(Mux(pos, leak[2], Mux(neg, leak[0], leak[1])))
        reach = max(0, *self._exponents)
        total = 0
        for j in range(LEAK_TERMS):
            shifted = shift_round(m, before, self._exponents, terms[j].sel,
                                  self._membrane_bits + reach + 2)
            total = total + Mux(terms[j].sign == 0, 0,
                                Mux(terms[j].sign[-1], -shifted, shifted))
        m.d.comb += self.value.eq(total)
        return m
