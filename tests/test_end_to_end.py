"""build -> sim on Verilator, bit-exact against the reference, and a tamper that must be caught."""

import json
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import onnx
import pytest
from amaranth.back import verilog

from contract import forward
from contract.onnx_io import to_onnx
from contract.random_model import random_model


def rtl_gen(*args):
    proc = subprocess.run([sys.executable, "-m", "rtl_gen", *map(str, args)],
                          capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    """A random model with layers of 7 and 5 on a 3 x 2 array: no layer divides the array."""
    root = tmp_path_factory.mktemp("e2e")
    model = random_model(11, context=3, embed_dim=4, hidden=(7, 5), timesteps=3)
    onnx.save(to_onnx(model), root / "m.onnx")
    ids = np.random.default_rng(11).integers(0, 256, size=(24, model.context))
    np.savez(root / "inputs.npz", input=ids)
    out = root / "build"
    code, text = rtl_gen("build", "--onnx", root / "m.onnx", "--inputs", root / "inputs.npz",
                         "--out", out, "--rows", 3, "--cols", 2, "--samples", 24)
    assert code == 0, text
    return model, ids, out


def test_build_folder_holds_everything(small_build):
    model, ids, out = small_build
    for name in ("model.onnx", "golden.npz", "report.json", "report.md", "plan.json",
                 "rtl/spikeforge_top.v", "rtl/spikeforge_synth.v", "tb/testbench.py",
                 "mem/weights_row0.hex"):
        assert (out / name).is_file(), name
    with np.load(out / "golden.npz") as golden:
        assert np.array_equal(golden["input"], ids)
        assert np.array_equal(golden["output"], forward(model, ids))
        assert np.any(golden["output"])


def test_sim_is_bit_exact(small_build):
    model, ids, out = small_build
    code, text = rtl_gen("sim", out)
    assert code == 0, text
    assert "24/24 samples matched" in text
    report = json.loads((out / "report.json").read_text())
    assert report["sim"]["matched"] == 24
    assert report["cycles_per_inference"] >= report["ideal_cycles_per_inference"] > 0
    rates = list(report["hardware_firing_rates"].values())
    assert rates == pytest.approx(list(report["firing_rates"].values()), abs=1e-12)
    assert all(0.02 < r < 0.98 for r in rates)


def test_one_corrupted_weight_fails_the_check(small_build, tmp_path):
    """Regenerate the RTL with one readout weight negated; the same golden file must fail."""
    import hw
    from rtl_gen.build import BuildConfig  # noqa: F401  (the package must import cleanly)
    from rtl_gen.frontend import load_graph
    from rtl_gen.passes import FuseLinear, run_pipeline
    from rtl_gen.plan import plan_hardware
    from rtl_gen.targets import get_target

    model, ids, out = small_build
    tampered_dir = tmp_path / "tampered"
    shutil.copytree(out, tampered_dir, ignore=shutil.ignore_patterns("sim_build_*"))
    graph = run_pipeline(load_graph(out / "model.onnx"), [FuseLinear()])
    params = plan_hardware(graph, 3, 2, get_target("ecp5-85k"), False).params
    trace = forward(model, ids[:1], trace=True)
    token = int(np.argmax(trace.logits[0]))
    weight = params.readout.weight.copy()
    drive = trace.spikes[-1][0].sum(axis=0)  # net spikes of each readout input, sample 0
    index = int(np.flatnonzero((drive != 0) & (weight[token] != 0))[0])
    weight[token, index] = -weight[token, index]  # one weight; same magnitude, same widths
    tampered = replace(params, readout=hw.params.ReadoutParams(weight, params.readout.bias))
    text = verilog.convert(hw.InferenceHarness(tampered), name="spikeforge_top", emit_src=False)
    (tampered_dir / "rtl" / "spikeforge_top.v").write_text(text)
    code, output = rtl_gen("sim", tampered_dir, "--samples", 4)
    assert code == 1, output
    assert "differ from the reference" in output


@pytest.mark.slow
def test_synth_places_and_routes_with_a_bitstream(small_build):
    """yosys + nextpnr + icepack from PyPI on the iCE40 UP5K: figures land in report.json."""
    _, _, out = small_build
    code, text = rtl_gen("synth", out, "--target", "ice40-up5k")
    assert code == 0, text
    synth = json.loads((out / "report.json").read_text())["synth"]["ice40-up5k"]
    assert 0 < synth["luts"] <= 5280
    assert synth["ffs"] > 0 and synth["brams"] > 0
    assert synth["dsps"] == 0, "the accelerator must contain no multiplier"
    assert synth["fmax_mhz"] > 10
    assert (out / synth["bitstream"]).stat().st_size > 1000
    assert "ice40-up5k" in (out / "report.md").read_text()


def test_trained_model_with_other_flags_on_a_non_dividing_array(tmp_path):
    """A really trained model (prime width, T=3, 4-bit weights) on a 3 x 5 array, real text."""
    ckpt = tmp_path / "nd.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "model.train", "--out", ckpt, "--steps", "60", "--seed", "7",
         "--hidden", "97", "--timesteps", "3", "--weight-bits", "4", "--threads", "1"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "build"
    code, text = rtl_gen("build", "--ckpt", ckpt, "--out", out, "--rows", 3, "--cols", 5,
                         "--samples", 48)
    assert code == 0, text
    report = json.loads((out / "report.json").read_text())
    assert all(n % 15 for n in report["model"]["layer_sizes"][1:])
    code, text = rtl_gen("sim", out)
    assert code == 0, text
    assert "48/48 samples matched" in text
