"""The spiking transformer in integers: the model and its forward pass (NumPy only).

See docs/transformer.md. The model reads a byte *stream*; position ``i`` attends to the
positions ``j`` of its window ``i - W < j <= i`` (``W = context``), so that hardware keeps the
keys and values of the last ``W`` positions in a cache and processes one byte at a time. For
every time step ``t`` and position ``i``::

    x      = tok_embed[byte_i]                                (residual, constant over t)
    per block:
      s    = IF(x + B1; Θ1[c], R1[c])                         per-channel thresholds
      q,k,v= IF(Wq s + Bq), IF(Wk s + Bk), IF(Wv s + Bv)      ternary
      S_ij = q_i . k_j + P[h, i - j]   (per head h, i-W < j <= i, j >= 0)
      a_i  = sum_j max(S_ij, 0) * v_j                         add / subtract / skip of S_ij
      o    = IF(a; Θa[n_i], Ra[n_i])                          n_i = min(i + 1, W) keys
      x   += shift(Wo o, ko)                                  << ko, or rounded >> -ko
      h    = IF(W1 IF(x + B2; Θ2[c], R2[c]) + B1')
      x   += shift(W2 h, k2)
    logits_i = sum_t (Wr IF(x + Bf; Θf[c], Rf[c]) + Br)

Every neuron is :func:`contract.reference.fire`: ``V = U + I; s = [V >= Θ] - [V <= -Θ];
U = V - R s``, ``U = 0`` before step 0. Position enters only through the relative score bias
``P`` (an integer per head and distance) and the key count ``n_i``; the model is causal, so the
logits of position ``i`` depend on bytes ``0..i`` only, and a stream can be extended one byte
at a time (:func:`generate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .graph import Trace, run
from .graph import generate as graph_generate
from .intmodel import VOCAB, ContractError, Readout, SpikingLayer, _int_array, weight_limit
from .ops import (
    attention_current,
    check_streams,
    key_counts,
    shift_round,
    window_mask,
)

#: the executor's trace (logits of every position, spikes, peaks, tensors)
TransformerTrace = Trace

__all__ = [
    "IntBlock",
    "IntNorm",
    "IntOutProj",
    "IntTransformer",
    "TransformerTrace",
    "attention_current",
    "forward",
    "generate",
    "key_counts",
    "shift_round",
    "window_mask",
]


@dataclass(frozen=True, eq=False)
class IntNorm:
    """A normalising neuron: per-channel bias, threshold and reset (the folded affine)."""

    bias: np.ndarray  # [d]
    threshold: np.ndarray  # [d], >= 1
    reset: np.ndarray  # [d], >= 1

    def __post_init__(self):
        for name in ("bias", "threshold", "reset"):
            object.__setattr__(self, name, _int_array(f"norm {name}", getattr(self, name), 1))
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
        object.__setattr__(self, "weight", _int_array("projection weight", self.weight, 2))
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
            arr = _int_array(name, getattr(self, name), 1)
            if arr.min(initial=1) < 1:
                raise ContractError(f"{name} entries must be at least 1")
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "score_bias", _int_array("score_bias", self.score_bias, 2))


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
        tok = _int_array("tok_embed", self.tok_embed, 2)
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


def forward(model: IntTransformer, ids, trace: bool = False, all_positions: bool = False):
    """Integer logits of the last position ``[N, 256]`` for byte streams ``ids[N, L]``.

    Every stream starts with an empty key/value window. ``all_positions`` returns
    ``[N, L, 256]``; ``trace`` a :class:`~contract.graph.Trace` (all positions, with the peaks
    of the residual, the membranes, the attention current and the partial logits).
    """
    result = run(model.graph(), check_streams(ids))
    if trace:
        return result
    return result.logits if all_positions else result.logits[:, -1]


def generate(model: IntTransformer, prompt, tokens: int) -> list[int]:
    """Greedy generation (:func:`contract.graph.generate` on the model's graph)."""
    return graph_generate(model.graph(), prompt, tokens)
