"""The command-line tools: bad input gives one stderr line and exit code 2, no partial files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from contract import zoo
from model.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


def run_cli(module: str, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def assert_usage_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert proc.stdout == ""


@pytest.fixture
def bad_checkpoints(tmp_path, tiny_trained):
    _, good = tiny_trained
    raw = good.read_bytes()
    paths = {
        "corrupt": tmp_path / "corrupt.pt",
        "truncated": tmp_path / "truncated.pt",
        "format": tmp_path / "format.pt",
        "nan": tmp_path / "nan.pt",
    }
    paths["corrupt"].write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096,
                                                                         dtype=np.uint8)))
    paths["truncated"].write_bytes(raw[: len(raw) // 2])
    torch.save({"format": "someone-else/3", "weights": torch.zeros(3)}, paths["format"])
    payload = torch.load(good, weights_only=True)
    payload["state_dict"]["layers.0.linear.weight"][0, 0] = float("nan")
    torch.save(payload, paths["nan"])
    return paths


@pytest.mark.parametrize(
    ("case", "words"),
    [("missing", ("does not exist",)), ("corrupt", ("corrupt",)),
     ("truncated", ("corrupt",)), ("format", ("not a SpikeForge checkpoint",)),
     ("nan", ("NaN",))],
)
def test_evaluate_rejects_bad_checkpoints(bad_checkpoints, tmp_path, case, words):
    path = bad_checkpoints.get(case, tmp_path / "missing.pt")
    assert_usage_error(run_cli("model.evaluate", "--ckpt", path), *words)


def test_evaluate_and_export_reject_a_float_checkpoint(tiny_float, tmp_path):
    assert_usage_error(run_cli("model.evaluate", "--ckpt", tiny_float), "float", "spiking")
    out = tmp_path / "out"
    assert_usage_error(run_cli("model.export", "--ckpt", tiny_float, "--out", out), "float")
    assert not out.exists()


def test_export_writes_nothing_for_a_nan_checkpoint(bad_checkpoints, tmp_path):
    out = tmp_path / "out"
    assert_usage_error(run_cli("model.export", "--ckpt", bad_checkpoints["nan"], "--out", out),
                       "NaN")
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "word"),
    [(["--steps", "0"], "--steps"), (["--weight-bits", "3"], "weight bits"),
     (["--hidden", "-4"], "--hidden"), (["--steps", "ten"], "--steps"),
     (["--rate-target", "1.5"], "rate target"), (["--device", "tpu"], "--device"),
     (["--device", "cuda:x"], "--device"), (["--eval-samples", "0"], "--eval-samples")],
)
def test_train_rejects_bad_flags(tmp_path, flags, word):
    out = tmp_path / "m.pt"
    assert_usage_error(run_cli("model.train", "--out", out, *flags), word)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_train_on_cuda_without_a_gpu_is_one_line(tmp_path):
    out = tmp_path / "m.pt"
    assert_usage_error(run_cli("model.train", "--out", out, "--device", "cuda"), "--device cuda",
                       "CPU")
    assert not out.exists()


def test_train_refuses_to_overwrite(tmp_path):
    out = tmp_path / "m.pt"
    out.write_bytes(b"keep me")
    assert_usage_error(run_cli("model.train", "--out", out, "--steps", "1"), "--force")
    assert out.read_bytes() == b"keep me"


def test_evaluate_rejects_bad_text_and_samples(tiny_trained, tmp_path):
    _, ckpt = tiny_trained
    assert_usage_error(run_cli("model.evaluate", "--ckpt", ckpt, "--text", tmp_path / "no.txt"),
                       "--text")
    assert_usage_error(run_cli("model.evaluate", "--ckpt", ckpt, "--samples", "0"), "--samples")


def test_evaluate_prints_both_figures(tiny_trained, tiny_float, tmp_path):
    _, ckpt = tiny_trained
    proc = run_cli("model.evaluate", "--ckpt", ckpt, "--float-ckpt", tiny_float,
                   "--samples", "2000")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"spiking: \d+\.\d{3} bits/byte", lines[0])
    assert re.fullmatch(r"float twin: \d+\.\d{3} bits/byte", lines[1])
    assert any(line.startswith("firing rates: embed ") for line in lines)


def test_export_cli_writes_onnx_and_heldout(tiny_trained, tmp_path):
    _, ckpt = tiny_trained
    out = tmp_path / "export"
    proc = run_cli("model.export", "--ckpt", ckpt, "--out", out, "--samples", "300",
                   "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    arrays = np.load(out / "heldout.npz")
    inputs, targets = arrays["input"], arrays["target"]
    model, _ = load_checkpoint(ckpt, kind="spiking")
    assert inputs.dtype == np.int64 and inputs.shape == (300, model.config.context)
    assert targets.dtype == np.int64 and targets.shape == (300,)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["output"], {"input": inputs})
    assert np.array_equal(logits[:, -1].astype(np.int64),
                          zoo.forward(model.to_int_model(), inputs))


def test_train_takes_spikelms_neuron_and_the_checkpoint_keeps_it(tmp_path):
    out = tmp_path / "spikelm.pt"
    proc = run_cli("model.train", "--out", out, "--steps", "3", "--hidden", "16", "--layers",
                   "1", "--embed", "4", "--context", "3", "--neuron", "spikelm", "--spikes",
                   "binary", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    model, _ = load_checkpoint(out, kind="spiking")
    neuron = model.settings.neuron
    assert (neuron.kind, neuron.amplitude, neuron.firing, neuron.spikes) == (
        "spikelm", "per-step", "calibrated", "binary")
    proc = run_cli("model.evaluate", "--ckpt", out, "--samples", "500")
    assert proc.returncode == 0, proc.stderr


def test_train_takes_spikelms_neuron_for_the_transformer(tmp_path):
    out = tmp_path / "m.pt"
    proc = run_cli("model.train", "--out", out, "--arch", "transformer", "--neuron", "spikelm",
                   "--steps", "2", "--d-model", "4", "--heads", "1", "--ffn", "4", "--context",
                   "3", "--timesteps", "2", "--batch", "4", "--threads", "1", "--eval-samples",
                   "2048")
    assert proc.returncode == 0, proc.stderr
    model, _ = load_checkpoint(out, kind="spiking")
    assert model.settings.neuron.kind == "spikelm" and model.settings.neuron.per_step
    assert any(op.scale is not None for op in model.to_graph().ops
               if hasattr(op, "scale"))  # per-step spikes join the residual by a scale
