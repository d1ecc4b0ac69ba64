"""The contract's ``shift_round`` as hardware: a constant shift chosen from a few."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed

__all__ = ["shift_round"]


def shift_round(m: Module, value, shifts: tuple[int, ...], select, width: int, *,
                registered: bool = False):
    """``shift_round(value, shifts[select])`` of the contract: ``value << s``, or for ``s < 0``
    ``(value + 2^(-s-1)) >> -s`` (one adder and two multiplexers of constants).

    ``registered``: the sum and the selection go into registers, so that the result is that of
    ``value`` and ``select`` one cycle before, and the adder and the shift's multiplexer are
    in two cycles."""
    half = Signal(signed(len(value) + 1))
    total = Signal(signed(len(value) + 1))
    out = Signal(signed(width))
    with m.Switch(select):
        for index, s in enumerate(shifts):
            with m.Case(index):
                m.d.comb += half.eq(1 << (-s - 1) if s < 0 else 0)
    if registered:
        chosen = Signal.like(select)
        m.d.sync += [total.eq(value + half), chosen.eq(select)]
        select = chosen
    else:
        m.d.comb += total.eq(value + half)
    with m.Switch(select):
        for index, s in enumerate(shifts):
            with m.Case(index):
                m.d.comb += out.eq(total << s if s >= 0 else total >> -s)
    return out
