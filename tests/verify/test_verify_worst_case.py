"""Worst cases: all spikes +1 or -1 against maximal weights drive a membrane and a logit to
exactly the bound of contract.ranges, which is exactly the largest value of the derived register.
The reference reaches the bound and never exceeds it; the accelerator (Amaranth simulation)
holds it without wrapping; one bit less wraps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hwsim import check_windows, compile_params, run_streams

from contract import IntModel, analyse, forward, ops, signed_bits, zoo
from contract.zoo import Readout, SpikingLayer

T, LIMIT = 3, 7  # 4-bit weights


def _table(embed_dim: int, seed: int) -> np.ndarray:
    """Token 0 spikes +1 everywhere, token 1 spikes -1 everywhere, the rest at random."""
    table = np.random.default_rng(seed).choice([-1, 0, 1], size=(256, T, embed_dim))
    table[0], table[1] = 1, -1
    return table


def membrane_model() -> IntModel:
    """Hidden membrane at its bound: 12 inputs of weight +7, bias ±1, T = 3:
    ``3 * (12*7 + 1) = 255 = 2^8 - 1``. Θ = R = 255, so a neuron fires only on the bound."""
    rng = np.random.default_rng(1)
    hidden = SpikingLayer(np.full((2, 12), LIMIT), np.array([1, -1]), threshold=255, reset=255)
    readout = Readout(rng.integers(-LIMIT, LIMIT + 1, size=(256, 2)),
                      rng.integers(-LIMIT, LIMIT + 1, size=256))
    return IntModel(context=3, embed_dim=4, timesteps=T, weight_bits=4,
                    spike_table=_table(4, 1), layers=(hidden,), readout=readout)


def logit_model() -> IntModel:
    """Logits at their bound: 12 hidden neurons that fire +1 (or -1) on every step, readout
    weights +7, bias ±1: ``3 * (12*7 + 1) = 255``."""
    rng = np.random.default_rng(2)
    hidden = SpikingLayer(np.full((12, 1), LIMIT), np.zeros(12, dtype=int), threshold=1, reset=1)
    bias = rng.integers(-1, 2, size=256)
    bias[0], bias[1] = 1, -1
    readout = Readout(np.full((256, 12), LIMIT), bias)
    return IntModel(context=1, embed_dim=1, timesteps=T, weight_bits=4,
                    spike_table=_table(1, 2), layers=(hidden,), readout=readout)


def _contexts(model: IntModel) -> np.ndarray:
    return np.array([[0] * model.context, [1] * model.context])


def test_membrane_bound_is_reached_and_is_the_register_maximum():
    model = membrane_model()
    ranges = analyse(model.graph())
    layer = model.layers[0]
    assert ranges.registers["fire0"] == ranges.membrane == 255  # a 9-bit register: [-256, 255]
    spikes = zoo.embed(model, _contexts(model))
    _, v = ops.fire(ops.accumulate(spikes, layer.weight), layer.bias,
                          layer.threshold, layer.reset, membranes=True)
    assert v[0, T - 1, 0] == 255  # all +1: reached ...
    assert v[1, T - 1, 1] == -255  # ... and all -1: reached
    assert np.abs(v).max() == 255  # ... never exceeded


def test_logit_bound_is_reached_and_is_the_register_maximum():
    model = logit_model()
    ranges = analyse(model.graph())
    assert ranges.logit == 255 and signed_bits(ranges.datapath) == 9
    logits = forward(model, _contexts(model))
    assert logits[0, 0] == 255 and logits[1, 1] == -255
    assert np.abs(logits).max() == 255


@pytest.mark.parametrize("make", [membrane_model, logit_model], ids=["membrane", "logit"])
@pytest.mark.parametrize("shape", [(1, 1), (2, 5)], ids=["1x1", "2x5"])
def test_accelerator_holds_the_bounds(make, shape):
    model = make()
    ids = _contexts(model)
    trace = forward(model, ids, trace=True)
    check_windows(model, compile_params(model, *shape), ids)
    if make is membrane_model:  # the bound is observable: a neuron fires on the last step only
        assert trace.spikes[1][0, :, 0].tolist() == [0] * (T - 1) + [1]
        assert trace.spikes[1][1, :, 1].tolist() == [0] * (T - 1) + [-1]


def test_one_bit_less_is_refused_or_wraps():
    """The derived width is necessary, not just sufficient: the compiler gives both models
    9-bit membranes. With 8, the membrane model's threshold (255, the bound) no longer fits
    beside a signed membrane and is refused; the logit model's logits wrap."""
    for make in (membrane_model, logit_model):
        assert compile_params(make(), 1, 1).membrane_bits == 9
    with pytest.raises(ValueError, match="must be below membrane_bits"):
        replace(compile_params(membrane_model(), 1, 1), membrane_bits=8)
    model = logit_model()
    ids = _contexts(model)
    narrow = replace(compile_params(model, 1, 1), membrane_bits=8)
    seen = [s[0] for s in run_streams(narrow, ids, window=model.context)]
    logits = forward(model, ids)
    assert logits[0, 0] == 255 and seen[0].logits[0] == 255 - 256  # wrapped
