"""The integer model: every number the datapath needs, validated once."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np

__all__ = ["ContractError", "IntModel", "Readout", "SpikingLayer"]

VOCAB = 256


class ContractError(ValueError):
    """An integer model that breaks the contract (a shape, a range or a sign is off)."""


def _int_array(name: str, value, ndim: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise ContractError(f"{name} must hold integers, not {arr.dtype}")
    if arr.ndim != ndim:
        raise ContractError(f"{name} must have {ndim} dimensions, not shape {arr.shape}")
    arr = arr.astype(np.int64)
    arr.setflags(write=False)
    return arr


def weight_limit(bits: int) -> int:
    """Largest weight magnitude of a ``bits``-bit symmetric weight (1 for ternary)."""
    return (1 << (bits - 1)) - 1


@dataclass(frozen=True, eq=False)
class SpikingLayer:
    """A hidden layer: accumulate, then ternary integrate-and-fire over the time steps."""

    weight: np.ndarray  # [N_out, N_in]
    bias: np.ndarray  # [N_out]
    threshold: int
    reset: int

    def __post_init__(self):
        object.__setattr__(self, "weight", _int_array("layer weight", self.weight, 2))
        object.__setattr__(self, "bias", _int_array("layer bias", self.bias, 1))
        if self.bias.shape[0] != self.weight.shape[0]:
            raise ContractError(
                f"layer bias has {self.bias.shape[0]} entries for {self.weight.shape[0]} outputs"
            )
        if int(self.threshold) < 1:
            raise ContractError(f"threshold must be at least 1, not {self.threshold}")
        if int(self.reset) < 1:
            raise ContractError(f"reset must be at least 1, not {self.reset}")
        object.__setattr__(self, "threshold", int(self.threshold))
        object.__setattr__(self, "reset", int(self.reset))

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True, eq=False)
class Readout:
    """The output layer: accumulate over all time steps, no firing."""

    weight: np.ndarray  # [256, N_in]
    bias: np.ndarray  # [256]

    def __post_init__(self):
        object.__setattr__(self, "weight", _int_array("readout weight", self.weight, 2))
        object.__setattr__(self, "bias", _int_array("readout bias", self.bias, 1))
        if self.weight.shape[0] != VOCAB or self.bias.shape != (VOCAB,):
            raise ContractError(
                f"readout must have {VOCAB} outputs, not weight {self.weight.shape}"
                f" and bias {self.bias.shape}"
            )

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return VOCAB


@dataclass(frozen=True, eq=False)
class IntModel:
    """A spiking byte-level language model in integers (see docs/integer-contract.md)."""

    context: int
    embed_dim: int
    timesteps: int
    weight_bits: int
    spike_table: np.ndarray  # [256, T, E], entries in {-1, 0, 1}
    layers: tuple[SpikingLayer, ...]
    readout: Readout
    logit_scale: float = 1.0
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("context", "embed_dim", "timesteps"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ContractError(f"{name} must be a positive integer, not {value!r}")
        if self.weight_bits not in (2, 3, 4, 5, 6, 7, 8):
            raise ContractError(f"weight_bits must be 2 to 8, not {self.weight_bits!r}")
        table = _int_array("spike_table", self.spike_table, 3)
        if table.shape != (VOCAB, self.timesteps, self.embed_dim):
            raise ContractError(
                f"spike_table must have shape {(VOCAB, self.timesteps, self.embed_dim)},"
                f" not {table.shape}"
            )
        if table.size and (table.min() < -1 or table.max() > 1):
            raise ContractError("spike_table entries must be -1, 0 or +1")
        object.__setattr__(self, "spike_table", table)
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ContractError("an integer model needs at least one hidden layer")
        n_in = self.context * self.embed_dim
        limit = weight_limit(self.weight_bits)
        for index, layer in enumerate((*self.layers, self.readout)):
            if layer.n_in != n_in:
                raise ContractError(f"layer {index} takes {layer.n_in} inputs but receives {n_in}")
            if np.abs(layer.weight).max(initial=0) > limit:
                raise ContractError(
                    f"layer {index} has weights beyond ±{limit} for {self.weight_bits}-bit weights"
                )
            n_in = layer.n_out

    @property
    def n_inputs(self) -> int:
        return self.context * self.embed_dim

    def graph(self):
        """The model as a :class:`contract.graph.Graph`: ``SpikeEmbed`` of the context, then
        ``Accumulate`` + ``Fire`` per hidden layer, then ``Readout``."""
        from . import graph as g

        ops = [g.SpikeEmbed("embed", ("input",), "s0", table=self.spike_table,
                            context=self.context)]
        for index, layer in enumerate(self.layers):
            ops += [
                g.Accumulate(f"accumulate{index}", (f"s{index}",), f"a{index}",
                             weight=layer.weight),
                g.Fire(f"fire{index}", (f"a{index}",), f"s{index + 1}", bias=layer.bias,
                       threshold=layer.threshold, reset=layer.reset),
            ]
        ops.append(g.Readout("readout", (f"s{len(self.layers)}",), "output",
                             weight=self.readout.weight, bias=self.readout.bias))
        return g.Graph(tuple(ops), self.timesteps, self.weight_bits,
                       logit_scale=self.logit_scale, meta=dict(self.meta))

    def with_threshold_scale(self, scale: Fraction | float | str) -> IntModel:
        """Scale every hidden threshold: ``max(1, round_half_even(threshold * scale))``."""
        q = Fraction(str(scale)) if not isinstance(scale, Fraction) else scale
        if q <= 0:
            raise ContractError(f"threshold scale must be positive, not {scale}")
        layers = tuple(
            replace(layer, threshold=max(1, round(layer.threshold * q))) for layer in self.layers
        )
        return replace(self, layers=layers)
