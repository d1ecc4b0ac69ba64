"""The transformer accelerator behind parallel ports, for cocotb: one wake-up per byte."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..harness import check_stall_seed, drive_accelerator
from ..params import SPIKE_COUNT_BITS, VOCAB
from .accelerator import TransformerAccelerator
from .params import TransformerParams

__all__ = ["StreamHarness"]


class StreamHarness(wiring.Component):
    """Load ``n`` bytes, pulse ``start``, wait for ``done``, read the logits of the last one.

    ``n`` (``window``) is 1 for a stream a byte per start (every position checked, the
    key/value caches carried), or the context ``k`` of a program without attention, whose
    positions depend on their window alone: the first ``k - 1`` bytes go to the accelerator
    held (they only enter the window), the last runs the program.

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
    logits_flat : Out(unsigned(256*Mb))
        Logit ``j`` at bits ``[j*Mb, (j+1)*Mb)``.
    token : Out(unsigned(8)), cycles : Out(unsigned(32))
        The arg-max and the accelerator's cycle count of the inference.
    spike_counts : Out(unsigned(24*S))
        Counter ``i`` (spiking layer ``i``) at bits ``[24i, 24i+24)``.

    With ``stall_seed`` the LFSR of :func:`hw.harness.stalls` withholds ``valid``
    on ``tokens`` and ``ready`` on ``logits`` and ``next_token``; only ``cycles`` changes.
    """

    def __init__(self, params: TransformerParams, stall_seed: int | None = None, *,
                 window: int = 1):
        if not isinstance(params, TransformerParams):
            raise TypeError(f"params must be a TransformerParams, not {params!r}")
        check_stall_seed(stall_seed)
        if window != 1 and (params.attentions or window != params.context):
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

    @property
    def window(self) -> int:
        """Bytes per start."""
        return self._window

    def elaborate(self, platform):
        m = Module()
        n = self._window
        m.submodules.accelerator = acc = TransformerAccelerator(self._params)
        busy = Signal()
        context = Signal.like(self.context)
        position = Signal(range(n + 1))
        restart = context[8 * n] & (position == 0)
        beat = Cat(context.word_select(position, 8), restart, position != n - 1)
        accepted = drive_accelerator(m, self, acc, busy, position != n, beat)
        with m.If(accepted):
            m.d.sync += position.eq(position + 1)
        with m.If(self.start & ~busy):
            m.d.sync += [busy.eq(1), position.eq(0), self.done.eq(0), context.eq(self.context)]
        return m
