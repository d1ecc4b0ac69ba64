"""The encoder's classification task: which standard-library package a snippet comes from.

Every Python install carries the text (the corpus of :mod:`model.data`). A sample is a
snippet of :data:`SNIPPET` consecutive bytes of a ``.py`` file under one of the packages of
:data:`PACKAGES`, and its label is the package's index. The split is by file, deterministic
and separate from the language model's: a file is held out when the first 8 hex digits of
the SHA-1 of ``"package-task/" + relative path``, as an integer, are ``< HELDOUT_PERCENT``
modulo 100 (each package keeps at least one file on each side). Snippets are drawn uniformly
over the byte positions of a split, so the classes come in the proportion of their bytes, and
the majority class (the largest package of the held-out files) is the baseline to beat.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass

import numpy as np

from .data import stdlib_files
from .errors import UsageError

__all__ = [
    "HELDOUT_PERCENT",
    "PACKAGES",
    "SNIPPET",
    "PackageTask",
    "heldout_snippets",
    "load_package_task",
    "majority_baseline",
    "sample_snippets",
]

logger = logging.getLogger(__name__)

#: the classes: top-level packages of the standard library in every CPython 3.11 to 3.13
PACKAGES = ("asyncio", "email", "idlelib", "importlib", "multiprocessing", "tkinter",
            "unittest", "xml")
SNIPPET = 64
HELDOUT_PERCENT = 25
_SALT = "package-task/"


def _heldout(relpath: str) -> bool:
    digest = hashlib.sha1((_SALT + relpath).encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % 100 < HELDOUT_PERCENT


@dataclass(frozen=True)
class _Split:
    """The files of one split, joined: ``data`` (uint8), each file's start and length, and its
    label."""

    data: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray

    def snippets(self, offsets: np.ndarray, files: np.ndarray, length: int):
        ids = self.data[self.starts[files, None] + offsets[:, None] + np.arange(length)]
        return ids.astype(np.int64), self.labels[files].astype(np.int64)

    def draw(self, rng: np.random.Generator, n: int, length: int):
        """``n`` snippets of ``length`` bytes, uniform over the positions where one starts."""
        room = np.maximum(self.lengths - length + 1, 0)
        if room.sum() == 0:
            raise UsageError(f"no file of the package task holds {length} bytes; use shorter"
                             " snippets")
        files = rng.choice(len(room), size=n, p=room / room.sum())
        offsets = rng.integers(0, room[files])
        return self.snippets(offsets, files, length)


@dataclass(frozen=True)
class PackageTask:
    """Train and held-out files of every package of :data:`PACKAGES`."""

    classes: tuple[str, ...]
    train: _Split
    heldout: _Split
    train_files: int
    heldout_files: int


def _join(chunks: list[tuple[bytes, int]]) -> _Split:
    lengths = np.array([len(c) for c, _ in chunks], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    data = np.frombuffer(b"".join(c for c, _ in chunks), dtype=np.uint8)
    return _Split(data, starts, lengths, np.array([label for _, label in chunks]))


@functools.lru_cache(maxsize=1)
def load_package_task() -> PackageTask:
    """Read the packages' files once and split them by file."""
    files: dict[str, list[tuple[str, bytes]]] = {p: [] for p in PACKAGES}
    for rel, path in stdlib_files():
        package = rel.split("/")[0]
        if package in files and "/" in rel:
            files[package].append((rel, path.read_bytes()))
    train, heldout = [], []
    for label, package in enumerate(PACKAGES):
        found = files[package]
        if len(found) < 2:
            raise UsageError(f"this Python's standard library has {len(found)} files of"
                             f" {package!r}; the package task needs a CPython 3.11 to 3.13")
        held = [_heldout(rel) for rel, _ in found]
        if all(held) or not any(held):  # keep a file on each side: the largest goes the other
            largest = max(range(len(found)), key=lambda i: len(found[i][1]))
            held[largest] = not held[largest]
        for (_, text), is_held in zip(found, held, strict=True):
            (heldout if is_held else train).append((text, label))
    task = PackageTask(PACKAGES, _join(train), _join(heldout), len(train), len(heldout))
    logger.info("package task: %d classes, %d train files (%d bytes), %d held-out files"
                " (%d bytes)", len(PACKAGES), task.train_files, task.train.data.size,
                task.heldout_files, task.heldout.data.size)
    return task


def sample_snippets(rng: np.random.Generator, batch: int, length: int = SNIPPET):
    """A training batch: ``ids`` int64 ``[batch, length]`` and ``labels`` int64 ``[batch]``."""
    return load_package_task().train.draw(rng, batch, length)


def heldout_snippets(n: int, length: int = SNIPPET, seed: int = 0):
    """``n`` seeded held-out snippets: ``ids`` ``[n, length]``, ``labels`` ``[n]``."""
    if n < 1:
        raise UsageError(f"the number of held-out snippets must be positive, not {n}")
    return load_package_task().heldout.draw(np.random.default_rng(seed), n, length)


def majority_baseline(labels: np.ndarray) -> tuple[int, float]:
    """The most frequent label and the accuracy of always predicting it."""
    counts = np.bincount(np.asarray(labels), minlength=len(PACKAGES))
    best = int(np.argmax(counts))
    return best, float(counts[best]) / max(1, int(counts.sum()))
