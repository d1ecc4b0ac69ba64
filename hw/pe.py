"""The accumulate-only processing element: one membrane register, no multiplier."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from .checks import signed_width

__all__ = ["PEOp", "ProcessingElement"]


class PEOp(enum.Enum, shape=2):
    """What a PE does to its membrane ``U`` this cycle."""

    SKIP = 0  #: ``U`` unchanged (a zero spike, or no token)
    ADD = 1  #: ``U += operand + carry`` (``U -= w`` is ``operand = ~w``, ``carry = 1``)
    LOAD = 2  #: ``U = load``
    CLEAR = 3  #: ``U = 0``


class ProcessingElement(wiring.Component):
    """One PE: a signed ``membrane_bits`` register updated by add, skip, load or clear.

    The datapath is one adder with a carry in and a multiplexer. A subtraction ``U -= w`` is an
    ADD of the inverted operand with ``carry = 1``; the row inverts the weight a cycle earlier,
    in a register, so the adder's operand comes straight from a register. The ternary spike
    selects add, subtract or skip, so there is no multiplier. ``take`` overrides ``op`` with
    ``U = load``: it is the neuron lane's late "fired" decision, so it goes into a register of
    its own, which the membrane shows in the next cycle (a multiplexer of two registers before
    the adder), not through ``U``'s multiplexers. Arithmetic wraps at ``membrane_bits``; the integer
    contract sizes the membrane so that it never does.

    Latency: 1 cycle (``op`` and operands in cycle ``n``, ``membrane`` updated in ``n + 1``).
    Throughput: one operation per cycle.

    Ports
    -----
    op : In(PEOp)
    operand : In(signed(operand_bits))  -- a weight, or its bitwise inverse
    carry : In(1)  -- added with ``operand`` by ADD
    load : In(signed(membrane_bits))  -- value taken by LOAD or ``take``
    take : In(1)  -- ``U = load`` whatever ``op``
    membrane : Out(signed(membrane_bits))  -- ``U``
    register : Out(signed(membrane_bits))  -- ``U`` but in the cycle after ``take``: the
        register behind ``membrane``, without its multiplexer, for a reader that never acts
        in that cycle (a FIRE: the array never sees two FIREs in a row, docs/architecture.md)
    """

    def __init__(self, *, operand_bits: int, membrane_bits: int):
        self._operand_bits = signed_width("operand_bits", operand_bits)
        self._membrane_bits = signed_width("membrane_bits", membrane_bits, 2)
        if operand_bits > membrane_bits:
            raise ValueError(
                f"operand_bits ({operand_bits}) must not exceed membrane_bits ({membrane_bits})"
            )
        super().__init__({
            "op": In(PEOp),
            "operand": In(signed(operand_bits)),
            "carry": In(1),
            "load": In(signed(membrane_bits)),
            "take": In(1),
            "membrane": Out(signed(membrane_bits)),
            "register": Out(signed(membrane_bits)),
        })

    @property
    def operand_bits(self) -> int:
        return self._operand_bits

    @property
    def membrane_bits(self) -> int:
        return self._membrane_bits

    @property
    def latency(self) -> int:
        """Cycles from ``op`` to the updated ``membrane``."""
        return 1

    def elaborate(self, platform):
        m = Module()
        # ``take`` lands in a register of its own (``held``, marked ``pending``) instead of
        # steering ``u``'s multiplexers: the lane's decision comes out of a comparison of the
        # membrane, and that loop was the design's critical path on the ECP5 and the iCE40.
        # The membrane is ``held`` while ``pending``, and every operation acts on it, so the
        # port shows what a register loaded with ``load`` would.
        u = Signal(signed(self._membrane_bits))
        held = Signal(signed(self._membrane_bits), reset_less=True)
        pending = Signal()
        membrane = self.membrane
        m.d.comb += [membrane.eq(Mux(pending, held, u)), self.register.eq(u)]
        m.d.sync += [pending.eq(self.take), held.eq(self.load)]
        with m.Switch(self.op):
            with m.Case(PEOp.ADD):
                m.d.sync += u.eq(membrane + self.operand + self.carry)
            with m.Case(PEOp.LOAD):
                m.d.sync += u.eq(self.load)
            with m.Case(PEOp.CLEAR):
                m.d.sync += u.eq(0)
            with m.Default():
                m.d.sync += u.eq(membrane)
        return m
