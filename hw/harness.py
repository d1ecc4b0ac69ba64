"""The accelerator behind parallel ports, for cocotb: Python wakes once per inference (a byte
of a stream, or a window), not per cycle."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .params import SPIKE_COUNT_BITS, AcceleratorParams

__all__ = ["LFSR_TAPS", "InferenceHarness", "check_stall_seed", "drive_accelerator", "stalls"]

LFSR_TAPS = (16, 14, 13, 11)
"""Taps of the 16-bit maximal-length Fibonacci LFSR that drives the stalls."""


def check_stall_seed(seed) -> None:
    """A harness's ``stall_seed``: an integer (not a bool) or None."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"stall_seed must be an integer or None, not {seed!r}")


def stalls(m: Module, seed: int | None):
    """``(stall_in, stall_logits, stall_next)``: each about a quarter of the cycles, from a
    16-bit Fibonacci LFSR (taps :data:`LFSR_TAPS`, one step per cycle) whose reset state is the
    low 16 bits of ``seed`` (1 if those are zero); all zero when ``seed`` is None."""
    if seed is None:
        return 0, 0, 0
    lfsr = Signal(16, init=(seed & 0xFFFF) or 1)
    feedback = 0
    for tap in LFSR_TAPS:
        feedback = feedback ^ lfsr[tap - 1]
    m.d.sync += lfsr.eq(Cat(feedback, lfsr[:-1]))
    return lfsr[0] & lfsr[3], lfsr[5] & lfsr[9], lfsr[7] & lfsr[12]


def drive_accelerator(m: Module, harness, acc, busy, pending, payload, final=1) -> Value:
    """What the harness does around its accelerator: offer ``payload`` while ``busy`` and
    ``pending`` (holding an offer once made, as a stream must, through the stall LFSR's gaps),
    shift the logits into ``harness.logits_flat`` and, with the next token while ``final``,
    raise ``done`` and drop ``busy``. Returns "the accelerator took the payload this cycle"."""
    stall_in, stall_logits, stall_next = stalls(m, harness.stall_seed)
    mb = harness.params.membrane_bits
    offered, valid = Signal(), Signal()
    m.d.comb += [
        valid.eq(busy & pending & (offered | ~stall_in)),
        acc.tokens.valid.eq(valid),
        acc.tokens.payload.eq(payload),
        acc.logits.ready.eq(busy & ~stall_logits),
        acc.next_token.ready.eq(busy & ~stall_next),
        harness.cycles.eq(acc.cycles),
        harness.spike_counts.eq(acc.spike_counts.as_value()),
    ]
    m.d.sync += offered.eq(valid & ~acc.tokens.ready)
    with m.If(acc.logits.valid & acc.logits.ready):
        m.d.sync += harness.logits_flat.eq(Cat(harness.logits_flat[mb:], acc.logits.payload))
    with m.If(acc.next_token.valid & acc.next_token.ready & final):
        m.d.sync += [harness.token.eq(acc.next_token.payload), harness.done.eq(1), busy.eq(0)]
    return valid & acc.tokens.ready


class InferenceHarness(wiring.Component):
    """Load ``n`` bytes, pulse ``start``, wait for ``done``, read the logits of the last one.

    ``n`` (``window``) is 1 for a stream a byte per start (every position checked, the
    key/value caches carried), or the context ``k`` of a program without attention, whose
    positions depend on their window alone: the first ``k - 1`` bytes go to the accelerator
    held (they only enter the window), the last runs the program. For an encoder's program
    ``n`` is the length of its sequences (at most its window): the ``n`` bytes go twice, first
    flagged ``prefill`` (the first restarts the stream, whatever bit ``8n`` says: every
    sequence is a stream of its own), and ``done`` follows the logits of the last, the
    sequence's pooled logits.

    Ports
    -----
    context : In(unsigned(8*n + 1))
        Byte ``i`` (``i = 0`` the oldest) at bits ``[8i, 8i+8)``; bit ``8n``: the first byte
        starts a new stream (empty caches and window). Sampled with ``start``.
    start : In(1)
        Starts one inference; taken only while idle (after reset or while ``done`` is high).
    done : Out(1)
        Low from the cycle after an accepted ``start``, high from the cycle after the
        ``next_token`` beat until the next accepted ``start``; the outputs are stable while high.
    logits_flat : Out(unsigned(outputs*Mb))
        Logit ``j`` at bits ``[j*Mb, (j+1)*Mb)`` (256 logits, or an encoder's classes).
    token : Out(unsigned(8)), cycles : Out(unsigned(32))
        The arg-max and the accelerator's cycle count of the inference.
    spike_counts : Out(unsigned(24*S))
        Counter ``i`` (spiking layer ``i``) at bits ``[24i, 24i+24)``.

    With ``stall_seed`` the LFSR of :func:`stalls` withholds ``valid``
    on ``tokens`` and ``ready`` on ``logits`` and ``next_token``; only ``cycles`` changes.
    """

    def __init__(self, params: AcceleratorParams, stall_seed: int | None = None, *,
                 window: int = 1):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        check_stall_seed(stall_seed)
        if params.bidirectional:
            if not 1 <= window <= params.window:
                raise ValueError(f"an encoder's harness takes sequences of 1 to {params.window}"
                                 f" bytes, not {window}")
        elif window != 1 and (params.attentions or window != params.context):
            raise ValueError(f"a harness of {window} bytes per start needs a program without"
                             f" attention whose context is {window} bytes")
        self._params = params
        self._stall_seed = stall_seed
        self._window = window
        counters = len(params.spiking_layers)
        super().__init__({
            "context": In(unsigned(8 * window + 1)),
            "start": In(1),
            "done": Out(1),
            "logits_flat": Out(unsigned(params.outputs * params.membrane_bits)),
            "token": Out(unsigned(8)),
            "cycles": Out(unsigned(32)),
            "spike_counts": Out(unsigned(SPIKE_COUNT_BITS * counters)),
        })

    @property
    def params(self) -> AcceleratorParams:
        return self._params

    @property
    def stall_seed(self) -> int | None:
        return self._stall_seed

    @property
    def window(self) -> int:
        """Bytes per start."""
        return self._window

    def elaborate(self, platform):
        m = Module()
        n = self._window
        m.submodules.accelerator = acc = Accelerator(self._params)
        busy = Signal()
        context = Signal.like(self.context)
        if self._params.bidirectional:  # twice: the first pass prefills, the second queries
            position = Signal(range(2 * n + 1))
            first = position < n
            index = Signal(range(n))
            m.d.comb += index.eq(Mux(first, position, position - n))
            byte = context.word_select(index, 8)
            beat = Cat(byte, position == 0, Const(0, 1), first)  # each sequence restarts
            accepted = drive_accelerator(m, self, acc, busy, position != 2 * n, beat,
                                         final=position == 2 * n)
        else:
            position = Signal(range(n + 1))
            restart = context[8 * n] & (position == 0)
            beat = Cat(context.word_select(position, 8), restart, position != n - 1)
            accepted = drive_accelerator(m, self, acc, busy, position != n, beat)
        with m.If(accepted):
            m.d.sync += position.eq(position + 1)
        with m.If(self.start & ~busy):
            m.d.sync += [busy.eq(1), position.eq(0), self.done.eq(0), context.eq(self.context)]
        return m
