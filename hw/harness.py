"""The accelerator behind parallel ports, for cocotb: Python wakes once per inference (a byte
of a stream, or a window), not per cycle."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .axi import AxiReadMemory
from .checks import positive_int
from .layout import external_weight_image
from .params import SPIKE_COUNT_BITS, AcceleratorParams

__all__ = ["DEFAULT_MEMORY_LATENCY", "LFSR_TAPS", "SDRAM_BYTES_PER_CYCLE", "InferenceHarness",
           "check_stall_seed", "drive_accelerator", "sdram_interval", "stalls"]

DEFAULT_MEMORY_LATENCY = 10
"""Cycles from a burst's address to its first beat in the default external memory model:
about an SDRAM's row activation and CAS latency plus a controller's registers."""

SDRAM_BYTES_PER_CYCLE = 2
"""Bytes a cycle of the default memory model: a 16-bit SDRAM (the ULX3S's) at the
accelerator's clock."""


def sdram_interval(params: AcceleratorParams) -> int:
    """Cycles per bus beat of a 16-bit SDRAM: a beat's bytes over two a cycle."""
    return max(1, -(-params.bus_beat_bytes // SDRAM_BYTES_PER_CYCLE))


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
    take the next token while ``final`` and shift the logits that follow it into
    ``harness.logits_flat``; with the last of them raise ``done`` and drop ``busy``. Returns
    "the accelerator took the payload this cycle"."""
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
        harness.layer_cycles.eq(acc.layer_cycles.as_value()),
    ]
    m.d.sync += offered.eq(valid & ~acc.tokens.ready)
    outputs = harness.params.outputs
    last_token, logits = Signal(), Signal(range(outputs + 1))  # logits since the token
    with m.If(acc.next_token.valid & acc.next_token.ready):
        m.d.sync += [last_token.eq(final), logits.eq(0)]
        with m.If(final):
            m.d.sync += harness.token.eq(acc.next_token.payload)
    with m.If(acc.logits.valid & acc.logits.ready):
        m.d.sync += [harness.logits_flat.eq(Cat(harness.logits_flat[mb:], acc.logits.payload)),
                     logits.eq(logits + 1)]
        with m.If(last_token & (logits == outputs - 1)):
            m.d.sync += [harness.done.eq(1), busy.eq(0), last_token.eq(0)]
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
        Low from the cycle after an accepted ``start``, high from the cycle after the beat of
        the last logit (which follow the next token) until the next accepted ``start``; the
        outputs are stable while high.
    logits_flat : Out(unsigned(outputs*Mb))
        Logit ``j`` at bits ``[j*Mb, (j+1)*Mb)`` (256 logits, or an encoder's classes).
    token : Out(unsigned(8)), cycles : Out(unsigned(32))
        The arg-max and the accelerator's cycle count of the inference.
    spike_counts : Out(unsigned(24*S))
        Counter ``i`` (spiking layer ``i``) at bits ``[24i, 24i+24)``.
    layer_cycles : Out(unsigned(64*L))
        The accelerator's cycle profile: layer ``l``'s run cycles at bits ``[64l, 64l+32)``,
        its drain cycles at ``[64l+32, 64l+64)``.

    With ``stall_seed`` the LFSR of :func:`stalls` withholds ``valid``
    on ``tokens`` and ``ready`` on ``logits`` and ``next_token``; only ``cycles`` changes.

    With the weights off chip (:attr:`AcceleratorParams.weights_offchip`) the harness holds
    the external weight memory, an :class:`hw.axi.AxiReadMemory` whose first beat comes
    ``memory_latency`` cycles after a burst's address and each further one ``memory_interval``
    cycles later (default :func:`sdram_interval`), holding ``weight_image`` (default
    :func:`hw.layout.external_weight_image`), and ``weight_bursts : Out(unsigned(32))`` is the
    weight rows read for the inference.
    """

    def __init__(self, params: AcceleratorParams, stall_seed: int | None = None, *,
                 window: int = 1, memory_latency: int = DEFAULT_MEMORY_LATENCY,
                 memory_interval: int | None = None, weight_image: list[int] | None = None):
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
        self._memory_latency = positive_int("memory_latency", memory_latency)
        if memory_interval is None:
            memory_interval = sdram_interval(params)
        self._memory_interval = positive_int("memory_interval", memory_interval)
        if params.weights_offchip and weight_image is None:
            weight_image = external_weight_image(params)
        if weight_image is not None and (
                not params.weights_offchip
                or len(weight_image) != params.weight_depth * params.rows):
            raise ValueError("a weight image belongs to a program with its weights off chip,"
                             f" {params.weight_depth * params.rows} words")
        self._weight_image = weight_image
        counters = len(params.spiking_layers)
        offchip = {"weight_bursts": Out(unsigned(32))} if params.weights_offchip else {}
        super().__init__({
            "context": In(unsigned(8 * window + 1)),
            "start": In(1),
            "done": Out(1),
            "logits_flat": Out(unsigned(params.outputs * params.membrane_bits)),
            "token": Out(unsigned(8)),
            "cycles": Out(unsigned(32)),
            "spike_counts": Out(unsigned(SPIKE_COUNT_BITS * counters)),
            "layer_cycles": Out(unsigned(64 * len(params.layers))),
            **offchip,
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

    @property
    def memory_latency(self) -> int:
        """Weights off chip: cycles from a burst's address to its first beat."""
        return self._memory_latency

    @property
    def memory_interval(self) -> int:
        """Weights off chip: cycles per beat of the external memory model."""
        return self._memory_interval

    def elaborate(self, platform):
        m = Module()
        n = self._window
        p = self._params
        m.submodules.accelerator = acc = Accelerator(p)
        if p.weights_offchip:  # the external memory, a model with the given timing
            m.submodules.weight_memory = memory = AxiReadMemory(
                self._weight_image, addr_bits=p.bus_addr_bits, data_bits=p.bus_data_bits,
                latency=self._memory_latency, interval=self._memory_interval)
            wiring.connect(m, acc.weight_bus, memory.bus)
            m.d.comb += self.weight_bursts.eq(acc.weight_bursts)
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
