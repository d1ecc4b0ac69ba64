"""A memory split in depth into block-RAM-sized pieces, each read registered before the merge.

A synchronous read of a memory deeper than one block RAM comes out of several RAMs and a
multiplexer that synthesis puts behind their outputs. On the ECP5 a DP16KD without its output
register takes 5.8 ns from the clock to its data, so the RAM, the multiplexer and the register
after them make the design's critical path (docs/architecture.md, "Fmax"). Here every piece's
read data is registered on its own, straight off its RAMs, and the merge comes after those
registers: a register with nothing between it and a RAM's data pins is what
:func:`rtl_gen.outreg.absorb_output_registers` moves into the RAM's own output register
(``REGMODE=OUTREG``, 0.96 ns from the clock). The merge then takes a cycle that used to be the
register's, so the read keeps its latency of two cycles.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .checks import positive_int
from .params import address_bits

__all__ = ["SMALL_WORDS", "RegisteredBank", "bram_words", "rom_in_logic"]

#: The deepest read-only bank built as logic (a register on its address, then the logic).
SMALL_WORDS = 64


def rom_in_logic(depth: int) -> bool:
    """Whether a read-only :class:`RegisteredBank` of ``depth`` words is logic, no block
    RAM."""
    return depth <= SMALL_WORDS

#: An ECP5 DP16KD's port widths and the words it holds at each (16 Kib, or 18 Kib with the
#: parity bits of the 9, 18 and 36-bit modes); 36 bits is the pseudo dual port mode.
BRAM_MODES = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))


def bram_words(width: int, depth: int) -> int:
    """Words of each piece of a ``width`` x ``depth`` memory: the depth of the DP16KD mode
    (:data:`BRAM_MODES`) that holds the whole memory in the fewest RAMs, the shallowest of
    those that tie, so that yosys has no cheaper way to map a piece than side by side RAMs of
    that mode (with a deeper mode it could split a piece in depth behind a multiplexer)."""
    width, depth = positive_int("width", width), positive_int("depth", depth)
    return min(BRAM_MODES, key=lambda mode: (-(-width // mode[0]) * -(-depth // mode[1]),
                                             mode[1]))[1]


class RegisteredBank(wiring.Component):
    """A ``depth`` x ``shape`` memory whose reads take two cycles: ``addr`` in cycle ``n``,
    ``data`` in ``n + 2``. With ``writable``, a write port (``w_en``, ``w_addr``, ``w_data``);
    a read in the cycle of a write to its address reads the old word.

    The memory is ``ceil(depth / bram_words(width, depth))`` pieces (:func:`bram_words`); the
    read data of each is registered, and the merge selects among the registers by the address's
    upper bits (registered twice). One piece is the plain memory and one register.

    A read-only bank of at most :data:`SMALL_WORDS` words is logic, not a block RAM
    (``rom_style = "logic"``: each data bit a function of at most six address bits, a
    slice's LUTs and multiplexers on the ECP5). Its address is registered first and the
    logic reads that register, so that no path runs from the requester's address through the
    logic (``addr`` in ``n``, the address register in ``n + 1``, the data register in
    ``n + 2``). (The same for a small writable bank, its writes registered too, made the
    transformer's routing congest on the ECP5: nextpnr needed minutes more and gave a worse
    Fmax, so a writable bank is always read as below.)

    Latency: :attr:`latency` = 2. Throughput: a read (and a write) per cycle.

    Ports
    -----
    addr : In(range(depth))
    data : Out(shape)  -- the word at the ``addr`` of two cycles before
    w_en : In(1), w_addr : In(range(depth)), w_data : In(shape)  -- only when ``writable``
    """

    def __init__(self, *, shape, depth: int, init=(), writable: bool = False):
        self._shape = Shape.cast(shape)
        self._depth = positive_int("depth", depth)
        self._init = list(init)
        if len(self._init) > self._depth:
            raise ValueError(f"init has {len(self._init)} words, more than depth ({depth})")
        if not isinstance(writable, bool):
            raise TypeError(f"writable must be a bool, not {writable!r}")
        self._writable = writable
        ports = {"addr": In(unsigned(address_bits(self._depth))), "data": Out(self._shape)}
        if writable:
            ports.update(w_en=In(1), w_addr=In(unsigned(address_bits(self._depth))),
                         w_data=In(self._shape))
        super().__init__(ports)

    @property
    def latency(self) -> int:
        return 2

    @property
    def piece_words(self) -> int:
        """Words of each piece (the last may hold fewer)."""
        return min(self._depth, bram_words(self._shape.width, self._depth))

    @property
    def pieces(self) -> int:
        return -(-self._depth // self.piece_words)

    def elaborate(self, platform):
        m = Module()
        if not self._writable and rom_in_logic(self._depth):
            memory = Memory(shape=self._shape, depth=self._depth, init=self._init,
                            attrs={"rom_style": "logic"})
            m.submodules.rom = memory
            read = memory.read_port(domain="comb")
            address = Signal.like(self.addr, name="address", reset_less=True)
            m.d.sync += [address.eq(self.addr), self.data.eq(read.data)]
            m.d.comb += read.addr.eq(address)
            return m
        words, pieces = self.piece_words, self.pieces
        low = (words - 1).bit_length() if pieces > 1 else len(self.addr)
        outputs = []
        for index in range(pieces):
            start = index * words
            size = min(words, self._depth - start)
            memory = Memory(shape=self._shape, depth=size,
                            init=self._init[start:start + size])
            m.submodules[f"piece{index}"] = memory
            read = memory.read_port()
            m.d.comb += read.addr.eq(self.addr[:low])
            # nothing between the RAM's data pins and this register (reset-less: a RAM's
            # output register has no reset of its own here)
            data = Signal(self._shape, name=f"data{index}", reset_less=True)
            m.d.sync += data.eq(read.data)
            outputs.append(data)
            if self._writable:
                write = memory.write_port()
                hit = (self.w_addr[low:] == index) if pieces > 1 else 1
                m.d.comb += [write.en.eq(self.w_en & hit), write.addr.eq(self.w_addr[:low]),
                             write.data.eq(self.w_data)]
        if pieces == 1:
            m.d.comb += self.data.eq(outputs[0])
            return m
        select = Signal(range(pieces), reset_less=True)
        select2 = Signal(range(pieces), reset_less=True)
        m.d.sync += [select.eq(self.addr[low:]), select2.eq(select)]
        with m.Switch(select2):
            for index, data in enumerate(outputs):
                with m.Case(index):
                    m.d.comb += self.data.eq(data)
        return m
