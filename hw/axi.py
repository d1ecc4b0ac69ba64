"""An AXI4 read-only port (the AR and R channels) and a model of an external memory behind one.

The accelerator reads its weights from off-chip memory through :func:`axi_read_signature`
when its program keeps them off chip (docs/architecture.md, "Weights off chip"). Only what a
read-only INCR burst master needs is there: no IDs, no write channels, no cache or protection
attributes (an interconnect ties those off).

:class:`AxiReadMemory` is a simulation model of that external memory in gateware, so that the
Amaranth simulator and Verilator run it alike: a burst's first beat comes ``latency`` cycles
after its address was taken, then one beat every ``interval`` cycles (the bandwidth is
``data_bits / interval`` bits a cycle); it accepts several bursts and serves them in order.
It is not meant for synthesis.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
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
    It accepts up to ``outstanding`` bursts (``arready`` while its address queue has room) and
    serves them in order: a burst's ``arlen + 1`` consecutive words from ``araddr``, the first
    no earlier than ``latency`` cycles after its AR handshake, each beat no earlier than
    ``interval`` cycles after the previous one was taken, the previous burst's last included
    (a slow master only delays them). ``latency`` is at least 2 (the address is queued).

    Ports
    -----
    bus : In(axi_read_signature(addr_bits, data_bits))
    bursts : Out(32), beats : Out(32)  -- bursts and beats served since reset
    """

    def __init__(self, image, *, addr_bits: int, data_bits: int, latency: int = 2,
                 interval: int = 1, outstanding: int = 4):
        self._image = [int(word) for word in image]
        if not self._image:
            raise ValueError("the memory image must hold at least one word")
        self._addr_bits = positive_int("addr_bits", addr_bits)
        self._data_bits = positive_int("data_bits", data_bits)
        self._latency = positive_int("latency", latency)
        if self._latency < 2:
            raise ValueError(f"latency must be at least 2 cycles, not {latency}")
        self._interval = positive_int("interval", interval)
        self._outstanding = positive_int("outstanding", outstanding)
        super().__init__({
            "bus": In(axi_read_signature(addr_bits, data_bits)),
            "bursts": Out(32),
            "beats": Out(32),
        })

    @property
    def latency(self) -> int:
        """Cycles from an AR handshake to the burst's first beat, at the earliest."""
        return self._latency

    @property
    def interval(self) -> int:
        """Cycles from one beat to the next: the bandwidth is ``data_bits / interval`` bits a
        cycle."""
        return self._interval

    @property
    def outstanding(self) -> int:
        """Bursts the memory accepts before the first has been served."""
        return self._outstanding

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        shift = (self._data_bits // 8).bit_length() - 1
        m.submodules.storage = storage = Memory(shape=self._data_bits, depth=len(self._image),
                                                init=self._image)
        read = storage.read_port(domain="comb")
        entry = data.StructLayout({"addr": self._addr_bits, "len": 8, "due": 32})
        m.submodules.queue = queue = SyncFIFO(width=entry.size, depth=self._outstanding)
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        head = data.View(entry, queue.r_data)
        m.d.comb += [
            bus.arready.eq(queue.w_rdy),
            queue.w_en.eq(bus.arvalid),
            queue.w_data.eq(Cat(bus.araddr, bus.arlen, now + self._latency)),
        ]
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += self.bursts.eq(self.bursts + 1)

        active, word, left = Signal(), Signal(range(len(self._image))), Signal(8)
        ready_at = Signal(32)  # the earliest cycle of the next beat
        m.d.comb += [read.addr.eq(word), bus.rdata.eq(read.data), bus.rresp.eq(0),
                     bus.rvalid.eq(active & (now >= ready_at)), bus.rlast.eq(left == 0)]
        taken = bus.rvalid & bus.rready
        next_at = Signal(32)
        m.d.comb += next_at.eq(Mux(taken, now + self._interval, ready_at))
        with m.If(taken):
            m.d.sync += [word.eq(word + 1), left.eq(left - 1), ready_at.eq(next_at),
                         self.beats.eq(self.beats + 1)]
            with m.If(left == 0):
                m.d.sync += active.eq(0)
        with m.If((~active | (taken & (left == 0))) & queue.r_rdy):
            m.d.comb += queue.r_en.eq(1)
            m.d.sync += [active.eq(1), word.eq(head.addr >> shift), left.eq(head.len),
                         ready_at.eq(Mux(head.due > next_at, head.due, next_at))]
        return m
