# amaranth: UnusedElaboratable=no
"""Weights off chip: the accelerator reads every EVENT's weights over its AXI4 port from an
external memory model (``hw.axi.AxiReadMemory`` in the harness), in the Amaranth simulator.

Random programs are bit-exact against the contract's executor for several latencies and
bandwidths of the memory, the weight rows the hardware reads equal the count from the
reference's spikes (``rtl_gen.memory.weight_rows``: once per tile and input that fired in any
step, the row cache's promise), a corrupted word of the external image is seen, and the
memory model keeps the timing it promises.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator
from hwsim import check_against_executor, check_sequences, compile_params, run_streams

from contract.graph import run
from contract.random_model import random_graph
from hw import Accelerator, InferenceHarness
from hw.axi import AxiReadMemory
from hw.layout import external_weight_image
from rtl_gen.memory import weight_rows


def offchip(graph, rows: int, cols: int):
    return dataclasses.replace(compile_params(graph, rows, cols), weights_offchip=True)


CASES = [
    ({"embed": "spike", "context": 3, "width": 5, "hidden": (7, 4)}, 2, 2),  # an MLP, E > C
    ({"blocks": ((True, 3),)}, 2, 2),                                      # attention, EMBED
    ({"blocks": ((True, 0), (True, 5)), "heads": 1}, 1, 5),                # two attentions
    ({"embed": "spike", "context": 2, "width": 3, "hidden": (5, 4), "elastic": True,
      "timesteps": 3}, 3, 1),                                              # leaks, 3 beats
]


@pytest.mark.parametrize("latency, interval", [(2, 1), (6, 3)], ids=["fast", "slow"])
@pytest.mark.parametrize("kwargs, rows, cols", CASES,
                         ids=["mlp", "attention", "two-attentions", "elastic-mlp"])
def test_offchip_weights_match_the_executor(kwargs, rows, cols, latency, interval):
    """Every position of two streams: logits, next byte, spike counts equal the executor's,
    and the weight rows read (bursts) equal one per tile and input that fired in any step:
    fewer than one per tile, step and non-zero input spike wherever an input fires twice."""
    graph = random_graph(7, **{"width": 4, "window": 3, "timesteps": 2, **kwargs})
    streams = np.random.default_rng(7).integers(0, 256, size=(2, 5))
    params = offchip(graph, rows, cols)
    seen = check_against_executor(graph, params, streams, memory_latency=latency,
                                  memory_interval=interval)
    per_step, once = weight_rows(params, run(graph, streams).tensors, streams)
    bursts = np.array([[pos.weight_bursts for pos in stream] for stream in seen])
    assert np.array_equal(bursts, once), (bursts, once)
    assert (once <= per_step).all() and (once < per_step).any() and once.min() > 0
    # the bus's bandwidth bounds the cycles: every row is R beats, ``interval`` cycles each
    cycles = np.array([[pos.cycles for pos in stream] for stream in seen])
    assert (cycles > once * rows * interval).all(), (cycles, once)


def test_a_corrupted_external_weight_is_seen():
    """One word of the external image changed (a row the first byte's embedding reads): the
    logits differ from the executor's."""
    graph = random_graph(7, width=4, window=3, timesteps=2, blocks=((True, 3),))
    params = offchip(graph, 2, 2)
    streams = np.array([[65, 66, 67]])
    image = list(external_weight_image(params))
    word = 65 * params.rows  # the embedding row of byte 65: tile 0, array row 0
    image[word] ^= (1 << params.cols * params.weight_bits) - 1  # every bit of its C weights
    with pytest.raises(AssertionError, match="stream 0 position"):
        check_against_executor(graph, params, streams, weight_image=image)


def test_offchip_program_has_no_weight_banks():
    """Off chip the rows have no weight memory and the accelerator an AXI4 port; on chip the
    reverse (and the default is on chip)."""
    from test_hw_program import _submodule_names

    graph = random_graph(7, width=4, window=3, timesteps=2, blocks=((True, 3),))
    params = compile_params(graph, 2, 2)
    assert not params.weights_offchip
    on = _submodule_names(Accelerator(params))
    off = _submodule_names(Accelerator(dataclasses.replace(params, weights_offchip=True)))
    assert "array.row0.weights" in on and "weight_fetch" not in on
    assert not any(name.endswith(".weights") for name in off) and "weight_fetch" in off
    assert "weight_bus" not in Accelerator(params).signature.members
    with pytest.raises(ValueError, match="off chip"):
        InferenceHarness(params, weight_image=[0])


@pytest.mark.parametrize("latency, interval", [(2, 1), (5, 1), (3, 3), (9, 2)])
def test_memory_model_keeps_its_latency_and_interval(latency, interval):
    """Two bursts of 3 beats, from words 2 and 5, requested in consecutive cycles: each first
    beat no earlier than ``latency`` cycles after its AR handshake, every beat ``interval``
    after the previous one (across the bursts too), the words in order, ``rlast`` on each
    third beat."""
    image = [0x11 * i for i in range(16)]
    dut = AxiReadMemory(image, addr_bits=4, data_bits=8, latency=latency, interval=interval)
    beats = []

    async def bench(ctx):
        ctx.set(dut.bus.rready, 1)
        ctx.set(dut.bus.arlen, 2)
        ctx.set(dut.bus.arvalid, 1)
        cycle = 0
        for addr in (2, 5):
            ctx.set(dut.bus.araddr, addr)
            assert ctx.get(dut.bus.arready)
            await ctx.tick()
            cycle += 1
        ctx.set(dut.bus.arvalid, 0)
        while len(beats) < 6 and cycle < 80:
            if ctx.get(dut.bus.rvalid):
                beats.append((cycle, ctx.get(dut.bus.rdata), ctx.get(dut.bus.rlast)))
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    first = [latency + i * interval for i in range(3)]
    second_start = max(1 + latency, first[-1] + interval)
    times = first + [second_start + i * interval for i in range(3)]
    words = [image[2 + i] for i in range(3)] + [image[5 + i] for i in range(3)]
    assert beats == [(t, w, int(i % 3 == 2)) for i, (t, w) in enumerate(zip(times, words,
                                                                            strict=True))]
    with pytest.raises(ValueError, match="at least 2"):
        AxiReadMemory(image, addr_bits=4, data_bits=8, latency=1)


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_offchip_windows_of_a_chain_stall_only_cycles(dense):
    """Random stalls on the harness's streams with the weights off chip, the scanner sparse
    or dense (a zero spike's SKIP reads nothing): the window's logits stay exact and the rows
    read are one per tile and input that fired in any step."""
    graph = random_graph(11, embed="spike", timesteps=2, context=3, width=5, hidden=(7, 4))
    params = dataclasses.replace(compile_params(graph, 2, 2, dense=dense),
                                 weights_offchip=True)
    windows = np.random.default_rng(3).integers(0, 256, size=(2, 3))
    trace = run(graph, windows)
    _, expected = weight_rows(params, trace.tensors, windows)
    seen = run_streams(params, windows, window=3, stall_seed=5, memory_latency=3,
                       memory_interval=2)
    for n, (position,) in enumerate(seen):
        assert np.array_equal(position.logits, trace.logits[n, -1]), f"window {n}"
        assert position.weight_bursts == expected[n, -1], f"window {n}"


def test_offchip_encoder_matches_the_executor():
    """An encoder's two passes over the sequence with the weights off chip: pooled logits,
    class and spike counts exact; the rows read count every layer once per pass it runs in."""
    graph = random_graph(7, classes=5, width=4, window=4, timesteps=2, blocks=((True, 4),))
    ids = np.random.default_rng(7).integers(0, 256, size=(2, 4))
    params = offchip(graph, 2, 2)
    seen = check_sequences(graph, params, ids, memory_latency=2, memory_interval=2)
    _, expected = weight_rows(params, run(graph, ids).tensors, ids)
    assert [pos.weight_bursts for pos in seen] == expected.sum(axis=1).tolist()
