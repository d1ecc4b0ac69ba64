"""The top level: context in, logits and the next byte out (docs/architecture.md, "Interface")."""

from __future__ import annotations

import logging

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .array import SystolicArray
from .layout import spike_table_image
from .params import AcceleratorParams
from .scanner import Scanner, WordFetch, connect_fetch
from .sequencer import Sequencer
from .streamer import OutputStreamer, logit_memory

__all__ = ["Accelerator"]

logger = logging.getLogger(__name__)


class Accelerator(wiring.Component):
    """One accumulate-only array that runs every layer of a spiking byte-level language model.

    Ports
    -----
    tokens : In(stream.Signature(unsigned(8)))
        ``k`` beats per inference, the oldest context byte first. Ready only while the
        accelerator waits for a context (after the previous inference's ``next_token`` beat).
    logits : Out(stream.Signature(signed(Mb)))
        256 beats per inference, index order.
    next_token : Out(stream.Signature(unsigned(8)))
        One beat per inference, after the logits: the arg-max (lowest index on ties).
    cycles : Out(unsigned(32))
        Cycles of the last inference, from the first token beat to the ``next_token`` beat
        (their difference in cycle numbers, stalls included); updated at the ``next_token`` beat.
    spike_counts : Out(ArrayLayout(unsigned(24), (L+1)*T))
        Non-zero spikes into layer ``l`` at step ``t`` at index ``l*T + t``; cleared when the
        last context beat arrives, final from the ``next_token`` beat until the next context.

    Dataflow: sequencer → register slice → word fetch → register slice → scanner → systolic
    array → spike banks / logit memory → output streamer. The register slices
    (:class:`hw.skid.SkidBuffer`) keep ``ready`` and the block RAMs' read data off long
    combinational paths.

    Cycles per inference (``cycles``, without backpressure): the scan, per layer, tile and step
    ``Σ max(1, nnz)`` over the input words (``n_in`` in dense mode) plus one FIRE, plus one
    READOUT per readout tile; plus the fixed ``k + (L+1)*(R+10) + 258`` (context beats, per
    layer pipeline fill and drain, 256 logits and the next byte). A READOUT waits if the
    previous one is less than ``R`` cycles before it, which only happens when a readout tile
    costs fewer than ``R`` cycles. Throughput: one inference at a time; the next context is
    taken after the ``next_token`` beat.
    """

    def __init__(self, params: AcceleratorParams):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        self._params = params
        super().__init__({
            "tokens": In(stream.Signature(unsigned(8))),
            "logits": Out(stream.Signature(signed(params.membrane_bits))),
            "next_token": Out(stream.Signature(unsigned(8))),
            "cycles": Out(unsigned(32)),
            "spike_counts": Out(
                data.ArrayLayout(unsigned(params.spike_count_bits), params.spike_counters)
            ),
        })

    @property
    def params(self) -> AcceleratorParams:
        return self._params

    def elaborate(self, platform):
        m = Module()
        p = self._params
        rows = p.rows

        m.submodules.array = array = SystolicArray(p)
        m.submodules.sequencer = seq = Sequencer(p, drain=array.latency)
        m.submodules.fetch = fetch = WordFetch(
            seq.meta_layout, lanes=p.lanes, sources=seq.sources, raddr_bits=p.raddr_bits
        )
        m.submodules.scanner = scanner = Scanner(
            p.lanes, addr_bits=p.addr_bits, oaddr_bits=p.oaddr_bits, count_bits=p.count_bits,
            dense=p.dense, readout_gap=rows,
        )
        m.submodules.streamer = streamer = OutputStreamer(p)

        wiring.connect(m, wiring.flipped(self.tokens), seq.tokens)
        busy = connect_fetch(m, seq, fetch, scanner)
        wiring.connect(m, scanner.tokens, array.tokens)
        wiring.connect(m, scanner.count, seq.count)
        wiring.connect(m, streamer.logits, wiring.flipped(self.logits))
        wiring.connect(m, streamer.next_token, wiring.flipped(self.next_token))
        m.d.comb += [
            seq.idle.eq(~busy),
            array.threshold.eq(seq.threshold),
            array.reset.eq(seq.reset),
            array.readout.eq(seq.readout),
            streamer.start.eq(seq.output),
            seq.resume.eq(streamer.finished),
            self.spike_counts.eq(seq.spike_counts),
        ]

        m.submodules.table = table = Memory(
            shape=unsigned(2 * p.embed_dim), depth=p.table_depth, init=spike_table_image(p)
        )
        port = table.read_port()
        m.d.comb += [
            port.addr.eq(fetch.mem_addr),
            port.en.eq(fetch.mem_en),
            fetch.mem_data[0].eq(port.data),
        ]
        for side in range(2):
            for r in range(rows):
                bank = Memory(shape=unsigned(2 * p.cols), depth=p.spike_buffer_depth, init=[])
                m.submodules[f"spikes{side}_{r}"] = bank
                write = bank.write_port()
                read = bank.read_port()
                spikes = array.spikes[r]
                m.d.comb += [
                    write.en.eq(spikes.valid & (seq.side == side)),
                    write.addr.eq(spikes.payload.addr),
                    write.data.eq(spikes.payload.data),
                    read.addr.eq(fetch.mem_addr),
                    read.en.eq(fetch.mem_en),
                    fetch.mem_data[1 + side * rows + r].eq(read.data),
                ]

        logit_memory(m, streamer, array.logits)

        running = Signal()
        count = Signal(32)
        m.d.sync += count.eq(count + 1)
        with m.If(self.tokens.valid & self.tokens.ready & ~running):
            m.d.sync += [running.eq(1), count.eq(1)]
        with m.If(self.next_token.valid & self.next_token.ready):
            m.d.sync += [running.eq(0), self.cycles.eq(count)]
        logger.debug("accelerator built: %d x %d, tiles %s", rows, p.cols, p.tiles)
        return m
