"""The spiking transformer: integer mode bit-exact against the contract, checkpoints, CLI."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from contract import analyse, zoo
from contract.graph import run
from contract.ops import VOCAB
from model import data
from model.checkpoint import load_checkpoint, save_checkpoint
from model.errors import CheckpointError, ModelConfigError
from model.metrics import evaluate_float, evaluate_int
from model.train import TrainOptions, main, train
from model.transformer import TransformerConfig, int_forward
from model.zoo import build_model

TINY = TransformerConfig(context=6, d_model=16, heads=2, ffn=24, layers=2, timesteps=3)
RATE_BAND = (0.02, 0.9)
SEED = 0


@pytest.fixture(scope="module")
def tiny_xfmr():
    """A tiny spiking transformer trained for 30 steps (seed 0)."""
    options = TrainOptions(steps=30, batch=32, seed=SEED, log_every=1000, eval_every=10**9,
                           eval_samples=512)
    model, metrics = train(TINY, options)
    return model, metrics


def test_int_forward_equals_reference_on_heldout(tiny_xfmr):
    model, _ = tiny_xfmr
    ids, _ = data.heldout_samples(512, TINY.context, seed=1)
    int_model = model.to_int_model()
    ref = zoo.forward_streams(int_model, ids, trace=True)
    ours = int_forward(int_model, ids, all_positions=True)
    assert np.array_equal(ours.numpy(), ref.logits)
    assert torch.equal(model.int_forward(ids[:32]), torch.from_numpy(ref.logits[:32, -1]))
    assert np.count_nonzero(ref.logits) > ref.logits.size // 2
    assert len(np.unique(np.argmax(ref.logits[:, -1], axis=-1))) > 1
    for name, rate in zip(ref.names, ref.firing_rates(), strict=True):
        assert RATE_BAND[0] < rate < RATE_BAND[1], (name, rate)


@pytest.mark.parametrize("seed", [3, 4])
def test_int_forward_equals_reference_on_random_models(seed):
    torch.manual_seed(seed)
    model = build_model(TINY)
    ids = np.random.default_rng(seed).integers(0, VOCAB, size=(64, 3 * TINY.context))
    model.calibrate(torch.from_numpy(ids))
    int_model = model.to_int_model()
    assert np.array_equal(int_forward(int_model, ids, all_positions=True).numpy(),
                          zoo.forward_streams(int_model, ids, all_positions=True))


def test_int_forward_equals_reference_on_heldout_streams(tiny_xfmr):
    """Streams four windows long, across file starts: every position, exactly."""
    model, _ = tiny_xfmr
    corpus = data.load_corpus(TINY.context)
    ids, _, _ = data.sample_segments(np.random.default_rng(7), corpus, 64, 4 * TINY.context,
                                     split="heldout")
    int_model = model.to_int_model()
    ref = zoo.forward_streams(int_model, ids, all_positions=True)
    assert np.array_equal(int_forward(int_model, ids, all_positions=True).numpy(), ref)
    assert len(np.unique(np.argmax(ref, axis=-1))) > 1


def test_one_corrupted_weight_is_seen(tiny_xfmr):
    model, _ = tiny_xfmr
    int_model = model.to_int_model()
    ids, _ = data.heldout_samples(256, TINY.context, seed=2)
    block = int_model.blocks[0]
    weight = np.array(block.out.weight)
    weight[0, 0] = -weight[0, 0] if weight[0, 0] else 5
    bad = dataclasses.replace(int_model, blocks=(
        dataclasses.replace(block, out=zoo.IntOutProj(weight, block.out.shift)),
        *int_model.blocks[1:]))
    assert not np.array_equal(zoo.forward_streams(bad, ids), int_forward(int_model, ids).numpy())


def test_integer_model_tracks_the_float_forward(tiny_xfmr):
    """Rounding biases and thresholds costs little (the only approximation)."""
    model, _ = tiny_xfmr
    ids, targets = data.heldout_samples(2048, TINY.context, seed=3)
    spiking = evaluate_int(model.to_int_model(), ids, targets)["bits_per_byte"]
    before = evaluate_float(model, ids, targets)["bits_per_byte"]
    assert abs(spiking - before) < 0.15, (spiking, before)


def test_widths_hold_on_real_data(tiny_xfmr):
    model, _ = tiny_xfmr
    int_model = model.to_int_model()
    ids, _ = data.heldout_samples(1024, TINY.context, seed=4)
    peaks = zoo.forward_streams(int_model, ids, trace=True).peaks
    ranges = analyse(int_model.graph())
    assert peaks["membrane"] <= ranges.membrane
    assert peaks["residual"] <= ranges.residual
    assert peaks["logit"] <= ranges.logit


def test_checkpoint_round_trip(tiny_xfmr, tmp_path):
    model, metrics = tiny_xfmr
    path = tmp_path / "x.pt"
    save_checkpoint(path, model, metrics)
    loaded, _ = load_checkpoint(path, kind="spiking")
    assert loaded.config == TINY and loaded.streams
    ids, _ = data.heldout_samples(64, TINY.context, seed=5)
    assert torch.equal(loaded.int_forward(ids), model.int_forward(ids))


@pytest.mark.parametrize("change", [{"float_twin": True}, {"norm": "layernorm"},
                                    {"attention": "softmax"}])
def test_float_operations_have_no_integer_form(change):
    model = build_model(dataclasses.replace(TINY, **change))
    ids = torch.randint(0, VOCAB, (8, TINY.context))
    model.calibrate(ids)
    logits, _ = model(ids)
    assert logits.shape == (8, VOCAB) and torch.isfinite(logits).all()
    with pytest.raises(CheckpointError, match="integer form"):
        model.to_int_model()


def test_config_errors():
    with pytest.raises(ModelConfigError, match="multiple of heads"):
        TransformerConfig(d_model=10, heads=3)
    with pytest.raises(ModelConfigError, match="norm must be"):
        TransformerConfig(norm="rms")


def test_train_and_evaluate_cli(tmp_path, capsys):
    from model import evaluate

    spiking, twin = tmp_path / "x.pt", tmp_path / "x-float.pt"
    common = ["--arch", "transformer", "--steps", "4", "--batch", "8", "--context", "6",
              "--d-model", "8", "--heads", "2", "--ffn", "8", "--timesteps", "2", "--threads",
              "1"]
    assert main([*common, "--out", str(spiking)]) == 0
    assert main([*common, "--float", "--out", str(twin)]) == 0
    assert evaluate.main(["--ckpt", str(spiking), "--samples", "256"]) == 0
    out = capsys.readouterr().out
    assert "spiking:" in out and "float twin:" in out and "norm_f" in out


def _dense_and_blocked(monkeypatch, run):
    """``run()`` with the dense attention, then a block of 7 queries at a time."""
    from model import attention

    results = []
    for limit, block in ((10**6, 64), (8, 7)):
        monkeypatch.setattr(attention, "DENSE_LIMIT", limit)
        monkeypatch.setattr(attention, "QUERY_BLOCK", block)
        results.append(run())
    return results


def test_blocked_attention_equals_dense(monkeypatch):
    """A long stream is attended a block of queries at a time, each block recomputed in the
    backward pass (memory linear in the stream): the same values and gradients as the dense
    form, in float64, to its rounding (random Q, K, V: no score exactly at the ReLU's kink)."""
    from model.attention import SpikingAttention

    torch.manual_seed(SEED)
    model = build_model(TINY).double()
    attention = next(m for m in model.modules() if isinstance(m, SpikingAttention))
    qkv = [torch.randn(2, TINY.timesteps, 40, TINY.d_model, dtype=torch.float64,
                       requires_grad=True) for _ in range(3)]

    def run():
        for x in qkv:
            x.grad = None
        out = attention.attend(*qkv)
        out.square().sum().backward()
        return [out.detach()] + [x.grad.clone() for x in qkv]

    dense, blocked = _dense_and_blocked(monkeypatch, run)
    assert dense[0].abs().max() > 0
    for a, b in zip(dense, blocked, strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("neuron", ["if", "spikelm"])
def test_blocked_attention_keeps_the_model(monkeypatch, neuron):
    """A whole model on streams longer than :data:`model.attention.DENSE_LIMIT`: the logits of
    the blocked attention are those of the dense one."""
    torch.manual_seed(SEED)
    model = build_model(dataclasses.replace(TINY, neuron=neuron)).double()
    ids = torch.from_numpy(np.random.default_rng(SEED).integers(0, VOCAB, size=(4, 40)))
    model.calibrate(ids)
    dense, blocked = _dense_and_blocked(monkeypatch, lambda: model.forward_all(ids)[0].detach())
    assert dense.abs().max() > 0
    assert torch.allclose(dense, blocked, rtol=1e-9, atol=1e-9)


def _heldout_text(nbytes: int) -> bytes:
    corpus = data.load_corpus(TINY.context)
    return corpus.heldout[corpus.heldout_valid][:nbytes].tobytes()


def test_held_out_streams_score_what_one_long_stream_does(tiny_xfmr):
    """Chunked streams with a warm-up of blocks x (W - 1) bytes give every position the
    logits of one stream over the whole text: the held-out figure at a cost linear in it."""
    model, _ = tiny_xfmr
    text = _heldout_text(700)
    assert model.stream_warmup == 2 * (TINY.context - 1)
    ids, targets, scored = data.streams_from_bytes(text, TINY.context, model.stream_warmup,
                                                   span=64)
    graph = model.to_graph()
    chunked = evaluate_int(graph, ids, targets, scored)
    whole, _ = data.samples_from_bytes(text, None, TINY.context)
    stream = np.concatenate([whole[0], np.frombuffer(text[:-1], np.uint8)])[None].astype(np.int64)
    logits = run(graph, stream).logits[0, TINY.context - 1:] * graph.logit_scale
    bits = F.cross_entropy(torch.from_numpy(logits).double(),
                           torch.from_numpy(np.frombuffer(text, np.uint8).astype(np.int64)),
                           reduction="sum").item() / math.log(2)
    assert chunked["samples"] == len(text)
    assert chunked["bits_per_byte"] == pytest.approx(bits / len(text), rel=1e-12)
    float_chunked = evaluate_float(model, ids, targets, scored)["bits_per_byte"]
    assert abs(float_chunked - chunked["bits_per_byte"]) < 0.15


def test_one_block_streams_score_what_windows_do():
    """With one attention a position reads its window alone: the stream figure is the
    per-window figure on the same positions."""
    torch.manual_seed(1)
    model = build_model(dataclasses.replace(TINY, layers=1))
    text = _heldout_text(300)
    model.calibrate(torch.from_numpy(np.frombuffer(text, np.uint8)[None, :96].astype(np.int64)))
    windows, targets = data.samples_from_bytes(text, None, TINY.context)
    ids, stream_targets, scored = data.streams_from_bytes(text, TINY.context,
                                                          model.stream_warmup, span=50)
    graph = model.to_graph()
    a = evaluate_int(graph, windows, targets)
    b = evaluate_int(graph, ids, stream_targets, scored)
    assert a["samples"] == b["samples"] == len(text)
    assert b["bits_per_byte"] == pytest.approx(a["bits_per_byte"], rel=1e-12)
    assert evaluate_float(model, ids, stream_targets, scored)["bits_per_byte"] == pytest.approx(
        evaluate_float(model, windows, targets)["bits_per_byte"], rel=1e-5)
