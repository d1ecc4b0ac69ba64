"""The transformer accelerator behind parallel ports, for cocotb: one wake-up per byte."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..harness import check_stall_seed, drive_accelerator
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
        check_stall_seed(stall_seed)
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

    @property
    def stall_seed(self) -> int | None:
        return self._stall_seed

    def elaborate(self, platform):
        m = Module()
        m.submodules.accelerator = acc = TransformerAccelerator(self._params)
        busy, pending = Signal(), Signal()
        beat = Signal(9)
        accepted = drive_accelerator(m, self, acc, busy, pending, beat)
        with m.If(accepted):
            m.d.sync += pending.eq(0)
        with m.If(self.start & ~busy):
            m.d.sync += [busy.eq(1), pending.eq(1), self.done.eq(0), beat.eq(self.context)]
        return m
