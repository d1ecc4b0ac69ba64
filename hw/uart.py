"""A small 8N1 UART: a receiver and a transmitter with stream ports.

Hand-written because no maintained Amaranth UART is on PyPI (``amaranth-stdio`` there is a
name placeholder, version 0). Both take ``divisor``, the clock cycles per bit (the board's
clock over the baud rate, rounded: 104 for 115,200 baud at 12 MHz, an error of 0.2%).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import positive_int

__all__ = ["MIN_DIVISOR", "UartRx", "UartTx"]

MIN_DIVISOR = 4
"""Fewest clock cycles per bit: the receiver samples each bit in its middle."""


def _divisor(value) -> int:
    value = positive_int("divisor", value)
    if value < MIN_DIVISOR:
        raise ValueError(f"divisor must be at least {MIN_DIVISOR} clock cycles per bit,"
                         f" not {value}")
    return value


class UartRx(wiring.Component):
    """8N1 receiver. ``rx`` passes two flip-flops; a low level starts a frame, sampled again in
    the middle of the start bit (a shorter glitch is ignored), then each data bit, LSB first,
    a ``divisor`` apart, and the stop bit. A frame with a high stop bit becomes a beat on
    ``data``, held until taken; a frame whose stop bit is low (a framing error) is dropped. A
    byte not taken before the next frame's stop bit is replaced by that frame's: the consumer
    has a whole frame (``10 * divisor`` cycles) to take each byte.

    Latency: a byte is offered ``2 + divisor // 2 + 9 * divisor`` cycles (about 9.5 bits)
    after its start bit's falling edge reaches ``rx``.
    """

    def __init__(self, divisor: int):
        self._divisor = _divisor(divisor)
        super().__init__({"rx": In(1, init=1), "data": Out(stream.Signature(8))})

    @property
    def divisor(self) -> int:
        return self._divisor

    @property
    def latency(self) -> int:
        """Cycles from a start bit's falling edge on ``rx`` to the byte's beat."""
        return 2 + self._divisor // 2 + 9 * self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        meta, line = Signal(init=1), Signal(init=1)
        m.d.sync += [meta.eq(self.rx), line.eq(meta)]
        timer = Signal(range(div))
        bit = Signal(range(8))
        shift = Signal(8)
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(div - 1), bit.eq(0)]
                    m.next = "IDLE"
                    with m.If(~line):
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), timer.eq(div - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(line):
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter: takes a byte from ``data`` while idle and sends its frame on ``tx``
    (start bit, eight data bits LSB first, stop bit), ``divisor`` cycles a bit; ``ready``
    rises again after the whole stop bit, so back-to-back bytes are full frames.

    Throughput: a byte per ``10 * divisor + 1`` cycles.
    """

    def __init__(self, divisor: int):
        self._divisor = _divisor(divisor)
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1)})

    @property
    def divisor(self) -> int:
        return self._divisor

    @property
    def cycles_per_byte(self) -> int:
        return 10 * self._divisor + 1

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self._divisor))
        count = Signal(range(11))
        shift = Signal(10)
        m.d.comb += self.data.ready.eq((timer == 0) & (count == 0))
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(count != 0):
            m.d.sync += [self.tx.eq(shift[0]), shift.eq(shift[1:]), count.eq(count - 1),
                         timer.eq(self._divisor - 1)]
        with m.Elif(self.data.valid):
            m.d.sync += [shift.eq(Cat(Const(0, 1), self.data.payload, Const(1, 1))),
                         count.eq(10)]
        return m
