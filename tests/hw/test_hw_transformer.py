"""The transformer accelerator in the Amaranth simulator against the contract, exactly."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from contract import transformer as xf
from hw.transformer import LayerKind, TransformerParams
from hw.transformer.score import popcount

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_contract_transformer import random_transformer  # noqa: E402
from xsim import check_against_executor, params_from_transformer, run_streams  # noqa: E402

SEED = 5


@pytest.mark.parametrize("blocks, rows, cols, timesteps", [
    (1, 2, 4, 2),   # d = P: one tile
    (2, 1, 4, 3),   # d > P: two tiles of whole heads
    (1, 3, 3, 2),   # d < P: padding lanes, a row split across heads
])
def test_streams_match_the_contract(blocks, rows, cols, timesteps):
    model = random_transformer(seed=SEED + blocks, context=4, d=8, heads=2, ffn=12,
                               blocks=blocks, timesteps=timesteps)
    params = params_from_transformer(model, rows, cols)
    streams = np.random.default_rng(SEED).integers(0, 256, size=(2, 6))
    seen = check_against_executor(model, params, streams)
    # the window slides: positions past the window cost about the same as position W - 1
    cycles = [pos.cycles for pos in seen[0]]
    assert max(cycles[3:]) < 1.5 * min(cycles[3:]), cycles
    assert len({pos.token for stream in seen for pos in stream}) > 1


def test_stalls_change_cycles_not_results():
    model = random_transformer(seed=SEED, context=4, d=8, heads=2, ffn=12, timesteps=2)
    params = params_from_transformer(model, 2, 4)
    streams = np.random.default_rng(SEED + 1).integers(0, 256, size=(1, 5))
    plain = check_against_executor(model, params, streams)
    stalled = check_against_executor(model, params, streams, stall_seed=0xBEEF)
    assert all(s.cycles > p.cycles for s, p in zip(stalled[0], plain[0], strict=True))


def test_a_corrupted_weight_is_seen():
    """One readout weight off by one in the hardware, on an input that fires at the first
    position: logit 0 must differ."""
    model = random_transformer(seed=SEED, context=4, d=8, heads=2, ffn=12, timesteps=2)
    params = params_from_transformer(model, 2, 4)
    streams = np.random.default_rng(SEED).integers(0, 256, size=(1, 1))
    trace = xf.forward(model, streams, trace=True)
    fired = trace.spikes[-1][0, :, 0].sum(axis=0)  # norm_f spikes of position 0, summed over t
    i = int(np.argmax(np.abs(fired)))
    assert fired[i] != 0
    layers = list(params.layers)
    weight = np.array(layers[-1].weight)
    weight[0, i] += 1 if weight[0, i] < 127 else -1
    layers[-1] = replace(layers[-1], weight=weight)
    seen = run_streams(replace(params, layers=tuple(layers)), streams)
    assert seen[0][0].logits[0] != trace.logits[0, 0, 0]
    assert np.array_equal(seen[0][0].logits[1:], trace.logits[0, 0, 1:])


def test_params_refuse_heads_split_across_tiles():
    model = random_transformer(seed=SEED, context=4, d=8, heads=2, ffn=12)
    with pytest.raises(ValueError, match="whole heads of 4 channels"):
        params_from_transformer(model, 2, 3)


def test_params_place_caches():
    model = random_transformer(seed=SEED, context=4, d=8, heads=2, ffn=12, blocks=2)
    params = params_from_transformer(model, 2, 4)
    kinds = [layer.kind for layer in params.layers]
    assert kinds.count(LayerKind.ATTENTION) == 2 and kinds[0] == LayerKind.EMBED
    caches = [r for r in params.regions.values() if r.slots > 1]
    assert len(caches) == 4 and sum(r.v_bank for r in caches) == 2
    assert params.spike_depth >= 2 * 4 * params.timesteps


def test_popcount_tree():
    from amaranth.hdl import Const
    from amaranth.sim import Simulator

    values = {}

    async def bench(ctx):
        for bits in (0, 1, 0b1011, (1 << 13) - 1, 0b1000000000001):
            values[bits] = ctx.get(popcount(Const(bits, 13)))

    from amaranth.hdl import Module
    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()
    assert values == {b: bin(b).count("1") for b in values}


def test_params_errors():
    model = random_transformer(seed=SEED, context=4, d=8, heads=2, ffn=12)
    params = params_from_transformer(model, 2, 4)
    with pytest.raises(ValueError, match="raise weight_bits"):
        replace(params, weight_bits=4)
    with pytest.raises(ValueError, match="needs an EMBED layer or a spike table"):
        replace(params, layers=params.layers[1:])
    assert isinstance(params, TransformerParams)
