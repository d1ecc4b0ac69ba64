"""The integer mode: bit-exact against the executor (contract.zoo.forward) and onnxruntime,
on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from contract import ops, zoo
from contract.onnx_io import to_onnx
from model import data
from model.checkpoint import load_checkpoint
from model.lm import int_forward
from model.metrics import evaluate_float, evaluate_int

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "spikelm-mlp.pt"
RATE_BAND = (0.02, 0.9)


def _assert_trace_equal(int_model, ids):
    ours = int_forward(int_model, ids, trace=True)
    ref = zoo.forward(int_model, ids, trace=True)
    assert np.array_equal(ours.logits, ref.logits)
    assert len(ours.spikes) == len(ref.spikes) == len(int_model.layers) + 1
    for layer, (a, b) in enumerate(zip(ours.spikes, ref.spikes, strict=True)):
        assert np.array_equal(a, b), f"spikes of layer {layer} differ"
    assert np.count_nonzero(ref.logits) > ref.logits.size // 2
    assert len(np.unique(ops.next_token(ref.logits))) > 1
    for rate in ref.firing_rates():
        assert RATE_BAND[0] < rate < RATE_BAND[1], ref.firing_rates()
    return ref


def test_tiny_model_int_forward_equals_reference(tiny_trained, heldout_tiny):
    model, _ = tiny_trained
    ids, _ = heldout_tiny
    int_model = model.to_int_model()
    _assert_trace_equal(int_model, ids)
    assert torch.equal(model.int_forward(ids[:64]), torch.from_numpy(zoo.forward(
        int_model, ids[:64])))


@pytest.fixture(scope="module")
def shipped():
    if not SHIPPED.exists():
        pytest.fail(f"shipped checkpoint {SHIPPED} is missing")
    model, metrics = load_checkpoint(SHIPPED, kind="spiking")
    return model, metrics


def test_shipped_model_int_forward_equals_reference(shipped):
    model, _ = shipped
    ids, _ = data.heldout_samples(2048, model.config.context, seed=7)
    _assert_trace_equal(model.to_int_model(), ids)


def test_shipped_scales_leave_little_to_rounding(shipped):
    model, _ = shipped
    int_model = model.to_int_model()
    for layer in int_model.layers:
        assert layer.reset >= 8
        assert layer.threshold == layer.reset // 2 + 1


def test_integer_and_float_forward_agree_in_bits_per_byte(tiny_trained, heldout_tiny):
    model, _ = tiny_trained
    ids, targets = heldout_tiny
    integer = evaluate_int(model.to_int_model(), ids, targets)["bits_per_byte"]
    floating = evaluate_float(model, ids, targets)["bits_per_byte"]
    assert abs(integer - floating) < 0.05


def test_spike_table_is_ternary_and_not_silent(tiny_trained):
    model, _ = tiny_trained
    table = model.to_int_model().spike_table
    assert table.shape == (256, model.config.timesteps, model.config.embed)
    assert set(np.unique(table).tolist()) <= {-1, 0, 1}
    assert np.count_nonzero(table) > 0


@torch.no_grad()
def test_scales_follow_the_contract_table(tiny_trained):
    model, _ = tiny_trained
    int_model = model.to_int_model()
    embed, *layers, readout = model.blocks
    alpha_in = float(embed.alpha())
    for layer, ints in zip(layers, int_model.layers, strict=True):
        scale = float(layer.linear.weight.detach().abs().max()) / 127
        expected_r = max(1, round(float(layer.alpha()) / (scale * alpha_in)))
        assert abs(ints.reset - expected_r) <= 1  # float32 vs float64 scale products
        assert ints.threshold == ints.reset // 2 + 1
        alpha_in = float(layer.alpha())
    readout_scale = float(readout.linear.weight.detach().abs().max()) / 127
    expected = readout_scale * alpha_in / model.config.timesteps
    assert int_model.logit_scale == pytest.approx(expected, rel=1e-5)


def test_corrupting_one_weight_changes_the_logits(tiny_trained, heldout_tiny):
    model, _ = tiny_trained
    ids, _ = heldout_tiny
    int_model = model.to_int_model()
    before = zoo.forward(int_model, ids)
    layer = int_model.layers[0]
    hot = int(np.argmax(np.abs(layer.weight).sum(axis=0)))
    weight = np.array(layer.weight)
    weight[0, hot] += 1 if weight[0, hot] < 127 else -1
    corrupted = type(int_model)(**{**int_model.__dict__, "layers": (
        type(layer)(weight, layer.bias, layer.threshold, layer.reset), *int_model.layers[1:])})
    assert not np.array_equal(int_forward(corrupted, ids).numpy(), before)


def test_onnxruntime_equals_reference(tiny_trained, heldout_tiny):
    model, _ = tiny_trained
    ids, _ = heldout_tiny
    int_model = model.to_int_model()
    session = ort.InferenceSession(to_onnx(int_model).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (logits,) = session.run(["output"], {"input": ids.astype(np.int64)})
    assert np.array_equal(logits[:, -1].astype(np.int64), zoo.forward(int_model, ids))


def test_shipped_float_twin_matches_the_spiking_config(shipped):
    model, metrics = shipped
    twin, twin_metrics = load_checkpoint(SHIPPED.with_name("spikelm-mlp-float.pt"), kind="float")
    spiking_cfg = {**model.config.to_dict(), "float_twin": True}
    assert twin.config.to_dict() == spiking_cfg
    assert twin_metrics["options"]["steps"] == metrics["options"]["steps"]
