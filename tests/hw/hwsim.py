"""Helpers of the hw tests: the compiler's parameters of a contract model, and an Amaranth
simulation of :class:`hw.InferenceHarness` behind a plain function."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from amaranth.sim import Simulator

from contract.graph import SpikeEmbed, run
from contract.onnx_io import to_onnx
from hw import AcceleratorParams, InferenceHarness
from hw.layout import unpack
from rtl_gen.frontend import load_graph
from rtl_gen.passes import default_pipeline, run_pipeline
from rtl_gen.plan_program import program_params


def compile_params(model, rows: int, cols: int, dense: bool = False
                   ) -> AcceleratorParams:
    """The compiler's path: ONNX, front end, passes, plan (of any :class:`contract.graph.Graph`,
    or a model with a ``graph()``: an ``IntModel``, an ``IntTransformer``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        onnx.save(to_onnx(model), path)
        graph = run_pipeline(load_graph(path), default_pipeline())
    return program_params(graph, rows, cols, dense)[0]


async def start_and_wait(ctx, dut, max_cycles: int):
    """Pulse a harness's ``start`` (its ``context`` already set, cleared after the pulse)
    and wait for ``done``."""
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)
    ctx.set(dut.context, 0)
    cycles = 0
    async for _, _, done in ctx.tick().sample(dut.done):
        cycles += 1
        if cycles > max_cycles:
            raise TimeoutError(f"done not raised after {max_cycles} cycles")
        if done:
            break


@dataclass(frozen=True)
class Position:
    """What the accelerator returned for one byte of a stream."""

    logits: np.ndarray
    token: int
    cycles: int
    spike_counts: np.ndarray
    weight_bursts: int | None = None  #: weight rows read from the external memory, off chip
    layer_cycles: np.ndarray | None = None  #: ``[layers, 2]``: run and drain cycles per layer


def run_streams(params: AcceleratorParams, streams, *, stall_seed=None, window: int = 1,
                max_cycles: int = 200_000, **memory) -> list[list[Position]]:
    """Every byte of every stream through an Amaranth simulation of the harness; the first
    byte of each stream is flagged ``restart``. With ``window`` ``k``, each stream is one
    window of ``k`` bytes (an encoder's program: one sequence), one inference (``[[Position]]``
    per window). ``memory``: the harness's external weight memory (``memory_latency``,
    ``memory_interval``, ``weight_image``) of a program with its weights off chip."""
    dut = InferenceHarness(params, stall_seed=stall_seed, window=window, **memory)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    out: list[list[Position]] = []
    mb, n = params.membrane_bits, len(params.spiking_layers)

    async def bench(ctx):
        await ctx.tick()
        for stream in streams:
            seen = []
            starts = [stream] if window > 1 else [[byte] for byte in stream]
            for index, part in enumerate(starts):
                word = sum(int(byte) << 8 * i for i, byte in enumerate(part))
                ctx.set(dut.context, word | int(index == 0) << 8 * window)
                await start_and_wait(ctx, dut, max_cycles)
                seen.append(Position(
                    logits=np.array(unpack(ctx.get(dut.logits_flat), params.outputs, mb),
                                    dtype=np.int64),
                    token=ctx.get(dut.token), cycles=ctx.get(dut.cycles),
                    spike_counts=np.array(unpack(ctx.get(dut.spike_counts), n, 24,
                                                 signed=False)),
                    weight_bursts=ctx.get(dut.weight_bursts) if params.weights_offchip
                    else None,
                    layer_cycles=np.array(unpack(ctx.get(dut.layer_cycles),
                                                 2 * len(params.layers), 32, signed=False)
                                          ).reshape(-1, 2)))
            out.append(seen)

    sim.add_testbench(bench)
    sim.run()
    return out


def check_against_executor(model, params: AcceleratorParams, streams, stall_seed=None,
                           **memory):
    """Every position of every stream through the accelerator equals the contract's executor
    on ``model`` (a graph, or anything with a ``graph()``): logits, next byte and the spike
    count of every spiking op. Returns what the accelerator returned."""
    graph = model.graph() if hasattr(model, "graph") else model
    trace = run(graph, streams)
    embedded = {op.name for op in graph.of_type(SpikeEmbed)}  # read from a ROM, not counted
    counted = [s for s, name in zip(trace.spikes, trace.names, strict=True)
               if name not in embedded]
    assert np.count_nonzero(trace.logits) > trace.logits.size // 2
    seen = run_streams(params, streams, stall_seed=stall_seed, **memory)
    for n, stream in enumerate(seen):
        for i, pos in enumerate(stream):
            where = f"stream {n} position {i}"
            assert np.array_equal(pos.logits, trace.logits[n, i]), where
            assert pos.token == int(np.argmax(trace.logits[n, i])), where
            expected = [int(np.count_nonzero(s[n, :, i])) for s in counted]
            assert pos.spike_counts.tolist() == expected, where
    return seen


def check_windows(model, params: AcceleratorParams, ids, stall_seed=None) -> list[Position]:
    """Every window ``ids[n]`` of a chain (an ``IntModel``, a program without attention)
    through the harness, a window per start, equals ``contract.forward``: logits, next byte
    and the spikes of every spiking layer (the embedding's come from a ROM and are not
    counted). Returns what the accelerator returned, a :class:`Position` per window."""
    from contract import forward

    ids = np.asarray(ids)
    trace = forward(model, ids, trace=True)
    seen = [stream[0] for stream in run_streams(params, ids, stall_seed=stall_seed,
                                                window=ids.shape[1])]
    for n, pos in enumerate(seen):
        assert np.array_equal(pos.logits, trace.logits[n]), f"window {n}"
        assert pos.token == int(np.argmax(trace.logits[n])), f"window {n}"
        counts = [int(np.count_nonzero(s[n])) for s in trace.spikes[1:]]
        assert pos.spike_counts.tolist() == counts, f"window {n}"
    assert np.count_nonzero(trace.logits) > trace.logits.size // 2, "logits trivially zero"
    return seen


def check_sequences(graph, params: AcceleratorParams, ids, stall_seed=None,
                    **memory) -> list[Position]:
    """Every sequence ``ids[n]`` of an encoder through the harness, a sequence per start (sent
    twice: prefill, then queries), equals the contract's executor: the pooled logits, the
    predicted class and the spikes of every spiking op, counted once for each pass that runs
    its layer. Returns what the accelerator returned, a :class:`Position` per sequence."""
    ids = np.asarray(ids)
    trace = run(graph, ids)
    assert np.count_nonzero(trace.logits) > trace.logits.size // 2, "logits trivially zero"
    seen = [stream[0] for stream in run_streams(params, ids, stall_seed=stall_seed,
                                                window=ids.shape[1], **memory)]
    passes = [params.runs_in_prefill(i) + params.runs_in_query(i)
              for i in params.spiking_layers]
    for n, pos in enumerate(seen):
        assert np.array_equal(pos.logits, trace.logits[n, 0]), f"sequence {n}"
        assert pos.token == int(np.argmax(trace.logits[n, 0])), f"sequence {n}"
        counts = [int(np.count_nonzero(s[n])) * k
                  for s, k in zip(trace.spikes, passes, strict=True)]
        assert pos.spike_counts.tolist() == counts, f"sequence {n}"
    return seen
