"""The command line: bad input gets one line, a non-zero exit and no finished-looking output."""

import subprocess
import sys

import onnx
import pytest
from onnx import helper

from contract.onnx_io import to_onnx
from contract.random_model import random_model


def run(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "rtl_gen", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(code, stderr, *fragments):
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(to_onnx(random_model(0, hidden=(5,))), path)
    return path


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--rows", "0"], "--rows"),
        (["--cols", "x"], "--cols"),
        (["--target", "xc7a35t"], "--target"),
        (["--threshold-scale", "-1"], "threshold-scale"),
        (["--weights", "rom"], "--weights"),
        (["--weights", "offchip", "--rows", "300", "--cols", "1"], "--rows"),
        (["--memory-latency", "0"], "--memory-latency"),
    ],
)
def test_invalid_flags(tmp_path, onnx_file, flags, fragment):
    out = tmp_path / "out"
    code, _, err = run("build", "--onnx", onnx_file, "--out", out, *flags)
    assert_one_line_error(code, err, fragment)
    assert not out.exists()


def test_missing_checkpoint(tmp_path):
    out = tmp_path / "out"
    code, _, err = run("build", "--ckpt", tmp_path / "nope.pt", "--out", out)
    assert_one_line_error(code, err, "nope.pt")
    assert not out.exists()


def test_not_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("hello")
    out = tmp_path / "out"
    code, _, err = run("build", "--onnx", bad, "--out", out)
    assert_one_line_error(code, err, "not a valid ONNX model")
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_unsupported_op(tmp_path):
    model = to_onnx(random_model(0))
    model.graph.node.insert(1, helper.make_node("Relu", ["s0"], ["r"], name="relu7"))
    path = tmp_path / "u.onnx"
    onnx.save(model, path)
    out = tmp_path / "out"
    code, _, err = run("build", "--onnx", path, "--out", out)
    assert_one_line_error(code, err, "Relu", "relu7")
    assert not out.exists()


def test_existing_output_is_not_overwritten(tmp_path, onnx_file):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, _, err = run("build", "--onnx", onnx_file, "--out", out)
    assert_one_line_error(code, err, "already exists")
    assert (out / "mine.txt").read_text() == "keep me"
    code, _, err = run("build", "--onnx", onnx_file, "--out", out, "--force")
    assert_one_line_error(code, err, "not a SpikeForge build")
    assert (out / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize("command", ["sim", "synth"])
def test_folder_that_is_not_a_build(tmp_path, command):
    code, _, err = run(command, tmp_path)
    assert_one_line_error(code, err, "not a SpikeForge build")
    code, _, err = run(command, tmp_path / "missing")
    assert_one_line_error(code, err, "no such folder")


def test_onnx_build_samples_real_heldout_text(tmp_path, onnx_file):
    """--onnx without --inputs: the golden inputs are held-out text, not random bytes."""
    import numpy as np

    out = tmp_path / "out"
    code, stdout, err = run("build", "--onnx", onnx_file, "--out", out, "--rows", 2, "--cols",
                            3, "--samples", 16)
    assert code == 0, err
    with np.load(out / "golden.npz") as golden:
        ids = golden["input"]
    assert ids.shape == (16, 3)
    printable = np.isin(ids, list(range(32, 127)) + [9, 10])
    assert printable.mean() > 0.9  # Python source, mostly printable ASCII
    assert not (tmp_path / "out.partial").exists()


def test_corrupted_checkpoint(tmp_path):
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "checkpoints" / "spikelm-mlp.pt"
    broken = tmp_path / "broken.pt"
    broken.write_bytes(shipped.read_bytes()[:5000])
    out = tmp_path / "out"
    code, _, err = run("build", "--ckpt", broken, "--out", out)
    assert_one_line_error(code, err, "broken.pt")
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_model_too_large_for_the_target(tmp_path):
    out = tmp_path / "out"
    code, _, err = run("build", "--out", out, "--target", "ice40-up5k", "--weights", "onchip")
    assert_one_line_error(code, err, "block RAMs", "ice40-up5k", "--target", "--weights offchip")
    assert not out.exists() and not (tmp_path / "out.partial").exists()
