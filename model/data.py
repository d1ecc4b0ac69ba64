"""The byte corpus: Python's own standard library, split into train and held-out files.

Every Python install carries the text: the ``.py`` sources under
``sysconfig.get_paths()["stdlib"]``, without ``site-packages`` and without the test packages
(directories named ``test``, ``tests`` or ``idle_test``). ``pydoc_data/topics.py`` (the help
text of the language reference) is one of those files and is always put on the train side.

The split is by file and deterministic: a file is held out when the first 8 hex digits of the
SHA-1 of its relative POSIX path, as an integer, are ``< HELDOUT_PERCENT`` modulo 100 (about 5%
of the files). The same install therefore always gives the same split; another Python version
gives another corpus, so checkpoints record the version they were trained on.

Each file is preceded by ``k`` zero bytes (NUL does not occur in source text), so the first
bytes of a file are predicted from a "start of file" context and no context spans two files.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "HELDOUT_PERCENT",
    "Corpus",
    "heldout_samples",
    "heldout_streams",
    "is_heldout",
    "load_corpus",
    "sample_batch",
    "sample_segments",
    "samples_from_bytes",
    "streams_from_bytes",
    "stdlib_files",
]

logger = logging.getLogger(__name__)

HELDOUT_PERCENT = 5
_EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test"})
_ALWAYS_TRAIN = "pydoc_data/topics.py"


#: a folder to read the corpus from instead of this Python's standard library (a copy of
#: another Python's, so that a machine with another Python trains on the same bytes)
STDLIB_ENV = "SPIKEFORGE_STDLIB"


def stdlib_root() -> Path:
    """The folder the corpus is read from: ``$SPIKEFORGE_STDLIB`` when set, else this
    Python's standard library."""
    override = os.environ.get(STDLIB_ENV)
    if override:
        root = Path(override)
        if not root.is_dir():
            raise FileNotFoundError(f"${STDLIB_ENV} names {root}, which is not a folder; point"
                                    " it at a copy of a Python standard library or unset it")
        return root
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files() -> list[tuple[str, Path]]:
    """``(relative POSIX path, path)`` of every corpus file, sorted by relative path."""
    root = stdlib_root()
    files = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if _EXCLUDED_DIRS.intersection(rel.parts[:-1]):
            continue
        files.append((rel.as_posix(), path))
    files.sort()
    if not files:
        raise FileNotFoundError(f"no .py files found under the standard library at {root}")
    return files


def is_heldout(relpath: str) -> bool:
    """Whether the file at ``relpath`` (relative to the stdlib, POSIX form) is held out."""
    if relpath == _ALWAYS_TRAIN:
        return False
    digest = hashlib.sha1(relpath.encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % 100 < HELDOUT_PERCENT


@dataclass(frozen=True)
class Corpus:
    """Train and held-out bytes, each file preceded by ``context`` zero bytes."""

    context: int
    train: np.ndarray  # uint8
    train_valid: np.ndarray  # bool: a target position (not padding)
    heldout: np.ndarray
    heldout_valid: np.ndarray
    train_files: int
    heldout_files: int

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(bytes, valid)`` of the ``"train"`` or ``"heldout"`` split."""
        if name == "train":
            return self.train, self.train_valid
        if name == "heldout":
            return self.heldout, self.heldout_valid
        raise ValueError(f"split must be 'train' or 'heldout', not {name!r}")


def _join(chunks: list[bytes], context: int) -> tuple[np.ndarray, np.ndarray]:
    pad = bytes(context)
    data = np.frombuffer(b"".join(pad + chunk for chunk in chunks), dtype=np.uint8)
    valid = np.ones(data.shape[0], dtype=bool)
    start = 0
    for chunk in chunks:
        valid[start : start + context] = False
        start += context + len(chunk)
    return data, valid


def load_corpus(context: int) -> Corpus:
    """Read the standard library (:func:`stdlib_root`) once and split it (cached per
    ``context`` and folder)."""
    return _load_corpus(context, stdlib_root())


@functools.lru_cache(maxsize=4)
def _load_corpus(context: int, root: Path) -> Corpus:
    train, heldout = [], []
    for rel, path in stdlib_files():
        (heldout if is_heldout(rel) else train).append(path.read_bytes())
    train_data, train_valid = _join(train, context)
    held_data, held_valid = _join(heldout, context)
    logger.info(
        "corpus: %d train files (%d bytes), %d held-out files (%d bytes), from %s",
        len(train), int(train_valid.sum()), len(heldout), int(held_valid.sum()), root,
    )
    return Corpus(context, train_data, train_valid, held_data, held_valid,
                  len(train), len(heldout))


def _gather(data: np.ndarray, positions: np.ndarray, context: int):
    offsets = positions[:, None] + np.arange(-context, 0)[None, :]
    return data[offsets].astype(np.int64), data[positions].astype(np.int64)


def sample_batch(
    rng: np.random.Generator, corpus: Corpus, batch: int, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` random ``(context, next byte)`` pairs, with replacement, from ``split``."""
    data, valid = corpus.split(split)
    positions = np.empty(0, dtype=np.int64)
    while positions.shape[0] < batch:
        draw = rng.integers(corpus.context, data.shape[0], size=batch + batch // 8 + 8)
        positions = np.concatenate([positions, draw[valid[draw]]])
    return _gather(data, positions[:batch], corpus.context)


def sample_segments(
    rng: np.random.Generator, corpus: Corpus, batch: int, length: int, split: str = "train"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``batch`` random streams of ``length`` bytes, the byte after each position and whether
    that byte is a real target (not the padding before a file): ``(ids, targets, valid)``,
    each ``[batch, length]``. A stream may run across the start of the next file, whose
    padding then empties its window, as at the start of every file."""
    data, valid = corpus.split(split)
    if data.shape[0] <= length:
        raise ValueError(f"the {split} split holds {data.shape[0]} bytes, fewer than {length}")
    starts = rng.integers(0, data.shape[0] - length, size=batch)
    offsets = starts[:, None] + np.arange(length + 1)[None, :]
    window = data[offsets].astype(np.int64)
    return window[:, :-1], window[:, 1:], valid[offsets[:, 1:]]


def _distinct_positions(valid: np.ndarray, n: int, seed: int) -> np.ndarray:
    candidates = np.flatnonzero(valid)
    if n > candidates.shape[0]:
        raise ValueError(f"asked for {n} samples but only {candidates.shape[0]} positions exist")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=n, replace=False))


def heldout_samples(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct held-out ``(contexts int64 [n, k], targets int64 [n])``, seeded."""
    corpus = load_corpus(k)
    positions = _distinct_positions(corpus.heldout_valid, n, seed)
    return _gather(corpus.heldout, positions, k)


def samples_from_bytes(
    text: bytes, n: int | None, k: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Contexts and targets of ``text`` (one file, ``k`` zero bytes before it).

    All positions when ``n`` is None or at least the length of ``text``, else ``n`` distinct
    seeded positions.
    """
    data, valid = _join([text], k)
    if n is None or n >= len(text):
        positions = np.flatnonzero(valid)
    else:
        positions = _distinct_positions(valid, n, seed)
    return _gather(data, positions, k)


#: positions a held-out stream scores after its warm-up (:func:`heldout_streams`)
STREAM_SPAN = 256


def _streams(data: np.ndarray, valid: np.ndarray, warm: int, span: int,
             chunks: int | None, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The joined bytes ``data`` cut into streams of ``warm + span`` bytes, each scored on its
    last ``span`` positions, which tile ``data`` (all of them, or ``chunks`` seeded ones)."""
    if warm < 0 or span < 1:
        raise ValueError(f"warm must be >= 0 and span >= 1, not {warm} and {span}")
    total = data.shape[0] - 1  # positions that have a next byte
    count = -(-total // span)
    order = np.arange(count)
    if chunks is not None and chunks < count:
        order = np.sort(np.random.default_rng(seed).choice(count, size=chunks, replace=False))
    # position p (p >= 0) reads data[p] and is scored on data[p + 1]; a stream starts warm
    # positions before the first it scores (zero bytes before the split's start)
    padded = np.concatenate([np.zeros(warm, np.uint8), data, np.zeros(span + 1, np.uint8)])
    ok = np.concatenate([np.zeros(warm, bool), valid, np.zeros(span + 1, bool)])
    offsets = order[:, None] * span + np.arange(warm + span)[None, :]
    ids = padded[offsets].astype(np.int64)
    targets = padded[offsets + 1].astype(np.int64)
    scored = ok[offsets + 1]
    scored[:, :warm] = False
    return ids, targets, scored


def heldout_streams(k: int, warm: int, span: int = STREAM_SPAN, chunks: int | None = None,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The held-out split as byte streams for a model with attention: ``(ids, targets,
    scored)``, each ``[C, warm + span]``.

    Every real held-out byte is the target of exactly one scored position (with ``chunks``,
    of the ``chunks`` seeded streams only), and each stream starts ``warm`` bytes before the
    first position it scores: with ``warm`` = attention layers x (``k`` - 1) every scored
    position sees what it would in one stream over the whole split, at a cost linear in its
    length. The padding before each file empties the window, as in training.
    """
    corpus = load_corpus(k)
    return _streams(corpus.heldout, corpus.heldout_valid, warm, span, chunks, seed)


def streams_from_bytes(text: bytes, k: int, warm: int, span: int = STREAM_SPAN,
                       chunks: int | None = None, seed: int = 0):
    """:func:`heldout_streams` of ``text`` (one file, ``k`` zero bytes before it)."""
    data, valid = _join([text], k)
    return _streams(data, valid, warm, span, chunks, seed)
