"""A wrapper of the accelerator for cocotb: Python wakes once per inference, not per cycle."""

from __future__ import annotations

import logging

from amaranth.hdl import Cat, Module, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .params import VOCAB, AcceleratorParams

__all__ = ["LFSR_TAPS", "InferenceHarness", "stalls"]

logger = logging.getLogger(__name__)

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


def drive_accelerator(m: Module, harness, acc, busy, pending, payload) -> Value:
    """What both harnesses do around their accelerator: offer ``payload`` while ``busy`` and
    ``pending`` (holding an offer once made, as a stream must, through the stall LFSR's gaps),
    shift the logits into ``harness.logits_flat`` and, with the next token, raise ``done`` and
    drop ``busy``. Returns "the accelerator took the payload this cycle"."""
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
    with m.If(acc.next_token.valid & acc.next_token.ready):
        m.d.sync += [harness.token.eq(acc.next_token.payload), harness.done.eq(1), busy.eq(0)]
    return valid & acc.tokens.ready


class InferenceHarness(wiring.Component):
    """The accelerator behind parallel ports: load a context, pulse ``start``, wait for ``done``.

    Ports
    -----
    context : In(unsigned(8*k))
        The context, byte ``p`` (``p = 0`` the oldest) at bits ``[8p, 8p+8)``; sampled in the
        cycle ``start`` is high.
    start : In(1)
        A one-cycle pulse (a level works too: it is sampled once) that starts an inference. It is
        taken only while the harness is idle (after reset, or while ``done`` is high); a
        ``start`` during an inference is ignored.
    done : Out(1)
        A level: low from the cycle after an accepted ``start``, high from the cycle after the
        accelerator's ``next_token`` beat until the next accepted ``start``. Every output below
        is valid and stable while ``done`` is high. (Low after reset, before the first run.)
    logits_flat : Out(unsigned(256*Mb))
        Logit ``j`` at bits ``[j*Mb, (j+1)*Mb)``, two's complement.
    token : Out(unsigned(8))
        The next byte (arg-max of the logits, lowest index on ties).
    cycles : Out(unsigned(32))
        The accelerator's ``cycles`` (first token beat to next-token beat, stalls included).
    spike_counts : Out(unsigned(24*(L+1)*T))
        Counter ``l*T + t`` at bits ``[24*(l*T+t), 24*(l*T+t+1))``.

    With ``stall_seed`` (an integer), a 16-bit LFSR seeded with it (taps :data:`LFSR_TAPS`,
    one step per cycle) withholds ``valid`` on the accelerator's ``tokens`` stream (never
    retracting an offered beat) and ``ready`` on ``logits`` and ``next_token``, each about a
    quarter of the cycles. The results do not change, only ``cycles``.

    Latency: ``k`` + the accelerator's cycles + 1 from ``start`` to ``done``.
    """

    def __init__(self, params: AcceleratorParams, stall_seed: int | None = None):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        check_stall_seed(stall_seed)
        self._params = params
        self._stall_seed = stall_seed
        p = params
        super().__init__({
            "context": In(unsigned(8 * p.context)),
            "start": In(1),
            "done": Out(1),
            "logits_flat": Out(unsigned(VOCAB * p.membrane_bits)),
            "token": Out(unsigned(8)),
            "cycles": Out(unsigned(32)),
            "spike_counts": Out(unsigned(p.spike_count_bits * p.spike_counters)),
        })

    @property
    def params(self) -> AcceleratorParams:
        return self._params

    @property
    def stall_seed(self) -> int | None:
        return self._stall_seed

    def elaborate(self, platform):
        m = Module()
        p = self._params
        m.submodules.accelerator = acc = Accelerator(p)

        busy = Signal()
        context = Signal.like(self.context)
        position = Signal(range(p.context + 1))
        accepted = drive_accelerator(m, self, acc, busy, position != p.context,
                                     context.word_select(position, 8))
        with m.If(accepted):
            m.d.sync += position.eq(position + 1)
        with m.If(self.start & ~busy):
            m.d.sync += [
                busy.eq(1),
                self.done.eq(0),
                context.eq(self.context),
                position.eq(0),
            ]
        return m
