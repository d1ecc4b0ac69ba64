"""The benchmark suite's own machinery: its command line, and the plain-Verilator baseline."""

import subprocess
import sys

import numpy as np
import onnx
import pytest

from bench.simspeed import plain_verilator
from contract.onnx_io import to_onnx
from contract.random_model import random_model
from sim.runner import run_build


def test_unknown_benchmark_is_a_one_line_error():
    proc = subprocess.run([sys.executable, "-m", "bench", "--only", "cycles,nope"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "--only takes names from cycles" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    model = random_model(5, context=2, embed_dim=3, hidden=(6,), timesteps=2)
    onnx.save(to_onnx(model), root / "m.onnx")
    ids = np.random.default_rng(5).integers(0, 256, size=(6, model.context))
    np.savez(root / "inputs.npz", input=ids)
    out = root / "build"
    proc = subprocess.run(
        [sys.executable, "-m", "rtl_gen", "build", "--onnx", str(root / "m.onnx"), "--inputs",
         str(root / "inputs.npz"), "--out", str(out), "--rows", "2", "--cols", "2"],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return out, ids


def test_plain_verilator_baseline_runs_the_same_inferences(tiny_build):
    """The C++ baseline of bench.simspeed sees the cocotb run's next bytes and cycle counts."""
    out, ids = tiny_build
    cocotb_run = run_build(out)
    assert cocotb_run.matched == len(ids)
    plain = plain_verilator(out, ids)
    assert plain["tokens"] == [s["token"] for s in cocotb_run.samples]
    assert plain["cycles"] == [s["cycles"] for s in cocotb_run.samples]
    assert min(plain["cycles"]) > 0


@pytest.mark.parametrize("kind", ["spiking", "mac"])
def test_area_designs_accumulate_what_they_should(kind):
    """bench.designs: every PE adds its row's input times its weight each cycle (the wrapper
    has no valid signal), so after a clear the folded output is fold(n * x * w) for the cycles
    n since the clear reached the PEs, growing by one step per cycle."""
    from amaranth.sim import Simulator

    from bench.designs import PEArray

    dut = PEArray(kind, 2, 2, 16)
    rng = np.random.default_rng(3)
    weights = rng.integers(-127, 128, size=4)
    x = np.array([1, -1]) if kind == "spiking" else rng.integers(-128, 128, size=2)
    product = np.repeat(x, 2) * weights

    def fold(n):
        out = 0
        for value in n * product:
            out ^= int(value) & 0xFFFF
        return out

    def code(v):
        return {1: 0b01, -1: 0b11}[int(v)] if kind == "spiking" else int(v) & 0xFF

    seen = []

    async def bench(ctx):
        for w in weights[::-1]:  # the chain shifts towards the last PE
            ctx.set(dut.w_in, int(w) & 0xFF)
            ctx.set(dut.w_shift, 1)
            await ctx.tick()
        ctx.set(dut.w_shift, 0)
        for v in x[::-1]:
            ctx.set(dut.x_in, code(v))
            ctx.set(dut.x_shift, 1)
            await ctx.tick()
        ctx.set(dut.x_shift, 0)
        ctx.set(dut.clear, 1)
        for _ in range(4):
            await ctx.tick()
        ctx.set(dut.clear, 0)
        for _ in range(12):
            await ctx.tick()
            seen.append(ctx.get(dut.out))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    start = next(n for n in range(40) if fold(n) == seen[-1])
    assert start > 3, "the accumulators must have run"
    assert seen[-6:] == [fold(n) for n in range(start - 5, start + 1)]


def test_compressors_are_measured_on_real_bytes():
    """The compressor baseline compresses what it is given: repetitive bytes far below 8 bits
    per byte, random bytes not below 7.9; joined, a file's second copy is nearly free."""
    from bench.compressors import compressor_figures

    rng = np.random.default_rng(0)
    files = [b"def f(x):\n    return x\n" * 200,
             rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()]
    figures = compressor_figures(files[:1])
    assert all(f["whole_split"] < 1.0 for f in figures.values())
    noisy = compressor_figures(files[1:])
    assert all(f["whole_split"] > 7.9 for f in noisy.values())
    twice = compressor_figures([files[1], files[1]])
    assert all(f["whole_split"] < 0.6 * f["file_by_file"] for f in twice.values())


def test_asic_stimulus_words():
    """``bench.asic``'s stimulus: chains loaded under ``clear``, then ternary spike codes at
    the asked rate (half negative) for the spiking array, and int8 bytes for the MAC array."""
    from bench.asic import CYCLES, stimulus

    words = np.array(stimulus("spiking", 8, 8, 0.35))
    assert len(words) == CYCLES and (words >> 18 == 0).all()
    clear, shift, x = words >> 17 & 1, words >> 8 & 1, words & 0xFF
    assert clear[:8 * 8 + 8 + 4].all() and clear[100:].sum() == len(range(128, CYCLES, 32))
    assert shift.all() and set(x.tolist()) == {0, 0b01, 0b11}
    assert abs((x != 0).mean() - 0.35) < 0.05 and abs((x == 0b11).sum() / (x != 0).sum()
                                                       - 0.5) < 0.1
    mac = np.array(stimulus("mac", 8, 8, 0.35)) & 0xFF
    assert len(set(mac.tolist())) > 200


def test_fmax_sweeps_each_design_over_the_seeds(tmp_path):
    """``bench.fmax`` places each design once per seed: one explore point per seed, the
    design's target and array, with synthesis."""
    from bench.fmax import DESIGNS, spec_text
    from rtl_gen.explore import load_spec

    for design, (_, target, rows, cols) in DESIGNS.items():
        path = tmp_path / f"{design}.toml"
        path.write_text(spec_text(design, [1, 2, 3]))
        spec = load_spec(path)
        assert [p["seed"] for p in spec["points"]] == [1, 2, 3]
        assert {(p["target"], p["rows"], p["cols"]) for p in spec["points"]} == {
            (target, rows, cols)}
        assert spec["stages"] == ["build", "sim", "synth"] and spec["checkpoint"].is_file()
