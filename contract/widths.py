"""Range analysis: register widths derived from the worst case of the model's own integers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .intmodel import IntModel, Readout, SpikingLayer

__all__ = ["Widths", "derive_widths", "layer_bound", "signed_bits"]


def signed_bits(bound: int) -> int:
    """Bits of a signed register that holds every value in ``[-bound, bound]``."""
    return int(bound).bit_length() + 1


def step_input_bound(layer: SpikingLayer | Readout) -> int:
    """``X = max_j sum_i |W[j, i]| + max_j |B[j]|``: the most one time step can add."""
    a_max = int(np.abs(layer.weight).sum(axis=1).max(initial=0))
    return a_max + int(np.abs(layer.bias).max(initial=0))


def layer_bound(layer: SpikingLayer | Readout, timesteps: int) -> int:
    """Largest membrane (or logit) magnitude the layer can reach, partial sums included."""
    bound = timesteps * step_input_bound(layer)
    if isinstance(layer, SpikingLayer):
        bound += max(0, layer.reset - layer.threshold)
    return bound


@dataclass(frozen=True)
class Widths:
    """Signed widths of the datapath registers, from :func:`derive_widths`."""

    weight: int
    bias: int
    membrane: int
    logit: int
    membrane_bounds: tuple[int, ...]
    logit_bound: int


def derive_widths(model: IntModel) -> Widths:
    """Every width the accelerator needs for ``model``; see docs/integer-contract.md."""
    steps = model.timesteps
    bounds = tuple(layer_bound(layer, steps) for layer in model.layers)
    logit_bound = layer_bound(model.readout, steps)
    thresholds = [max(layer.threshold, layer.reset) for layer in model.layers]
    bias_max = max(
        int(np.abs(layer.bias).max(initial=0)) for layer in (*model.layers, model.readout)
    )
    return Widths(
        weight=model.weight_bits,
        bias=signed_bits(bias_max),
        membrane=max(signed_bits(b) for b in (*bounds, logit_bound, *thresholds)),
        logit=signed_bits(logit_bound),
        membrane_bounds=bounds,
        logit_bound=logit_bound,
    )
