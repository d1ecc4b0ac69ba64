"""The accelerator: one array of accumulate-only PEs runs every layer of a compiled graph's
layer program, one byte of the stream (or a window of bytes) at a time (docs/architecture.md)."""

from __future__ import annotations

import logging

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .axi import axi_read_signature
from .layout import spike_table_image
from .params import ACT_LATENCY, SPIKE_COUNT_BITS, AcceleratorParams
from .row import ArrayRow, logit_write_layout, spike_write_layout
from .scanner import Scanner, WordFetch, connect_fetch
from .score import ScoreUnit
from .sequencer import BEAT_BITS, SOURCE_ONE, Sequencer
from .skid import SkidBuffer
from .streamer import OutputStreamer, logit_memory
from .token import layer_flags, token_layout
from .weightfetch import WeightFetch

__all__ = ["FIRED_LATENCY", "LAYER_CYCLES", "Accelerator", "SystolicArray"]

#: One layer's entry of the cycle profile (``Accelerator.layer_cycles``).
LAYER_CYCLES = data.StructLayout({"run": unsigned(32), "drain": unsigned(32)})

logger = logging.getLogger(__name__)

FIRED_LATENCY = 3
"""Cycles from a row's spike write to the array's ``fired`` that counts it."""


class SystolicArray(wiring.Component):
    """``R`` :class:`ArrayRow` s; a token enters row 0 and moves down a row per cycle.

    Row ``r``'s spike writes come out on ``spikes[r]``; the rows' logit writes are merged onto
    ``logits`` (READOUT tokens are at least ``R`` cycles apart); ``fired`` is the number of
    non-zero spikes all rows wrote three cycles before (:data:`FIRED_LATENCY`). In a program
    whose tokens carry their layer (:attr:`AcceleratorParams.overlapping`) it is one FIRE's, the
    last row's three cycles before, and ``fired_layer`` that FIRE's layer; otherwise every row
    reads ``flags``.

    Latency: :attr:`latency` = ``R + 4`` cycles until all effects of a token are visible.
    Throughput: one token per cycle.
    """

    def __init__(self, params: AcceleratorParams):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        self._params = params
        p = params
        super().__init__({
            "tokens": In(stream.Signature(token_layout(p), always_ready=True)),
            "spikes": Out(stream.Signature(spike_write_layout(p), always_ready=True)
                          ).array(p.rows),
            "logits": Out(stream.Signature(logit_write_layout(p), always_ready=True)),
            "fired": Out(range(p.pes + 1)),
            **({"fired_layer": Out(range(len(p.layers)))} if p.overlapping else
               {"flags": In(layer_flags(p)[0].shape())}),
            # weights off chip: an EVENT's R words, with the token on ``tokens``
            **({"weights": In(data.ArrayLayout(unsigned(p.cols * p.weight_bits), p.rows))}
               if p.weights_offchip else {}),
        })

    @property
    def latency(self) -> int:
        return self._params.rows - 1 + ACT_LATENCY + 1 + 1

    def elaborate(self, platform):
        m = Module()
        p = self._params
        previous = wiring.flipped(self.tokens)
        logit_valid, logit_payload = 0, 0
        counts = []
        for r in range(p.rows):
            row = ArrayRow(p, r)
            m.submodules[f"row{r}"] = row
            wiring.connect(m, previous, row.tok_in)
            previous = row.tok_out
            if not p.overlapping:
                m.d.comb += row.flags.eq(self.flags)
            wiring.connect(m, row.spikes, wiring.flipped(self.spikes[r]))
            if p.weights_offchip:  # row r acts on its word r + 1 cycles after row 0's token
                word = self.weights[r]
                for stage in range(r + 1):
                    delayed = Signal.like(row.weight, name=f"weight{r}_{stage}")
                    m.d.sync += delayed.eq(word)
                    word = delayed
                m.d.comb += row.weight.eq(word)
            enable = row.logits.valid.replicate(len(row.logits.payload.as_value()))
            logit_payload = logit_payload | (row.logits.payload.as_value() & enable)
            logit_valid = logit_valid | row.logits.valid
            # with tokens of two layers in the array, row ``r`` writes a token's spikes ``r``
            # cycles after row 0: its count waits ``R - 1 - r`` cycles, so that the sum is one
            # token's, that of the last row's FIRE
            count = row.fired
            for stage in range(p.rows - 1 - r if p.overlapping else 0):
                delayed = Signal.like(count, name=f"fired{r}_{stage}")
                m.d.sync += delayed.eq(count)
                count = delayed
            counts.append(count)
        m.d.comb += [self.logits.valid.eq(logit_valid), self.logits.payload.eq(logit_payload)]
        # summed in two registered stages, four rows and then the groups: one sum of all rows
        # was a critical path on the ECP5
        groups = []
        for start in range(0, p.rows, 4):
            group = Signal(range(4 * p.cols + 1), name=f"fired_rows{start}")
            m.d.sync += group.eq(sum(counts[start:start + 4]))
            groups.append(group)
        m.d.sync += self.fired.eq(sum(groups))
        if p.overlapping:
            layer = Signal.like(row.fired_layer)
            m.d.sync += [layer.eq(row.fired_layer), self.fired_layer.eq(layer)]
        return m


class Accelerator(wiring.Component):
    """A compiled spiking byte model (any layer program) on one accumulate-only array, a byte
    at a time.

    Ports
    -----
    tokens : In(stream.Signature(unsigned(11)))
        One beat per byte of the stream: bits 0..7 the byte, bit 8 set on the first byte of
        a new stream (the key/value cache and the context window start empty), bit 9
        (``hold``) set on a byte that only enters the context window: no layer runs and no
        logits come out (for a program without attention, whose positions depend on the window
        alone, a window of ``k`` bytes is ``k - 1`` held bytes and the last). Bit 10
        (``prefill``): an encoder's program takes its sequence twice, first flagged (the keys
        and values of every position; nothing comes out), then not (the logits summed over the
        sequence so far come out after every byte; those after the last are the sequence's).
        Ready while the accelerator waits.
    next_token : Out(stream.Signature(unsigned(8)))
        The arg-max of the byte's logits (lowest index on ties), as soon as the program ends;
        the next byte is taken from then on (a READOUT waits until the logits have left).
    logits : Out(stream.Signature(signed(Mb)))
        The logits of the byte's position (256, or an encoder's classes), index order, after
        the next token.
    cycles : Out(unsigned(32))
        Cycles of the last inference: from the beat on ``tokens`` of its first byte (held or
        not) to its ``next_token`` beat; set in the cycle after that beat.
    spike_counts : Out(ArrayLayout(unsigned(24), S))
        Non-zero spikes written by each spiking layer (:attr:`AcceleratorParams.spiking_layers`)
        for the last inference; cleared at its first byte, final from its ``next_token`` beat.
    layer_cycles : Out(ArrayLayout(LAYER_CYCLES, L))
        The cycle profile of the last inference, per layer of the program: cycles spent
        issuing its requests (``run``) and waiting for the array to finish it (``drain``),
        counted like ``spike_counts``; the rest of ``cycles`` is taking the byte and sending
        the next token. For measurement (``rtl_gen sim``); the synthesis top leaves it unconnected.
    weight_bus : Out(axi_read_signature(...)), weight_bursts : Out(unsigned(32))
        Only with the weights off chip: the AXI4 read port of the external weight memory
        (:func:`hw.layout.external_weight_image`), and the weight rows (bursts) read for the
        last inference, counted like ``spike_counts``.

    Dataflow: sequencer → register slice → word fetch → register slice → scanner ─┐
    sequencer → score unit ───────────────────────────────────────────────────────┴→ array →
    spike banks (keys too), V banks, residual banks, logit memory → output streamer.
    """

    def __init__(self, params: AcceleratorParams):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        self._params = params
        super().__init__({
            "tokens": In(stream.Signature(unsigned(BEAT_BITS))),
            "logits": Out(stream.Signature(signed(params.membrane_bits))),
            "next_token": Out(stream.Signature(unsigned(8))),
            "cycles": Out(unsigned(32)),
            "spike_counts": Out(data.ArrayLayout(unsigned(SPIKE_COUNT_BITS),
                                                 len(params.spiking_layers))),
            "layer_cycles": Out(data.ArrayLayout(LAYER_CYCLES, len(params.layers))),
            **({"weight_bus": Out(axi_read_signature(params.bus_addr_bits,
                                                     params.bus_data_bits)),
                "weight_bursts": Out(unsigned(32))} if params.weights_offchip else {}),
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
            seq.meta_layout, lanes=p.lanes, sources=seq.sources, raddr_bits=p.raddr_bits)
        m.submodules.scanner = scanner = Scanner(
            p.lanes, token_layout(p), readout_gap=rows, dense=p.dense)
        # the score unit exists only for a program that attends
        score = ScoreUnit(p) if p.attentions else None
        if score is not None:
            m.submodules.score = score
        m.submodules.streamer = streamer = OutputStreamer(
            cols=p.cols, logit_bits=p.membrane_bits, logit_depth=p.logit_depth,
            outputs=p.outputs)

        wiring.connect(m, wiring.flipped(self.tokens), seq.tokens)
        tokens = scanner.tokens
        if not p.weights_offchip:
            busy = connect_fetch(m, seq, fetch, scanner)
        else:  # the scanner's tokens wait for their weights from the bus
            m.submodules.weight_fetch = wf = WeightFetch(p, lanes=p.lanes, readout_gap=rows)
            busy = connect_fetch(m, seq, fetch, scanner, allow=wf.allow)
            m.d.comb += [
                wf.tokens.valid.eq(scanner.tokens.valid),
                wf.tokens.payload.eq(scanner.tokens.payload),
                array.weights.eq(wf.weights),
            ]
            wiring.connect(m, wf.bus, wiring.flipped(self.weight_bus))
            busy = busy | wf.busy
            tokens = wf.out
        if score is not None:  # through a register slice: the handshake enables the
            # sequencer's loop registers, and the score unit's ``ready`` is a gate away
            m.submodules.score_slice = score_slice = SkidBuffer(score.requests.payload.shape())
            wiring.connect(m, seq.score_requests, score_slice.i)
            wiring.connect(m, score_slice.o, score.requests)
        wiring.connect(m, streamer.logits, wiring.flipped(self.logits))
        wiring.connect(m, streamer.next_token, wiring.flipped(self.next_token))
        if score is not None:
            # The scanner and the score unit never both send: only an ATTENTION layer scores.
            m.d.comb += [
                array.tokens.valid.eq(tokens.valid | score.tokens.valid),
                array.tokens.payload.eq(Mux(score.tokens.valid, score.tokens.payload,
                                            tokens.payload)),
                seq.idle.eq(~busy & ~score.busy & ~score_slice.busy),
            ]
        else:
            m.d.comb += [array.tokens.valid.eq(tokens.valid),
                         array.tokens.payload.eq(tokens.payload), seq.idle.eq(~busy)]
        m.d.comb += [
            streamer.start.eq(seq.output),
            seq.resume.eq(streamer.sent),
            seq.streaming.eq(streamer.busy),
            fetch.mem_data[SOURCE_ONE].eq(0b01),
        ]

        for r in range(rows):
            bank = Memory(shape=unsigned(2 * p.cols), depth=p.spike_depth, init=[])
            m.submodules[f"spikes{r}"] = bank
            write, read = bank.write_port(), bank.read_port()
            spikes = array.spikes[r]
            m.d.comb += [
                write.en.eq(spikes.valid),
                write.addr.eq(spikes.payload.addr),
                write.data.eq(spikes.payload.data),
                fetch.mem_data[1 + r].eq(read.data),
            ]
            if score is not None:
                m.d.comb += [
                    read.addr.eq(Mux(seq.attention, score.mem_addr, fetch.mem_addr)),
                    read.en.eq(Mux(seq.attention, score.mem_en, fetch.mem_en)),
                    score.mem_data[r].eq(read.data),
                ]
            else:
                m.d.comb += [read.addr.eq(fetch.mem_addr), read.en.eq(fetch.mem_en)]

        if p.spike_table is not None:  # the context's spikes, read by a LINEAR of the table
            m.submodules.spike_table = table = Memory(
                shape=unsigned(2 * p.embed_dim), depth=p.table_depth, init=spike_table_image(p))
            read = table.read_port()
            m.d.comb += [read.addr.eq(fetch.mem_addr), read.en.eq(fetch.mem_en),
                         fetch.mem_data[seq.source_table].eq(read.data)]

        logit_memory(m, streamer, array.logits, seq.pool_add if p.bidirectional else None)

        # an inference starts with the first byte after one that was not held (an encoder's:
        # with the first byte of its first pass, which restarts the stream)
        beat = self.tokens.valid & self.tokens.ready
        held = Signal()
        with m.If(beat):
            m.d.sync += held.eq(self.tokens.payload[9])
        arrived = beat & ~held
        if p.weights_offchip:  # a row is read once per byte: its cache forgets at the next
            m.d.comb += wf.flush.eq(beat)
        if p.bidirectional:
            arrived = beat & self.tokens.payload[8]
        # A FIRE's spikes count for its own layer: ``fired_layer``, or where the tokens do not
        # carry it (every layer drains before the next), the layer of three cycles before.
        layer_1 = Signal.like(seq.layer)
        m.d.sync += layer_1.eq(seq.layer)
        if p.overlapping:
            counted_layer = array.fired_layer
        else:
            counted_layer = layer_1
            for stage in range(FIRED_LATENCY - 1):
                delayed = Signal.like(seq.layer, name=f"counted_layer{stage}")
                m.d.sync += delayed.eq(counted_layer)
                counted_layer = delayed
            m.d.comb += array.flags.eq(seq.flags)
        # The counters run a cycle behind what they count: the byte's handshake (off the
        # sequencer's state) and the rows' count reach them through registers of their own,
        # and then fan out to every counter's clear and enable.
        arrived_1 = Signal()
        fired_1, counted_1 = Signal.like(array.fired), Signal.like(counted_layer)
        running_1, draining_1 = Signal(), Signal()
        m.d.sync += [arrived_1.eq(arrived), fired_1.eq(array.fired), counted_1.eq(counted_layer),
                     running_1.eq(seq.running), draining_1.eq(seq.draining)]
        for index, layer in enumerate(p.spiking_layers):
            counter = self.spike_counts[index]
            with m.If(arrived_1):
                m.d.sync += counter.eq(0)
            with m.Elif(counted_1 == layer):
                m.d.sync += counter.eq(counter + fired_1)

        for index, profile in enumerate(self.layer_cycles):  # the cycle profile
            with m.If(arrived_1):
                m.d.sync += profile.eq(0)
            with m.Elif(layer_1 == index):
                with m.If(running_1):
                    m.d.sync += profile.run.eq(profile.run + 1)
                with m.If(draining_1):
                    m.d.sync += profile.drain.eq(profile.drain + 1)

        if p.weights_offchip:  # weight rows read for the last inference
            burst_1 = Signal()
            m.d.sync += burst_1.eq(wf.burst)
            with m.If(arrived_1):
                m.d.sync += self.weight_bursts.eq(0)
            with m.Elif(burst_1):
                m.d.sync += self.weight_bursts.eq(self.weight_bursts + 1)

        # the cycle count starts and is taken a cycle late, so it counts the same cycles
        count, sent_1 = Signal(32), Signal()
        m.d.sync += [count.eq(count + 1),
                     sent_1.eq(self.next_token.valid & self.next_token.ready)]
        with m.If(arrived_1):
            m.d.sync += count.eq(1)
        with m.If(sent_1):
            m.d.sync += self.cycles.eq(count)
        logger.debug("accelerator built: %d x %d, %d layers", rows, p.cols,
                     len(p.layers))
        return m
