"""The elastic neuron in attention and the residual's per-step scale, against plain loops.

``Attention`` with a per-step score bias ``[T, H, W]``, per-step thresholds and resets
``[T, W]``, a leak and binary spikes, and ``ResidualAdd`` with a per-step scale ``[T, 2, 2]``,
are checked against a transcription of docs/integer-contract.md in Python integers (one
position, head and step at a time), in onnxruntime and through the front end; the plain forms
keep their ONNX bytes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest

from contract.graph import Attention, GraphError, ResidualAdd, run
from contract.onnx_io import to_onnx
from contract.ops import attention, residual_add
from contract.random_model import random_graph
from contract.ranges import analyse
from rtl_gen.frontend import lower

SEED = 1234


def _shift_round(x: int, e: int) -> int:
    return x << e if e >= 0 else (x + (1 << (-e - 1))) >> -e


def _leak(x: int, terms) -> int:
    return sum(int(sign) * _shift_round(x, int(e)) for sign, e in terms if sign)


def loop_attention(q, k, v, heads, score_bias, threshold, reset, leak, binary):
    """The attention neuron of the contract, one stream, step, position and channel at a time."""
    n, steps, length, d = q.shape
    window, dh = score_bias.shape[-1], d // heads
    sb = np.broadcast_to(score_bias, (steps, heads, window))
    th = np.broadcast_to(threshold, (steps, window))
    rs = np.broadcast_to(reset, (steps, window))
    out = np.zeros_like(q)
    for b in range(n):
        for i in range(length):
            count = min(i + 1, window)
            for c in range(d):
                h = c // dh
                u = 0
                for t in range(steps):
                    a = 0
                    for j in range(i - count + 1, i + 1):
                        dot = sum(int(q[b, t, i, x]) * int(k[b, t, j, x])
                                  for x in range(h * dh, (h + 1) * dh))
                        a += max(dot + int(sb[t, h, i - j]), 0) * int(v[b, t, j, c])
                    vm = u + a
                    s = int(vm >= th[t, count - 1]) - int(not binary and vm <= -th[t, count - 1])
                    u = vm - int(rs[t, count - 1]) * s
                    if leak is not None and t + 1 < steps:
                        u = _leak(u, leak[t, s + 1])
                    out[b, t, i, c] = s
    return out


def _elastic_inputs(rng, steps=3, length=6, d=4, heads=2, window=3):
    q, k, v = (rng.choice([-1, 0, 1], size=(2, steps, length, d)) for _ in range(3))
    score_bias = rng.integers(-2, 3, size=(steps, heads, window))
    reset = rng.integers(0, 5, size=(steps, window))
    leak = np.zeros((steps - 1, 3, 2, 2), dtype=np.int64)
    leak[..., 0, 0] = 1
    leak[..., 0, 1] = rng.integers(-2, 2, size=(steps - 1, 3))
    leak[..., 1, 0] = rng.integers(-1, 2, size=(steps - 1, 3))
    leak[..., 1, 1] = leak[..., 0, 1] - 2
    leak[:, 2, 0, 0] = 0  # a hard reset after +1 (SpikeLM's)
    return q, k, v, score_bias, reset // 2 + 1, reset, leak


@pytest.mark.parametrize("binary", [False, True])
def test_elastic_attention_is_the_documented_loop(binary):
    rng = np.random.default_rng(SEED)
    q, k, v, score_bias, threshold, reset, leak = _elastic_inputs(rng)
    got = attention(q, k, v, 2, score_bias, threshold, reset, leaks=leak, binary=binary)
    assert np.array_equal(got, loop_attention(q, k, v, 2, score_bias, threshold, reset, leak,
                                              binary))
    assert 0.05 < np.count_nonzero(got) / got.size < 0.95
    assert not binary or got.min() == 0
    plain = attention(q, k, v, 2, score_bias[0], threshold[0], reset[0])
    assert np.array_equal(plain, loop_attention(q, k, v, 2, score_bias[0], threshold[0],
                                                reset[0], None, False))
    assert not np.array_equal(plain, got)  # the options change the spikes


def test_a_residual_scale_is_shifts_and_adds_per_step():
    rng = np.random.default_rng(SEED)
    x = rng.integers(-50, 50, size=(2, 3, 4, 5))
    spikes = rng.choice([-1, 0, 1], size=(2, 3, 4, 6))
    weight = rng.integers(-20, 21, size=(5, 6))
    scale = np.array([[[1, -1], [1, -3]], [[1, 0], [0, 0]], [[1, -2], [-1, -4]]])
    got = residual_add(x, spikes, weight, 0, scale)
    acc = np.einsum("ntli,oi->ntlo", spikes, weight)
    expected = x.copy()
    for index in np.ndindex(acc.shape):
        expected[index] += _leak(int(acc[index]), scale[index[1]])
    assert np.array_equal(got, expected)
    # one term 2^shift every step is the shift
    same = np.broadcast_to([[1, -2], [0, 0]], (3, 2, 2))
    assert np.array_equal(residual_add(x, spikes, weight, 0, same),
                          residual_add(x, spikes, weight, -2))


def _elastic_graph(seed: int):
    """A random block composition whose attention and residual adds use the new fields."""
    graph = random_graph(seed, timesteps=3, blocks=((True, 5),), window=3)
    rng = np.random.default_rng(seed)
    ops = []
    for op in graph.ops:
        if isinstance(op, Attention):
            _, _, _, score_bias, threshold, reset, leak = _elastic_inputs(rng, window=op.window)
            op = dataclasses.replace(op, score_bias=op.score_bias + score_bias,
                                     threshold=threshold, reset=reset, leak=leak)
        elif isinstance(op, ResidualAdd):
            scale = np.broadcast_to([[1, op.shift], [-1, op.shift - 2]], (3, 2, 2)).copy()
            scale[1, 1, 0] = 1
            op = dataclasses.replace(op, shift=0, scale=scale)
        ops.append(op)
    return graph.replace_ops(ops)


def test_onnxruntime_and_the_front_end_give_the_elastic_integers():
    graph = _elastic_graph(5)
    ids = np.random.default_rng(SEED).integers(0, 256, size=(2, 7))
    expected = run(graph, ids)
    assert np.count_nonzero(expected.logits) > expected.logits.size // 2
    model = to_onnx(graph)
    session = ort.InferenceSession(model.SerializeToString())
    assert np.array_equal(session.run(None, {"input": ids})[0], expected.logits)
    lowered = lower(model)
    attn = lowered.of_type(Attention)[0]
    assert attn.score_bias.ndim == 3 and attn.per_step and attn.leak is not None
    assert all(op.scale is not None for op in lowered.of_type(ResidualAdd))
    assert np.array_equal(run(lowered, ids).logits, expected.logits)
    for name, value in expected.peaks.items():
        assert value <= getattr(analyse(graph), name), name


def test_plain_graphs_keep_their_onnx_form():
    graph = random_graph(5, timesteps=3, blocks=((True, 5),), window=3)
    nodes = {n.op_type: n for n in to_onnx(graph).graph.node}
    assert len(nodes["SpikeAttention"].input) == 6 and len(nodes["ResidualAdd"].input) == 5


def test_one_corrupted_scale_term_is_seen():
    graph = _elastic_graph(5)
    ids = np.random.default_rng(SEED).integers(0, 256, size=(2, 7))
    ops = list(graph.ops)
    index = next(i for i, op in enumerate(ops) if isinstance(op, ResidualAdd))
    scale = ops[index].scale.copy()
    scale[1, 0, 1] += 1
    ops[index] = dataclasses.replace(ops[index], scale=scale)
    assert not np.array_equal(run(graph.replace_ops(ops), ids).logits, run(graph, ids).logits)


@pytest.mark.parametrize("change, message", [
    (lambda op: dataclasses.replace(op, score_bias=op.score_bias[None].repeat(2, 0)),
     "score bias has 2 time steps"),
    (lambda op: dataclasses.replace(op, threshold=np.ones((3, 2))), "one per key count"),
    (lambda op: dataclasses.replace(op, reset=-op.reset), "must not be negative"),
    (lambda op: dataclasses.replace(op, leak=np.zeros((2, 3, 3, 2))), "the leak must be"),
])
def test_bad_elastic_attentions_are_refused(change, message):
    graph = random_graph(5, timesteps=3, blocks=((True, 5),), window=3)
    ops = [change(op) if isinstance(op, Attention) else op for op in graph.ops]
    with pytest.raises(GraphError, match=message):
        graph.replace_ops(ops)


def test_bad_residual_scales_are_refused():
    graph = random_graph(5, timesteps=3, blocks=((True, 5),), window=3)
    res = graph.of_type(ResidualAdd)[0]
    with pytest.raises(GraphError, match="a shift or a per-step scale"):
        dataclasses.replace(res, shift=1, scale=np.zeros((3, 2, 2)))
    with pytest.raises(GraphError, match=r"the scale must be \[T, 2, 2\]"):
        dataclasses.replace(res, shift=0, scale=np.zeros((3, 3, 2)))
    ops = [dataclasses.replace(op, shift=0, scale=np.zeros((2, 2, 2)))
           if op is res else op for op in graph.ops]
    with pytest.raises(GraphError, match="one entry per step"):
        graph.replace_ops(ops)
