"""The integer reference and its range analysis."""

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import ContractError, IntModel, analyse, forward, ops
from contract.graph import run
from contract.onnx_io import to_onnx
from contract.random_model import random_model
from contract.ranges import accumulation_bound, membrane_bound, signed_bits
from contract.zoo import SpikingLayer


def layer_bound(layer: SpikingLayer, timesteps: int) -> int:
    """The membrane bound of a spiking layer of the chain, by contract.ranges' rule."""
    return membrane_bound(timesteps, accumulation_bound(layer.weight), layer.bias,
                          layer.threshold, layer.reset)


def test_fire_is_the_documented_neuron():
    # V = U + A + B; +1 at V >= 3, -1 at V <= -3; U = V - 5*s
    currents = np.array([[[2], [2], [-9], [0]]])
    spikes, v = ops.fire(currents, [1], threshold=3, reset=5, membranes=True)
    assert v[0, :, 0].tolist() == [3, 1, -7, -1]
    assert spikes[0, :, 0].tolist() == [1, 0, -1, 0]


def test_round_half_to_even_threshold():
    # R = 4: round(u/α) >= 1 only for 2U > R, so U = 2 (exactly half) does not fire
    spikes = ops.fire(np.array([[[2], [1]]]), [0], threshold=4 // 2 + 1, reset=4)
    assert spikes[0, :, 0].tolist() == [0, 1]


def test_next_token_breaks_ties_low():
    assert ops.next_token(np.array([[1, 5, 5, 0]])).tolist() == [1]


@pytest.mark.parametrize("seed", range(4))
def test_onnxruntime_gives_the_reference_integers(seed, tmp_path):
    model = random_model(seed, hidden=(7, 3), timesteps=1 + seed)
    ids = np.random.default_rng(seed).integers(0, 256, size=(64, model.context))
    session = ort.InferenceSession(to_onnx(model).SerializeToString())
    logits = session.run(None, {"input": ids})[0]
    expected = forward(model, ids)
    assert np.any(expected != 0)
    assert logits.shape == (64, model.context, 256)  # every position of the k-byte stream
    assert np.array_equal(logits[:, -1], expected)
    streams = np.random.default_rng(seed).integers(0, 256, size=(8, 3 * model.context))
    assert np.array_equal(session.run(None, {"input": streams})[0],
                          run(model.graph(), streams).logits)


def test_a_stream_position_sees_its_window_with_zero_bytes_before_the_start():
    """The MLP's graph on a stream: position i is the window of bytes i-k+1..i, byte 0 before
    the stream's start (the corpus's start-of-file context)."""
    model = random_model(3, hidden=(5,))
    stream = np.random.default_rng(1).integers(1, 256, size=(1, 7))
    logits = run(model.graph(), stream).logits[0]
    padded = np.concatenate([np.zeros(model.context - 1, dtype=np.int64), stream[0]])
    windows = np.stack([padded[i:i + model.context] for i in range(stream.shape[1])])
    assert np.array_equal(logits, forward(model, windows))


def test_one_corrupted_weight_is_seen():
    model = random_model(1, hidden=(7,))
    ids = np.random.default_rng(0).integers(0, 256, size=(64, model.context))
    weight = model.readout.weight.copy()
    weight[int(np.argmax(forward(model, ids)[0])), :] += 1
    tampered = IntModel(
        **{**model.__dict__, "readout": type(model.readout)(weight, model.readout.bias)}
    )
    assert not np.array_equal(forward(model, ids), forward(tampered, ids))


@settings(max_examples=60, deadline=None)
@given(
    n_in=st.integers(1, 13),
    timesteps=st.integers(1, 8),
    bits=st.sampled_from([2, 4, 8]),
    threshold=st.integers(1, 400),
    extra_reset=st.integers(0, 400),
    sign=st.sampled_from([1, -1]),
    seed=st.integers(0, 2**16),
)
def test_membrane_never_exceeds_the_derived_bound(
    n_in, timesteps, bits, threshold, extra_reset, sign, seed
):
    rng = np.random.default_rng(seed)
    limit = (1 << (bits - 1)) - 1
    weight = rng.integers(-limit, limit + 1, size=(3, n_in))
    weight[0] = sign * limit  # a neuron with maximal weights ...
    bias = np.array([sign * limit, 0, -1])
    layer = SpikingLayer(weight, bias, threshold=threshold, reset=threshold + extra_reset)
    spikes = np.ones((2, timesteps, n_in), dtype=np.int64)  # ... against all +1 spikes
    spikes[1] = -1
    random = rng.choice([-1, 0, 1], size=(16, timesteps, n_in))
    for s in (spikes, random):
        _, v = ops.fire(
            ops.accumulate(s, weight), bias, layer.threshold, layer.reset, membranes=True
        )
        bound = layer_bound(layer, timesteps)
        assert np.abs(v).max() <= bound
        assert np.abs(v).max() < 1 << (signed_bits(bound) - 1)


def test_bound_is_reached_when_nothing_fires():
    limit = 127
    weight = np.full((1, 5), limit)
    layer = SpikingLayer(weight, np.array([limit]), threshold=10**6, reset=10**6)
    _, v = ops.fire(
        ops.accumulate(np.ones((1, 4, 5)), weight),
        layer.bias,
        layer.threshold,
        layer.reset,
        membranes=True,
    )
    assert v.max() == 4 * (5 * limit + limit) == layer_bound(layer, 4)


def test_widths_cover_every_layer():
    model = random_model(7, hidden=(11, 5))
    ranges = analyse(model.graph())
    bounds = [layer_bound(layer, model.timesteps) for layer in model.layers]
    assert [ranges.registers[f"fire{i}"] for i in range(2)] == bounds
    assert ranges.membrane == max(bounds)
    assert ranges.logit == model.timesteps * (accumulation_bound(model.readout.weight)
                                              + int(np.abs(model.readout.bias).max()))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"timesteps": 0}, "timesteps"),
        ({"weight_bits": 9}, "weight_bits"),
        ({"spike_table": np.full((256, 4, 4), 2)}, "spike_table"),
    ],
)
def test_contract_rejects_bad_models(change, message):
    model = random_model(0)
    with pytest.raises(ContractError, match=message):
        IntModel(**{**model.__dict__, **change})


def test_threshold_scale_is_exact_rounding():
    model = random_model(0, hidden=(5,))
    theta = model.layers[0].threshold
    scaled = model.with_threshold_scale("1.5")
    assert scaled.layers[0].threshold == max(1, round(theta * 3 / 2))
    assert scaled.layers[0].reset == model.layers[0].reset


def test_a_leak_is_shifts_and_adds_rounded_half_up():
    terms = np.array([[1, -2], [1, -3]])  # x (1/4 + 1/8)
    x = np.array([10, -10, 7, 0])
    # shift_round(10, -2) = (10 + 2) >> 2 = 3, shift_round(10, -3) = (10 + 4) >> 3 = 1
    assert ops.leak(x, terms).tolist() == [4, -3, 3, 0]  # half up: -2.5 -> -2, -1.25 -> -1
    assert ops.leak(x, np.array([[1, 1], [-1, -1]])).tolist() == [15, -15, 10, 0]
    assert ops.leak(x, np.zeros((2, 2), dtype=np.int64)).tolist() == [0, 0, 0, 0]


def test_fire_with_the_identity_leak_and_constant_steps_is_the_plain_neuron():
    rng = np.random.default_rng(4)
    currents = rng.integers(-9, 10, size=(3, 5, 7))
    bias, threshold, reset = rng.integers(-2, 3, size=7), 4, 7
    plain = ops.fire(currents, bias, threshold, reset)
    identity = np.zeros((4, 3, 2, 2), dtype=np.int64)
    identity[..., 0, 0] = 1
    steps = [np.broadcast_to(c, (5, 7)) for c in (bias, threshold, reset)]
    assert np.array_equal(ops.fire(currents, *steps, per_step=True, leaks=identity), plain)


def test_spikelms_hard_reset_and_leak_in_integers():
    """After a +1 spike the membrane is 0, after none it is rescaled (here by 1/2)."""
    leaks = np.zeros((2, 3, 2, 2), dtype=np.int64)
    leaks[:, :2, 0] = [1, -1]  # s = -1 and s = 0: x / 2; s = +1: no terms, 0
    currents = np.array([[[6], [1], [3]]])  # V0 = 6 fires; V1 = 0 + 1; V2 = 1 + 3 fires
    spikes, v = ops.fire(currents, 0, 4, 0, membranes=True, leaks=leaks)
    assert spikes[0, :, 0].tolist() == [1, 0, 1]
    assert v[0, :, 0].tolist() == [6, 1, 4]  # shift_round(1, -1) = 1


def test_binary_spikes_keep_their_membrane_below_the_negative_threshold():
    currents = np.array([[[-9], [-9], [30]]])
    spikes, v = ops.fire(currents, 0, 4, 8, membranes=True, binary=True)
    assert spikes[0, :, 0].tolist() == [0, 0, 1]
    assert v[0, :, 0].tolist() == [-9, -18, 12]


def test_a_readout_leak_rescales_the_running_sum():
    spikes = np.array([[[[1]], [[1]], [[1]]]])  # [N, T, L, 1]
    weight = np.full((ops.VOCAB, 1), 8)
    leaks = np.array([[[1, -1], [0, 0]], [[1, 0], [0, 0]]])  # x / 2, then x
    logits = ops.readout(spikes, weight, np.zeros(ops.VOCAB, dtype=np.int64), leaks)
    assert logits[0, 0, 0] == (8 // 2 + 8) + 8
