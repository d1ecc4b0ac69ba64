"""Helpers of the hw tests: an integer model as AcceleratorParams, and simulation runners that
hide the Amaranth simulator behind plain functions."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from amaranth.sim import Simulator

from contract import IntModel, derive_widths
from hw import (
    Accelerator,
    AcceleratorParams,
    HiddenLayerParams,
    InferenceHarness,
    ReadoutParams,
)
from hw.layout import unpack

logger = logging.getLogger(__name__)


def params_from_model(model: IntModel, rows: int, cols: int, dense: bool = False
                      ) -> AcceleratorParams:
    """The layer-chain accelerator's parameters of an integer model on a ``rows x cols`` array,
    with the widths of the range analysis. (The build maps every graph onto the layer-program
    accelerator now; the chain accelerator stays, with its tests, until it is retired.)"""
    widths = derive_widths(model)
    return AcceleratorParams(
        rows=rows, cols=cols, timesteps=model.timesteps, context=model.context,
        embed_dim=model.embed_dim, spike_table=model.spike_table,
        layers=tuple(HiddenLayerParams(layer.weight, layer.bias, layer.threshold, layer.reset)
                     for layer in model.layers),
        readout=ReadoutParams(model.readout.weight, model.readout.bias),
        weight_bits=widths.weight, bias_bits=widths.bias, membrane_bits=widths.membrane,
        dense=dense)


def tamper(params: AcceleratorParams, layer: int, row: int, col: int, delta: int = 1
           ) -> AcceleratorParams:
    """``params`` with one weight changed by ``delta`` (wrapping inside the weight range)."""
    layers = list(params.all_layers)
    weight = np.array(layers[layer].weight)
    limit = (1 << (params.weight_bits - 1)) - 1
    value = weight[row, col] + delta
    weight[row, col] = value if -limit <= value <= limit else weight[row, col] - delta
    layers[layer] = replace(layers[layer], weight=weight)
    return replace(params, layers=tuple(layers[:-1]), readout=layers[-1])


@dataclass(frozen=True)
class Inference:
    """What the accelerator returned for one context."""

    logits: np.ndarray
    token: int
    cycles: int
    spike_counts: np.ndarray


def _stalls(seed, probability):
    rng = np.random.default_rng(seed)
    while True:
        yield bool(rng.random() < probability)


def run_accelerator(params: AcceleratorParams, contexts, *, stall_seed=None,
                    max_cycles: int = 200_000) -> list[Inference]:
    """Run ``contexts`` (a list of byte lists) through an Amaranth simulation of the
    accelerator; with ``stall_seed`` the testbench withholds valid and ready at random."""
    dut = Accelerator(params)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    results: list[Inference] = []
    stall = _stalls(stall_seed, 0.3) if stall_seed is not None else None
    n = params.spike_counters

    async def bench(ctx):
        for ids in contexts:
            pending = list(ids)
            logits = []
            token = None
            cycles = 0
            ctx.set(dut.logits.ready, 1)
            ctx.set(dut.next_token.ready, 1)
            if pending:
                ctx.set(dut.tokens.payload, pending[0])
                ctx.set(dut.tokens.valid, 1)
            async for _, _, t_valid, t_ready, l_valid, l_ready, l_data, n_valid, n_ready, \
                    n_data in ctx.tick().sample(
                        dut.tokens.valid, dut.tokens.ready, dut.logits.valid,
                        dut.logits.ready, dut.logits.payload, dut.next_token.valid,
                        dut.next_token.ready, dut.next_token.payload):
                cycles += 1
                if cycles > max_cycles:
                    raise TimeoutError(f"no next token after {max_cycles} cycles")
                if t_valid and t_ready:
                    pending.pop(0)
                if l_valid and l_ready:
                    logits.append(l_data)
                if n_valid and n_ready:
                    token = n_data
                    break
                if pending and not (t_valid and not t_ready):
                    hold = stall is not None and next(stall)
                    ctx.set(dut.tokens.valid, 0 if hold else 1)
                    ctx.set(dut.tokens.payload, pending[0])
                elif not pending:
                    ctx.set(dut.tokens.valid, 0)
                if stall is not None:
                    ctx.set(dut.logits.ready, 0 if next(stall) else 1)
                    ctx.set(dut.next_token.ready, 0 if next(stall) else 1)
            ctx.set(dut.logits.ready, 0)
            ctx.set(dut.next_token.ready, 0)
            await ctx.tick()
            counts = np.array([ctx.get(dut.spike_counts[i]) for i in range(n)])
            results.append(Inference(
                logits=np.array(logits, dtype=np.int64),
                token=token,
                cycles=ctx.get(dut.cycles),
                spike_counts=counts.reshape(params.n_hidden + 1, params.timesteps),
            ))

    sim.add_testbench(bench)
    sim.run()
    return results


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


def run_harness(params: AcceleratorParams, contexts, *, stall_seed=None,
                max_cycles: int = 200_000) -> list[Inference]:
    """Run ``contexts`` through an Amaranth simulation of :class:`hw.InferenceHarness`, the
    way the cocotb testbench does: set ``context``, pulse ``start``, wait for ``done``."""
    dut = InferenceHarness(params, stall_seed=stall_seed)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    results: list[Inference] = []
    mb, n = params.membrane_bits, params.spike_counters

    async def bench(ctx):
        await ctx.tick()
        for ids in contexts:
            word = sum(int(b) << (8 * p) for p, b in enumerate(ids))
            ctx.set(dut.context, word)
            await start_and_wait(ctx, dut, max_cycles)
            counts = unpack(ctx.get(dut.spike_counts), n, params.spike_count_bits, signed=False)
            results.append(Inference(
                logits=np.array(unpack(ctx.get(dut.logits_flat), 256, mb), dtype=np.int64),
                token=ctx.get(dut.token),
                cycles=ctx.get(dut.cycles),
                spike_counts=np.array(counts).reshape(params.n_hidden + 1, params.timesteps),
            ))

    sim.add_testbench(bench)
    sim.run()
    return results


def scan_cycles(params: AcceleratorParams, spikes) -> int:
    """Cycles the scanner spends on one sample, by docs/architecture.md "Cycles": per layer,
    tile and step ``Σ max(1, nnz)`` over the input words (``n_in`` in dense mode) plus one
    FIRE, plus one READOUT per readout tile. ``spikes``: the trace's spikes of that sample,
    ``[T, n]`` per spiking layer (embedding first)."""
    total = 0
    for layer, tiles in enumerate(params.tiles):
        s = np.asarray(spikes[layer])
        lanes = params.embed_dim if layer == 0 else params.cols
        per_tile = 0
        for t in range(params.timesteps):
            if params.dense:
                per_tile += s.shape[1] + 1
                continue
            for start in range(0, s.shape[1], lanes):
                per_tile += max(1, int(np.count_nonzero(s[t, start : start + lanes])))
            per_tile += 1
        if layer == params.n_hidden:
            per_tile += 1
        total += tiles * per_tile
    return total
