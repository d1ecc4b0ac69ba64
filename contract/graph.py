"""The one graph of SpikeForge: typed spiking ops over named tensors, and its executor.

Every model is a :class:`Graph`: a list of ops in execution order, each a frozen dataclass that
names its input and output tensors. Tensors are ``[N, T, L, width]`` (``N`` byte streams,
``T`` time steps, ``L`` positions) and hold one of four kinds (:class:`Kind`); each op states
the kinds it takes and makes, so a graph that does not type-check is refused before anything
else sees it. Each op's semantics is one function of :mod:`contract.ops`, and :func:`run` is
the one executor: the spiking MLP, the transformer and any other composition are this
executor on their graphs. The compiler's IR is this graph.

| op | takes | makes | reference |
| --- | --- | --- | --- |
| :class:`SpikeEmbed` | byte ids | spikes | :func:`contract.ops.spike_embed` |
| :class:`TokenEmbed` | byte ids | residual | :func:`contract.ops.token_embed` |
| :class:`Accumulate` | spikes | currents | :func:`contract.ops.accumulate` |
| :class:`Fire` | currents or residual | spikes | :func:`contract.ops.fire` |
| :class:`SpikingLinear` | spikes | spikes | accumulate then fire (the ``FuseLinear`` pass) |
| :class:`Attention` | q, k, v spikes | spikes | :func:`contract.ops.attention` |
| :class:`ResidualAdd` | residual, spikes | residual | :func:`contract.ops.residual_add` |
| :class:`Readout` | spikes | logits | :func:`contract.ops.readout` |
| :class:`Pool` | logits | logits | :func:`contract.ops.pool` |

A causal graph (every attention causal, no pool) is a language model: the logits of every
position over the 256 bytes. A graph with a bidirectional attention or a :class:`Pool` is an
encoder: its output is the logits of each whole sequence over the readout's classes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from . import ops
from .ops import VOCAB, ContractError, weight_limit

__all__ = [
    "Accumulate",
    "Attention",
    "Fire",
    "Graph",
    "GraphError",
    "Kind",
    "Op",
    "Pool",
    "Readout",
    "ResidualAdd",
    "SpikeEmbed",
    "SpikingLinear",
    "TokenEmbed",
    "Trace",
    "frozen_array",
    "generate",
    "run",
]


class GraphError(ContractError):
    """A graph that does not type-check: a tensor, a kind or a shape is off (names the node)."""


class Kind(enum.Enum):
    """What a tensor ``[N, T, L, width]`` holds."""

    RESIDUAL = "residual"
    SPIKES = "spikes"
    CURRENTS = "currents"
    LOGITS = "logits"


def frozen_array(value) -> np.ndarray:
    """A read-only int64 copy of ``value``."""
    arr = np.array(value, dtype=np.int64)
    arr.setflags(write=False)
    return arr


class _Peaks:
    """The largest magnitudes a run meets, by what holds them (for the range analysis)."""

    def __init__(self):
        self.values = {"residual": 0, "membrane": 0, "attn_current": 0, "logit": 0}

    def see(self, name: str, value) -> None:
        self.values[name] = max(self.values[name], int(np.abs(value).max(initial=0)))


@dataclass(frozen=True, eq=False)
class Op:
    """Base of every op: the node it came from, its input and output tensors."""

    name: str
    inputs: tuple[str, ...]
    output: str

    #: kinds of the inputs (``None``: RESIDUAL or CURRENTS) and of the output
    takes: ClassVar[tuple] = ()
    makes: ClassVar[Kind] = Kind.SPIKES
    #: arrays to freeze on construction
    arrays: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        for name in self.arrays:
            value = getattr(self, name)
            if value is None:
                raise GraphError(f"node {self.name}: {type(self).__name__} needs {name}")
            object.__setattr__(self, name, frozen_array(value))

    @property
    def fires(self) -> bool:
        """Whether the op is a spiking population (its output is spikes)."""
        return self.makes is Kind.SPIKES

    def width(self) -> int:
        """Width of the output tensor."""
        raise NotImplementedError

    def n_in(self) -> int | None:
        """Width the last input must have (``None``: any)."""
        weight = getattr(self, "weight", None)
        return None if weight is None else weight.shape[1]

    def check(self, widths: dict[str, int]) -> None:
        """Op-specific shape checks against the widths of its inputs."""

    def check_steps(self, steps: int) -> None:
        """Checks against the graph's number of time steps (per-step constants)."""

    def evaluate(self, args: list[np.ndarray], graph: Graph, peaks: _Peaks,
                 last_only: bool) -> np.ndarray:
        """The output tensor of the op for its input tensors."""
        raise NotImplementedError


def _neuron(op: Op, current, peaks: _Peaks):
    consts = [op.bias, op.threshold, op.reset]
    per_step = op.per_step
    if per_step:
        steps = current.shape[1]
        consts = [c if c.ndim == 2 else np.broadcast_to(c, (steps, *c.shape)) for c in consts]
    spikes, membranes = ops.fire(current, *consts, membranes=True, per_step=per_step,
                                 leaks=op.leak, binary=op.binary)
    peaks.see("membrane", membranes)
    return spikes


def _check_leak(op: Op, leak, shape: tuple[int, ...], what: str = "leak",
                rows: str = "T - 1") -> None:
    """Terms of shifts and adds (a leak, or a residual's per-step scale): ``[rows, *shape[1:],
    J, 2]`` of ``(sign, exponent)``."""
    if leak is None:
        return
    if leak.ndim != len(shape) + 2 or leak.shape[1:len(shape)] != shape[1:] \
            or leak.shape[-2:] != (ops.LEAK_TERMS, 2):
        lead = "".join(f"{d}, " for d in shape[1:])
        raise GraphError(f"node {op.name}: the {what} must be [{rows}, {lead}{ops.LEAK_TERMS},"
                         f" 2] (sign, exponent), not {leak.shape}")
    if np.abs(leak[..., 0]).max(initial=0) > 1:
        raise GraphError(f"node {op.name}: every {what} term's sign must be -1, 0 or 1")


def _check_neuron(op: Op, n: int) -> None:
    for name in ("bias", "threshold", "reset"):
        arr = getattr(op, name)
        if arr.ndim > 2 or (arr.ndim >= 1 and arr.shape[-1] != n):
            raise GraphError(f"node {op.name}: {name} must be a scalar, have {n} entries or be"
                             f" [T, {n}], not shape {arr.shape}")
    if op.threshold.min(initial=1) < 1:
        raise GraphError(f"node {op.name}: threshold must be at least 1")
    if op.reset.min(initial=0) < 0:
        raise GraphError(f"node {op.name}: reset must not be negative")
    _check_leak(op, op.leak, (0, 3))


def _check_steps(op: Op, steps: int, names: tuple[str, ...]) -> None:
    for name in names:
        arr = getattr(op, name)
        if arr.ndim == 2 and arr.shape[0] != steps:
            raise GraphError(f"node {op.name}: {name} has {arr.shape[0]} time steps, the graph"
                             f" {steps}")
    if op.leak is not None and op.leak.shape[0] != steps - 1:
        raise GraphError(f"node {op.name}: the leak must have one entry per step but the last"
                         f" ({steps - 1}), not {op.leak.shape[0]}")


class _NeuronOp(Op):
    """What ``Fire`` and ``SpikingLinear`` share: the neuron's constants, leak and spikes."""

    def __post_init__(self):
        super().__post_init__()
        if self.leak is not None:
            object.__setattr__(self, "leak", frozen_array(self.leak))
        object.__setattr__(self, "binary", bool(self.binary))

    @property
    def per_step(self) -> bool:
        """Whether a constant has one entry per time step (``[T, n]``)."""
        return any(getattr(self, k).ndim == 2 for k in ("bias", "threshold", "reset"))

    def check_steps(self, steps: int) -> None:
        _check_steps(self, steps, ("bias", "threshold", "reset"))


@dataclass(frozen=True, eq=False)
class SpikeEmbed(Op):
    """Spikes of the last ``context`` bytes through a ``[256, T, E]`` spike table, concatenated
    (``context * E`` spikes per position; byte 0 before the stream's start)."""

    table: np.ndarray = None
    context: int = 1
    makes: ClassVar[Kind] = Kind.SPIKES
    arrays: ClassVar[tuple[str, ...]] = ("table",)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "context", int(self.context))
        if self.table.ndim != 3 or self.table.shape[0] != VOCAB or self.table.size == 0:
            raise GraphError(f"node {self.name}: the spike table must be [256, T, E], not"
                             f" {self.table.shape}")
        if self.table.min() < -1 or self.table.max() > 1:
            raise GraphError(f"node {self.name}: spike table entries must be -1, 0 or +1")
        if self.context < 1:
            raise GraphError(f"node {self.name}: the context must be at least 1 byte")

    @property
    def timesteps(self) -> int:
        return self.table.shape[1]

    @property
    def embed_dim(self) -> int:
        return self.table.shape[2]

    def width(self) -> int:
        return self.context * self.embed_dim

    def evaluate(self, args, graph, peaks, last_only):
        return ops.spike_embed(self.table, self.context, args[0], last_only)


@dataclass(frozen=True, eq=False)
class TokenEmbed(Op):
    """The residual at the input: ``x = table[byte]`` at every step; ``table`` ``[256, d]``."""

    table: np.ndarray = None
    makes: ClassVar[Kind] = Kind.RESIDUAL
    arrays: ClassVar[tuple[str, ...]] = ("table",)

    def __post_init__(self):
        super().__post_init__()
        if self.table.ndim != 2 or self.table.shape[0] != VOCAB:
            raise GraphError(f"node {self.name}: the token embedding must be [256, d], not"
                             f" {self.table.shape}")

    def width(self) -> int:
        return self.table.shape[1]

    def evaluate(self, args, graph, peaks, last_only):
        x = ops.token_embed(self.table, args[0], graph.timesteps, last_only)
        peaks.see("residual", x)
        return x


@dataclass(frozen=True, eq=False)
class Accumulate(Op):
    """``A = W S`` with ``weight`` ``[n_out, n_in]``."""

    weight: np.ndarray = None
    takes: ClassVar[tuple] = (Kind.SPIKES,)
    makes: ClassVar[Kind] = Kind.CURRENTS
    arrays: ClassVar[tuple[str, ...]] = ("weight",)

    def width(self) -> int:
        return self.weight.shape[0]

    def evaluate(self, args, graph, peaks, last_only):
        return ops.accumulate(args[0], self.weight)


@dataclass(frozen=True, eq=False)
class Fire(_NeuronOp):
    """Ternary integrate-and-fire of a current, or of the residual (a normalising neuron).

    ``bias``, ``threshold`` and ``reset`` are ``[n]`` or scalars (``[]``), broadcast per neuron,
    or ``[T, n]``, one row per time step. ``leak`` ``[T - 1, 3, J, 2]`` (or ``None``, the
    identity) rescales the membrane between steps by the spike it fired, and ``binary`` spikes
    are never negative (:func:`contract.ops.fire`).
    """

    bias: np.ndarray = None
    threshold: np.ndarray = None
    reset: np.ndarray = None
    leak: np.ndarray | None = None
    binary: bool = False
    takes: ClassVar[tuple] = (None,)
    arrays: ClassVar[tuple[str, ...]] = ("bias", "threshold", "reset")

    def width(self) -> int:
        return self.bias.shape[-1]

    def n_in(self) -> int | None:
        return self.width()

    def check(self, widths):
        if self.bias.ndim not in (1, 2):
            raise GraphError(f"node {self.name}: the bias must have one entry per neuron")
        _check_neuron(self, self.width())

    def evaluate(self, args, graph, peaks, last_only):
        return _neuron(self, args[0], peaks)


@dataclass(frozen=True, eq=False)
class SpikingLinear(_NeuronOp):
    """Accumulate and fire fused (made by the ``FuseLinear`` pass): what one array layer runs."""

    weight: np.ndarray = None
    bias: np.ndarray = None
    threshold: np.ndarray = None
    reset: np.ndarray = None
    leak: np.ndarray | None = None
    binary: bool = False
    takes: ClassVar[tuple] = (Kind.SPIKES,)
    arrays: ClassVar[tuple[str, ...]] = ("weight", "bias", "threshold", "reset")

    def width(self) -> int:
        return self.weight.shape[0]

    def check(self, widths):
        if self.bias.ndim not in (1, 2) or self.bias.shape[-1] != self.width():
            raise GraphError(f"node {self.name}: bias must have {self.width()} entries")
        _check_neuron(self, self.width())

    def evaluate(self, args, graph, peaks, last_only):
        return _neuron(self, ops.accumulate(args[0], self.weight), peaks)


@dataclass(frozen=True, eq=False)
class Attention(Op):
    """Windowed ReLU attention of ``q, k, v`` spikes and the attention neuron.

    ``score_bias`` ``[heads, window]`` by distance, or per step ``[T, heads, window]`` (the
    score grid of q and k amplitudes that change over time); ``threshold``/``reset``
    ``[window]`` by key count minus one, or per step ``[T, window]``; ``leak``
    ``[T - 1, 3, J, 2]`` (or ``None``) and ``binary`` as :class:`Fire`'s (the elastic neuron).
    Without ``causal`` (an encoder's attention) every position reads every position of a
    stream of at most ``window``, and the score bias has ``2 window - 1`` columns, by the
    signed distance ``i - j + window - 1``.
    """

    heads: int = 1
    score_bias: np.ndarray = None
    threshold: np.ndarray = None
    reset: np.ndarray = None
    d_model: int = 0
    leak: np.ndarray | None = None
    binary: bool = False
    causal: bool = True
    takes: ClassVar[tuple] = (Kind.SPIKES, Kind.SPIKES, Kind.SPIKES)
    arrays: ClassVar[tuple[str, ...]] = ("score_bias", "threshold", "reset")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "heads", int(self.heads))
        object.__setattr__(self, "d_model", int(self.d_model))
        object.__setattr__(self, "binary", bool(self.binary))
        object.__setattr__(self, "causal", bool(self.causal))
        if self.leak is not None:
            object.__setattr__(self, "leak", frozen_array(self.leak))
        if self.score_bias.ndim not in (2, 3) or self.score_bias.shape[-2] != self.heads:
            raise GraphError(f"node {self.name}: the score bias must be [heads, window] or"
                             f" [T, heads, window], not {self.score_bias.shape}")
        if not self.causal and self.score_bias.shape[-1] % 2 == 0:
            raise GraphError(f"node {self.name}: a bidirectional score bias must be"
                             " [heads, 2 window - 1], one entry per signed distance")
        if self.heads < 1 or self.d_model < 1 or self.d_model % self.heads:
            raise GraphError(f"node {self.name}: {self.d_model} channels do not split into"
                             f" {self.heads} heads")

    @property
    def window(self) -> int:
        width = self.score_bias.shape[-1]
        return width if self.causal else (width + 1) // 2

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    @property
    def per_step(self) -> bool:
        """Whether the neuron's constants have one row per time step (``[T, window]``)."""
        return self.threshold.ndim == 2 or self.reset.ndim == 2

    @property
    def elastic(self) -> bool:
        """Whether it uses an option of the elastic neuron (per-step score bias or constants,
        a leak, binary spikes)."""
        return (self.per_step or self.score_bias.ndim == 3 or self.leak is not None
                or self.binary)

    def width(self) -> int:
        return self.d_model

    def check(self, widths):
        for tensor in self.inputs:
            if widths[tensor] != self.d_model:
                raise GraphError(f"node {self.name}: q, k and v must have {self.d_model}"
                                 f" channels, not {widths[tensor]}")
        for name in ("threshold", "reset"):
            arr = getattr(self, name)
            if arr.ndim not in (1, 2) or arr.shape[-1] != self.window:
                raise GraphError(f"node {self.name}: attention {name}s need {self.window}"
                                 f" entries, one per key count (per step: [T, {self.window}]),"
                                 f" not shape {arr.shape}")
        if self.threshold.min() < 1:
            raise GraphError(f"node {self.name}: attention thresholds must be at least 1")
        if self.reset.min() < 0:
            raise GraphError(f"node {self.name}: attention resets must not be negative")
        _check_leak(self, self.leak, (0, 3))

    def check_steps(self, steps: int) -> None:
        _check_steps(self, steps, ("threshold", "reset"))
        if self.score_bias.ndim == 3 and self.score_bias.shape[0] != steps:
            raise GraphError(f"node {self.name}: the score bias has {self.score_bias.shape[0]}"
                             f" time steps, the graph {steps}")

    def evaluate(self, args, graph, peaks, last_only):
        spikes, membranes, current = ops.attention(
            *args, self.heads, self.score_bias, self.threshold, self.reset, membranes=True,
            leaks=self.leak, binary=self.binary, causal=self.causal)
        peaks.see("attn_current", current)
        peaks.see("membrane", membranes)
        return spikes


@dataclass(frozen=True, eq=False)
class ResidualAdd(Op):
    """``x + shift_round(W S, shift)`` with ``weight`` ``[d, n_in]``; inputs (residual, spikes).

    ``scale`` ``[T, J, 2]`` (or ``None``): a multiplier per step instead of the shift,
    ``x + leak(W S_t, scale[t])`` (:func:`contract.ops.residual_add`; spikes whose amplitude
    changes over time); ``shift`` is then 0.
    """

    weight: np.ndarray = None
    shift: int = 0
    scale: np.ndarray | None = None
    takes: ClassVar[tuple] = (Kind.RESIDUAL, Kind.SPIKES)
    makes: ClassVar[Kind] = Kind.RESIDUAL
    arrays: ClassVar[tuple[str, ...]] = ("weight",)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "shift", int(self.shift))
        if self.scale is not None:
            object.__setattr__(self, "scale", frozen_array(self.scale))
            if self.shift:
                raise GraphError(f"node {self.name}: a residual add has a shift or a per-step"
                                 " scale, not both")
            _check_leak(self, self.scale, (0,), "scale", "T")

    def width(self) -> int:
        return self.weight.shape[0]

    def check(self, widths):
        if widths[self.inputs[0]] != self.width():
            raise GraphError(f"node {self.name} adds {self.width()} channels to a residual of"
                             f" {widths[self.inputs[0]]}")

    def check_steps(self, steps: int) -> None:
        if self.scale is not None and self.scale.shape[0] != steps:
            raise GraphError(f"node {self.name}: the scale must have one entry per step"
                             f" ({steps}), not {self.scale.shape[0]}")

    def evaluate(self, args, graph, peaks, last_only):
        x = ops.residual_add(args[0], args[1], self.weight, self.shift, self.scale)
        peaks.see("residual", x)
        return x


@dataclass(frozen=True, eq=False)
class Readout(Op):
    """Logits of every position: ``sum_t (W S_t + bias)``; ``weight`` ``[C, n_in]``.

    ``C`` is 256 for a language model (a logit per next byte) or an encoder's classes.
    ``bias`` is ``[C]`` or per step ``[T, C]``; ``leak`` ``[T - 1, J, 2]`` (or ``None``)
    rescales the running sum between steps (:func:`contract.ops.readout`).
    """

    weight: np.ndarray = None
    bias: np.ndarray = None
    leak: np.ndarray | None = None
    takes: ClassVar[tuple] = (Kind.SPIKES,)
    makes: ClassVar[Kind] = Kind.LOGITS
    arrays: ClassVar[tuple[str, ...]] = ("weight", "bias")

    def __post_init__(self):
        super().__post_init__()
        if self.leak is not None:
            object.__setattr__(self, "leak", frozen_array(self.leak))
        if self.weight.ndim != 2 or self.weight.shape[0] < 2 \
                or self.bias.ndim not in (1, 2) or self.bias.shape[-1] != self.weight.shape[0]:
            raise GraphError(f"node {self.name}: the readout needs a [C, n_in] weight and a"
                             " bias of C entries, C >= 2 (256 for a language model)")
        _check_leak(self, self.leak, (0,))

    @property
    def per_step(self) -> bool:
        return self.bias.ndim == 2

    def check_steps(self, steps: int) -> None:
        _check_steps(self, steps, ("bias",))

    def width(self) -> int:
        return self.weight.shape[0]

    def evaluate(self, args, graph, peaks, last_only):
        sums = ops.readout(args[0], self.weight, self.bias, self.leak, partial=True)
        peaks.see("logit", sums)
        return sums[:, -1]


@dataclass(frozen=True, eq=False)
class Pool(Op):
    """A sequence's logits: the sum of its positions' logits, ``[N, L, C]`` to ``[N, 1, C]``
    (an encoder's mean pooling; the ``1 / L`` is a scale that the arg-max ignores)."""

    takes: ClassVar[tuple] = (Kind.LOGITS,)
    makes: ClassVar[Kind] = Kind.LOGITS
    n_outputs: int = 0

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "n_outputs", int(self.n_outputs))

    def width(self) -> int:
        return self.n_outputs

    def check(self, widths):
        if widths[self.inputs[0]] != self.n_outputs:
            raise GraphError(f"node {self.name} pools {self.n_outputs} logits but"
                             f" {self.inputs[0]} has {widths[self.inputs[0]]}")

    def evaluate(self, args, graph, peaks, last_only):
        pooled = ops.pool(args[0])
        peaks.see("logit", pooled)
        return pooled


EMBEDDINGS = (SpikeEmbed, TokenEmbed)


@dataclass(frozen=True, eq=False)
class Graph:
    """A model: ``ops`` in execution order, from ``input`` (byte streams) to ``output``
    (the logits of every position)."""

    ops: tuple[Op, ...]
    timesteps: int
    weight_bits: int
    input: str = "input"
    output: str = "output"
    logit_scale: float = 1.0
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(self.ops))
        self.check()

    def replace_ops(self, new_ops) -> Graph:
        """The same model with other ops."""
        return Graph(tuple(new_ops), self.timesteps, self.weight_bits, self.input, self.output,
                     self.logit_scale, self.meta)

    def producers(self) -> dict[str, Op]:
        return {op.output: op for op in self.ops}

    def consumers(self, tensor: str) -> list[Op]:
        return [op for op in self.ops if tensor in op.inputs]

    def of_type(self, *types) -> list[Op]:
        """The ops of the given types, in order."""
        return [op for op in self.ops if isinstance(op, types)]

    @property
    def causal_window(self) -> int | None:
        """The longest attention window (``None``: no op looks at earlier positions' tensors)."""
        windows = [op.window for op in self.of_type(Attention)]
        return max(windows) if windows else None

    @property
    def causal(self) -> bool:
        """Whether the graph is a language model: every position's logits depend only on the
        bytes up to it (no bidirectional attention, no pooling)."""
        return not self.of_type(Pool) and all(op.causal for op in self.of_type(Attention))

    @property
    def outputs(self) -> int:
        """Logits per prediction: 256 for a language model, an encoder's classes."""
        return self.widths()[self.output]

    @property
    def context(self) -> int:
        """Bytes a position reads directly through its embeddings (1 without a SpikeEmbed)."""
        return max([op.context for op in self.of_type(SpikeEmbed)], default=1)

    def widths(self) -> dict[str, int]:
        return {op.output: op.width() for op in self.ops}

    def check(self) -> None:
        """Every input defined before use, kinds and widths that fit, one logits output."""
        if not isinstance(self.timesteps, int | np.integer) or self.timesteps < 1:
            raise GraphError(f"timesteps must be a positive integer, not {self.timesteps!r}")
        if self.weight_bits not in range(2, 9):
            raise GraphError(f"weight_bits must be 2 to 8, not {self.weight_bits!r}")
        kinds = {self.input: None}
        widths: dict[str, int] = {}
        for op in self.ops:
            if op.output in kinds:
                raise GraphError(f"node {op.name}: tensor {op.output} is defined twice")
            if isinstance(op, EMBEDDINGS):
                if op.inputs != (self.input,):
                    raise GraphError(f"node {op.name}: {type(op).__name__} must read the"
                                     " graph input")
            elif len(op.inputs) != len(op.takes):
                raise GraphError(f"node {op.name} takes {len(op.takes)} inputs, not"
                                 f" {len(op.inputs)}")
            for tensor, kind in zip(op.inputs if op.takes else (), op.takes, strict=False):
                if tensor not in kinds:
                    raise GraphError(f"node {op.name} reads {tensor} before it is computed")
                have = kinds[tensor]
                allowed = (Kind.RESIDUAL, Kind.CURRENTS) if kind is None else (kind,)
                if have not in allowed:
                    raise GraphError(
                        f"node {op.name} needs {' or '.join(k.value for k in allowed)} but"
                        f" {tensor} holds {have.value if have else 'token ids'}")
            n_in = op.n_in()
            if op.takes and n_in is not None and widths[op.inputs[-1]] != n_in:
                raise GraphError(f"node {op.name} takes {n_in} inputs but {op.inputs[-1]} has"
                                 f" {widths[op.inputs[-1]]}")
            op.check(widths)
            op.check_steps(self.timesteps)
            if isinstance(op, SpikeEmbed) and op.timesteps != self.timesteps:
                raise GraphError(f"node {op.name}: the spike table has {op.timesteps} time"
                                 f" steps, the graph {self.timesteps}")
            kinds[op.output] = op.makes
            widths[op.output] = op.width()
        if kinds.get(self.output) is not Kind.LOGITS:
            raise GraphError("the graph's output must be the logits of a SpikeReadout")
        if self.causal and widths[self.output] != VOCAB:
            raise GraphError(f"a causal graph is a language model: its readout must have"
                             f" {VOCAB} outputs, not {widths[self.output]}")
        limit = weight_limit(self.weight_bits)
        for op in self.ops:
            weight = getattr(op, "weight", None)
            if weight is not None and np.abs(weight).max(initial=0) > limit:
                raise GraphError(f"node {op.name} has weights beyond ±{limit}, the range of"
                                 f" {self.weight_bits}-bit weights")

    @property
    def population_names(self) -> tuple[str, ...]:
        """The spiking populations, in the order of :attr:`Trace.spikes`."""
        return tuple(op.name for op in self.ops if op.fires)


@dataclass(frozen=True)
class Trace:
    """What :func:`run` saw: logits ``[N, L, 256]``, the spikes ``[N, T, L, width]`` of every
    spiking op in graph order, the largest magnitudes met, and every named tensor."""

    logits: np.ndarray
    spikes: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    peaks: dict
    tensors: dict | None = None

    def firing_rates(self) -> list[float]:
        """Fraction of non-zero spikes per spiking population."""
        return [float(np.count_nonzero(s)) / max(1, s.size) for s in self.spikes]


def run(graph: Graph, ids, last_only: bool = False) -> Trace:
    """Run ``graph`` on byte streams ``ids[N, L]``, each starting from an empty state.

    ``last_only`` computes only what the last position needs (``L = 1`` in the trace): for a
    graph without attention, whose positions are independent, that is the last position alone.
    An encoder's output is one prediction per stream (``[N, 1, C]``).
    """
    ids = ops.check_streams(ids)
    only_last = last_only and graph.causal_window is None and graph.causal
    env: dict[str, np.ndarray] = {graph.input: ids}
    peaks = _Peaks()
    spikes = []
    for op in graph.ops:
        value = op.evaluate([env[name] for name in op.inputs], graph, peaks, only_last)
        env[op.output] = value
        if op.fires:
            spikes.append(value)
    if last_only and not only_last:
        env = {name: (t[:, :, -1:] if t.ndim == 4 else t[:, -1:]) for name, t in env.items()}
        spikes = [s[:, :, -1:] for s in spikes]
    return Trace(env[graph.output], tuple(spikes), graph.population_names, peaks.values, env)


def generate(graph: Graph, prompt, tokens: int) -> list[int]:
    """Greedy generation with any causal byte model: ``tokens`` bytes after ``prompt``, each the
    arg-max (lowest index on ties) of the last position's logits of the stream so far, which
    starts empty before the prompt."""
    if not graph.causal:
        raise ContractError("an encoder (bidirectional attention or pooling) classifies whole"
                            " sequences and does not generate; use a causal model")
    stream = [int(b) for b in prompt]
    if not stream:
        raise ContractError("the prompt must hold at least one byte")
    if tokens < 0:
        raise ContractError(f"tokens must be non-negative, not {tokens}")
    out = []
    for _ in range(tokens):
        logits = run(graph, np.array([stream]), last_only=True).logits[:, -1]
        out.append(int(ops.next_token(logits)[0]))
        stream.append(out[-1])
    return out
