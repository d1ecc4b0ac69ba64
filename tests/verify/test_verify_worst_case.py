"""Worst cases: all spikes +1 or -1 against maximal weights drive a membrane and a logit to
exactly the bound of contract.widths, which is exactly the largest value of the derived register.
The reference reaches the bound and never exceeds it; the accelerator (Amaranth simulation)
holds it without wrapping; one bit less is refused."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hwsim import params_from_model, run_accelerator

from contract import IntModel, derive_widths, forward, reference
from contract.intmodel import Readout, SpikingLayer
from contract.widths import layer_bound

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
    widths = derive_widths(model)
    layer = model.layers[0]
    assert widths.membrane_bounds == (255,) and widths.membrane == 9  # [-256, 255]
    spikes = reference.embed(model, _contexts(model))
    _, v = reference.fire(reference.accumulate(spikes, layer.weight), layer.bias,
                          layer.threshold, layer.reset, membranes=True)
    assert v[0, T - 1, 0] == layer_bound(layer, T) == 255  # all +1: reached ...
    assert v[1, T - 1, 1] == -255  # ... and all -1: reached
    assert np.abs(v).max() == 255  # ... never exceeded


def test_logit_bound_is_reached_and_is_the_register_maximum():
    model = logit_model()
    widths = derive_widths(model)
    assert widths.logit_bound == 255 and widths.membrane == 9
    logits = forward(model, _contexts(model))
    assert logits[0, 0] == 255 and logits[1, 1] == -255
    assert np.abs(logits).max() == 255


@pytest.mark.parametrize("make", [membrane_model, logit_model], ids=["membrane", "logit"])
@pytest.mark.parametrize("shape", [(1, 1), (2, 5)], ids=["1x1", "2x5"])
def test_accelerator_holds_the_bounds(make, shape):
    model = make()
    ids = _contexts(model)
    trace = forward(model, ids, trace=True)
    results = run_accelerator(params_from_model(model, *shape), ids.tolist())
    for n, result in enumerate(results):
        assert result.logits.tolist() == trace.logits[n].tolist(), f"sample {n}"
        expected = forward(model, ids[n : n + 1], trace=True).spike_counts()
        assert result.spike_counts.tolist() == expected.tolist(), f"sample {n}"
    if make is membrane_model:  # the bound is observable: a neuron fires on the last step only
        assert trace.spikes[1][0, :, 0].tolist() == [0] * (T - 1) + [1]
        assert trace.spikes[1][1, :, 1].tolist() == [0] * (T - 1) + [-1]


def test_one_bit_less_is_refused():
    """The derived width is necessary, not just sufficient: hw.AcceleratorParams redoes the
    range analysis and refuses a membrane one bit narrower."""
    for make, name in ((membrane_model, "layers\\[0\\]"), (logit_model, "readout")):
        params = params_from_model(make(), 1, 1)
        assert params.membrane_bits == 9
        with pytest.raises(ValueError, match=f"{name} can reach .* 255, which needs 9"):
            replace(params, membrane_bits=8)
