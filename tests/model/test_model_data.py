"""The corpus split and the seeded samplers."""

from __future__ import annotations

import numpy as np

from model import data


def test_split_is_by_file_deterministic_and_about_five_percent():
    files = [rel for rel, _ in data.stdlib_files()]
    held = [rel for rel in files if data.is_heldout(rel)]
    assert 0.01 < len(held) / len(files) < 0.12
    assert held == [rel for rel in files if data.is_heldout(rel)]
    assert not data.is_heldout("pydoc_data/topics.py")
    assert not any("site-packages" in rel for rel in files)


def test_heldout_samples_are_seeded_and_shaped():
    a, ta = data.heldout_samples(500, 8, seed=3)
    b, tb = data.heldout_samples(500, 8, seed=3)
    c, _ = data.heldout_samples(500, 8, seed=4)
    assert a.dtype == np.int64 and ta.dtype == np.int64
    assert a.shape == (500, 8) and ta.shape == (500,)
    assert np.array_equal(a, b) and np.array_equal(ta, tb)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() < 256


def test_heldout_contexts_come_from_heldout_text():
    corpus = data.load_corpus(8)
    ids, targets = data.heldout_samples(50, 8, seed=0)
    text = corpus.heldout.tobytes()
    for context, target in zip(ids, targets, strict=True):
        assert bytes([*context.tolist(), int(target)]) in text


def test_batches_are_seeded():
    corpus = data.load_corpus(4)
    x1, y1 = data.sample_batch(np.random.default_rng(5), corpus, 64)
    x2, y2 = data.sample_batch(np.random.default_rng(5), corpus, 64)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert x1.shape == (64, 4)


def test_samples_from_bytes_covers_a_short_text():
    ids, targets = data.samples_from_bytes(b"hello", None, 3)
    assert targets.tolist() == list(b"hello")
    assert ids[0].tolist() == [0, 0, 0] and ids[-1].tolist() == list(b"ell")
