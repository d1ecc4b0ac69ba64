"""The typed IR: a straight-line graph of spiking ops, each a frozen dataclass.

The IR mirrors the integer contract (docs/integer-contract.md): it is what the front end makes
of an ONNX file and what the passes rewrite before the hardware plan takes over. Arrays are
read-only int64 NumPy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Accumulate",
    "Embed",
    "Fire",
    "Graph",
    "Node",
    "Readout",
    "SpikingLayer",
]


def frozen_array(value) -> np.ndarray:
    """A read-only int64 copy of ``value``."""
    arr = np.array(value, dtype=np.int64)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Node:
    """Base of every IR node; ``name`` is the ONNX node it came from."""

    name: str


@dataclass(frozen=True, eq=False)
class Embed(Node):
    """Context bytes to spikes through a ``[256, T, E]`` spike table."""

    table: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "table", frozen_array(self.table))

    @property
    def timesteps(self) -> int:
        return self.table.shape[1]

    @property
    def embed_dim(self) -> int:
        return self.table.shape[2]


@dataclass(frozen=True, eq=False)
class Accumulate(Node):
    """``A[t, j] = sum_i W[j, i] S[t, i]`` with ``weight`` ``[n_out, n_in]``."""

    weight: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "weight", frozen_array(self.weight))


@dataclass(frozen=True, eq=False)
class Fire(Node):
    """Ternary integrate-and-fire over the time steps, with soft reset."""

    bias: np.ndarray
    threshold: int
    reset: int

    def __post_init__(self):
        object.__setattr__(self, "bias", frozen_array(self.bias))


@dataclass(frozen=True, eq=False)
class SpikingLayer(Node):
    """Accumulate and fire fused: the unit the array runs (made by ``FuseLayers``)."""

    weight: np.ndarray
    bias: np.ndarray
    threshold: int
    reset: int

    def __post_init__(self):
        object.__setattr__(self, "weight", frozen_array(self.weight))
        object.__setattr__(self, "bias", frozen_array(self.bias))


@dataclass(frozen=True, eq=False)
class Readout(Node):
    """Logits: accumulate over all time steps plus ``T * bias``."""

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "weight", frozen_array(self.weight))
        object.__setattr__(self, "bias", frozen_array(self.bias))


@dataclass(frozen=True, eq=False)
class Graph:
    """A model: ``nodes`` in execution order, from ``Embed`` to ``Readout``."""

    nodes: tuple[Node, ...]
    context: int
    weight_bits: int
    logit_scale: float = 1.0
    meta: dict = field(default_factory=dict)

    @property
    def timesteps(self) -> int:
        return self.embed.timesteps

    @property
    def embed(self) -> Embed:
        return self.nodes[0]

    def replace_nodes(self, nodes) -> Graph:
        """The same model with other nodes."""
        return Graph(tuple(nodes), self.context, self.weight_bits, self.logit_scale, self.meta)
