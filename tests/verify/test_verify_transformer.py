"""A transformer build end to end: ONNX -> build -> Verilator, every position of every held-out
stream bit-exact, generation equal to the reference byte for byte, a flipped weight bit caught,
stalls that change only cycles, byte-identical rebuilds and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_verify_rtl import (
    assert_builds_identical,
    assert_sim_fails,
    rtl_gen,
    save_inputs,
    set_memory_word,
    tampered_copy,
)
from test_verify_rtl import build as build_of

from contract import zoo
from contract.graph import Readout
from contract.graph import generate as graph_generate
from contract.graph import run as graph_run
from hw import LayerKind, layout
from rtl_gen.frontend import load_graph
from rtl_gen.passes import FuseLinear, run_pipeline
from rtl_gen.plan_program import program_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hwsim import compile_params  # noqa: E402
from test_contract_transformer import random_transformer  # noqa: E402

ROWS, COLS = 2, 4
MODEL = dict(seed=21, context=4, d=8, heads=2, ffn=12, blocks=2, timesteps=2)
STREAMS, LENGTH = 3, 9


def make_inputs(root: Path):
    ids = np.random.default_rng(21).integers(0, 256, size=(STREAMS, LENGTH))
    return save_inputs(root, random_transformer(**MODEL), ids)


def build(root: Path, out: Path, *flags) -> Path:
    return build_of(root, out, *flags, rows=ROWS, cols=COLS, samples=None)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("xrtl")
    model, ids = make_inputs(root)
    return model, ids, build(root, root / "build")


def test_build_holds_the_streams_golden_outputs(built):
    model, ids, out = built
    with np.load(out / "golden.npz") as golden:
        assert np.array_equal(golden["input"], ids)
        assert np.array_equal(golden["output"], zoo.forward_streams(model, ids, all_positions=True))
    report = json.loads((out / "report.json").read_text())
    assert report["streams"] and report["multipliers"] == 0
    assert report["golden_positions"] == STREAMS * LENGTH
    assert report["full_context_positions"] == STREAMS * (LENGTH - MODEL["context"] + 1)
    plan = json.loads((out / "plan.json").read_text())
    assert [layer["kind"] for layer in plan["layers"]].count("ATTENTION") == MODEL["blocks"]


@pytest.mark.slow
def test_sim_is_bit_exact_at_every_position(built):
    _, _, out = built
    code, stdout, stderr = rtl_gen("sim", out)
    assert code == 0, stdout + stderr
    positions = STREAMS * LENGTH
    assert f"{positions}/{positions} positions ({STREAMS} streams) matched" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["sim"]["full_context_matched"] == report["full_context_positions"]
    assert report["cycles_per_inference"] > report["ideal_cycles_per_inference"] > 0
    rates = report["hardware_firing_rates"]
    assert sorted(rates) == sorted(report["spiking_layer_names"])
    reference = report["firing_rates"]
    assert all(abs(rates[k] - reference[k]) < 1e-9 for k in rates), (rates, reference)


@pytest.mark.slow
def test_generation_equals_the_reference(built):
    """Run from the build's parent with a relative path, as the README's command does."""
    model, _, out = built
    code, stdout, stderr = rtl_gen("generate", out.name, "--prompt", "def ", "--prompt",
                                   "x = 1", "--tokens", 12, cwd=out.parent)
    assert code == 0, stdout + stderr
    assert "2/2 generations equal the reference byte for byte" in stdout
    report = json.loads((out / "report.json").read_text())
    texts = report["generate"]["texts"]
    for prompt, text in zip((b"def ", b"x = 1"), texts, strict=True):
        expected = graph_generate(model.graph(), [0] * model.context + list(prompt), 12)
        assert text == bytes(expected).decode("utf-8", "replace")


@pytest.mark.slow
def test_one_flipped_weight_bit_fails(built, tmp_path):
    """Bit 0 of the readout weight that one norm_f spike drives into logit 0."""
    model, ids, out = built
    params = compile_params(model, ROWS, COLS)
    trace = zoo.forward_streams(model, ids[:1], trace=True)
    drive = trace.spikes[-1][0, :, 0].sum(axis=0)
    i = int(np.flatnonzero(drive)[0])
    readout = len(params.layers) - 1
    address = layout.weight_address(params, readout, 0, i)
    image = layout.weight_bank_images(params)[0]
    text = (out / "rtl" / "spikeforge_top.v").read_text()
    corrupted = set_memory_word(text, image, address, int(image[address]) ^ 1)
    assert_sim_fails(tampered_copy(out, tmp_path / "t", corrupted))


@pytest.mark.slow
def test_stalls_change_no_result(built, tmp_path):
    """Random handshake gaps (``--stall-seed``): the same tokens; ``cycles`` (byte beat to
    token beat) can only grow."""
    _, _, out = built
    stalled = build(out.parent, tmp_path / "s", "--stall-seed", 4242)
    for folder in (out, stalled):
        code, stdout, stderr = rtl_gen("sim", folder)
        assert code == 0, stdout + stderr
    plain = json.loads((out / "sim_build_verilator" / "results.json").read_text())["samples"]
    slow = json.loads((stalled / "sim_build_verilator" / "results.json").read_text())["samples"]
    assert [s["token"] for s in slow] == [s["token"] for s in plain]
    assert all(s["cycles"] >= p["cycles"] for s, p in zip(slow, plain, strict=True))


def test_two_builds_are_byte_identical(tmp_path):
    make_inputs(tmp_path)
    assert_builds_identical(build(tmp_path, tmp_path / "a"), build(tmp_path, tmp_path / "b"))


def test_hostile_flags_are_one_line(built, tmp_path):
    _, _, out = built
    code, _, stderr = rtl_gen("build", "--onnx", out.parent / "m.onnx", "--out", tmp_path / "p",
                              "--rows", 1, "--cols", 3)
    assert code == 2 and "whole heads of 4 channels" in stderr, stderr
    assert not (tmp_path / "p").exists() and not (tmp_path / "p.partial").exists()
    code, _, stderr = rtl_gen("generate", out, "--prompt", "a", "--tokens", 0)
    assert code == 2 and "expected a positive integer" in stderr


@pytest.mark.slow
def test_a_trained_spikelm_transformer_is_bit_exact_on_verilator(tmp_path):
    """``model.train --arch transformer --neuron spikelm`` (tiny, a few dozen steps): attention
    leaks and residual scales built, simulated at every position and generating exactly what
    the reference does. (Its score bias is still below one grid step; a per-step score bias
    on Verilator is test_verify_compositions' elastic attention.)"""
    ckpt = tmp_path / "slm.pt"
    out = _train_and_build(ckpt, "--arch", "transformer", "--neuron", "spikelm", "--steps", 30,
                           "--blocks", 1, "--context", 4, "--timesteps", 3, "--batch", 8,
                           samples=3)
    graph = run_pipeline(load_graph(out / "model.onnx"), [FuseLinear()])
    params = program_params(graph, 2, 4)[0]
    attention = next(layer for layer in params.layers if layer.kind == LayerKind.ATTENTION)
    assert params.scaled and attention.leak is not None
    code, stdout, stderr = rtl_gen("sim", out)
    assert code == 0, stdout + stderr
    report = json.loads((out / "report.json").read_text())
    positions = report["golden_positions"]
    assert positions >= 12 and f"{positions}/{positions} positions" in stdout
    rates = report["hardware_firing_rates"]
    assert all(0.0 < rate < 1.0 for rate in rates.values()), rates
    code, stdout, stderr = rtl_gen("generate", out, "--prompt", "def ", "--tokens", 8)
    assert code == 0, stdout + stderr
    assert "1/1 generations equal the reference byte for byte" in stdout


@pytest.mark.slow
def test_a_128_byte_window_transformer_is_bit_exact_on_verilator(tmp_path):
    """``model.train --arch transformer --context 128`` (narrow, a few steps), built with its
    128-entry key and value caches and simulated on a held-out stream of three windows: every
    position bit-exact (the first window fills the caches, the others slide over them), and
    generation equal to the reference."""
    ckpt = tmp_path / "w128.pt"
    out = _train_and_build(ckpt, "--arch", "transformer", "--steps", 4, "--blocks", 1,
                           "--context", 128, "--timesteps", 2, "--batch", 4, samples=1)
    with np.load(out / "golden.npz") as golden:
        assert golden["input"].shape == (1, 3 * 128)
    code, stdout, stderr = rtl_gen("sim", out)
    assert code == 0, stdout + stderr
    report = json.loads((out / "report.json").read_text())
    positions = report["golden_positions"]
    assert positions == 384 and f"{positions}/{positions} positions" in stdout
    rates = report["hardware_firing_rates"]
    assert all(0.0 < rate < 1.0 for rate in rates.values()), rates
    code, stdout, stderr = rtl_gen("generate", out, "--prompt", "def ", "--tokens", 4)
    assert code == 0, stdout + stderr
    assert "1/1 generations equal the reference byte for byte" in stdout


@pytest.mark.slow
def test_a_trained_encoder_is_bit_exact_on_verilator(tmp_path):
    """``model.train --arch encoder`` (tiny, a few dozen steps), built from its checkpoint and
    simulated a sequence per start (prefill, then queries): the pooled class logits and the
    class of every held-out snippet equal the reference's; the hardware's firing rates are
    per pass and position; a corrupted readout weight is seen; generation is refused."""
    ckpt = tmp_path / "enc.pt"
    out = _train_and_build(ckpt, "--arch", "encoder", "--steps", 30, "--context", 12,
                           "--timesteps", 3, "--batch", 8, samples=6)
    with np.load(out / "golden.npz") as golden:
        assert golden["input"].shape == (6, 12) and golden["output"].shape == (6, 8)
        assert golden["label"].shape == (6,)
    code, stdout, stderr = rtl_gen("sim", out)
    assert code == 0, stdout + stderr
    assert "6/6 sequences matched the integer reference bit for bit" in stdout
    report = json.loads((out / "report.json").read_text())
    assert 0.0 <= report["sim"]["accuracy"] <= 1.0
    rates = report["hardware_firing_rates"]
    assert all(0.0 < rate < 1.0 for rate in rates.values()), rates
    code, stdout, stderr = rtl_gen("generate", out, "--prompt", "def ", "--tokens", 2)
    assert code != 0 and "does not generate" in stderr
    # one flipped bit of a readout weight whose input spikes do not cancel over the sequence
    graph = run_pipeline(load_graph(out / "model.onnx"), [FuseLinear()])
    params = program_params(graph, 2, 4)[0]
    with np.load(out / "golden.npz") as golden:
        trace = graph_run(graph, golden["input"][:1])
    readout = graph.of_type(Readout)[0]
    drive = trace.tensors[readout.inputs[0]][0].sum(axis=(0, 1))  # over steps and positions
    i = int(np.flatnonzero(drive)[0])
    address = layout.weight_address(params, len(params.layers) - 1, 0, i)
    image = layout.weight_bank_images(params)[0]
    text = (out / "rtl" / "spikeforge_top.v").read_text()
    corrupted = set_memory_word(text, image, address, int(image[address]) ^ 1)
    assert_sim_fails(tampered_copy(out, tmp_path / "t", corrupted))


def _train_and_build(ckpt, *flags, samples: int):
    """``model.train`` a narrow model (``d_model`` 8, 2 heads, feed-forward 16, seed 3, one
    thread) with ``flags`` into ``ckpt``, and build it on a 2 x 4 array with ``samples``
    golden samples; returns the build folder."""
    proc = subprocess.run(
        [sys.executable, "-m", "model.train", "--out", ckpt, "--seed", "3", "--d-model", "8",
         "--heads", "2", "--ffn", "16", "--threads", "1", *map(str, flags)],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    out = ckpt.parent / "build"
    code, stdout, stderr = rtl_gen("build", "--ckpt", ckpt, "--out", out, "--rows", 2,
                                   "--cols", 4, "--samples", samples)
    assert code == 0, stdout + stderr
    return out
