"""Spiking attention over a causal window: ternary Q, K, V and a neuron per key count.

For spikes ``s`` of width ``d`` at every position ``i`` of a stream::

    q, k, v = IF_q(Wq s), IF_k(Wk s), IF_v(Wv s)                     ternary spikes
    a_i     = sum_{i-W<j<=i} relu(q_i . k_j + P[h, i-j]) v_j / n_i     per head h
    o       = IF_attn(a)                                              n_i = min(i+1, W) keys

``P`` is a learned relative score bias per head and distance, trained on the integer grid
``alpha_q alpha_k`` of the scores; there is no absolute position, so a cached key stays valid
while the window slides. In integers the ``1/n_i`` of the average is a threshold per key count:
``Ra[n] = max(1, round(n alpha_a / (alpha_q alpha_k alpha_v)))``, ``Theta_a[n] = Ra[n] // 2 + 1``
(docs/transformer.md). With the elastic neuron's options (per-step amplitudes, SpikeLM's
neuron, binary spikes; docs/neurons.md) the grid of ``P`` is per step, ``alpha_q,t alpha_k,t``,
and the attention neuron folds like any other (:func:`~model.block.fold_neuron`) with a
membrane unit ``alpha_q,t alpha_k,t alpha_v,t / n`` per step and key count. ``score="softmax"``
replaces the ReLU/count form with
``softmax(tau * q.k + P)``, a float operation; a float twin uses softmax on float Q, K, V.

``causal=False`` is an encoder's attention: every position reads every position of a sequence
of at most ``W`` bytes (``n_i = L``), and ``P`` has one entry per signed distance ``i - j``,
``[heads, 2W - 1]``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from contract import graph as g

from .block import Block, Flow, Widths, check_positive, fold_neuron, step_amplitudes
from .blocks import SpikingLinear
from .errors import ModelConfigError

__all__ = ["SCORES", "SpikingAttention", "attention_window", "causal_window"]

SCORES = ("relu", "softmax")

#: streams longer than this are attended a block of :data:`QUERY_BLOCK` queries at a time
#: (each against its own ``QUERY_BLOCK + W - 1`` keys, recomputed in the backward pass), so that
#: training memory grows linearly with the stream instead of with its square
DENSE_LIMIT = 256
QUERY_BLOCK = 64


def causal_window(length: int, window: int, start: int = 0,
                  first: int = 0, keys: int | None = None, device=None):
    """Distance ``i - j`` clipped into the window, the window mask and the key counts, for the
    queries ``start .. start + length - 1`` against the keys ``first .. first + keys - 1``
    (default: the same positions), on ``device``."""
    keys = length if keys is None else keys
    distance = (torch.arange(start, start + length, device=device)[:, None]
                - torch.arange(first, first + keys, device=device)[None, :])
    mask = (distance >= 0) & (distance < window)
    counts = torch.clamp(torch.arange(start + 1, start + length + 1, device=device), max=window)
    return distance.clamp(0, window - 1), mask, counts


def attention_window(length: int, window: int, causal: bool = True, device=None):
    """:func:`causal_window`, or for a bidirectional attention the signed distance
    ``i - j + W - 1``, every key and ``L`` keys per position."""
    if causal:
        return causal_window(length, window, device=device)
    if length > window:
        raise ModelConfigError(f"a bidirectional attention reads at most {window} positions,"
                               f" not {length}; give sequences of at most {window} bytes")
    distance = (torch.arange(length, device=device)[:, None]
                - torch.arange(length, device=device)[None, :])
    return (distance + window - 1, torch.ones(length, length, dtype=torch.bool, device=device),
            torch.full((length,), length, device=device))


class SpikingAttention(Block):
    """Windowed causal attention of ``heads`` heads over the last ``window`` positions, or with
    ``causal=False`` bidirectional attention over a whole sequence of at most ``window``.

    Holds its Q, K and V layers (:class:`~model.blocks.SpikingLinear`, as wide as the spikes it
    reads); its output has the same width.
    """

    stem = "attn"
    mixes_positions = True

    def __init__(self, heads: int = 2, window: int = 16, score: str = "relu",
                 causal: bool = True, name: str | None = None):
        check_positive(heads=heads, window=window)
        if score not in SCORES:
            raise ModelConfigError(f"attention must be one of {SCORES}, not {score!r}")
        if not isinstance(causal, bool):
            raise ModelConfigError(f"causal must be True or False, not {causal!r}")
        spec = {} if causal else {"causal": False}
        super().__init__(name, heads=heads, window=window, score=score, **spec)
        self.heads, self.window, self.score, self.causal = heads, window, score, causal

    def _build(self, widths):
        self._needs(widths, "spikes")
        d = widths.spikes
        if d % self.heads:
            raise ModelConfigError(f"its {d} input channels must be a multiple of heads"
                                   f" {self.heads}")
        self.width = d
        self.q, self.k, self.v = (SpikingLinear(d) for _ in range(3))
        for layer in (self.q, self.k, self.v):
            layer.build(Widths(spikes=d), self.settings)
        distances = self.window if self.causal else 2 * self.window - 1
        self.score_bias = nn.Parameter(torch.zeros(self.heads, distances))
        self.alpha = self.amplitude()
        self.tau = nn.Parameter(torch.tensor(1.0 / math.sqrt(self.head_dim)))
        return Widths(spikes=d, residual=widths.residual)

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        *lead, length, d = x.shape
        return x.reshape(*lead, length, self.heads, d // self.heads).transpose(-3, -2)

    def score_unit(self) -> torch.Tensor:
        """``alpha_q alpha_k``: a scalar, or one per step ``[T, 1, 1]``."""
        unit = self.q.alpha() * self.k.alpha()
        return unit.reshape(-1, 1, 1) if unit.ndim else unit

    def score_bias_current(self) -> torch.Tensor:
        """``P [heads, W]`` as the scores see it: on the integer grid ``alpha_q alpha_k`` of a
        spiking model (rounded half to even, straight-through; per step ``[T, heads, W]`` with
        per-step amplitudes), as it is for the float twin."""
        if self.settings.float_twin or self.score == "softmax":
            return self.score_bias
        unit = self.score_unit().detach()
        grid = unit * torch.round(self.score_bias / unit)
        return self.score_bias + (grid - self.score_bias).detach()

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Windowed attention on ``[..., L, d]`` tensors; per time step when spiking. A causal
        stream longer than :data:`DENSE_LIMIT` is attended in blocks of queries (the same
        values, memory linear in ``L``)."""
        q, k, v = self._split(q), self._split(k), self._split(v)
        length = q.shape[-2]
        if not self.causal or length <= DENSE_LIMIT:
            out = self._attend(q, k, v, *attention_window(length, self.window, self.causal,
                                                           device=q.device))
        else:
            blocks = []
            for start in range(0, length, QUERY_BLOCK):
                stop = min(length, start + QUERY_BLOCK)
                first = max(0, start - self.window + 1)
                window = causal_window(stop - start, self.window, start, first, stop - first,
                                       device=q.device)
                blocks.append(checkpoint(self._attend, q[..., start:stop, :],
                                         k[..., first:stop, :], v[..., first:stop, :], *window,
                                         use_reentrant=False))
            out = torch.cat(blocks, dim=-2)
        return out.transpose(-3, -2).reshape(*out.shape[:-3], length, self.width)

    def _attend(self, q, k, v, distance, mask, counts) -> torch.Tensor:
        """Attention of split queries ``[..., H, Lq, dh]`` on split keys and values ``[..., H,
        Lk, dh]``, with :func:`causal_window`'s distances, mask and counts."""
        scores = q @ k.transpose(-1, -2)
        bias = self.score_bias_current()[..., distance]  # [(T,) H, Lq, Lk]
        if self.settings.float_twin:
            scores = scores / math.sqrt(self.head_dim) + bias
            weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        elif self.score == "softmax":
            unit = self.score_unit()
            scores = self.tau * scores / (unit.unsqueeze(-1) if unit.ndim else unit) + bias
            weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        else:
            count = counts.to(q.dtype).unsqueeze(-1)
            weights = torch.relu(scores + bias).masked_fill(~mask, 0.0) / count
        return weights @ v

    def forward(self, flow: Flow) -> Flow:
        s = flow.spikes
        if self.settings.float_twin:
            flow.spikes = self.attend(self.q.current(s), self.k.current(s), self.v.current(s))
            flow.amplitude = None
            return flow
        q, k, v = (self.fire(flow, layer.current(s), layer.alpha)
                   for layer in (self.q, self.k, self.v))
        flow.spikes = self.fire(flow, self.attend(q, k, v), self.alpha)
        flow.amplitude = self.alpha()
        return flow

    def integer_problem(self):
        if self.score == "softmax":
            return "softmax attention is a float operation; use score='relu' (--attention relu)"
        return None

    def emit(self, e, name):
        spikes, alpha_in = e.spikes, e.amplitude
        outputs = []
        for part in ("q", "k", "v"):
            e.spikes, e.amplitude = spikes, alpha_in
            getattr(self, part).emit(e, f"{name}_{part}")
            outputs.append(e.spikes)
        steps = self.settings.timesteps
        q, k, v = (step_amplitudes(getattr(self, part).alpha.value(), steps)
                   for part in ("q", "k", "v"))
        score_unit = q * k
        score_bias = np.round(self.score_bias.detach().double().numpy()[None]
                              / score_unit[:, None, None]).astype(np.int64)
        if (score_bias == score_bias[0]).all():
            score_bias = score_bias[0]
        counts = np.arange(1, self.window + 1)
        units = (score_unit * v)[:, None] / counts[None, :]  # [T, W]: 1/n folded in
        neuron = fold_neuron(self.settings.neuron, units,
                             step_amplitudes(self.alpha.value(), steps),
                             np.zeros(self.window))
        del neuron["bias"]
        e.spikes = e.add(g.Attention(name, tuple(outputs), f"{name}_s", heads=self.heads,
                                     score_bias=score_bias, d_model=self.width,
                                     causal=self.causal, **neuron))
        e.amplitude = self.alpha.value()
