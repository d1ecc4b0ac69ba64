"""The whole accelerator in the Amaranth simulator against contract.reference, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hwsim import params_from_model, run_accelerator, run_harness, scan_cycles, tamper

from contract import forward
from contract.random_model import random_model

# (seed, context, embed_dim, hidden, timesteps, weight_bits, rows, cols): array shapes that
# divide none of the layers, layer sizes 1 and primes, T in 1..5, weight bits 2/4/8.
CASES = [
    (1, 2, 3, (7,), 3, 4, 3, 2),
    (2, 3, 2, (7, 5), 1, 2, 2, 3),
    (3, 2, 4, (1,), 5, 8, 1, 1),
    (4, 3, 2, (3, 11), 2, 8, 4, 1),
    (5, 1, 5, (13,), 4, 4, 1, 6),
    (6, 2, 2, (1,), 1, 2, 4, 1),  # 3 cycles per readout tile < R: READOUT spacing must hold
]


def _model(case):
    seed, context, embed_dim, hidden, timesteps, weight_bits, _, _ = case
    return random_model(seed, context=context, embed_dim=embed_dim, hidden=hidden,
                        timesteps=timesteps, weight_bits=weight_bits)


def _contexts(seed, model, n=2):
    rng = np.random.default_rng(1000 + seed)
    return rng.integers(0, 256, size=(n, model.context))


def _check(model, ids, results, seed):
    assert len(results) == len(ids), f"seed {seed}"
    for n, result in enumerate(results):
        trace = forward(model, ids[n : n + 1], trace=True)
        assert result.logits.shape == (256,), f"seed {seed} sample {n}"
        assert np.array_equal(result.logits, trace.logits[0]), f"seed {seed} sample {n}"
        assert result.token == int(np.argmax(trace.logits[0])), f"seed {seed} sample {n}"
        assert np.array_equal(result.spike_counts, trace.spike_counts()), f"seed {seed}"
        assert np.any(result.logits != 0), f"seed {seed}: logits trivially zero"


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"seed{c[0]}-{c[6]}x{c[7]}-h{c[3]}")
def test_sparse_matches_reference(case):
    model = _model(case)
    ids = _contexts(case[0], model)
    params = params_from_model(model, case[6], case[7])
    results = run_accelerator(params, ids.tolist())
    _check(model, ids, results, case[0])


def test_spike_rates_are_plausible():
    """The models under test fire neither never nor always (or the checks would be weak)."""
    for case in CASES[:5]:
        model = _model(case)
        rates = forward(model, _contexts(case[0], model), trace=True).firing_rates()
        assert all(0.02 < r < 0.98 for r in rates), f"seed {case[0]}: rates {rates}"


@pytest.mark.parametrize("case", CASES[:2], ids=lambda c: f"seed{c[0]}-{c[6]}x{c[7]}")
def test_dense_matches_reference_and_is_slower(case):
    model = _model(case)
    ids = _contexts(case[0], model)
    sparse = run_accelerator(params_from_model(model, case[6], case[7]), ids.tolist())
    params = params_from_model(model, case[6], case[7], dense=True)
    dense = run_accelerator(params, ids.tolist())
    _check(model, ids, dense, case[0])
    for s, d in zip(sparse, dense, strict=True):
        assert d.cycles > s.cycles, f"seed {case[0]}: dense {d.cycles} <= sparse {s.cycles}"


def test_stalls_do_not_change_results():
    case = CASES[0]
    model = _model(case)
    ids = _contexts(case[0], model)
    params = params_from_model(model, case[6], case[7])
    calm = run_accelerator(params, ids.tolist())
    stalled = run_accelerator(params, ids.tolist(), stall_seed=11)
    _check(model, ids, stalled, case[0])
    for a, b in zip(calm, stalled, strict=True):
        assert b.cycles > a.cycles


def test_tampered_weight_is_caught():
    case = CASES[0]
    model = _model(case)
    ids = _contexts(case[0], model, n=1)
    params = params_from_model(model, case[6], case[7])
    # the readout weight of the winning logit on an input whose spikes do not cancel over time:
    # the tampered weight must move that logit
    trace = forward(model, ids, trace=True)
    net = trace.spikes[-1][0].sum(axis=0)
    index = int(np.flatnonzero(net)[0])
    winner = int(np.argmax(trace.logits[0]))
    bad = tamper(params, params.n_hidden, winner, index)
    result = run_accelerator(bad, ids.tolist())[0]
    assert not np.array_equal(result.logits, trace.logits[0])


@pytest.mark.parametrize("stall_seed", [None, 0xACE1])
def test_harness_matches_reference(stall_seed):
    case = CASES[1]
    model = _model(case)
    ids = _contexts(case[0], model)
    params = params_from_model(model, case[6], case[7])
    results = run_harness(params, ids.tolist(), stall_seed=stall_seed)
    _check(model, ids, results, case[0])
    direct = run_accelerator(params, ids.tolist())
    for h, d in zip(results, direct, strict=True):
        if stall_seed is None:
            assert h.cycles == d.cycles
        else:
            assert h.cycles > d.cycles


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_cycles_are_the_scan_plus_a_fixed_overhead(dense):
    """No bubbles: every cycle beyond the scan of docs/architecture.md "Cycles" is a fixed
    cost, ``k + (L+1)*(R+10) + 258`` (context, per-layer pipeline fill and drain, output)."""
    for case in (CASES[0], CASES[3]):
        model = _model(case)
        ids = _contexts(case[0], model, n=3)
        params = params_from_model(model, case[6], case[7], dense=dense)
        results = run_accelerator(params, ids.tolist())
        overhead = params.context + (params.n_hidden + 1) * (params.rows + 10) + 258
        for n, result in enumerate(results):
            trace = forward(model, ids[n : n + 1], trace=True)
            scan = scan_cycles(params, [s[0] for s in trace.spikes])
            assert result.cycles == scan + overhead, f"seed {case[0]} sample {n}"


def test_harness_done_is_a_level_and_outputs_hold():
    """done falls after an accepted start, rises after the next-token beat and stays high
    with stable outputs; a start during an inference is ignored."""
    from amaranth.sim import Simulator

    from hw import InferenceHarness

    case = CASES[1]
    model = _model(case)
    params = params_from_model(model, case[6], case[7])
    dut = InferenceHarness(params)
    ids = [[1, 2, 3], [200, 100, 7]]
    seen = []

    async def bench(ctx):
        assert ctx.get(dut.done) == 0
        for context in ids:
            ctx.set(dut.context, sum(b << (8 * p) for p, b in enumerate(context)))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            assert ctx.get(dut.done) == 0
            await ctx.tick().repeat(20)
            ctx.set(dut.context, 0xFFFFFF)  # a start while busy must be ignored
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick().until(dut.done)
            snapshot = (ctx.get(dut.logits_flat), ctx.get(dut.token), ctx.get(dut.cycles))
            await ctx.tick().repeat(50)
            assert ctx.get(dut.done) == 1
            assert (ctx.get(dut.logits_flat), ctx.get(dut.token), ctx.get(dut.cycles)) == snapshot
            seen.append(snapshot[1])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    expected = np.argmax(forward(model, np.array(ids)), axis=1).tolist()
    assert seen == expected


@pytest.mark.parametrize("seed", range(12))
def test_random_configurations(seed):
    """Seeded random models and array shapes, sparse or dense, one context each."""
    rng = np.random.default_rng(500 + seed)
    sizes = [1, 2, 3, 5, 7, 11, 13]
    hidden = tuple(int(rng.choice(sizes)) for _ in range(int(rng.integers(1, 3))))
    model = random_model(
        500 + seed, context=int(rng.integers(1, 4)), embed_dim=int(rng.integers(1, 5)),
        hidden=hidden, timesteps=int(rng.integers(1, 6)),
        weight_bits=int(rng.choice([2, 4, 8])),
    )
    rows, cols = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    params = params_from_model(model, rows, cols, dense=bool(rng.integers(0, 2)))
    ids = rng.integers(0, 256, size=(1, model.context))
    result = run_accelerator(params, ids.tolist())[0]
    trace = forward(model, ids, trace=True)
    detail = f"seed {seed}: {rows}x{cols} hidden {hidden} T {model.timesteps}"
    assert np.array_equal(result.logits, trace.logits[0]), detail
    assert result.token == int(np.argmax(trace.logits[0])), detail
    assert np.array_equal(result.spike_counts, trace.spike_counts()), detail
