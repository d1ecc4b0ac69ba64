"""The spiking transformer in integers: model, forward pass and range analysis (NumPy only).

See docs/transformer.md. Per time step ``t`` and every position ``p`` of the context::

    x      = tok_embed[byte_p] + pos_embed[p]                 (residual, constant over t)
    per block:
      s    = IF(x + B1; Θ1[c], R1[c])                         per-channel thresholds
      q,k,v= IF(Wq s + Bq), IF(Wk s + Bk), IF(Wv s + Bv)      ternary
      S_ij = q_i . k_j  (per head, j <= i)                    add / subtract / skip
      a_i  = sum_{j<=i} max(S_ij, 0) * v_j                    add / subtract / skip of S_ij
      o    = IF(a; Θa[i], Ra[i])                              per-position thresholds
      x   += shift(Wo o, ko)                                  << ko, or rounded >> -ko
      h    = IF(W1 IF(x + B2; Θ2[c], R2[c]) + B1')
      x   += shift(W2 h, k2)
    logits = sum_t (Wr IF(x + Bf; Θf[c], Rf[c]) + Br)

Every neuron: ``V = U + I; s = [V >= Θ] - [V <= -Θ]; U = V - R s``, ``U = 0`` before step 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .intmodel import VOCAB, ContractError, Readout, SpikingLayer, _int_array, weight_limit
from .reference import accumulate
from .widths import layer_bound, signed_bits, step_input_bound

__all__ = [
    "IntBlock",
    "IntNorm",
    "IntOutProj",
    "IntTransformer",
    "TransformerTrace",
    "TransformerWidths",
    "derive_transformer_widths",
    "forward",
    "shift_round",
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
    """One transformer block in integers."""

    norm1: IntNorm
    q: SpikingLayer
    k: SpikingLayer
    v: SpikingLayer
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


@dataclass(frozen=True, eq=False)
class IntTransformer:
    """A spiking byte-level transformer LM in integers."""

    context: int
    d_model: int
    heads: int
    timesteps: int
    weight_bits: int
    tok_embed: np.ndarray  # [256, d]
    pos_embed: np.ndarray  # [context, d]
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
        pos = _int_array("pos_embed", self.pos_embed, 2)
        if tok.shape != (VOCAB, d) or pos.shape != (k, d):
            raise ContractError(f"embeddings must be [{VOCAB}, {d}] and [{k}, {d}],"
                                f" not {tok.shape} and {pos.shape}")
        object.__setattr__(self, "tok_embed", tok)
        object.__setattr__(self, "pos_embed", pos)
        object.__setattr__(self, "blocks", tuple(self.blocks))
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
        if self.norm_f.bias.shape != (d,) or self.readout.n_in != d:
            raise ContractError(f"the final norm and the readout must take {d} channels")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads


def shift_round(acc: np.ndarray, shift: int) -> np.ndarray:
    """``acc * 2^shift``: a left shift, or for ``shift < 0`` ``floor(acc / 2^-shift + 1/2)``."""
    acc = np.asarray(acc, dtype=np.int64)
    if shift >= 0:
        return acc << shift
    return (acc + (1 << (-shift - 1))) >> (-shift)


def _step(membrane: np.ndarray, current: np.ndarray, threshold, reset):
    """One integrate-and-fire step; returns ``(spikes, new membrane, V before reset)``."""
    v = membrane + current
    s = (v >= threshold).astype(np.int64) - (v <= -threshold).astype(np.int64)
    return s, v - reset * s, v


def attention_current(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int) -> np.ndarray:
    """``a_i = sum_{j <= i} max(q_i . k_j, 0) v_j`` per head, on ``[N, k, d]`` ternary spikes."""
    n, ctx, d = q.shape
    dh = d // heads
    qh = q.reshape(n, ctx, heads, dh).transpose(0, 2, 1, 3)
    kh = k.reshape(n, ctx, heads, dh).transpose(0, 2, 1, 3)
    vh = v.reshape(n, ctx, heads, dh).transpose(0, 2, 1, 3)
    scores = np.maximum(qh @ kh.transpose(0, 1, 3, 2), 0)
    scores = scores * np.tril(np.ones((ctx, ctx), dtype=np.int64))
    return (scores @ vh).transpose(0, 2, 1, 3).reshape(n, ctx, d)


@dataclass(frozen=True)
class TransformerTrace:
    """Logits of every position ``[N, k, 256]``, spikes and the largest magnitudes seen."""

    logits: np.ndarray
    spikes: tuple[np.ndarray, ...]  # each [N, T, k, width], in neuron order
    names: tuple[str, ...]
    peaks: dict

    def firing_rates(self) -> list[float]:
        """Fraction of non-zero spikes per neuron population."""
        return [float(np.count_nonzero(s)) / max(1, s.size) for s in self.spikes]


def forward(model: IntTransformer, ids, trace: bool = False, all_positions: bool = False):
    """Integer logits of the last position ``[N, 256]`` for contexts ``ids[N, k]``.

    ``all_positions`` returns ``[N, k, 256]``; ``trace`` a :class:`TransformerTrace`.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] != model.context:
        raise ContractError(f"ids must have shape [N, {model.context}], not {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= VOCAB):
        raise ContractError(f"token ids must lie in 0..{VOCAB - 1}")
    n, steps = ids.shape[0], model.timesteps
    x0 = model.tok_embed[ids] + model.pos_embed[None]
    names = []
    for index in range(len(model.blocks)):
        names += [f"b{index}.{p}" for p in ("norm1", "q", "k", "v", "attn", "norm2", "ff1")]
    names.append("norm_f")
    membranes: dict[str, np.ndarray | int] = dict.fromkeys(names, 0)
    spikes = {name: [] for name in names}
    peaks = {"residual": 0, "membrane": 0, "attn_current": 0, "logit": 0}
    logits = np.zeros((n, model.context, VOCAB), dtype=np.int64)

    def neuron(name, current, threshold, reset):
        s, membranes[name], v = _step(membranes[name], current, threshold, reset)
        peaks["membrane"] = max(peaks["membrane"], int(np.abs(v).max(initial=0)))
        spikes[name].append(s)
        return s

    for _ in range(steps):
        x = x0
        for index, block in enumerate(model.blocks):
            pre = f"b{index}."
            peaks["residual"] = max(peaks["residual"], int(np.abs(x).max(initial=0)))
            s = neuron(pre + "norm1", x + block.norm1.bias, block.norm1.threshold,
                       block.norm1.reset)
            q, k, v = (neuron(pre + name, accumulate(s, layer.weight) + layer.bias,
                              layer.threshold, layer.reset)
                       for name, layer in (("q", block.q), ("k", block.k), ("v", block.v)))
            a = attention_current(q, k, v, model.heads)
            peaks["attn_current"] = max(peaks["attn_current"], int(np.abs(a).max(initial=0)))
            o = neuron(pre + "attn", a, block.attn_threshold[:, None],
                       block.attn_reset[:, None])
            x = x + shift_round(accumulate(o, block.out.weight), block.out.shift)
            peaks["residual"] = max(peaks["residual"], int(np.abs(x).max(initial=0)))
            s = neuron(pre + "norm2", x + block.norm2.bias, block.norm2.threshold,
                       block.norm2.reset)
            h = neuron(pre + "ff1", accumulate(s, block.ff1.weight) + block.ff1.bias,
                       block.ff1.threshold, block.ff1.reset)
            x = x + shift_round(accumulate(h, block.ff2.weight), block.ff2.shift)
        peaks["residual"] = max(peaks["residual"], int(np.abs(x).max(initial=0)))
        s = neuron("norm_f", x + model.norm_f.bias, model.norm_f.threshold, model.norm_f.reset)
        logits += accumulate(s, model.readout.weight) + model.readout.bias
        peaks["logit"] = max(peaks["logit"], int(np.abs(logits).max(initial=0)))
    out = logits if all_positions else logits[:, -1]
    if trace:
        stacked = tuple(np.stack(spikes[name], axis=1) for name in names)
        return TransformerTrace(logits, stacked, tuple(names), peaks)
    return out


# ---------------------------------------------------------------- range analysis


@dataclass(frozen=True)
class TransformerWidths:
    """Worst-case magnitudes and the signed register widths that hold them."""

    residual_bound: int
    membrane_bound: int
    attn_current_bound: int
    score_bound: int
    logit_bound: int

    @property
    def residual(self) -> int:
        return signed_bits(self.residual_bound)

    @property
    def membrane(self) -> int:
        return signed_bits(self.membrane_bound)

    @property
    def attn_current(self) -> int:
        return signed_bits(self.attn_current_bound)

    @property
    def score(self) -> int:
        return signed_bits(self.score_bound)

    @property
    def logit(self) -> int:
        return signed_bits(self.logit_bound)


def _proj_bound(proj: IntOutProj) -> int:
    acc = int(np.abs(proj.weight).sum(axis=1).max(initial=0))
    return int(shift_round(np.array(acc), proj.shift))


def _norm_bound(norm: IntNorm, residual: int, steps: int) -> int:
    overshoot = int(np.maximum(norm.reset - norm.threshold, 0).max(initial=0))
    return steps * (residual + int(np.abs(norm.bias).max(initial=0))) + overshoot


def derive_transformer_widths(model: IntTransformer) -> TransformerWidths:
    """Bounds that no input can exceed (see docs/transformer.md, "Widths")."""
    steps = model.timesteps
    residual = int(np.abs(model.tok_embed).max(initial=0)) + int(
        np.abs(model.pos_embed).max(initial=0))
    residual_peak = residual
    membranes = []
    attn = 0
    dh = model.head_dim
    for block in model.blocks:
        membranes.append(_norm_bound(block.norm1, residual, steps))
        membranes += [layer_bound(layer, steps) for layer in (block.q, block.k, block.v)]
        a = model.context * dh
        attn = max(attn, a)
        overshoot = int(np.maximum(block.attn_reset - block.attn_threshold, 0).max(initial=0))
        membranes.append(steps * a + overshoot)
        residual += _proj_bound(block.out)
        residual_peak = max(residual_peak, residual)
        membranes.append(_norm_bound(block.norm2, residual, steps))
        membranes.append(layer_bound(block.ff1, steps))
        residual += _proj_bound(block.ff2)
        residual_peak = max(residual_peak, residual)
    membranes.append(_norm_bound(model.norm_f, residual, steps))
    return TransformerWidths(
        residual_bound=residual_peak,
        membrane_bound=max(membranes),
        attn_current_bound=attn,
        score_bound=dh,
        logit_bound=steps * step_input_bound(model.readout),
    )
