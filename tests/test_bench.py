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
