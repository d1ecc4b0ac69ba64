"""The transformer's integer reference: hand-sized cases, random models, widths at the extremes."""

from __future__ import annotations

import numpy as np
import pytest

from contract import Readout, SpikingLayer, analyse
from contract.graph import generate
from contract.ops import (
    VOCAB,
    ContractError,
    attention_current,
    key_counts,
    shift_round,
    window_mask,
)
from contract.zoo import IntBlock, IntNorm, IntOutProj, IntTransformer, forward_streams

SEED = 1234


def _norm(d, rng, threshold=None):
    reset = rng.integers(2, 40, size=d) if threshold is None else np.full(d, 2 * threshold - 1)
    return IntNorm(bias=rng.integers(-5, 6, size=d), threshold=reset // 2 + 1, reset=reset)


def _layer(n_out, n_in, rng, bits=8):
    limit = (1 << (bits - 1)) - 1
    reset = int(rng.integers(10, 200))
    return SpikingLayer(rng.integers(-limit, limit + 1, size=(n_out, n_in)),
                        rng.integers(-20, 21, size=n_out), reset // 2 + 1, reset)


def random_transformer(seed=SEED, context=6, d=8, heads=2, ffn=12, blocks=1, timesteps=3):
    """A random integer transformer whose neurons fire at plausible rates."""
    rng = np.random.default_rng(seed)
    block_list = []
    for _ in range(blocks):
        resets = rng.integers(2, 12, size=context)
        block_list.append(IntBlock(
            norm1=_norm(d, rng), q=_layer(d, d, rng), k=_layer(d, d, rng), v=_layer(d, d, rng),
            score_bias=rng.integers(-3, 4, size=(heads, context)),
            attn_threshold=resets // 2 + 1, attn_reset=resets,
            out=IntOutProj(rng.integers(-127, 128, size=(d, d)), int(rng.integers(-4, 2))),
            norm2=_norm(d, rng), ff1=_layer(ffn, d, rng),
            ff2=IntOutProj(rng.integers(-127, 128, size=(d, ffn)), int(rng.integers(-4, 2))),
        ))
    return IntTransformer(
        context=context, d_model=d, heads=heads, timesteps=timesteps, weight_bits=8,
        tok_embed=rng.integers(-127, 128, size=(VOCAB, d)), blocks=tuple(block_list),
        norm_f=_norm(d, rng), readout=Readout(rng.integers(-127, 128, size=(VOCAB, d)),
                                              rng.integers(-50, 51, size=VOCAB)),
    )


def test_shift_round_is_round_half_up():
    acc = np.arange(-9, 10)
    assert shift_round(acc, 2).tolist() == (acc * 4).tolist()
    assert shift_round(acc, -2).tolist() == np.floor(acc / 4 + 0.5).astype(int).tolist()
    assert shift_round(np.array([6, -6, 2, -2]), -2).tolist() == [2, -1, 1, 0]


def test_attention_by_hand():
    """One head, two positions: scores are ternary dot products, ReLU'd and causal."""
    q = np.array([[[1, 0, -1], [1, 1, 1]]])
    k = np.array([[[1, 0, 1], [1, 1, 0]]])
    v = np.array([[[1, -1, 0], [0, 1, 1]]])
    # position 0: q0.k0 = 0 -> nothing; position 1: q1.k0 = 2, q1.k1 = 2.
    a = attention_current(q, k, v, heads=1)
    assert a.tolist() == [[[0, 0, 0], [2, 0, 2]]]
    # the future never leaks: position 0 ignores k1 although q0.k1 = 1 > 0.
    assert a[0, 0].tolist() == [0, 0, 0]


def test_window_and_score_bias_by_hand():
    """Window 2 over three positions: the oldest key drops out; the bias is by distance."""
    q = np.ones((1, 3, 2), dtype=np.int64)
    k = np.array([[[1, 1], [1, -1], [-1, -1]]])
    v = np.array([[[1, 0], [0, 1], [1, 1]]])
    # distance 0 gets -1, distance 1 gets +3; scores q.k: [2, 0, -2] against every query.
    a = attention_current(q, k, v, heads=1, score_bias=np.array([[-1, 3]]), window=2)
    # i=0: relu(2-1)=1 on v0.  i=1: relu(2+3)=5 on v0, relu(0-1)=0.  i=2: relu(0+3)=3 on v1,
    # relu(-2-1)=0; k0 is outside the window.
    assert a.tolist() == [[[1, 0], [5, 0], [0, 3]]]
    assert window_mask(3, 2).astype(int).tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    assert key_counts(4, 2).tolist() == [1, 2, 2, 2]


def test_hand_sized_model():
    """d = 1, one head, T = 2, context 2: every integer of the forward pass worked by hand."""
    one = SpikingLayer(np.array([[1]]), np.array([0]), 1, 1)
    block = IntBlock(
        norm1=IntNorm(np.array([0]), np.array([3]), np.array([5])), q=one, k=one, v=one,
        score_bias=np.zeros((1, 2), dtype=np.int64),
        attn_threshold=np.array([1, 1]), attn_reset=np.array([1, 2]),
        out=IntOutProj(np.array([[3]]), 1), norm2=IntNorm(np.array([0]), np.array([10**6]),
                                                         np.array([10**6])),
        ff1=one, ff2=IntOutProj(np.array([[1]]), 0),
    )
    tok = np.zeros((VOCAB, 1), dtype=np.int64)
    tok[7, 0] = 4
    readout_w = np.zeros((VOCAB, 1), dtype=np.int64)
    readout_w[1, 0] = 1
    model = IntTransformer(
        context=2, d_model=1, heads=1, timesteps=2, weight_bits=8, tok_embed=tok,
        blocks=(block,),
        norm_f=IntNorm(np.array([0]), np.array([9]), np.array([9])),
        readout=Readout(readout_w, np.zeros(VOCAB, dtype=np.int64)),
    )
    # ids [7, 7]: x = 4 at both positions. Step 0: norm1 V=4 >= 3 -> s=1, U=-1; q=k=v=1;
    # a = [1, 2]; attn fires at both (V >= 1), out = 3 << 1 = 6: x = 10. norm2 silent.
    # norm_f V = 10 >= 9 -> fires, logit[1] += 1. Step 1: norm1 V = -1 + 4 = 3 -> fires again;
    # x = 10 again; norm_f V = 1 + 10 = 11 -> fires: logit[1] = 2.
    trace = forward_streams(model, np.array([[7, 7]]), trace=True)
    assert trace.logits[0, -1, 1] == 2
    assert np.count_nonzero(trace.logits) == 2
    assert trace.peaks["residual"] == 10


def test_random_model_rates_and_batching():
    model = random_transformer()
    ids = np.random.default_rng(SEED).integers(0, VOCAB, size=(64, model.context))
    trace = forward_streams(model, ids, trace=True)
    assert np.array_equal(trace.logits[:, -1], forward_streams(model, ids))
    assert np.array_equal(forward_streams(model, ids[:5]), forward_streams(model, ids)[:5])
    rates = trace.firing_rates()
    assert len(rates) == 8
    assert all(0.01 < r < 0.99 for r in rates), rates
    assert len(np.unique(np.argmax(trace.logits[:, -1], axis=-1))) > 1


def test_causal_prefix_invariance():
    """Logits at position p depend on bytes 0..p only, in streams longer than the window."""
    model = random_transformer(blocks=2)
    rng = np.random.default_rng(SEED + 1)
    length = 3 * model.context
    ids = rng.integers(0, VOCAB, size=(16, length))
    other = ids.copy()
    other[:, 9:] = rng.integers(0, VOCAB, size=(16, length - 9))
    a = forward_streams(model, ids, all_positions=True)
    b = forward_streams(model, other, all_positions=True)
    assert np.array_equal(a[:, :9], b[:, :9])
    assert not np.array_equal(a[:, 9:], b[:, 9:])
    assert np.array_equal(forward_streams(model, ids[:, :13], all_positions=True), a[:, :13])


def test_one_block_sees_exactly_its_window():
    """With one block the logits of position i are those of the window's W bytes alone, so a
    key/value cache of W positions serves a stream of any length."""
    model = random_transformer(blocks=1)
    w = model.context
    rng = np.random.default_rng(SEED + 2)
    ids = rng.integers(0, VOCAB, size=(8, 4 * w))
    stream = forward_streams(model, ids, all_positions=True)
    for i in (w - 1, w, 2 * w + 3, 4 * w - 1):
        assert np.array_equal(stream[:, i], forward_streams(model, ids[:, i - w + 1: i + 1]))
    # the byte W positions back is out of sight; the one W - 1 back is not
    i = 3 * w
    moved = ids.copy()
    moved[:, i - w] = (moved[:, i - w] + 1) % VOCAB
    assert np.array_equal(forward_streams(model, moved[:, : i + 1]), stream[:, i])
    moved[:, i - w + 1] = (moved[:, i - w + 1] + 1) % VOCAB
    assert not np.array_equal(forward_streams(model, moved[:, : i + 1]), stream[:, i])


def test_generate_is_greedy_on_its_own_stream():
    model = random_transformer(blocks=2)
    prompt = [104, 105, 32]
    tokens = generate(model.graph(), prompt, 3 * model.context)
    stream = np.array([prompt + tokens])
    logits = forward_streams(model, stream, all_positions=True)[0]
    expected = np.argmax(logits[len(prompt) - 1 : -1], axis=-1)
    assert tokens == expected.tolist()
    assert len(set(tokens)) > 1
    with pytest.raises(ContractError, match="at least one byte"):
        generate(model.graph(), [], 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_widths_bound_random_and_extreme_inputs(seed):
    model = random_transformer(seed=seed, blocks=2)
    ranges = analyse(model.graph())
    rng = np.random.default_rng(seed)
    # extreme inputs: the bytes with the largest embedding of either sign, everywhere.
    length = 2 * model.context
    ids = np.concatenate([
        rng.integers(0, VOCAB, size=(256, length)),
        np.full((1, length), int(np.argmax(model.tok_embed.sum(axis=1)))),
        np.full((1, length), int(np.argmin(model.tok_embed.sum(axis=1)))),
    ])
    peaks = forward_streams(model, ids, trace=True).peaks
    assert peaks["residual"] <= ranges.residual
    assert peaks["membrane"] <= ranges.membrane
    assert peaks["attn_current"] <= ranges.attn_current
    assert peaks["logit"] <= ranges.logit
    bias = max(int(np.abs(b.score_bias).max()) for b in model.blocks)
    assert ranges.score == model.head_dim + bias


def test_attention_bound_is_reached():
    """All-ones q, k and v over a full window reach ``sum_δ max(0, d_h + P[δ])``."""
    ctx, d = 5, 4
    model = random_transformer(context=ctx, d=d, heads=1)
    bias = model.blocks[0].score_bias
    ones = np.ones((1, 2 * ctx, d), dtype=np.int64)
    a = attention_current(ones, ones, ones, heads=1, score_bias=bias, window=ctx)
    assert a.max() == analyse(model.graph()).attn_current
    assert a.max() == np.maximum(d + bias, 0).sum()


def test_contract_errors():
    model = random_transformer()
    with pytest.raises(ContractError, match="ids must have shape"):
        forward_streams(model, np.zeros((2, 0), dtype=np.int64))
    with pytest.raises(ContractError, match="0..255"):
        forward_streams(model, np.full((1, 3), 256))
    with pytest.raises(ContractError, match="multiple of heads"):
        random_transformer(d=9, heads=2)
    with pytest.raises(ContractError, match="at least 1"):
        IntNorm(np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64),
                np.ones(2, dtype=np.int64))


def test_attention_blocks_of_queries_are_exact(monkeypatch):
    """The attention is computed a block of queries at a time: any block size gives the same
    integers (dense: one block; 5 queries; per-step score bias)."""
    from contract import ops

    rng = np.random.default_rng(7)
    q, k, v = (rng.integers(-1, 2, size=(3, 2, 37, 8)) for _ in range(3))
    bias = rng.integers(-3, 4, size=(2, 2, 6))
    results = []
    for block in (1000, 5):
        monkeypatch.setattr(ops, "QUERY_BLOCK", block)
        results.append(ops.attention_current(q, k, v, 2, bias, window=6))
    assert np.count_nonzero(results[0]) > results[0].size // 4
    assert np.array_equal(results[0], results[1])
