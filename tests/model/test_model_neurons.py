"""The neuron options: SpikeLM's neuron as its official code runs it, per-step and calibrated
amplitudes, binary spikes, and their integer forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contract.graph import Attention, Fire, Readout, ResidualAdd, run
from model import data
from model.attention import SpikingAttention
from model.block import Flow, fold_neuron, shift_add_terms
from model.blocks import Readout as ReadoutBlock
from model.blocks import SpikeEmbed, SpikingLinear
from model.errors import ModelConfigError
from model.metrics import evaluate_float, evaluate_int
from model.net import SpikingNet
from model.spike import Neuron, run_neuron
from model.train import train_model
from model.zoo import TransformerConfig, build_model


def official_spikelm(currents: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """SpikeLM's ``SpikeLinear.forward`` neuron (spikeLM-BERT/spiking.py), time on axis 1:
    ``mem = input[0]`` then ``mem = mem_old * 0.25 * (alpha[i-1] - out[i-1]) + input[i]``,
    ``out[i] = alpha[i] * clamp(round(mem / alpha[i]), -1, 1)``."""
    out = torch.zeros_like(currents)
    mem_old = None
    for i in range(currents.shape[1]):
        if i == 0:
            mem = currents[:, 0]
        else:
            mem = mem_old * 0.25 * (alphas[i - 1] - out[:, i - 1]) + currents[:, i]
        out[:, i] = alphas[i] * torch.clamp(torch.round(mem / alphas[i]), -1, 1)
        mem_old = mem
    return out


def test_the_spikelm_neuron_is_the_official_codes():
    """Up to amplitudes of 2 (LayerNorm'd inputs): the official code, spike for spike."""
    torch.manual_seed(5)
    currents = torch.randn(6, 4, 9) * 2
    alphas = torch.tensor([0.7, 1.3, 0.9, 2.0])
    out, rate = run_neuron(currents, alphas, Neuron("spikelm"))
    assert torch.equal(out, official_spikelm(currents, alphas))
    assert 0.0 < float(rate) < 1.0


def test_the_spikelm_leak_is_capped_at_one():
    """Beyond an amplitude of 2 the official leak ``0.25 (alpha - o)`` exceeds 1 after a -1
    spike (and beyond 4 after none) and the membrane runs away; SpikeForge's is capped at 1."""
    alphas = torch.tensor([6.0, 6.0, 6.0])
    currents = torch.tensor([[[2.5], [0.0], [0.0]], [[-4.0], [3.5], [0.0]]])
    out, _ = run_neuron(currents, alphas, Neuron("spikelm"))
    official = official_spikelm(currents, alphas)
    assert official[:, :, 0].tolist() == [[0.0, 6.0, 0.0], [-6.0, -6.0, -6.0]]
    assert out[:, :, 0].tolist() == [[0.0, 0.0, 0.0], [-6.0, 0.0, 0.0]]


def test_neuron_defaults_and_refusals():
    assert Neuron("spikelm") == Neuron("spikelm", "per-step", "calibrated", "ternary")
    assert Neuron() == Neuron("if", "shared", "regularizer", "ternary") and Neuron().plain
    with pytest.raises(ModelConfigError, match="neuron must be one of"):
        Neuron("lif")
    with pytest.raises(ModelConfigError, match="spikes must be one of"):
        Neuron(spikes="quaternary")


def test_binary_spikes_are_never_negative():
    currents = torch.randn(4, 3, 5) * 3
    out, _ = run_neuron(currents, torch.ones(3), Neuron(spikes="binary"))
    assert out.min() >= 0 and out.max() > 0


@pytest.mark.parametrize("factor", [0.0, 0.3, 0.5, 0.8125, 1.0, 1.7, 3.0])
def test_a_leak_factor_becomes_two_shifts(factor):
    terms = shift_add_terms(factor)
    value = sum(int(sign) * 2.0 ** int(e) for sign, e in terms)
    assert abs(value - factor) <= factor / 8  # two signed powers of two: within 1/8
    if factor in (0.0, 0.5, 1.0):
        assert value == factor


def test_the_folded_spikelm_neuron_resets_hard_after_a_positive_spike():
    units = np.full((3, 1), 0.5)
    out = fold_neuron(Neuron("spikelm"), units, [1.0, 2.0, 4.0], np.zeros(2), scalar=True)
    assert (out["reset"] == 0).all()
    assert out["threshold"].shape == (3, 2)  # per step: floor(alpha / (2 c)) + 1
    assert out["threshold"][:, 0].tolist() == [2, 3, 5]
    leak = out["leak"]
    assert (leak[:, 2, :, 0] == 0).all()  # s = +1: zero terms
    # s = 0: 0.25 alpha_t, s = -1: 0.5 alpha_t (the units do not change between steps)
    assert [sum(s * 2.0 ** e for s, e in leak[t, 1]) for t in range(2)] == [0.25, 0.5]
    assert [sum(s * 2.0 ** e for s, e in leak[t, 0]) for t in range(2)] == [0.5, 1.0]


def test_the_plain_neuron_folds_as_before():
    out = fold_neuron(Neuron(), np.full((4, 1), 0.25), [1.0] * 4, np.array([0.3, -0.6]),
                      scalar=True)
    assert out["leak"] is None and not out["binary"]
    assert out["reset"] == 4 and out["threshold"] == 3
    assert out["bias"].tolist() == [1, -2]


def _net(**neuron) -> SpikingNet:
    torch.manual_seed(0)
    return SpikingNet([SpikeEmbed(context=3, embed=6), SpikingLinear(24), ReadoutBlock()],
                      timesteps=3, weight_bits=4, **neuron)


@pytest.fixture(scope="module")
def trained_spikelm():
    net = _net(neuron="spikelm")
    train_model(net, steps=60, seed=0, log_every=1000, eval_samples=512)
    return net


def test_calibrated_amplitudes_are_not_learned_and_have_no_rate_loss(trained_spikelm):
    net = trained_spikelm
    alpha = net.blocks[1].alpha
    assert alpha.per_step and not alpha.raw.requires_grad
    assert len(set(alpha.raw.tolist())) == 3  # one per step, each from its membranes
    _, rates = net(torch.zeros(2, 3, dtype=torch.long))
    assert float(net.rate_penalty(rates)) == 0.0


def test_calibration_sets_each_step_to_twice_the_mean_membrane():
    net = _net(neuron="spikelm")
    ids = torch.from_numpy(data.heldout_samples(256, 3, seed=1)[0])
    net.calibrate(ids)
    embed, linear = net.blocks[0], net.blocks[1]
    with torch.no_grad():
        flow = embed(Flow(ids=ids, streams=False))
        currents = linear.current(flow.spikes)
        mem, out, expected = None, None, []
        for t in range(3):
            mem = currents[:, 0] if t == 0 else (
                0.25 * (expected[-1] - out) * mem + currents[:, t])
            expected.append(2 * mem.abs().mean())
            out = expected[-1] * torch.clamp(torch.round(mem / expected[-1]), -1, 1)
    assert torch.allclose(linear.alpha.raw, torch.stack(expected))


def test_the_integer_spikelm_model_tracks_its_float_forward(trained_spikelm):
    net = trained_spikelm
    graph = net.to_graph()
    fires = [op for op in graph.ops if isinstance(op, Fire)]
    assert fires and all(op.leak is not None and op.per_step for op in fires)
    readout = graph.of_type(Readout)[0]
    assert readout.leak is not None and readout.per_step  # per-step input amplitudes
    inputs, targets = data.heldout_samples(2048, net.context, seed=0)
    integer = evaluate_int(graph, inputs, targets)["bits_per_byte"]
    qat = evaluate_float(net, inputs, targets)["bits_per_byte"]
    assert abs(integer - qat) < 0.1, (integer, qat)
    logits = run(graph, inputs[:64]).logits
    assert np.count_nonzero(logits) > 0.5 * logits.size


def test_a_spikelm_transformer_folds_into_elastic_attention_and_scaled_residuals():
    """Per-step amplitudes of q and k give a per-step score bias, the attention neuron its
    per-step constants by key count and a leak, a residual projection of per-step spikes a
    per-step scale; the integer logits track the QAT forward's."""
    torch.manual_seed(0)
    net = build_model(TransformerConfig(neuron="spikelm", amplitude="per-step",
                                        firing="calibrated", context=4, d_model=8, heads=2,
                                        ffn=16, timesteps=3))
    train_model(net, steps=30, seed=0, batch=8, log_every=1000, eval_samples=256)
    block = next(b for b in net.blocks if isinstance(b, SpikingAttention))
    with torch.no_grad():  # a score bias of a few grid units, whichever the step's grid
        block.score_bias.copy_(torch.randn(2, 4) * block.score_unit().max() * 3)
    graph = net.to_graph()
    (attn,) = graph.of_type(Attention)
    assert attn.score_bias.shape == (3, 2, 4) and attn.leak is not None
    assert attn.reset.max() == 0  # SpikeLM's neuron: no soft reset
    assert all(op.scale is not None and op.shift == 0 for op in graph.of_type(ResidualAdd))
    ids = np.random.default_rng(0).integers(32, 127, size=(4, 12))
    with torch.no_grad():
        qat, _ = net(torch.as_tensor(ids))
    integer = run(graph, ids).logits[:, -1] * graph.logit_scale
    assert np.count_nonzero(integer) > 0.5 * integer.size
    assert np.corrcoef(qat.numpy().ravel(), integer.ravel())[0, 1] > 0.9


def test_a_binary_if_transformer_with_per_step_amplitudes_builds_its_graph():
    torch.manual_seed(1)
    net = build_model(TransformerConfig(amplitude="per-step", spikes="binary", context=3,
                                        d_model=4, heads=1, ffn=4, timesteps=2))
    train_model(net, steps=2, seed=0, batch=4, log_every=1000, eval_samples=64)
    graph = net.to_graph()
    (attn,) = graph.of_type(Attention)
    assert attn.binary and attn.reset.min() >= 1
    trace = run(graph, np.random.default_rng(1).integers(0, 256, size=(2, 6)))
    assert all(s.min() >= 0 for s in trace.spikes[1:])  # no -1 spikes anywhere
