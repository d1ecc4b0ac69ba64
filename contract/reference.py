"""The integer reference: the forward pass of docs/integer-contract.md, in NumPy int64.

Every check in SpikeForge compares against these functions. They are written for clarity, not
speed, but vectorised over the batch so that thousands of samples take well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .intmodel import VOCAB, ContractError, IntModel, Readout, SpikingLayer

__all__ = ["Trace", "accumulate", "embed", "fire", "forward", "next_token", "readout"]


def embed(model: IntModel, ids) -> np.ndarray:
    """Embedding spikes ``[N, T, k*E]`` of contexts ``ids[N, k]``."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] != model.context:
        raise ContractError(f"ids must have shape [N, {model.context}], not {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= VOCAB):
        raise ContractError(f"token ids must lie in 0..{VOCAB - 1}")
    spikes = model.spike_table[ids]  # [N, k, T, E]
    n = ids.shape[0]
    return spikes.transpose(0, 2, 1, 3).reshape(n, model.timesteps, model.n_inputs)


def accumulate(spikes: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``A[n, t, j] = sum_i W[j, i] * S[n, t, i]``: adds, subtracts and skips."""
    return np.asarray(spikes, dtype=np.int64) @ np.asarray(weight, dtype=np.int64).T


def fire(currents: np.ndarray, bias, threshold, reset, membranes: bool = False):
    """Ternary integrate-and-fire with soft reset over axis 1 (time) of ``currents[N, T, ...]``.

    ``bias``, ``threshold`` and ``reset`` are integers or arrays that broadcast against one time
    step ``currents[:, t]`` (per neuron, per channel or per position constants). Returns the
    spikes, or with ``membranes`` the pair (spikes, ``V`` of every step before its reset), which
    the range analysis is checked against.
    """
    currents = np.asarray(currents, dtype=np.int64)
    bias = np.asarray(bias, dtype=np.int64)
    membrane = np.zeros_like(currents[:, 0])
    spikes = np.zeros_like(currents)
    before_reset = np.zeros_like(currents)
    for t in range(currents.shape[1]):
        v = membrane + currents[:, t] + bias
        s = (v >= threshold).astype(np.int64) - (v <= -threshold).astype(np.int64)
        membrane = v - reset * s
        spikes[:, t] = s
        before_reset[:, t] = v
    return (spikes, before_reset) if membranes else spikes


def readout(spikes: np.ndarray, layer: Readout) -> np.ndarray:
    """Integer logits ``[N, 256]``: the readout accumulated over all time steps."""
    steps = spikes.shape[1]
    return accumulate(spikes, layer.weight).sum(axis=1) + steps * layer.bias


def next_token(logits: np.ndarray) -> np.ndarray:
    """The predicted byte: arg-max of the logits, the lowest index on ties."""
    return np.argmax(logits, axis=-1)


@dataclass(frozen=True)
class Trace:
    """Logits and every spiking layer's spikes (the embedding's first)."""

    logits: np.ndarray
    spikes: tuple[np.ndarray, ...]

    def firing_rates(self) -> list[float]:
        """Fraction of non-zero spikes per spiking layer (embedding first)."""
        return [float(np.count_nonzero(s)) / max(1, s.size) for s in self.spikes]

    def spike_counts(self) -> np.ndarray:
        """Non-zero spikes per spiking layer and time step, summed over the batch: ``[L+1, T]``."""
        return np.stack([np.count_nonzero(s, axis=(0, 2)) for s in self.spikes])


def run_layer(spikes: np.ndarray, layer: SpikingLayer) -> np.ndarray:
    """One hidden layer: accumulate, then fire."""
    return fire(accumulate(spikes, layer.weight), layer.bias, layer.threshold, layer.reset)


def forward(model: IntModel, ids, trace: bool = False):
    """Integer logits ``[N, 256]`` of contexts ``ids[N, k]`` (a :class:`Trace` if ``trace``)."""
    spikes = [embed(model, ids)]
    for layer in model.layers:
        spikes.append(run_layer(spikes[-1], layer))
    logits = readout(spikes[-1], model.readout)
    if trace:
        return Trace(logits, tuple(spikes))
    return logits
