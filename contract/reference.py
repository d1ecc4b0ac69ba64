"""The spiking MLP's integer reference: :func:`contract.graph.run` on the model's graph.

The MLP reads a window of ``k`` bytes (``ids[N, k]``, the oldest first) and predicts the next;
its logits are those of the last position of the ``k``-byte stream, which sees exactly the
window (docs/integer-contract.md). The op functions live in :mod:`contract.ops`; the names
below are kept for the MLP's own ``[N, T, width]`` view (one position).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ops
from .graph import run
from .intmodel import VOCAB, ContractError, IntModel, Readout
from .ops import accumulate, fire, next_token

__all__ = ["Trace", "accumulate", "embed", "fire", "forward", "next_token", "readout"]


def _check_windows(model: IntModel, ids) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] != model.context:
        raise ContractError(f"ids must have shape [N, {model.context}], not {ids.shape}")
    if ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= VOCAB):
        raise ContractError(f"token ids must be integers in 0..{VOCAB - 1}")
    return ids


def embed(model: IntModel, ids) -> np.ndarray:
    """Embedding spikes ``[N, T, k*E]`` of contexts ``ids[N, k]``."""
    ids = _check_windows(model, ids)
    return ops.spike_embed(model.spike_table, model.context, ids, last_only=True)[:, :, 0]


def readout(spikes: np.ndarray, layer: Readout) -> np.ndarray:
    """Integer logits: the readout accumulated over all time steps."""
    return ops.readout(spikes, layer.weight, layer.bias)


@dataclass(frozen=True)
class Trace:
    """Logits ``[N, 256]`` and every spiking layer's spikes ``[N, T, width]`` (the embedding's
    first), at the window's last position."""

    logits: np.ndarray
    spikes: tuple[np.ndarray, ...]

    def firing_rates(self) -> list[float]:
        """Fraction of non-zero spikes per spiking layer (embedding first)."""
        return [float(np.count_nonzero(s)) / max(1, s.size) for s in self.spikes]

    def spike_counts(self) -> np.ndarray:
        """Non-zero spikes per spiking layer and time step, summed over the batch: ``[L+1, T]``."""
        return np.stack([np.count_nonzero(s, axis=(0, 2)) for s in self.spikes])


def forward(model: IntModel, ids, trace: bool = False):
    """Integer logits ``[N, 256]`` of contexts ``ids[N, k]`` (a :class:`Trace` if ``trace``)."""
    ids = _check_windows(model, ids)
    result = run(model.graph(), ids, last_only=True)
    logits = result.logits[:, -1]
    if trace:
        return Trace(logits, tuple(s[:, :, -1] for s in result.spikes))
    return logits
