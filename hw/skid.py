"""A register slice for a stream: every output, ``ready`` included, comes from a register."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """A two-entry register slice: it cuts the combinational ``ready`` path of a stream.

    ``o.valid`` and ``o.payload`` are registers, and so is ``i.ready``: a beat that arrives
    while the consumer stalls waits in the skid register, so ``i.ready`` can fall one cycle
    late without a beat being lost.

    Latency: 1 cycle from an ``i`` handshake to the beat on ``o``.
    Throughput: one beat per cycle.

    Ports
    -----
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    busy : Out(1)  -- a beat is held
    """

    def __init__(self, shape):
        self._shape = shape
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "busy": Out(1),
        })

    @property
    def shape(self):
        return self._shape

    @property
    def latency(self) -> int:
        """Cycles from an ``i`` handshake to the beat on ``o``."""
        return 1

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid = Signal.like(self.i.payload)
        m.d.comb += [
            self.i.ready.eq(~skid_valid),
            self.busy.eq(self.o.valid | skid_valid),
        ]
        # the two valids as one gate each (no enable that waits for ``o.ready``): the output
        # holds while stalled, else takes the skid or the input; the skid fills while stalled
        stalled = self.o.valid & ~self.o.ready
        m.d.sync += [
            self.o.valid.eq(stalled | skid_valid | self.i.valid),
            skid_valid.eq(stalled & (skid_valid | self.i.valid)),
        ]
        with m.If(~stalled):
            m.d.sync += self.o.payload.eq(Mux(skid_valid, skid, self.i.payload))
        # the skid register follows ``i.payload`` while it holds nothing (it is read only once
        # ``skid_valid`` is set), so that its enable is one register, not the producer's valid
        with m.If(~skid_valid):
            m.d.sync += skid.eq(self.i.payload)
        return m
