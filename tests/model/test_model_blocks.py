"""Compositions of blocks: train, save, reload, and the integer graph of each one is exact."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from contract.graph import run
from contract.onnx_io import to_onnx
from contract.ops import VOCAB
from contract.zoo import IntModel
from model import data
from model.attention import SpikingAttention
from model.blocks import NormNeuron, Readout, ResidualAdd, SpikeEmbed, SpikingLinear, TokenEmbed
from model.checkpoint import load_checkpoint, save_checkpoint
from model.errors import CheckpointError, ModelConfigError
from model.metrics import evaluate_float, evaluate_int
from model.net import NetConfig, SpikingNet
from model.train import train_model

RATE_BAND = (0.02, 0.9)
OPTIONS = {"batch": 32, "log_every": 1000, "eval_every": 10**9, "eval_samples": 512}


def chain(**settings) -> SpikingNet:
    torch.manual_seed(0)
    return SpikingNet([SpikeEmbed(context=3, embed=4), SpikingLinear(12), SpikingLinear(8),
                       Readout()], timesteps=2, weight_bits=4, **settings)


@pytest.fixture(scope="module")
def trained_chain():
    net = chain()
    return net, train_model(net, steps=30, seed=0, **OPTIONS)


@pytest.fixture(scope="module")
def attention_over_spikes():
    """Spikes of a 2-byte context, a layer, attention over a window of 3: a stream model."""
    torch.manual_seed(1)
    net = SpikingNet([SpikeEmbed(context=2, embed=4), SpikingLinear(8),
                      SpikingAttention(heads=2, window=3), SpikingLinear(8), Readout()],
                     timesteps=2, weight_bits=8, rate_target=0.3, rate_lambda=0.25)
    train_model(net, steps=6, seed=0, segment=9, **{**OPTIONS, "batch": 8})
    return net


def test_a_chain_trains_saves_and_reloads_exactly(trained_chain, tmp_path):
    net, metrics = trained_chain
    assert np.isfinite(metrics["heldout_bits_per_byte"]) and len(metrics["firing_rates"]) == 3
    path = tmp_path / "chain.pt"
    save_checkpoint(path, net, metrics)
    loaded, loaded_metrics = load_checkpoint(path, kind="spiking")
    assert isinstance(loaded.config, NetConfig) and loaded.config == net.config
    assert loaded_metrics["heldout_bits_per_byte"] == metrics["heldout_bits_per_byte"]
    ids, _ = data.heldout_samples(256, net.context, seed=3)
    assert torch.equal(loaded.int_forward(ids), net.int_forward(ids))
    assert torch.equal(loaded(torch.from_numpy(ids))[0], net(torch.from_numpy(ids))[0])


def test_a_chain_is_the_contract_mlp(trained_chain):
    net, _ = trained_chain
    graph = net.to_graph()
    assert [type(op).__name__ for op in graph.ops] == [
        "SpikeEmbed", "Accumulate", "Fire", "Accumulate", "Fire", "Readout"]
    assert graph.population_names == ("embed", "linear0_fire", "linear1_fire")
    int_model = net.to_int_model()
    assert isinstance(int_model, IntModel) and int_model.context == 3
    ids, _ = data.heldout_samples(512, net.context, seed=4)
    ref = run(graph, ids, last_only=True)
    assert np.array_equal(ref.logits, run(int_model.graph(), ids, last_only=True).logits)
    assert torch.equal(net.int_forward(ids), torch.from_numpy(ref.logits[:, -1]))
    assert len(np.unique(np.argmax(ref.logits[:, -1], axis=-1))) > 1
    for rate in ref.firing_rates():
        assert RATE_BAND[0] < rate < RATE_BAND[1], ref.firing_rates()


def test_the_integer_form_tracks_the_float_forward(trained_chain):
    net, _ = trained_chain
    ids, targets = data.heldout_samples(2048, net.context, seed=5)
    integer = evaluate_int(net.to_graph(), ids, targets)["bits_per_byte"]
    floating = evaluate_float(net, ids, targets)["bits_per_byte"]
    assert abs(integer - floating) < 0.1, (integer, floating)


def test_one_corrupted_weight_changes_the_logits(trained_chain):
    net, _ = trained_chain
    ids, _ = data.heldout_samples(256, net.context, seed=6)
    before = net.int_forward(ids)
    with torch.no_grad():
        layer = net.blocks[1].linear.weight
        layer[0] = -layer[0]
    try:
        assert not torch.equal(net.int_forward(ids), before)
    finally:
        with torch.no_grad():
            layer[0] = -layer[0]
    assert torch.equal(net.int_forward(ids), before)


def test_windows_and_streams_agree_for_a_chain(trained_chain):
    net, _ = trained_chain
    ids = torch.from_numpy(np.random.default_rng(7).integers(0, VOCAB, size=(6, 10)))
    with torch.no_grad():
        every, _ = net.forward_all(ids)
        last, _ = net(ids[:, -net.context:])
    assert every.shape == (6, 10, VOCAB)
    assert torch.allclose(every[:, -1], last, atol=1e-6)
    ints = net.int_forward(ids.numpy(), all_positions=True)
    assert ints.shape == (6, 10, VOCAB)
    assert torch.equal(ints[:, -1], net.int_forward(ids[:, -net.context:].numpy()))


def test_attention_over_spikes_is_exact_and_causal(attention_over_spikes):
    net = attention_over_spikes
    assert net.streams and net.context == 3
    graph = net.to_graph()
    assert graph.causal_window == 3
    with pytest.raises(CheckpointError, match="to_graph"):
        net.to_int_model()
    corpus = data.load_corpus(net.context)
    ids, _, _ = data.sample_segments(np.random.default_rng(8), corpus, 8, 12, split="heldout")
    ref = run(graph, ids)
    assert np.array_equal(net.int_forward(ids, all_positions=True).numpy(), ref.logits)
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (logits,) = session.run(["output"], {"input": ids.astype(np.int64)})
    assert np.array_equal(logits.astype(np.int64), ref.logits)
    changed = ids.copy()
    changed[:, 6:] = (changed[:, 6:] + 1) % VOCAB
    assert np.array_equal(run(graph, changed).logits[:, :6], ref.logits[:, :6])
    with torch.no_grad():
        a, _ = net.forward_all(torch.from_numpy(ids))
        b, _ = net.forward_all(torch.from_numpy(changed))
    assert torch.allclose(a[:, :6], b[:, :6]) and not torch.allclose(a[:, 6:], b[:, 6:])


def test_a_residual_model_without_attention_reads_windows():
    torch.manual_seed(2)
    net = SpikingNet([TokenEmbed(8), NormNeuron(), SpikingLinear(8), ResidualAdd(),
                      NormNeuron(name="final"), Readout()], timesteps=2)
    assert not net.streams and net.context == 1
    ids = torch.from_numpy(np.random.default_rng(9).integers(0, VOCAB, size=(16, 1)))
    net.calibrate(ids)
    logits, rates = net(ids)
    assert logits.shape == (16, VOCAB) and len(rates) == 3
    graph = net.to_graph()
    assert graph.population_names == ("norm0", "linear0_fire", "final")
    assert torch.equal(net.int_forward(ids.numpy()), torch.from_numpy(
        run(graph, ids.numpy()).logits[:, -1]))


def test_a_float_twin_has_no_integer_form():
    net = chain(float_twin=True)
    ids = torch.randint(0, VOCAB, (8, 3))
    net.calibrate(ids)
    logits, rates = net(ids)
    assert logits.shape == (8, VOCAB) and rates == []
    with pytest.raises(CheckpointError, match="integer form"):
        net.to_graph()


@pytest.mark.parametrize(("blocks", "words"), [
    (lambda: [SpikingLinear(4), Readout()], "first block"),
    (lambda: [SpikeEmbed(), SpikingLinear(4)], "last block must be a Readout"),
    (lambda: [TokenEmbed(8), NormNeuron(), SpikingLinear(8), ResidualAdd(), SpikingLinear(4),
              Readout()], "reads spikes"),
    (lambda: [SpikeEmbed(), NormNeuron(), Readout()], "reads residual"),
    (lambda: [SpikeEmbed(context=1, embed=3), SpikingAttention(heads=2, window=2), Readout()],
     "multiple of heads"),
    (lambda: [SpikeEmbed(), Readout(), Readout()], "only the last"),
    (lambda: [SpikeEmbed(), SpikingLinear(4, name="x"), SpikingLinear(4, name="x"),
              Readout()], "unique"),
    (lambda: [SpikeEmbed(context=0)], "context must be a positive integer"),
])
def test_bad_compositions_say_what_to_change(blocks, words):
    with pytest.raises(ModelConfigError, match=words):
        SpikingNet(blocks())


def test_a_block_belongs_to_one_model():
    readout = Readout()
    SpikingNet([SpikeEmbed(), readout])
    with pytest.raises(ModelConfigError, match="already belongs"):
        SpikingNet([SpikeEmbed(), readout])


def test_net_config_round_trips_and_rejects_unknown_blocks():
    net = chain()
    again = SpikingNet.from_config(NetConfig.from_dict(net.config.to_dict()))
    assert again.config == net.config and again.names == net.names
    with pytest.raises(ModelConfigError, match="unknown block"):
        NetConfig.from_dict({**net.config.to_dict(), "blocks": [{"block": "Conv2d"}]}
                            ).make_blocks()


def test_evaluate_and_export_take_any_composition(attention_over_spikes, tmp_path, capsys):
    from model import evaluate, export

    path = tmp_path / "attn.pt"
    save_checkpoint(path, attention_over_spikes, {})
    assert evaluate.main(["--ckpt", str(path), "--samples", "256"]) == 0
    out = capsys.readouterr().out
    assert "spiking:" in out and "firing rates: embed " in out and "attn0 " in out
    assert export.main(["--ckpt", str(path), "--out", str(tmp_path / "x"), "--samples", "2"]) == 0
    with np.load(tmp_path / "x" / "heldout.npz") as held:
        assert held["input"].shape == (2, 9)  # streams of three windows
