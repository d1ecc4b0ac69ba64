"""One reference function per op: the integer forward pass of every op a graph can hold.

Tensors between ops are int64 ``[N, T, L, width]``: ``N`` byte streams, ``T`` time steps,
``L`` positions of the stream. Every op is position-wise except the embeddings (which read the
byte ids) and attention (which reads the keys and values of earlier positions). Everything is
adds, subtracts, compares and constant shifts; the products below are of ternary spikes and
integers, which hardware does as add, subtract or skip. See docs/integer-contract.md.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LEAK_TERMS",
    "VOCAB",
    "ContractError",
    "accumulate",
    "attention",
    "attention_current",
    "check_streams",
    "fire",
    "int_array",
    "key_counts",
    "leak",
    "next_token",
    "pool",
    "readout",
    "residual_add",
    "attention_blocks",
    "score_bias_index",
    "shift_round",
    "spike_embed",
    "token_embed",
    "weight_limit",
    "window_mask",
]

VOCAB = 256
#: terms of every leak multiplier (:func:`leak`): ``x (2^a ± 2^b)``
LEAK_TERMS = 2


class ContractError(ValueError):
    """An integer model that breaks the contract (a shape, a range or a sign is off)."""


def int_array(name: str, value, ndim: int) -> np.ndarray:
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



def check_streams(ids) -> np.ndarray:
    """``ids`` as int64 byte streams ``[N, L]``; :class:`ContractError` if they are not."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] < 1:
        raise ContractError(f"ids must have shape [N, L] with L >= 1, not {ids.shape}")
    if ids.size and ids.dtype.kind not in "iu":
        raise ContractError(f"token ids must be integers, not {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= VOCAB):
        raise ContractError(f"token ids must lie in 0..{VOCAB - 1}")
    return ids.astype(np.int64)


def spike_embed(table: np.ndarray, context: int, ids, last_only: bool = False) -> np.ndarray:
    """Spikes of the last ``context`` bytes, concatenated: ``[N, T, L, context*E]``.

    ``table`` is ``[256, T, E]`` (entries in {-1, 0, 1}). Position ``i`` holds the rows of bytes
    ``i - context + 1 .. i``, the oldest first (spike ``p*E + e`` of byte ``p`` of the window);
    before the stream's start the byte is 0, the "start of file" the corpus puts before every
    file. ``last_only`` computes the last position alone (``L = 1``).
    """
    ids = check_streams(ids)
    n, length = ids.shape
    padded = np.concatenate([np.zeros((n, context - 1), dtype=np.int64), ids], axis=1)
    first = length - 1 if last_only else 0
    windows = padded[:, np.arange(first, length)[:, None] + np.arange(context)[None, :]]
    spikes = table[windows]  # [N, L, k, T, E]
    steps, width = table.shape[1], context * table.shape[2]
    return spikes.transpose(0, 3, 1, 2, 4).reshape(n, steps, length - first, width)


def token_embed(table: np.ndarray, ids, timesteps: int, last_only: bool = False) -> np.ndarray:
    """The residual at the input: ``x = table[byte]`` at every step, ``[N, T, L, d]``."""
    ids = check_streams(ids)
    if last_only:
        ids = ids[:, -1:]
    return np.repeat(np.asarray(table, dtype=np.int64)[ids][:, None], timesteps, axis=1)


_EXACT = 1 << 53  # every integer below this magnitude is a float64


def accumulate(spikes: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``A[..., j] = sum_i W[j, i] * S[..., i]``: adds, subtracts and skips.

    Computed in float64 (BLAS) when no partial sum can reach 2^53: every product and partial
    sum is then an integer a float64 holds exactly, so the result is the int64 sum, found tens
    of times faster than NumPy's integer matmul. Otherwise in int64.
    """
    spikes = np.asarray(spikes, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.int64)
    bound = (int(np.abs(spikes).max(initial=0)) * int(np.abs(weight).max(initial=0))
             * max(1, weight.shape[-1]))
    if bound < _EXACT:
        return (spikes.astype(np.float64) @ weight.T.astype(np.float64)).astype(np.int64)
    return spikes @ weight.T


def leak(x: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """A constant multiplier as shifts and adds: ``sum_j sign_j * shift_round(x, e_j)``.

    ``terms`` is ``[J, 2]`` of ``(sign, e)`` with ``sign`` in {-1, 0, 1}; each term is ``x``
    shifted left by ``e`` or, for ``e < 0``, right with rounding half up (:func:`shift_round`).
    No terms with a non-zero sign: the value is 0 (a hard reset).
    """
    x = np.asarray(x, dtype=np.int64)
    out = np.zeros_like(x)
    for sign, e in np.asarray(terms, dtype=np.int64).reshape(-1, 2):
        if sign:
            out = out + int(sign) * shift_round(x, int(e))
    return out


def fire(currents: np.ndarray, bias, threshold, reset, membranes: bool = False, *,
         per_step: bool = False, leaks: np.ndarray | None = None, binary: bool = False):
    """Integrate-and-fire with soft reset and leak over axis 1 (time) of ``currents[N, T, ...]``.

    ``V = U + I + B; s = [V >= Θ] - [V <= -Θ]; U = Λ_s(V - R s)`` with ``U = 0`` before step 0.
    ``bias``, ``threshold`` and ``reset`` are integers or arrays that broadcast against one time
    step ``currents[:, t]`` (per neuron, per channel or per position constants); with
    ``per_step`` each has a leading time axis and step ``t`` reads entry ``t``. ``leaks``
    ``[T - 1, 3, J, 2]`` is the multiplier :func:`leak` applied after step ``t`` by the spike
    ``s`` (index ``s + 1``); ``None`` is the identity (the plain soft-reset neuron). ``binary``
    spikes are never negative. Returns the spikes, or with ``membranes`` the pair (spikes,
    ``V`` of every step before its reset), which the range analysis is checked against.
    """
    currents = np.asarray(currents, dtype=np.int64)
    consts = [np.asarray(c, dtype=np.int64) for c in (bias, threshold, reset)]
    membrane = np.zeros_like(currents[:, 0])
    spikes = np.zeros_like(currents)
    before_reset = np.zeros_like(currents)
    for t in range(currents.shape[1]):
        b, th, r = (c[t] for c in consts) if per_step else consts
        v = membrane + currents[:, t] + b
        s = (v >= th).astype(np.int64)
        if not binary:
            s = s - (v <= -th).astype(np.int64)
        membrane = v - r * s
        if leaks is not None and t + 1 < currents.shape[1]:
            after = [leak(membrane, leaks[t, k]) for k in range(3)]
            membrane = np.where(s > 0, after[2], np.where(s < 0, after[0], after[1]))
        spikes[:, t] = s
        before_reset[:, t] = v
    return (spikes, before_reset) if membranes else spikes


def shift_round(acc: np.ndarray, shift: int) -> np.ndarray:
    """``acc * 2^shift``: a left shift, or for ``shift < 0`` ``floor(acc / 2^-shift + 1/2)``."""
    acc = np.asarray(acc, dtype=np.int64)
    if shift >= 0:
        return acc << shift
    return (acc + (1 << (-shift - 1))) >> (-shift)


#: queries a causal attention computes at a time (each against its ``QUERY_BLOCK + W - 1`` keys:
#: memory linear in the stream's length)
QUERY_BLOCK = 64


def window_mask(length: int, window: int, causal: bool = True) -> np.ndarray:
    """``[L, L]`` bool: position ``i`` sees key ``j`` when ``i - window < j <= i``; without
    ``causal``, every key of the stream (at most ``window`` positions)."""
    distance = np.arange(length)[:, None] - np.arange(length)[None, :]
    if not causal:
        _check_bidirectional(length, window)
        return np.ones((length, length), dtype=bool)
    return (distance >= 0) & (distance < window)


def key_counts(length: int, window: int, causal: bool = True) -> np.ndarray:
    """Keys seen by each of ``length`` positions: ``min(i + 1, window)``; without ``causal``,
    all ``length`` of them."""
    if not causal:
        _check_bidirectional(length, window)
        return np.full(length, length)
    return np.minimum(np.arange(length) + 1, window)


def _check_bidirectional(length: int, window: int) -> None:
    if length > window:
        raise ContractError(f"a bidirectional attention reads at most {window} positions (its"
                            f" window), not {length}; give sequences of at most {window} bytes")


def score_bias_index(length: int, window: int, causal: bool = True) -> np.ndarray:
    """``[L, L]`` column of the score bias that key ``j`` of position ``i`` reads: the distance
    ``i - j`` clipped into ``0..W-1``, or without ``causal`` ``i - j + W - 1`` (a bias of
    ``2W - 1`` entries, one per signed distance)."""
    distance = np.arange(length)[:, None] - np.arange(length)[None, :]
    if not causal:
        _check_bidirectional(length, window)
        return distance + window - 1
    return np.clip(distance, 0, window - 1)


def attention_blocks(length: int, window: int, causal: bool = True):
    """The blocks an attention over ``length`` positions is computed in: for each,
    ``(queries, keys, column, seen)``, the slices of the queries and of the keys they read,
    the score-bias column of each pair (:func:`score_bias_index`) and the pairs inside the
    window (:func:`window_mask`). A causal attention: :data:`QUERY_BLOCK` queries against
    their ``QUERY_BLOCK + W - 1`` keys; a bidirectional one: one block."""
    if not causal:
        _check_bidirectional(length, window)
        yield slice(0, length), slice(0, length), score_bias_index(length, window, False), True
        return
    for start in range(0, length, QUERY_BLOCK):
        stop = min(length, start + QUERY_BLOCK)
        first = max(0, start - window + 1)
        distance = np.arange(start, stop)[:, None] - np.arange(first, stop)[None, :]
        yield (slice(start, stop), slice(first, stop), np.clip(distance, 0, window - 1),
               (distance >= 0) & (distance < window))


def attention_current(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int,
                      score_bias: np.ndarray | None = None,
                      window: int | None = None, causal: bool = True) -> np.ndarray:
    """``a_i = sum_j max(q_i . k_j + P[h, i - j], 0) v_j`` per head over the window, a block of
    :data:`QUERY_BLOCK` queries at a time.

    ``q``, ``k``, ``v`` are ternary ``[..., L, d]``; ``score_bias`` is ``[heads, window]``, or
    per step ``[T, heads, window]`` for ``[N, T, L, d]`` inputs (step ``t`` adds row ``t``);
    zero if None; ``window`` defaults to ``L`` (plain causal attention). Without ``causal``
    position ``i`` reads every position of the stream, before and after it (an encoder), and
    the score bias is ``[(T,) heads, 2 window - 1]`` by ``i - j + W - 1``.
    """
    q, k, v = (np.asarray(x, dtype=np.int64) for x in (q, k, v))
    *lead, length, d = q.shape
    window = length if window is None else window
    dh = d // heads
    bias = None if score_bias is None else np.asarray(score_bias, dtype=np.int64)

    def split(x):
        return np.swapaxes(x.reshape(*x.shape[:-2], x.shape[-2], heads, dh), -3, -2)

    q, k, v = split(q), split(k), split(v)  # [..., H, L, dh]
    blocks = []
    for queries, keys, column, seen in attention_blocks(length, window, causal):
        scores = q[..., queries, :] @ np.swapaxes(k[..., keys, :], -1, -2)
        if bias is not None:
            scores = scores + bias[..., column]  # [(T,) H, Lq, Lk]
        blocks.append((np.maximum(scores, 0) * seen) @ v[..., keys, :])
    out = np.concatenate(blocks, axis=-2)  # [..., H, L, dh]
    return np.swapaxes(out, -3, -2).reshape(*lead, length, d)


def attention(q, k, v, heads: int, score_bias: np.ndarray, threshold: np.ndarray,
              reset: np.ndarray, membranes: bool = False, *, leaks: np.ndarray | None = None,
              binary: bool = False, causal: bool = True):
    """Windowed ReLU attention and its neuron: ``IF(a_i; Θ[n_i - 1], R[n_i - 1])``.

    ``score_bias`` is ``[heads, W]`` by distance, ``threshold`` and ``reset`` ``[W]`` by the
    number of keys ``n_i = min(i + 1, W)`` a position sees (the ``1/n`` of an average, folded
    in). Without ``causal`` (an encoder) every position sees the ``n_i = L`` positions of the
    stream and the score bias is ``[heads, 2W - 1]`` by signed distance. The elastic neuron's
    options: a per-step score bias ``[T, heads, W]``, per-step constants ``[T, W]``, ``leaks``
    ``[T - 1, 3, J, 2]`` and ``binary`` spikes, as :func:`fire`'s. With ``membranes``,
    returns (spikes, membranes, current).
    """
    window = np.asarray(threshold).shape[-1]
    current = attention_current(q, k, v, heads, score_bias, window, causal)
    counts = key_counts(current.shape[-2], window, causal) - 1
    threshold, reset = (np.asarray(c, dtype=np.int64) for c in (threshold, reset))
    per_step = threshold.ndim == 2 or reset.ndim == 2
    bias = np.zeros((current.shape[1], 1, 1) if per_step else (), dtype=np.int64)
    if per_step:
        steps = current.shape[1]
        threshold, reset = (np.broadcast_to(c, (steps, window)) for c in (threshold, reset))
    spikes, v_mem = fire(current, bias, threshold[..., counts, None], reset[..., counts, None],
                         membranes=True, per_step=per_step, leaks=leaks, binary=binary)
    return (spikes, v_mem, current) if membranes else spikes


def residual_add(x: np.ndarray, spikes: np.ndarray, weight: np.ndarray, shift: int,
                 scale: np.ndarray | None = None) -> np.ndarray:
    """``x + shift_round(W S, shift)``: a projection joins the residual by a constant shift;
    with ``scale`` ``[T, J, 2]`` by a constant multiplier per step instead,
    ``x + leak(W S_t, scale[t])`` (:func:`leak`: shifts and adds; spikes of per-step
    amplitudes)."""
    acc = accumulate(spikes, weight)
    if scale is None:
        return np.asarray(x, dtype=np.int64) + shift_round(acc, shift)
    scaled = np.stack([leak(acc[:, t], scale[t]) for t in range(acc.shape[1])], axis=1)
    return np.asarray(x, dtype=np.int64) + scaled


def readout(spikes: np.ndarray, weight: np.ndarray, bias: np.ndarray,
            leaks: np.ndarray | None = None, partial: bool = False) -> np.ndarray:
    """Logits ``sum_t (W S_t + B)``: ``[N, T, ..., n_in]`` to ``[N, ..., 256]``.

    ``bias`` is ``[256]`` or per step ``[T, 256]``. With ``leaks`` ``[T - 1, J, 2]`` the running
    sum is rescaled between steps: ``L_t = leak(L_{t-1}, leaks[t-1]) + W S_t + B_t`` (the
    readout of per-step amplitudes). ``partial`` returns every ``L_t`` ``[N, T, ..., 256]``.
    """
    per_step = accumulate(spikes, weight)
    bias = np.asarray(bias, dtype=np.int64)
    if bias.ndim == 2:
        bias = bias.reshape(1, bias.shape[0], *([1] * (per_step.ndim - 3)), bias.shape[1])
    per_step = per_step + bias
    if leaks is None:
        sums = np.cumsum(per_step, axis=1)
    else:
        sums = per_step.copy()
        for t in range(1, per_step.shape[1]):
            sums[:, t] += leak(sums[:, t - 1], leaks[t - 1])
    return sums if partial else sums[:, -1]


def pool(logits: np.ndarray) -> np.ndarray:
    """The sum of every position's logits, ``[N, L, C]`` to ``[N, 1, C]``: a sequence's class
    logits from its positions' (mean pooling, its ``1 / L`` in the logit scale)."""
    return np.asarray(logits, dtype=np.int64).sum(axis=1, keepdims=True)


def next_token(logits: np.ndarray) -> np.ndarray:
    """The predicted byte: arg-max of the logits, the lowest index on ties."""
    return np.argmax(logits, axis=-1)
