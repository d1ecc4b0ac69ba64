"""The encoder's ops in the integer reference: bidirectional attention and pooling, against a
direct transcription of their definitions, through ONNX and the front end, and their range
analysis."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from contract import graph as g
from contract.onnx_io import to_onnx
from contract.ops import ContractError, attention, pool
from contract.random_model import random_graph
from contract.ranges import analyse
from rtl_gen.build import run_onnx
from rtl_gen.errors import FrontendError
from rtl_gen.frontend import load_graph
from rtl_gen.passes import default_pipeline, run_pipeline
from rtl_gen.plan_program import program_params

SEED = 4321


def _direct_attention(q, k, v, heads, bias, threshold, reset):
    """``a_i = sum_j relu(q_i.k_j + P[h, i - j + W - 1]) v_j`` over the whole sequence, one
    loop per index, then the IF neuron of ``L`` keys (a transcription of the definition)."""
    n, steps, length, d = q.shape
    window = threshold.shape[0]
    dh = d // heads
    current = np.zeros_like(q)
    for b in range(n):
        for t in range(steps):
            for i in range(length):
                for j in range(length):
                    for h in range(heads):
                        lanes = slice(h * dh, (h + 1) * dh)
                        score = int(q[b, t, i, lanes] @ k[b, t, j, lanes])
                        score += int(bias[h, i - j + window - 1])
                        current[b, t, i, lanes] += max(score, 0) * v[b, t, j, lanes]
    spikes = np.zeros_like(current)
    membrane = np.zeros_like(current[:, 0])
    theta, r = threshold[length - 1], reset[length - 1]
    for t in range(steps):
        u = membrane + current[:, t]
        s = (u >= theta).astype(int) - (u <= -theta).astype(int)
        membrane = u - r * s
        spikes[:, t] = s
    return spikes


@pytest.mark.parametrize("length", [1, 3, 5])
def test_bidirectional_attention_is_its_definition(length):
    rng = np.random.default_rng(SEED + length)
    heads, d, window, steps = 2, 6, 5, 3
    q, k, v = (rng.integers(-1, 2, size=(2, steps, length, d)) for _ in range(3))
    bias = rng.integers(-3, 4, size=(heads, 2 * window - 1))
    resets = rng.integers(2, 9, size=window)
    got = attention(q, k, v, heads, bias, resets // 2 + 1, resets, causal=False)
    want = _direct_attention(q, k, v, heads, bias, resets // 2 + 1, resets)
    assert np.array_equal(got, want)
    assert np.count_nonzero(got) > 0


def test_a_bidirectional_attention_sees_later_positions():
    graph = random_graph(SEED, classes=3, window=6)
    ids = np.random.default_rng(SEED).integers(0, 256, size=(4, 6))
    changed = ids.copy()
    changed[:, -1] = (changed[:, -1] + 1) % 256
    first = g.run(graph, ids).tensors
    second = g.run(graph, changed).tensors
    attn = graph.of_type(g.Attention)[0].output
    assert not np.array_equal(first[attn][:, :, 0], second[attn][:, :, 0])  # position 0 moved


def test_pool_sums_the_positions():
    logits = np.arange(24).reshape(2, 3, 4)
    assert pool(logits).tolist() == [[[12, 15, 18, 21]], [[48, 51, 54, 57]]]


def test_an_encoder_is_the_same_integers_in_onnx_and_the_front_end(tmp_path):
    graph = random_graph(SEED, classes=5, window=7, blocks=((True, 9), (True, 0)))
    assert not graph.causal and graph.outputs == 5
    ids = np.random.default_rng(SEED).integers(0, 256, size=(6, 7))
    expected = g.run(graph, ids).logits
    assert expected.shape == (6, 1, 5) and np.count_nonzero(expected) > 15
    path = tmp_path / "encoder.onnx"
    onnx.save(to_onnx(graph), path)
    assert np.array_equal(run_onnx(path, ids), expected)
    assert np.array_equal(run_onnx(path, ids[:, :4]), g.run(graph, ids[:, :4]).logits)
    lowered = load_graph(path)
    assert [type(op) for op in lowered.ops] == [type(op) for op in graph.ops]
    assert not lowered.of_type(g.Attention)[0].causal
    assert np.array_equal(g.run(lowered, ids).logits, expected)


def test_an_encoder_stays_within_its_range_analysis():
    for seed in range(6):
        graph = random_graph(seed, classes=4, window=5, heads=1, width=4)
        ids = np.random.default_rng(seed).integers(0, 256, size=(8, 5))
        ranges = analyse(graph)
        for name, value in g.run(graph, ids).peaks.items():
            assert value <= getattr(ranges, name), (seed, name)


def test_an_encoder_refuses_what_it_cannot_do():
    graph = random_graph(SEED, classes=3, window=4)
    with pytest.raises(ContractError, match="at most 4 positions"):
        g.run(graph, np.zeros((1, 5), dtype=np.int64))
    with pytest.raises(ContractError, match="does not generate"):
        g.generate(graph, b"ab", 2)
    attn = graph.of_type(g.Attention)[0]
    with pytest.raises(g.GraphError, match="2 window - 1"):
        g.Attention("a", attn.inputs, "o", heads=attn.heads, score_bias=attn.score_bias[:, 1:],
                    threshold=attn.threshold, reset=attn.reset, d_model=attn.d_model,
                    causal=False)
    causal = random_graph(SEED, window=4)
    readout = causal.of_type(g.Readout)[0]
    small = g.Readout("r", readout.inputs, "output", weight=readout.weight[:3],
                      bias=readout.bias[:3])
    with pytest.raises(g.GraphError, match="256 outputs"):
        causal.replace_ops([*causal.ops[:-1], small])


def test_the_accelerator_refuses_a_second_bidirectional_attention_by_name():
    graph = random_graph(SEED, classes=3, window=4, blocks=((True, 3), (True, 0)))
    fused = run_pipeline(graph, default_pipeline())
    with pytest.raises(FrontendError, match="attn.*one bidirectional attention"):
        program_params(fused, 2, 2)
    one = run_pipeline(random_graph(SEED, classes=3, window=4), default_pipeline())
    params, _ = program_params(one, 2, 2)
    assert params.bidirectional and params.outputs == 3
