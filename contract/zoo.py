"""The zoo's integer models: the two shapes the shipped checkpoints store, each a container of
integers that lowers to a :class:`contract.graph.Graph` (``graph()``), and the executor's views of
them (NumPy only).

- :class:`IntModel`, a chain (the MLP): a ``SpikeEmbed`` of the last ``k`` bytes, hidden
  ``Accumulate`` + ``Fire`` layers (:class:`SpikingLayer`), a ``Readout``. It reads a window of
  ``k`` bytes (``ids[N, k]``, the oldest first) and predicts the next: the last position of
  the ``k``-byte stream, which sees exactly the window (docs/integer-contract.md);
  :func:`forward` is that position, :class:`Trace` its ``[N, T, width]`` view.
- :class:`IntTransformer` (see docs/transformer.md): a ``TokenEmbed`` residual, blocks of a
  normalising neuron, ternary Q/K/V, ReLU attention over a causal window of ``context``
  positions and residual adds, a final norm and a ``Readout``. It reads a byte *stream*;
  :func:`forward_streams` runs it (or any model) on whole streams, every position.

Every number means what the graph's ops say (contract.ops); these classes only check shapes
and ranges once and name the ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np

from .graph import Trace as StreamTrace
from .graph import run
from .ops import VOCAB, ContractError, check_streams, int_array, spike_embed, weight_limit

__all__ = [
    "IntBlock",
    "IntModel",
    "IntNorm",
    "IntOutProj",
    "IntTransformer",
    "Readout",
    "SpikingLayer",
    "Trace",
    "embed",
    "forward",
    "forward_streams",
]


@dataclass(frozen=True, eq=False)
class SpikingLayer:
    """A hidden layer: accumulate, then ternary integrate-and-fire over the time steps."""

    weight: np.ndarray  # [N_out, N_in]
    bias: np.ndarray  # [N_out]
    threshold: int
    reset: int

    def __post_init__(self):
        object.__setattr__(self, "weight", int_array("layer weight", self.weight, 2))
        object.__setattr__(self, "bias", int_array("layer bias", self.bias, 1))
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
        object.__setattr__(self, "weight", int_array("readout weight", self.weight, 2))
        object.__setattr__(self, "bias", int_array("readout bias", self.bias, 1))
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
        table = int_array("spike_table", self.spike_table, 3)
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


@dataclass(frozen=True, eq=False)
class IntNorm:
    """A normalising neuron: per-channel bias, threshold and reset (the folded affine)."""

    bias: np.ndarray  # [d]
    threshold: np.ndarray  # [d], >= 1
    reset: np.ndarray  # [d], >= 1

    def __post_init__(self):
        for name in ("bias", "threshold", "reset"):
            object.__setattr__(self, name, int_array(f"norm {name}", getattr(self, name), 1))
        if not self.bias.shape == self.threshold.shape == self.reset.shape:
            raise ContractError("norm bias, threshold and reset must have the same length")
        if self.threshold.min(initial=1) < 1 or self.reset.min(initial=1) < 1:
            raise ContractError("norm thresholds and resets must be at least 1")


@dataclass(frozen=True, eq=False)
class IntOutProj:
    """A projection into the residual: ``shift(W s, shift)`` (no bias)."""

    weight: np.ndarray  # [d, n_in]
    shift: int

    def __post_init__(self):
        object.__setattr__(self, "weight", int_array("projection weight", self.weight, 2))
        object.__setattr__(self, "shift", int(self.shift))


@dataclass(frozen=True, eq=False)
class IntBlock:
    """One transformer block in integers.

    ``score_bias[h, δ]`` is added to head ``h``'s score of the key ``δ`` positions back;
    ``attn_threshold[n - 1]`` and ``attn_reset[n - 1]`` are the attention neuron's constants
    for a position that sees ``n`` keys (the ``1/n`` of an average, folded in).
    """

    norm1: IntNorm
    q: SpikingLayer
    k: SpikingLayer
    v: SpikingLayer
    score_bias: np.ndarray  # [heads, context]
    attn_threshold: np.ndarray  # [context]
    attn_reset: np.ndarray  # [context]
    out: IntOutProj
    norm2: IntNorm
    ff1: SpikingLayer
    ff2: IntOutProj

    def __post_init__(self):
        for name in ("attn_threshold", "attn_reset"):
            arr = int_array(name, getattr(self, name), 1)
            if arr.min(initial=1) < 1:
                raise ContractError(f"{name} entries must be at least 1")
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "score_bias", int_array("score_bias", self.score_bias, 2))


@dataclass(frozen=True, eq=False)
class IntTransformer:
    """A spiking byte-level transformer LM in integers; ``context`` is the attention window."""

    context: int
    d_model: int
    heads: int
    timesteps: int
    weight_bits: int
    tok_embed: np.ndarray  # [256, d]
    blocks: tuple[IntBlock, ...]
    norm_f: IntNorm
    readout: Readout
    logit_scale: float = 1.0
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("context", "d_model", "heads", "timesteps"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ContractError(f"{name} must be a positive integer, not {value!r}")
        if self.d_model % self.heads:
            raise ContractError(f"d_model {self.d_model} is not a multiple of heads {self.heads}")
        d, k = self.d_model, self.context
        tok = int_array("tok_embed", self.tok_embed, 2)
        if tok.shape != (VOCAB, d):
            raise ContractError(f"tok_embed must be [{VOCAB}, {d}], not {tok.shape}")
        object.__setattr__(self, "tok_embed", tok)
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.blocks:
            raise ContractError("a transformer needs at least one block")
        limit = weight_limit(self.weight_bits)
        for index, block in enumerate(self.blocks):
            layers = {"q": block.q, "k": block.k, "v": block.v, "ff1": block.ff1,
                      "out": block.out, "ff2": block.ff2}
            for name, layer in layers.items():
                n_in = block.ff1.n_out if name == "ff2" else d
                n_out = block.ff1.n_out if name == "ff1" else d
                if layer.weight.shape != (n_out, n_in):
                    raise ContractError(f"block {index} {name} weight must be [{n_out}, {n_in}],"
                                        f" not {layer.weight.shape}")
                if np.abs(layer.weight).max(initial=0) > limit:
                    raise ContractError(f"block {index} {name} has weights beyond ±{limit}")
            for norm in (block.norm1, block.norm2):
                if norm.bias.shape != (d,):
                    raise ContractError(f"block {index} norms must have {d} channels")
            if block.attn_reset.shape != (k,) or block.attn_threshold.shape != (k,):
                raise ContractError(f"block {index} attention thresholds need {k} entries")
            if block.score_bias.shape != (self.heads, k):
                raise ContractError(f"block {index} score_bias must be [{self.heads}, {k}],"
                                    f" not {block.score_bias.shape}")
        if self.norm_f.bias.shape != (d,) or self.readout.n_in != d:
            raise ContractError(f"the final norm and the readout must take {d} channels")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    def graph(self):
        """The model as a :class:`contract.graph.Graph`, op names as in its ONNX form."""
        from . import graph as g

        ops = []

        def norm(x: str, n: IntNorm, name: str) -> str:
            ops.append(g.Fire(name, (x,), f"{name}_s", bias=n.bias, threshold=n.threshold,
                              reset=n.reset))
            return f"{name}_s"

        def linear(s: str, layer: SpikingLayer, name: str) -> str:
            ops.append(g.Accumulate(f"{name}_acc", (s,), f"{name}_a", weight=layer.weight))
            ops.append(g.Fire(f"{name}_fire", (f"{name}_a",), f"{name}_s", bias=layer.bias,
                              threshold=layer.threshold, reset=layer.reset))
            return f"{name}_s"

        def residual(x: str, s: str, proj: IntOutProj, name: str) -> str:
            ops.append(g.ResidualAdd(name, (x, s), f"{name}_x", weight=proj.weight,
                                     shift=proj.shift))
            return f"{name}_x"

        ops.append(g.TokenEmbed("embed", ("input",), "x0", table=self.tok_embed))
        x = "x0"
        for i, block in enumerate(self.blocks):
            b = f"b{i}"
            s = norm(x, block.norm1, f"{b}_norm1")
            q, k, v = (linear(s, getattr(block, c), f"{b}_{c}") for c in ("q", "k", "v"))
            ops.append(g.Attention(f"{b}_attn", (q, k, v), f"{b}_attn_s", heads=self.heads,
                                   score_bias=block.score_bias, threshold=block.attn_threshold,
                                   reset=block.attn_reset, d_model=self.d_model))
            x = residual(x, f"{b}_attn_s", block.out, f"{b}_out")
            h = linear(norm(x, block.norm2, f"{b}_norm2"), block.ff1, f"{b}_ff1")
            x = residual(x, h, block.ff2, f"{b}_ff2")
        s = norm(x, self.norm_f, "norm_f")
        ops.append(g.Readout("readout", (s,), "output", weight=self.readout.weight,
                             bias=self.readout.bias))
        return g.Graph(tuple(ops), self.timesteps, self.weight_bits,
                       logit_scale=self.logit_scale, meta=dict(self.meta))


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
    return spike_embed(model.spike_table, model.context, ids, last_only=True)[:, :, 0]


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


def forward_streams(model, ids, trace: bool = False, all_positions: bool = False):
    """Integer logits of the last position ``[N, 256]`` of byte streams ``ids[N, L]``, for any
    model with a ``graph()`` (or a graph). Every stream starts with an empty key/value window.
    ``all_positions`` returns ``[N, L, 256]``; ``trace`` the executor's
    :class:`~contract.graph.Trace` (all positions, with the peaks of the residual, the
    membranes, the attention current and the partial logits)."""
    graph = model.graph() if hasattr(model, "graph") else model
    result: StreamTrace = run(graph, check_streams(ids))
    if trace:
        return result
    return result.logits if all_positions else result.logits[:, -1]
