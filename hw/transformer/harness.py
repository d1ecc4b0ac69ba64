"""The transformer accelerator behind parallel ports, for cocotb: one wake-up per byte."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..harness import stalls
from ..params import SPIKE_COUNT_BITS, VOCAB
from .accelerator import TransformerAccelerator
from .params import TransformerParams

__all__ = ["StreamHarness"]


class StreamHarness(wiring.Component):
    """Feed one byte, pulse ``start``, wait for ``done``, read the logits of its position.

    The ports are those of :class:`hw.InferenceHarness` (so that one simulation top serves
    both), with a "context" of one byte and a flag.

    Ports
    -----
    context : In(unsigned(9))
        Bits 0..7: the byte; bit 8: it starts a new stream (an empty key/value cache). Sampled
        with ``start``.
    start : In(1)
        Starts one position; taken only while idle (after reset or while ``done`` is high).
    done : Out(1)
        Low from the cycle after an accepted ``start``, high from the cycle after the
        ``next_token`` beat until the next accepted ``start``; the outputs are stable while high.
    logits_flat : Out(unsigned(256*Mb))
        Logit ``j`` at bits ``[j*Mb, (j+1)*Mb)``.
    token : Out(unsigned(8)), cycles : Out(unsigned(32))
        The arg-max and the accelerator's cycle count of the position.
    spike_counts : Out(unsigned(24*S))
        Counter ``i`` (spiking layer ``i``) at bits ``[24i, 24i+24)``.

    With ``stall_seed`` the LFSR of :func:`hw.harness.stalls` withholds ``valid``
    on ``tokens`` and ``ready`` on ``logits`` and ``next_token``; only ``cycles`` changes.
    """

    def __init__(self, params: TransformerParams, stall_seed: int | None = None):
        if not isinstance(params, TransformerParams):
            raise TypeError(f"params must be a TransformerParams, not {params!r}")
        if stall_seed is not None and (isinstance(stall_seed, bool)
                                       or not isinstance(stall_seed, int)):
            raise TypeError(f"stall_seed must be an integer or None, not {stall_seed!r}")
        self._params = params
        self._stall_seed = stall_seed
        counters = len(params.spiking_layers)
        super().__init__({
            "context": In(unsigned(9)),
            "start": In(1),
            "done": Out(1),
            "logits_flat": Out(unsigned(VOCAB * params.membrane_bits)),
            "token": Out(unsigned(8)),
            "cycles": Out(unsigned(32)),
            "spike_counts": Out(unsigned(SPIKE_COUNT_BITS * counters)),
        })

    @property
    def params(self) -> TransformerParams:
        return self._params

    def elaborate(self, platform):
        m = Module()
        mb = self._params.membrane_bits
        m.submodules.accelerator = acc = TransformerAccelerator(self._params)
        stall_in, stall_logits, stall_next = stalls(m, self._stall_seed)

        busy, pending, offered, valid = Signal(), Signal(), Signal(), Signal()
        beat = Signal(9)
        m.d.comb += [
            valid.eq(busy & pending & (offered | ~stall_in)),
            acc.tokens.valid.eq(valid),
            acc.tokens.payload.eq(beat),
            acc.logits.ready.eq(busy & ~stall_logits),
            acc.next_token.ready.eq(busy & ~stall_next),
            self.cycles.eq(acc.cycles),
            self.spike_counts.eq(acc.spike_counts.as_value()),
        ]
        m.d.sync += offered.eq(valid & ~acc.tokens.ready)
        with m.If(valid & acc.tokens.ready):
            m.d.sync += pending.eq(0)
        with m.If(acc.logits.valid & acc.logits.ready):
            m.d.sync += self.logits_flat.eq(Cat(self.logits_flat[mb:], acc.logits.payload))
        with m.If(acc.next_token.valid & acc.next_token.ready):
            m.d.sync += [self.token.eq(acc.next_token.payload), self.done.eq(1), busy.eq(0)]
        with m.If(self.start & ~busy):
            m.d.sync += [busy.eq(1), pending.eq(1), self.done.eq(0),
                         beat.eq(self.context)]
        return m
