"""Seeded random integer models, for tests and fuzzing (no training needed)."""

from __future__ import annotations

import numpy as np

from .intmodel import VOCAB, IntModel, Readout, SpikingLayer, weight_limit

__all__ = ["random_model"]


def random_model(
    seed: int,
    *,
    context: int = 3,
    embed_dim: int = 4,
    hidden: tuple[int, ...] = (7,),
    timesteps: int = 4,
    weight_bits: int = 8,
    density: float = 0.4,
) -> IntModel:
    """A random model whose thresholds make its layers fire at a plausible rate."""
    rng = np.random.default_rng(seed)
    limit = weight_limit(weight_bits)
    p = [density / 2, 1 - density, density / 2]
    table = rng.choice([-1, 0, 1], size=(VOCAB, timesteps, embed_dim), p=p)
    n_in = context * embed_dim
    layers = []
    for n_out in hidden:
        weight = rng.integers(-limit, limit + 1, size=(n_out, n_in))
        typical = max(1, int(np.sqrt(density * n_in) * max(1, limit) * 0.6))
        bias = rng.integers(-typical // 2, typical // 2 + 1, size=n_out)
        reset = int(rng.integers(typical, 2 * typical + 2))
        layers.append(SpikingLayer(weight, bias, threshold=reset // 2 + 1, reset=reset))
        n_in = n_out
    weight = rng.integers(-limit, limit + 1, size=(VOCAB, n_in))
    bias = rng.integers(-limit, limit + 1, size=VOCAB)
    return IntModel(
        context=context,
        embed_dim=embed_dim,
        timesteps=timesteps,
        weight_bits=weight_bits,
        spike_table=table,
        layers=tuple(layers),
        readout=Readout(weight, bias),
    )
