"""The spiking transformer in integers: model, forward pass and range analysis (NumPy only).

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

from .intmodel import VOCAB, ContractError, Readout, SpikingLayer, _int_array, weight_limit
from .reference import accumulate, fire, next_token
from .widths import layer_bound, signed_bits, step_input_bound

__all__ = [
    "IntBlock",
    "IntNorm",
    "IntOutProj",
    "IntTransformer",
    "TransformerTrace",
    "TransformerWidths",
    "attention_current",
    "derive_transformer_widths",
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

    @property
    def population_names(self) -> tuple[str, ...]:
        """The spiking populations in the order of :attr:`TransformerTrace.spikes`."""
        names = []
        for index in range(len(self.blocks)):
            names += [f"b{index}.{p}" for p in ("norm1", "q", "k", "v", "attn", "norm2", "ff1")]
        return (*names, "norm_f")


def shift_round(acc: np.ndarray, shift: int) -> np.ndarray:
    """``acc * 2^shift``: a left shift, or for ``shift < 0`` ``floor(acc / 2^-shift + 1/2)``."""
    acc = np.asarray(acc, dtype=np.int64)
    if shift >= 0:
        return acc << shift
    return (acc + (1 << (-shift - 1))) >> (-shift)


def window_mask(length: int, window: int) -> np.ndarray:
    """``[L, L]`` bool: position ``i`` sees key ``j`` when ``i - window < j <= i``."""
    distance = np.arange(length)[:, None] - np.arange(length)[None, :]
    return (distance >= 0) & (distance < window)


def key_counts(length: int, window: int) -> np.ndarray:
    """Keys seen by each of ``length`` positions: ``min(i + 1, window)``."""
    return np.minimum(np.arange(length) + 1, window)


def attention_current(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int,
                      score_bias: np.ndarray | None = None,
                      window: int | None = None) -> np.ndarray:
    """``a_i = sum_j max(q_i . k_j + P[h, i - j], 0) v_j`` per head over the window.

    ``q``, ``k``, ``v`` are ternary ``[..., L, d]``; ``score_bias`` is ``[heads, window]``
    (zero if None); ``window`` defaults to ``L`` (plain causal attention).
    """
    q, k, v = (np.asarray(x, dtype=np.int64) for x in (q, k, v))
    *lead, length, d = q.shape
    window = length if window is None else window
    dh = d // heads

    def split(x):
        return np.swapaxes(x.reshape(*lead, length, heads, dh), -3, -2)  # [..., H, L, dh]

    scores = split(q) @ np.swapaxes(split(k), -1, -2)  # [..., H, L, L]
    distance = np.arange(length)[:, None] - np.arange(length)[None, :]
    if score_bias is not None:
        bias = np.asarray(score_bias, dtype=np.int64)
        scores = scores + bias[:, np.clip(distance, 0, window - 1)]
    scores = np.maximum(scores, 0) * window_mask(length, window)
    out = scores @ split(v)  # [..., H, L, dh]
    return np.swapaxes(out, -3, -2).reshape(*lead, length, d)


@dataclass(frozen=True)
class TransformerTrace:
    """Logits of every position ``[N, L, 256]``, spikes and the largest magnitudes seen."""

    logits: np.ndarray
    spikes: tuple[np.ndarray, ...]  # each [N, T, L, width], in neuron order
    names: tuple[str, ...]
    peaks: dict
    tensors: dict | None = None  # every named tensor, when an interpreter keeps them

    def firing_rates(self) -> list[float]:
        """Fraction of non-zero spikes per neuron population."""
        return [float(np.count_nonzero(s)) / max(1, s.size) for s in self.spikes]


def _check_ids(ids) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] < 1:
        raise ContractError(f"ids must have shape [N, L] with L >= 1, not {ids.shape}")
    if ids.dtype.kind not in "iu":
        raise ContractError(f"token ids must be integers, not {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= VOCAB):
        raise ContractError(f"token ids must lie in 0..{VOCAB - 1}")
    return ids.astype(np.int64)


def forward(model: IntTransformer, ids, trace: bool = False, all_positions: bool = False):
    """Integer logits of the last position ``[N, 256]`` for byte streams ``ids[N, L]``.

    Every stream starts with an empty key/value window. ``all_positions`` returns
    ``[N, L, 256]``; ``trace`` a :class:`TransformerTrace` (all positions).
    """
    ids = _check_ids(ids)
    length, steps, window = ids.shape[1], model.timesteps, model.context
    peaks = {"residual": 0, "membrane": 0, "attn_current": 0, "logit": 0}
    spikes = []

    def peak(name, value):
        peaks[name] = max(peaks[name], int(np.abs(value).max(initial=0)))

    def neuron(current, bias, threshold, reset):
        s, v = fire(current, bias, threshold, reset, membranes=True)
        peak("membrane", v)
        spikes.append(s)
        return s

    def norm(x, n: IntNorm):
        return neuron(x, n.bias, n.threshold, n.reset)

    def linear(s, layer: SpikingLayer):
        return neuron(accumulate(s, layer.weight), layer.bias, layer.threshold, layer.reset)

    counts = key_counts(length, window) - 1
    x = np.repeat(model.tok_embed[ids][:, None], steps, axis=1)  # [N, T, L, d]
    for block in model.blocks:
        peak("residual", x)
        s = norm(x, block.norm1)
        q, k, v = linear(s, block.q), linear(s, block.k), linear(s, block.v)
        a = attention_current(q, k, v, model.heads, block.score_bias, window)
        peak("attn_current", a)
        o = neuron(a, 0, block.attn_threshold[counts][:, None], block.attn_reset[counts][:, None])
        x = x + shift_round(accumulate(o, block.out.weight), block.out.shift)
        peak("residual", x)
        h = linear(norm(x, block.norm2), block.ff1)
        x = x + shift_round(accumulate(h, block.ff2.weight), block.ff2.shift)
    peak("residual", x)
    s = norm(x, model.norm_f)
    per_step = accumulate(s, model.readout.weight) + model.readout.bias  # [N, T, L, 256]
    logits = per_step.sum(axis=1)
    peak("logit", np.cumsum(per_step, axis=1))
    if trace:
        return TransformerTrace(logits, tuple(spikes), model.population_names, peaks)
    return logits if all_positions else logits[:, -1]


def generate(model: IntTransformer, prompt, tokens: int) -> list[int]:
    """Greedy generation: ``tokens`` bytes after ``prompt``, each the arg-max (lowest index on
    ties) of the logits of the stream so far; the stream starts empty before the prompt."""
    stream = [int(b) for b in prompt]
    if not stream:
        raise ContractError("the prompt must hold at least one byte")
    if tokens < 0:
        raise ContractError(f"tokens must be non-negative, not {tokens}")
    out = []
    for _ in range(tokens):
        byte = int(next_token(forward(model, np.array([stream])))[0])
        out.append(byte)
        stream.append(byte)
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


def _attention_bound(block: IntBlock, head_dim: int) -> int:
    """``max_h sum_δ max(0, d_h + P[h, δ])``: every key at its best score, every value 1."""
    return int(np.maximum(head_dim + block.score_bias, 0).sum(axis=1).max(initial=0))


def derive_transformer_widths(model: IntTransformer) -> TransformerWidths:
    """Bounds that no input can exceed (see docs/transformer.md, "Widths")."""
    steps = model.timesteps
    residual = int(np.abs(model.tok_embed).max(initial=0))
    residual_peak = residual
    membranes = []
    attn = 0
    score = 0
    dh = model.head_dim
    for block in model.blocks:
        membranes.append(_norm_bound(block.norm1, residual, steps))
        membranes += [layer_bound(layer, steps) for layer in (block.q, block.k, block.v)]
        a = _attention_bound(block, dh)
        attn = max(attn, a)
        score = max(score, dh + int(np.abs(block.score_bias).max(initial=0)))
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
        score_bound=score,
        logit_bound=steps * step_input_bound(model.readout),
    )
