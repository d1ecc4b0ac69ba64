"""Designs for the area benchmark: the accumulate-only PE and a conventional int8 MAC PE, each
in the same R x C array wrapper so that only the processing element differs.

The wrapper loads inputs and weights through shift chains (so any array fits a small package)
and folds every accumulator into one registered output word (so synthesis keeps every PE).
Row ``r`` holds one input (a 2-bit spike code for the spiking array, an int8 activation for the
MAC array), broadcast to its ``C`` PEs through a register, as in ``hw.SystolicArray``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.pe import PEOp, ProcessingElement

__all__ = ["MacPE", "PEArray"]


class MacPE(wiring.Component):
    """The conventional PE: ``acc += activation * weight`` (int8 x int8), or clear."""

    def __init__(self, acc_bits: int):
        self.acc_bits = acc_bits
        super().__init__({
            "clear": In(1),
            "activation": In(signed(8)),
            "weight": In(signed(8)),
            "acc": Out(signed(acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        acc = Signal(signed(self.acc_bits))
        m.d.comb += self.acc.eq(acc)
        with m.If(self.clear):
            m.d.sync += acc.eq(0)
        with m.Else():
            m.d.sync += acc.eq(acc + self.activation * self.weight)
        return m


class PEArray(wiring.Component):
    """``rows`` x ``cols`` PEs of ``kind`` ("spiking" or "mac") behind shift-chain loading."""

    def __init__(self, kind: str, rows: int, cols: int, acc_bits: int):
        if kind not in ("spiking", "mac"):
            raise ValueError(f"kind must be 'spiking' or 'mac', not {kind!r}")
        self.kind, self.rows, self.cols, self.acc_bits = kind, rows, cols, acc_bits
        super().__init__({
            "x_in": In(8),
            "x_shift": In(1),
            "w_in": In(8),
            "w_shift": In(1),
            "clear": In(1),
            "out": Out(acc_bits),
        })

    def elaborate(self, platform):
        m = Module()
        inputs = [Signal(8, name=f"x{r}") for r in range(self.rows)]
        weights = [Signal(signed(8), name=f"w{i}") for i in range(self.rows * self.cols)]
        with m.If(self.x_shift):
            m.d.sync += [a.eq(b) for a, b in zip(inputs, [self.x_in, *inputs[:-1]], strict=False)]
        with m.If(self.w_shift):
            m.d.sync += [a.eq(b) for a, b in zip(weights, [self.w_in, *weights[:-1]],
                                                 strict=False)]
        clear = Signal()
        m.d.sync += clear.eq(self.clear)
        folded = 0
        for r in range(self.rows):
            row_input = Signal(8, name=f"row{r}")
            m.d.sync += row_input.eq(inputs[r])
            row_clear = Signal(name=f"clear{r}")
            row_nonzero = Signal(name=f"nonzero{r}")
            row_neg = Signal(name=f"neg{r}")
            m.d.sync += [row_clear.eq(clear), row_nonzero.eq(row_input[0]),
                         row_neg.eq(row_input[0] & row_input[1])]
            for c in range(self.cols):
                weight = weights[r * self.cols + c]
                if self.kind == "mac":
                    pe = MacPE(self.acc_bits)
                    m.d.comb += [pe.clear.eq(clear), pe.activation.eq(row_input.as_signed()),
                                 pe.weight.eq(weight)]
                    value = pe.acc
                else:
                    # As in hw.ArrayRow: the operand (the weight, or its inverse for a -1
                    # spike) and the op come from registers; a -1 spike is ADD ~w + 1.
                    pe = ProcessingElement(operand_bits=8, membrane_bits=self.acc_bits)
                    operand = Signal(signed(8), name=f"operand{r}_{c}")
                    negative = row_input[0] & row_input[1]  # spike code 0b11: -1
                    m.d.sync += operand.eq(Mux(negative, ~weight, weight))
                    m.d.comb += [pe.operand.eq(operand), pe.carry.eq(row_neg)]
                    with m.If(row_clear):
                        m.d.comb += pe.op.eq(PEOp.CLEAR)
                    with m.Elif(row_nonzero):
                        m.d.comb += pe.op.eq(PEOp.ADD)
                    value = pe.membrane
                m.submodules[f"pe_{r}_{c}"] = pe
                folded = folded ^ value.as_unsigned()
        m.d.sync += self.out.eq(folded)
        return m
