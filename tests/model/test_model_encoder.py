"""The spiking encoder (``--arch encoder``): the package task, the model's three forms, its
integer graph, training, checkpoints and the evaluation CLI."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_model_cli import assert_usage_error, run_cli

from contract.graph import Attention, Pool, run
from model import tasks
from model.attention import SpikingAttention
from model.blocks import NormNeuron, Readout, ResidualAdd, TokenEmbed
from model.checkpoint import load_checkpoint, save_checkpoint
from model.errors import ModelConfigError
from model.metrics import accuracy_float, accuracy_int
from model.net import SpikingNet
from model.train import TrainOptions, main, train
from model.zoo import EncoderConfig

TINY = EncoderConfig(context=12, d_model=8, heads=2, ffn=8, timesteps=2)


@pytest.fixture(scope="module")
def tiny_encoder():
    options = TrainOptions(steps=30, batch=16, seed=0, log_every=1000, eval_every=10**9,
                           eval_samples=256)
    return train(TINY, options)


def test_the_task_is_split_by_file_and_seeded():
    task = tasks.load_package_task()
    assert task.classes == tasks.PACKAGES
    for split in (task.train, task.heldout):
        assert set(split.labels.tolist()) == set(range(len(tasks.PACKAGES)))
    ids, labels = tasks.heldout_snippets(64, 16, seed=3)
    again, labels_again = tasks.heldout_snippets(64, 16, seed=3)
    assert ids.shape == (64, 16) and ids.dtype == np.int64 and labels.shape == (64,)
    assert np.array_equal(ids, again) and np.array_equal(labels, labels_again)
    train_text = task.train.data.tobytes()
    for snippet in ids[:8]:  # held-out snippets come from held-out files
        assert bytes(snippet.astype(np.uint8)) in task.heldout.data.tobytes()
    assert any(bytes(s.astype(np.uint8)) not in train_text for s in ids[:8])
    best, share = tasks.majority_baseline(np.array([1, 1, 2, 5]))
    assert (best, share) == (1, 0.5)


def test_an_encoder_classifies_whole_sequences(tiny_encoder):
    model, metrics = tiny_encoder
    assert model.classes == len(tasks.PACKAGES) and model.streams
    ids, labels = tasks.heldout_snippets(32, TINY.context, seed=1)
    logits, rates = model(torch.from_numpy(ids))
    assert logits.shape == (32, len(tasks.PACKAGES)) and len(rates) == 8
    with pytest.raises(ModelConfigError, match="one class per sequence"):
        model.forward_all(torch.from_numpy(ids))
    assert {"heldout_accuracy", "majority_baseline"} <= set(metrics)
    assert "heldout_bits_per_byte" not in metrics


def test_the_integer_graph_is_an_encoder_and_tracks_the_float_forward(tiny_encoder):
    model, _ = tiny_encoder
    graph = model.to_graph()
    assert not graph.causal and graph.outputs == len(tasks.PACKAGES)
    assert isinstance(graph.ops[-1], Pool)
    assert [a.causal for a in graph.of_type(Attention)] == [False]
    ids, labels = tasks.heldout_snippets(256, TINY.context, seed=2)
    trace = run(graph, ids)
    assert trace.logits.shape == (256, 1, len(tasks.PACKAGES))
    assert np.count_nonzero(trace.logits) > trace.logits.size // 2
    integer = trace.logits[:, 0] * graph.logit_scale / TINY.context  # mean pooling's 1/L
    with torch.no_grad():
        float_logits, _ = model(torch.from_numpy(ids))
    assert np.corrcoef(integer.ravel(), float_logits.numpy().ravel())[0, 1] > 0.9
    spiking = accuracy_int(graph, ids, labels)
    before = accuracy_float(model, ids, labels)
    assert abs(spiking["accuracy"] - before["accuracy"]) < 0.1
    assert 0.0 < min(spiking["rates"]) and max(spiking["rates"]) < 1.0


def test_one_corrupted_weight_is_seen(tiny_encoder):
    model, _ = tiny_encoder
    graph = model.to_graph()
    readout = graph.ops[-2]
    weight = readout.weight.copy()
    weight[0, 0] += 1
    bad = graph.replace_ops([*graph.ops[:-2], dataclasses.replace(readout, weight=weight),
                             graph.ops[-1]])
    ids, _ = tasks.heldout_snippets(16, TINY.context, seed=4)
    assert not np.array_equal(run(bad, ids).logits, run(graph, ids).logits)


def test_checkpoint_round_trip(tiny_encoder, tmp_path):
    model, metrics = tiny_encoder
    path = tmp_path / "e.pt"
    save_checkpoint(path, model, metrics)
    loaded, loaded_metrics = load_checkpoint(path, kind="spiking")
    assert loaded.config == TINY and loaded_metrics["heldout_accuracy"] == \
        metrics["heldout_accuracy"]
    ids, _ = tasks.heldout_snippets(16, TINY.context, seed=5)
    assert torch.equal(loaded.int_forward(ids), model.int_forward(ids))


def test_compositions_that_mix_up_encoders_are_refused():
    def net(blocks):
        return SpikingNet(blocks, timesteps=2)

    with pytest.raises(ModelConfigError, match="bidirectional SpikingAttention"):
        net([TokenEmbed(8), NormNeuron(), SpikingAttention(2, 4), ResidualAdd(), NormNeuron(),
             Readout(classes=3)])
    with pytest.raises(ModelConfigError, match="classification head"):
        net([TokenEmbed(8), NormNeuron(), SpikingAttention(2, 4, causal=False), ResidualAdd(),
             NormNeuron(), Readout()])
    with pytest.raises(ModelConfigError, match="at least 2 classes"):
        Readout(classes=1)
    model = net([TokenEmbed(8), NormNeuron(), SpikingAttention(2, 4, causal=False),
                 ResidualAdd(), NormNeuron(), Readout(classes=3)])
    with pytest.raises(ModelConfigError, match="at most 4 bytes"):
        model(torch.zeros((1, 5), dtype=torch.long))


def test_train_and_evaluate_cli(tmp_path, capsys):
    from model import evaluate

    spiking, twin = tmp_path / "e.pt", tmp_path / "e-float.pt"
    common = ["--arch", "encoder", "--steps", "4", "--batch", "8", "--context", "10",
              "--d-model", "8", "--heads", "2", "--ffn", "8", "--timesteps", "2", "--threads",
              "1"]
    assert main([*common, "--out", str(spiking)]) == 0
    assert main([*common, "--float", "--out", str(twin)]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert evaluate.main(["--ckpt", str(spiking), "--samples", "128"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for prefix in ("spiking accuracy: ", "float twin accuracy: ", "majority class ("):
        line = next(x for x in lines if x.startswith(prefix))
        assert 0.0 <= float(line.rsplit(": ", 1)[1]) <= 1.0
    assert_usage_error(run_cli("model.evaluate", "--ckpt", spiking, "--text", tmp_path / "x"),
                       "--text")


def test_a_spikelm_neuron_encoder_is_bit_exact_on_the_accelerator():
    """SpikeLM's neuron in the encoder (per-step amplitudes, calibrated firing, its leak):
    trained a few steps, compiled, and every sequence's pooled logits, class and spike counts
    equal the executor's in the Amaranth simulator."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hw"))
    from hwsim import check_sequences, compile_params

    config = EncoderConfig(context=8, d_model=8, heads=2, ffn=8, timesteps=3, neuron="spikelm")
    model, _ = train(config, TrainOptions(steps=20, batch=8, seed=1, log_every=1000,
                                          eval_every=10**9, eval_samples=64))
    graph = model.to_graph()
    attention = graph.of_type(Attention)[0]
    assert attention.leak is not None and not attention.causal
    ids, _ = tasks.heldout_snippets(3, 8, seed=1)
    check_sequences(graph, compile_params(graph, 2, 4), ids)
