"""The accumulate-only processing element: one membrane register, no multiplier."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from .checks import signed_width

__all__ = ["PEOp", "ProcessingElement"]


class PEOp(enum.Enum, shape=3):
    """What a PE does to its membrane ``U`` this cycle."""

    SKIP = 0  #: ``U`` unchanged (a zero spike, or no token)
    ADD = 1  #: ``U += operand`` (a +1 spike on a weight, or a bias)
    SUB = 2  #: ``U -= operand`` (a -1 spike on a weight)
    LOAD = 3  #: ``U = load`` (the neuron lane's post-fire value)
    CLEAR = 4  #: ``U = 0``


class ProcessingElement(wiring.Component):
    """One PE: a signed ``membrane_bits`` register updated by add, subtract, skip, load, clear.

    The datapath is one adder (``SUB`` inverts the operand and carries in a one) and a
    multiplexer; the ternary spike selects add, subtract or skip, so there is no multiplier.
    Arithmetic wraps at ``membrane_bits``; the integer contract sizes the membrane so that it
    never does.

    Latency: 1 cycle (``op`` and operands in cycle ``n``, ``membrane`` updated in ``n + 1``).
    Throughput: one operation per cycle.

    Ports
    -----
    op : In(PEOp)
    operand : In(signed(operand_bits))  -- a weight (or a bias, for ADD)
    load : In(signed(membrane_bits))  -- value taken by LOAD
    membrane : Out(signed(membrane_bits))  -- the register ``U``
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
            "load": In(signed(membrane_bits)),
            "membrane": Out(signed(membrane_bits)),
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
        u = Signal(signed(self._membrane_bits))
        m.d.comb += self.membrane.eq(u)
        # One adder for ADD and SUB: u - w = u + ~w + 1, so the operand is XORed with the
        # subtract flag and the flag is the carry in.
        sub = Signal()
        addend = Signal(signed(self._operand_bits))
        m.d.comb += [
            sub.eq(self.op == PEOp.SUB),
            addend.eq(self.operand ^ sub.replicate(self._operand_bits)),
        ]
        with m.Switch(self.op):
            with m.Case(PEOp.ADD, PEOp.SUB):
                m.d.sync += u.eq(u + addend + sub)
            with m.Case(PEOp.LOAD):
                m.d.sync += u.eq(self.load)
            with m.Case(PEOp.CLEAR):
                m.d.sync += u.eq(0)
        return m
