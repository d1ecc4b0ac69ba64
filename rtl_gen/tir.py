"""The typed IR of a spiking transformer: a graph of ops over named, typed tensors.

Where the MLP's IR (:mod:`rtl_gen.ir`) is a chain, a transformer is a graph: the residual
stream is read by a normalising neuron and again by the residual add that follows. Each op is a
frozen dataclass naming its input and output tensors; tensors have one of four kinds (a
residual stream, ternary spikes, accumulated currents, logits), and every op states which kinds
it takes and makes, so a graph that does not type-check is refused before anything else sees
it. Arrays are read-only int64 NumPy arrays. The semantics are those of docs/transformer.md;
:mod:`rtl_gen.interpret_transformer` runs them with the contract's own functions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .errors import FrontendError
from .ir import frozen_array

__all__ = [
    "Accumulate",
    "Attention",
    "Fire",
    "Kind",
    "Op",
    "Readout",
    "ResidualAdd",
    "SpikingLinear",
    "TGraph",
    "TokenEmbed",
]


class Kind(enum.Enum):
    """What a tensor ``[N, T, L, width]`` holds."""

    RESIDUAL = "residual"
    SPIKES = "spikes"
    CURRENTS = "currents"
    LOGITS = "logits"


@dataclass(frozen=True, eq=False)
class Op:
    """Base of every op: the ONNX node it came from, its input and output tensors."""

    name: str
    inputs: tuple[str, ...]
    output: str

    #: kinds of the inputs (``None``: any of RESIDUAL, CURRENTS) and of the output
    takes: ClassVar[tuple] = ()
    makes: ClassVar[Kind] = Kind.SPIKES

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))

    def width(self) -> int:
        """Width of the output tensor."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class TokenEmbed(Op):
    """The residual at the input: ``x = table[byte]`` at every step; ``table`` ``[256, d]``."""

    table: np.ndarray = None
    takes: ClassVar[tuple] = ()
    makes: ClassVar[Kind] = Kind.RESIDUAL

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "table", frozen_array(self.table))

    def width(self) -> int:
        return self.table.shape[1]


@dataclass(frozen=True, eq=False)
class Accumulate(Op):
    """``A = W S`` with ``weight`` ``[n_out, n_in]``."""

    weight: np.ndarray = None
    takes: ClassVar[tuple] = (Kind.SPIKES,)
    makes: ClassVar[Kind] = Kind.CURRENTS

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "weight", frozen_array(self.weight))

    def width(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True, eq=False)
class Fire(Op):
    """Ternary integrate-and-fire of a current or of the residual (a normalising neuron).

    ``bias``, ``threshold`` and ``reset`` are ``[n]`` or scalars (``[]``), broadcast per neuron.
    """

    bias: np.ndarray = None
    threshold: np.ndarray = None
    reset: np.ndarray = None
    takes: ClassVar[tuple] = (None,)
    makes: ClassVar[Kind] = Kind.SPIKES

    def __post_init__(self):
        super().__post_init__()
        for name in ("bias", "threshold", "reset"):
            object.__setattr__(self, name, frozen_array(getattr(self, name)))

    def width(self) -> int:
        return self.bias.shape[0]


@dataclass(frozen=True, eq=False)
class SpikingLinear(Op):
    """Accumulate and fire fused (made by the ``FuseLinear`` pass): what one array layer runs."""

    weight: np.ndarray = None
    bias: np.ndarray = None
    threshold: np.ndarray = None
    reset: np.ndarray = None
    takes: ClassVar[tuple] = (Kind.SPIKES,)
    makes: ClassVar[Kind] = Kind.SPIKES

    def __post_init__(self):
        super().__post_init__()
        for name in ("weight", "bias", "threshold", "reset"):
            object.__setattr__(self, name, frozen_array(getattr(self, name)))

    def width(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True, eq=False)
class Attention(Op):
    """Windowed ReLU attention of ``q, k, v`` spikes and the attention neuron.

    ``score_bias`` ``[heads, window]`` by distance; ``threshold``/``reset`` ``[window]`` by key
    count minus one.
    """

    heads: int = 1
    score_bias: np.ndarray = None
    threshold: np.ndarray = None
    reset: np.ndarray = None
    takes: ClassVar[tuple] = (Kind.SPIKES, Kind.SPIKES, Kind.SPIKES)
    makes: ClassVar[Kind] = Kind.SPIKES
    d_model: int = 0

    def __post_init__(self):
        super().__post_init__()
        for name in ("score_bias", "threshold", "reset"):
            object.__setattr__(self, name, frozen_array(getattr(self, name)))

    @property
    def window(self) -> int:
        return self.score_bias.shape[1]

    def width(self) -> int:
        return self.d_model


@dataclass(frozen=True, eq=False)
class ResidualAdd(Op):
    """``x + shift_round(W S, shift)`` with ``weight`` ``[d, n_in]``; inputs (residual, spikes)."""

    weight: np.ndarray = None
    shift: int = 0
    takes: ClassVar[tuple] = (Kind.RESIDUAL, Kind.SPIKES)
    makes: ClassVar[Kind] = Kind.RESIDUAL

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "weight", frozen_array(self.weight))
        object.__setattr__(self, "shift", int(self.shift))

    def width(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True, eq=False)
class Readout(Op):
    """Logits of every position: ``sum_t (W S_t + bias)``; ``weight`` ``[256, n_in]``."""

    weight: np.ndarray = None
    bias: np.ndarray = None
    takes: ClassVar[tuple] = (Kind.SPIKES,)
    makes: ClassVar[Kind] = Kind.LOGITS

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "weight", frozen_array(self.weight))
        object.__setattr__(self, "bias", frozen_array(self.bias))

    def width(self) -> int:
        return self.weight.shape[0]


def _n_in(op: Op) -> int | None:
    weight = getattr(op, "weight", None)
    return None if weight is None else weight.shape[1]


@dataclass(frozen=True, eq=False)
class TGraph:
    """A transformer: ``ops`` in execution order, from ``input`` (byte streams) to ``output``."""

    ops: tuple[Op, ...]
    input: str
    output: str
    timesteps: int
    weight_bits: int
    logit_scale: float = 1.0
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(self.ops))
        self.check()

    def replace_ops(self, ops) -> TGraph:
        """The same model with other ops."""
        return TGraph(tuple(ops), self.input, self.output, self.timesteps, self.weight_bits,
                      self.logit_scale, self.meta)

    @property
    def window(self) -> int:
        """The attention window ``W`` (the model's context)."""
        return next(op.window for op in self.ops if isinstance(op, Attention))

    def producers(self) -> dict[str, Op]:
        return {op.output: op for op in self.ops}

    def consumers(self, tensor: str) -> list[Op]:
        return [op for op in self.ops if tensor in op.inputs]

    def check(self) -> None:
        """Every input defined before use, kinds and widths that fit, one logits output."""
        kinds = {self.input: None}
        widths: dict[str, int] = {}
        for op in self.ops:
            if op.output in kinds:
                raise FrontendError(f"node {op.name}: tensor {op.output} is defined twice")
            if isinstance(op, TokenEmbed):
                if op.inputs != (self.input,):
                    raise FrontendError(f"node {op.name}: TokenEmbed must read the graph input")
            elif len(op.inputs) != len(op.takes):
                raise FrontendError(f"node {op.name} takes {len(op.takes)} inputs, not"
                                    f" {len(op.inputs)}")
            for tensor, kind in zip(op.inputs if op.takes else (), op.takes, strict=False):
                if tensor not in kinds:
                    raise FrontendError(f"node {op.name} reads {tensor} before it is computed")
                have = kinds[tensor]
                allowed = (Kind.RESIDUAL, Kind.CURRENTS) if kind is None else (kind,)
                if have not in allowed:
                    raise FrontendError(
                        f"node {op.name} needs {' or '.join(k.value for k in allowed)} but"
                        f" {tensor} holds {have.value if have else 'token ids'}")
            n_in = _n_in(op)
            if n_in is not None and widths.get(op.inputs[-1], n_in) != n_in:
                raise FrontendError(f"node {op.name} takes {n_in} inputs but"
                                    f" {op.inputs[-1]} has {widths[op.inputs[-1]]}")
            if isinstance(op, Fire) and widths.get(op.inputs[0]) != op.width():
                raise FrontendError(f"node {op.name}: bias must have"
                                    f" {widths.get(op.inputs[0])} entries")
            if isinstance(op, ResidualAdd) and widths[op.inputs[0]] != op.width():
                raise FrontendError(f"node {op.name} adds {op.width()} channels to a residual"
                                    f" of {widths[op.inputs[0]]}")
            if isinstance(op, Attention):
                for tensor in op.inputs:
                    if widths[tensor] != op.d_model:
                        raise FrontendError(f"node {op.name}: q, k and v must have"
                                            f" {op.d_model} channels")
            kinds[op.output] = op.makes
            widths[op.output] = op.width()
        if kinds.get(self.output) is not Kind.LOGITS:
            raise FrontendError("the graph's output must be the logits of a SpikeReadout")
        if not any(isinstance(op, Attention) for op in self.ops):
            raise FrontendError("a transformer graph needs at least one SpikeAttention")
        if np.any([np.abs(op.weight).max(initial=0) > (1 << (self.weight_bits - 1)) - 1
                   for op in self.ops if getattr(op, "weight", None) is not None]):
            raise FrontendError(f"weights exceed the range of {self.weight_bits}-bit weights")
