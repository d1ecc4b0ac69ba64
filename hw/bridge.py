"""The accelerator behind a UART: what a board runs (the protocol of :mod:`hw.protocol`).

:class:`UartBridge` holds :class:`hw.SynthTop` (the accelerator, its logits stream as a port,
its cycle and spike counters behind a byte-wide status port), a :class:`hw.uart.UartRx` and a
:class:`hw.uart.UartTx`, and a small controller between them. An INFER's window bytes are
collected first and then offered to the accelerator back to back, as
:class:`hw.InferenceHarness` offers its context (the first ``window - 1`` held, the last
running the program), so ``cycles`` counts the inference and not the UART. The logits follow
the result on the UART when the INFER asked for them (the accelerator waits for the UART, a
logit at a time), and are drained otherwise.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import protocol
from .checks import positive_int
from .params import SPIKE_COUNT_BITS, AcceleratorParams
from .synth_top import SynthTop
from .uart import UartRx, UartTx

__all__ = ["UartBridge"]


class UartBridge(wiring.Component):
    """A board's logic: ``rx`` and ``tx`` (8N1, ``divisor`` clock cycles a bit) and the
    accelerator of ``params``, answering the protocol of :mod:`hw.protocol`.

    ``window`` is the bytes per inference (the context ``k`` of a program without attention,
    1 for a stream a byte at a time); ``build_id`` is the 32-bit identity the HELLO reply
    carries; ``streams`` its flag. Encoders (two passes a sequence) and programs with their
    weights off chip (no memory controller on the board) are refused.
    """

    def __init__(self, params: AcceleratorParams, *, window: int, build_id: int, streams: bool,
                 divisor: int):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        if params.bidirectional:
            raise ValueError("an encoder's program runs a sequence twice; the UART bridge"
                             " serves causal programs only")
        if params.weights_offchip:
            raise ValueError("a program with its weights off chip needs a memory controller;"
                             " the UART bridge serves programs with their weights on chip")
        window = positive_int("window", window)
        if window > 255 or (window != 1 and (params.attentions or window != params.context)):
            raise ValueError(f"window must be 1 or the context of a program without attention,"
                             f" not {window}")
        if not isinstance(build_id, int) or not 0 <= build_id < 1 << 32:
            raise ValueError(f"build_id must be a 32-bit unsigned integer, not {build_id!r}")
        if (SPIKE_COUNT_BITS + 7) // 8 != protocol.COUNTER_BYTES:
            raise ValueError("the protocol's counter width does not match the accelerator's")
        self._params = params
        self._window = window
        self._build_id = build_id
        self._streams = bool(streams)
        self._divisor = positive_int("divisor", divisor)
        self._counters = len(params.spiking_layers)
        # An inference's logits are drained unless its INFER asked for them, and the flag is
        # taken from the next INFER's second byte: the drain must be over by then. It takes
        # about ``outputs`` cycles from the token; the UART needs the result and two bytes.
        gap = (2 + protocol.CYCLE_BYTES + protocol.COUNTER_BYTES * self._counters + 2) * 10
        if gap * self._divisor <= params.outputs + 16:
            raise ValueError(f"divisor {self._divisor} is too fast for {params.outputs} logits:"
                             " the next INFER could arrive before they have been drained")
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    @property
    def params(self) -> AcceleratorParams:
        return self._params

    @property
    def window(self) -> int:
        return self._window

    @property
    def build_id(self) -> int:
        return self._build_id

    @property
    def divisor(self) -> int:
        return self._divisor

    @property
    def hello(self) -> bytes:
        """The HELLO reply this bridge sends."""
        return protocol.hello_reply(self._build_id, self._window, self._counters, self._streams,
                                    self._params.outputs, self._params.membrane_bits)

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = rx = UartRx(self._divisor)
        m.submodules.uart_tx = tx = UartTx(self._divisor)
        m.submodules.core = core = SynthTop(self._params, logits=True)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
        status_bytes = core.status_bytes
        assert protocol.result_bytes(self._counters) == 2 + status_bytes

        n = self._window
        context = Signal(8 * n)
        index = Signal(range(n + 1))
        restart = Signal()
        token = Signal(8)
        reply = Signal(range(max(len(self.hello), 2 + status_bytes) + 1))
        kind = Signal(2)  # 0: HELLO reply, 1: result, 2: error, 3: a logit
        outputs = self._params.outputs
        logit_bytes = protocol.logit_bytes(self._params.membrane_bits)
        keep = Signal()  # this INFER's logits go out on the UART
        logit = Signal(signed(8 * logit_bytes))
        sent = Signal(range(outputs))  # logits sent of this INFER's
        m.d.comb += core.logits.ready.eq(~keep)  # drained unless asked for
        # status byte reply - 2 is on status_data a cycle after reply changes (SynthTop)
        m.d.comb += core.status_addr.eq(reply - 2)
        m.d.comb += core.tokens.payload.eq(
            Cat(context.word_select(index, 8), restart & (index == 0), index != n - 1))

        byte, last = Signal(8), Signal()
        with m.Switch(kind):
            with m.Case(0):
                with m.Switch(reply):
                    for position, value in enumerate(self.hello):
                        with m.Case(position):
                            m.d.comb += byte.eq(value)
                m.d.comb += last.eq(reply == len(self.hello) - 1)
            with m.Case(1):
                with m.Switch(reply):
                    with m.Case(0):
                        m.d.comb += byte.eq(protocol.RESULT)
                    with m.Case(1):
                        m.d.comb += byte.eq(token)
                    with m.Default():
                        m.d.comb += byte.eq(core.status_data)
                m.d.comb += last.eq(reply == 1 + status_bytes)
            with m.Case(3):
                m.d.comb += [byte.eq(logit.as_unsigned().word_select(reply, 8)),
                             last.eq(reply == logit_bytes - 1)]
            with m.Default():
                m.d.comb += [byte.eq(protocol.ERROR), last.eq(1)]
        m.d.comb += tx.data.payload.eq(byte)

        with m.FSM():
            with m.State("COMMAND"):
                m.d.comb += rx.data.ready.eq(1)
                with m.If(rx.data.valid):
                    m.d.sync += reply.eq(0)
                    with m.If(rx.data.payload == protocol.INFER):
                        m.next = "FLAGS"
                    with m.Elif(rx.data.payload == protocol.HELLO):
                        m.d.sync += kind.eq(0)
                        m.next = "SEND"
                    with m.Else():
                        m.d.sync += kind.eq(2)
                        m.next = "SEND"
            with m.State("FLAGS"):
                m.d.comb += rx.data.ready.eq(1)
                with m.If(rx.data.valid):
                    m.d.sync += [restart.eq(rx.data.payload[0]), index.eq(0),
                                 keep.eq((rx.data.payload & protocol.LOGITS) != 0), sent.eq(0)]
                    m.next = "WINDOW"
            with m.State("WINDOW"):
                m.d.comb += rx.data.ready.eq(1)
                with m.If(rx.data.valid):
                    m.d.sync += index.eq(index + 1)
                    if n > 1:
                        m.d.sync += context.eq(Cat(context[8:], rx.data.payload))
                    else:
                        m.d.sync += context.eq(rx.data.payload)
                    with m.If(index == n - 1):
                        m.d.sync += index.eq(0)
                        m.next = "FEED"
            with m.State("FEED"):
                m.d.comb += core.tokens.valid.eq(1)
                with m.If(core.tokens.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == n - 1):
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += core.next_token.ready.eq(1)
                with m.If(core.next_token.valid):
                    m.d.sync += [token.eq(core.next_token.payload), kind.eq(1), reply.eq(0)]
                    m.next = "PREPARE"
            with m.State("PREPARE"):  # a cycle for status_data to follow reply
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += tx.data.valid.eq(1)
                with m.If(tx.data.ready):
                    m.d.sync += reply.eq(reply + 1)
                    m.next = "PREPARE"
                    with m.If(last):
                        m.next = "COMMAND"
                        with m.If(kind == 3):
                            m.d.sync += sent.eq(sent + 1)
                            with m.If(sent == outputs - 1):
                                m.d.sync += keep.eq(0)
                            with m.Else():
                                m.next = "LOGIT"
                        with m.Elif((kind == 1) & keep):
                            m.next = "LOGIT"
            with m.State("LOGIT"):  # the next logit, sign-extended to whole bytes
                m.d.comb += core.logits.ready.eq(1)
                with m.If(core.logits.valid):
                    m.d.sync += [logit.eq(core.logits.payload), kind.eq(3), reply.eq(0)]
                    m.next = "SEND"
        return m
