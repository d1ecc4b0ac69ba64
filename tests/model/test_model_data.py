"""The corpus split and the seeded samplers."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_heldout_streams_score_every_heldout_byte_once():
    corpus = data.load_corpus(8)
    ids, targets, scored = data.heldout_streams(8, warm=14, span=256)
    assert ids.shape == targets.shape == scored.shape and ids.shape[1] == 14 + 256
    assert not scored[:, :14].any()
    assert int(scored.sum()) == int(corpus.heldout_valid.sum())
    # the scored targets, in order, are the held-out bytes without the padding before files
    assert bytes(targets[scored].tolist()) == corpus.heldout[corpus.heldout_valid].tobytes()
    # every position reads the byte before its target
    assert np.array_equal(ids[:, 1:], targets[:, :-1])
    again = data.heldout_streams(8, warm=14, span=256)
    assert all(np.array_equal(a, b) for a, b in zip((ids, targets, scored), again, strict=True))


def test_heldout_streams_take_a_seeded_subset():
    full, _, _ = data.heldout_streams(8, warm=7, span=64)
    a, _, sa = data.heldout_streams(8, warm=7, span=64, chunks=10, seed=1)
    b, _, _ = data.heldout_streams(8, warm=7, span=64, chunks=10, seed=2)
    assert a.shape == (10, 71) and not np.array_equal(a, b)
    assert all(any(np.array_equal(row, other) for other in full) for row in a)
    assert 0 < sa.sum() <= 640


def test_streams_from_bytes_warm_up_on_the_bytes_before():
    ids, targets, scored = data.streams_from_bytes(b"abcdefghij", 3, warm=2, span=4)
    assert bytes(targets[scored].tolist()) == b"abcdefghij"
    # the first scored position of the second stream reads 'b' after the warm-up 'a' and pad
    assert ids[1].tolist() == [0, *b"abcde"]
    assert scored[1].tolist() == [False, False, True, True, True, True]


def test_the_corpus_folder_can_be_another_pythons(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_bytes(b"x = 1\n")
    (tmp_path / "pkg" / "tests").mkdir()
    (tmp_path / "pkg" / "tests" / "t.py").write_bytes(b"skipped\n")
    monkeypatch.setenv(data.STDLIB_ENV, str(tmp_path))
    assert [rel for rel, _ in data.stdlib_files()] == ["pkg/a.py"]
    corpus = data.load_corpus(4)
    assert corpus.train_files + corpus.heldout_files == 1
    monkeypatch.setenv(data.STDLIB_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="SPIKEFORGE_STDLIB"):
        data.stdlib_files()
