"""An AXI4 read-only port (the AR and R channels) and a model of an external memory behind one.

The accelerator reads its weights from off-chip memory through :func:`axi_read_signature`
when its program keeps them off chip (docs/architecture.md, "Weights off chip"). Only what a
read-only INCR burst master needs is there: no IDs, no write channels, no cache or protection
attributes (an interconnect ties those off).

:class:`AxiReadMemory` is a simulation model of that external memory in gateware, so that the
Amaranth simulator and Verilator run it alike: a burst's first beat comes ``latency`` cycles
after its address was taken, then one beat every ``interval`` cycles (the bandwidth is
``data_bits / interval`` bits a cycle), one burst at a time. It is not meant for synthesis.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .checks import positive_int

__all__ = ["BURST_INCR", "AxiReadMemory", "axi_read_signature"]

BURST_INCR = 0b01
"""``ARBURST`` of an incrementing burst."""


def axi_read_signature(addr_bits: int, data_bits: int) -> wiring.Signature:
    """The AR and R channels of AXI4, from the master's side (``Out``: driven by the master).

    ``araddr`` is a byte address; ``arlen`` beats minus one (INCR: up to 256); ``arsize``
    log2 of the bytes per beat; ``rresp`` 0 (OKAY) from a memory that cannot fail.
    """
    addr_bits = positive_int("addr_bits", addr_bits)
    data_bits = positive_int("data_bits", data_bits)
    if data_bits < 8 or data_bits & (data_bits - 1):
        raise ValueError(f"AXI4 data width must be a power of two of at least 8, not {data_bits}")
    return wiring.Signature({
        "araddr": Out(addr_bits),
        "arlen": Out(8),
        "arsize": Out(3),
        "arburst": Out(2),
        "arvalid": Out(1),
        "arready": In(1),
        "rdata": In(data_bits),
        "rresp": In(2),
        "rlast": In(1),
        "rvalid": In(1),
        "rready": Out(1),
    })


class AxiReadMemory(wiring.Component):
    """A read-only external memory of ``len(image)`` words behind an AXI4 read port.

    ``image``: one int per ``data_bits`` word, word ``i`` at byte address ``i * data_bits / 8``.
    A burst taken on AR (``arready`` is high while no burst is being served) returns
    ``arlen + 1`` consecutive words from ``araddr``: the first ``latency`` cycles after the AR
    handshake, each further one ``interval`` cycles after the previous was taken (a slow
    master only delays them). Bursts do not overlap: the next AR is taken in the cycle after
    the last beat.

    Ports
    -----
    bus : In(axi_read_signature(addr_bits, data_bits))
    bursts : Out(32), beats : Out(32)  -- bursts and beats served since reset
    """

    def __init__(self, image, *, addr_bits: int, data_bits: int, latency: int = 1,
                 interval: int = 1):
        self._image = [int(word) for word in image]
        if not self._image:
            raise ValueError("the memory image must hold at least one word")
        self._data_bits = positive_int("data_bits", data_bits)
        self._latency = positive_int("latency", latency)
        self._interval = positive_int("interval", interval)
        super().__init__({
            "bus": In(axi_read_signature(addr_bits, data_bits)),
            "bursts": Out(32),
            "beats": Out(32),
        })

    @property
    def latency(self) -> int:
        """Cycles from an AR handshake to the burst's first beat."""
        return self._latency

    @property
    def interval(self) -> int:
        """Cycles from one beat to the next: the bandwidth is ``data_bits / interval`` bits a
        cycle."""
        return self._interval

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        shift = (self._data_bits // 8).bit_length() - 1
        m.submodules.storage = storage = Memory(shape=self._data_bits, depth=len(self._image),
                                                init=self._image)
        read = storage.read_port(domain="comb")
        word = Signal(range(len(self._image)))
        left = Signal(9)
        wait = Signal(range(max(self._latency, self._interval) + 1))
        m.d.comb += [read.addr.eq(word), bus.rdata.eq(read.data), bus.rresp.eq(0)]
        with m.FSM(name="burst"):
            with m.State("IDLE"):
                m.d.comb += bus.arready.eq(1)
                with m.If(bus.arvalid):
                    m.d.sync += [word.eq(bus.araddr >> shift), left.eq(bus.arlen),
                                 wait.eq(max(0, self._latency - 2)),
                                 self.bursts.eq(self.bursts + 1)]
                    m.next = "WAIT" if self._latency > 1 else "BEAT"
            with m.State("WAIT"):
                with m.If(wait == 0):
                    m.next = "BEAT"
                with m.Else():
                    m.d.sync += wait.eq(wait - 1)
            with m.State("BEAT"):
                m.d.comb += [bus.rvalid.eq(1), bus.rlast.eq(left == 0)]
                with m.If(bus.rready):
                    m.d.sync += [word.eq(word + 1), left.eq(left - 1),
                                 wait.eq(max(0, self._interval - 2)),
                                 self.beats.eq(self.beats + 1)]
                    with m.If(left == 0):
                        m.next = "IDLE"
                    with m.Elif(self._interval > 1):
                        m.next = "WAIT"
        return m
