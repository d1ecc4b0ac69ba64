"""Seeded random integer models, for tests and fuzzing (no training needed)."""

from __future__ import annotations

import numpy as np

from .ops import VOCAB, weight_limit
from .zoo import IntModel, Readout, SpikingLayer

__all__ = ["random_graph", "random_model"]


def random_model(
    seed: int,
    *,
    context: int = 3,
    embed_dim: int = 4,
    hidden: tuple[int, ...] = (7,),
    timesteps: int = 4,
    weight_bits: int = 8,
    density: float = 0.4,
) -> IntModel:
    """A random model whose thresholds make its layers fire at a plausible rate."""
    rng = np.random.default_rng(seed)
    limit = weight_limit(weight_bits)
    p = [density / 2, 1 - density, density / 2]
    table = rng.choice([-1, 0, 1], size=(VOCAB, timesteps, embed_dim), p=p)
    n_in = context * embed_dim
    layers = []
    for n_out in hidden:
        weight = rng.integers(-limit, limit + 1, size=(n_out, n_in))
        typical = max(1, int(np.sqrt(density * n_in) * max(1, limit) * 0.6))
        bias = rng.integers(-typical // 2, typical // 2 + 1, size=n_out)
        reset = int(rng.integers(typical, 2 * typical + 2))
        layers.append(SpikingLayer(weight, bias, threshold=reset // 2 + 1, reset=reset))
        n_in = n_out
    weight = rng.integers(-limit, limit + 1, size=(VOCAB, n_in))
    bias = rng.integers(-limit, limit + 1, size=VOCAB)
    return IntModel(
        context=context,
        embed_dim=embed_dim,
        timesteps=timesteps,
        weight_bits=weight_bits,
        spike_table=table,
        layers=tuple(layers),
        readout=Readout(weight, bias),
    )


class _Builder:
    """Grows a random graph op by op, running each op on probe streams so that every neuron's
    threshold can be set from the currents it really sees (a plausible firing rate)."""

    def __init__(self, rng, timesteps: int, weight_bits: int, probe_length: int,
                 elastic: bool = False):
        from . import graph as g

        self.g = g
        self.rng = rng
        self.elastic = elastic
        self.timesteps = timesteps
        self.limit = weight_limit(weight_bits)
        self.ops: list = []
        self.env = {"input": rng.integers(0, VOCAB, size=(4, probe_length))}
        self.widths: dict[str, int] = {}

    def add(self, op) -> str:
        from .graph import _Peaks

        value = op.evaluate([self.env[t] for t in op.inputs], self, _Peaks(), False)
        self.env[op.output] = value
        self.widths[op.output] = op.width()
        self.ops.append(op)
        return op.output

    def name(self, stem: str) -> str:
        return f"{stem}{len(self.ops)}"

    def weight(self, n_out: int, n_in: int):
        return self.rng.integers(-self.limit, self.limit + 1, size=(n_out, n_in))

    def _constants(self, current, per_channel: bool):
        """Bias, threshold and reset from the first step's currents: reset about 2 mean|I|."""
        scale = np.abs(current[:, 0]).reshape(-1, current.shape[-1]).mean(axis=0) + 1
        typical = np.maximum(1, np.rint(scale)).astype(np.int64)
        if not per_channel:
            typical = np.array(max(1, int(np.rint(typical.mean()))))
        reset = typical + self.rng.integers(0, typical + 1)
        bias = self.rng.integers(-(typical.max() // 2), typical.max() // 2 + 1,
                                 size=current.shape[-1])
        return bias, reset // 2 + 1, reset

    def leak(self, codes: int, spikelm: bool):
        """Random leak terms ``[T - 1, codes, 2, 2]``: a factor near 1 (spikelm: near 1/2 and
        a hard reset after a +1 spike)."""
        rng = self.rng
        leak = np.zeros((self.timesteps - 1, codes, 2, 2), dtype=np.int64)
        leak[..., 0, 0] = 1
        leak[..., 0, 1] = rng.integers(-2, 1, size=leak.shape[:2]) if spikelm else 0
        leak[..., 1, 0] = rng.integers(-1, 2, size=leak.shape[:2])
        leak[..., 1, 1] = leak[..., 0, 1] - rng.integers(1, 4, size=leak.shape[:2])
        if spikelm:
            leak[:, 2] = 0
        return leak

    def fire(self, tensor: str, per_channel: bool) -> str:
        bias, threshold, reset = self._constants(self.env[tensor], per_channel)
        extra = {}
        if self.elastic:
            rng, steps, n = self.rng, self.timesteps, self.env[tensor].shape[-1]
            spikelm = bool(rng.integers(2))
            if rng.integers(2):  # one row of constants per step
                scale = rng.uniform(0.5, 1.5, size=(steps, 1))
                reset = np.maximum(1, np.rint(np.broadcast_to(reset, (n,)) * scale)).astype(
                    np.int64)
                bias = np.broadcast_to(bias, (steps, n)) + rng.integers(-1, 2, size=(steps, n))
                threshold = reset // 2 + 1
            if spikelm:
                reset = np.zeros_like(reset)
            extra = {"leak": self.leak(3, spikelm) if spikelm or rng.integers(2) else None,
                     "binary": bool(rng.integers(3) == 0)}
        return self.add(self.g.Fire(self.name("fire"), (tensor,), self.name("s"), bias=bias,
                                    threshold=threshold, reset=reset, **extra))

    def linear(self, spikes: str, n_out: int) -> str:
        acc = self.add(self.g.Accumulate(self.name("acc"), (spikes,), self.name("a"),
                                         weight=self.weight(n_out, self.widths[spikes])))
        return self.fire(acc, per_channel=False)


def random_graph(seed: int, *, embed: str = "token", context: int = 2, width: int = 8,
                 timesteps: int = 3, weight_bits: int = 8, hidden: tuple[int, ...] = (),
                 blocks: tuple[tuple[bool, int], ...] = ((True, 12),), heads: int = 2,
                 window: int = 4, head: tuple[int, ...] = (), spike_attention: bool = False,
                 elastic: bool = False, classes: int = 0):
    """A random composition of the contract's ops (a :class:`contract.graph.Graph`).

    ``embed="spike"``: a ``SpikeEmbed`` of ``context`` bytes and ``width`` spikes each, then the
    spiking layers ``hidden``, optionally an attention over those spikes
    (``spike_attention``), then the layers ``head`` and the readout. ``embed="token"``: a
    residual of ``width`` channels and ``blocks``, each ``(attention, ffn)``: a normalising
    neuron and an attention of ``heads`` heads over a causal ``window`` (if ``attention``), a
    normalising neuron and a feed-forward layer of ``ffn`` (if ``ffn``), each joining the
    residual by a random shift; then a final normalising neuron, ``head`` and the readout.
    Every threshold is set from the currents the neuron sees on random streams. ``elastic``
    gives the neurons of the linear layers, norms and attentions the options of the elastic
    neuron at random (per-step constants, a leak, SpikeLM's hard reset, binary spikes; an
    attention's score bias per step), the residual adds a per-step scale at random and the
    readout per-step biases and a leak. ``classes`` makes an encoder: every attention
    bidirectional over sequences of at most ``window`` bytes, and a readout of ``classes``
    logits per position that a ``Pool`` sums over the sequence.
    """
    rng = np.random.default_rng(seed)
    probe = window if classes else 2 * window + 1
    b = _Builder(rng, timesteps, weight_bits, probe_length=probe, elastic=elastic)
    g = b.g

    def attention(s: str, d: int) -> str:
        q, k, v = (b.linear(s, d) for _ in range(3))
        resets = rng.integers(2, 12, size=window)
        distances = 2 * window - 1 if classes else window
        score_bias = rng.integers(-3, 4, size=(heads, distances))
        threshold, extra = resets // 2 + 1, {}
        if elastic:  # per-step score bias and constants, a leak, SpikeLM's reset, binary
            steps, spikelm = timesteps, bool(rng.integers(2))
            if rng.integers(2):
                score_bias = score_bias + rng.integers(-2, 3, size=(steps, heads, distances))
            if rng.integers(2):
                resets = resets + rng.integers(-1, 3, size=(steps, window))
                threshold = resets // 2 + 1
            if spikelm:
                resets = np.zeros_like(resets)
            extra = {"leak": b.leak(3, spikelm) if spikelm or rng.integers(2) else None,
                     "binary": bool(rng.integers(3) == 0)}
        return b.add(g.Attention(b.name("attn"), (q, k, v), b.name("o"), heads=heads,
                                 score_bias=score_bias, threshold=threshold, reset=resets,
                                 d_model=d, causal=not classes, **extra))

    def residual(x: str, s: str) -> str:
        weight = b.weight(width, b.widths[s])
        shift, scale = int(rng.integers(-4, 1)), None
        if elastic and rng.integers(2):  # a per-step scale 2^a ± 2^b
            scale = np.zeros((timesteps, 2, 2), dtype=np.int64)
            scale[:, 0] = (1, shift)
            scale[:, 0, 1] += rng.integers(-1, 2, size=timesteps)
            scale[:, 1, 0] = rng.integers(-1, 2, size=timesteps)
            scale[:, 1, 1] = scale[:, 0, 1] - rng.integers(1, 4, size=timesteps)
            shift = 0
        return b.add(g.ResidualAdd(b.name("res"), (x, s), b.name("x"),
                                   weight=weight, shift=shift, scale=scale))

    if embed == "spike":
        p = [0.2, 0.6, 0.2]
        table = rng.choice([-1, 0, 1], size=(VOCAB, timesteps, width), p=p)
        s = b.add(g.SpikeEmbed("embed", ("input",), "s0", table=table, context=context))
        for n in hidden:
            s = b.linear(s, n)
        if spike_attention:
            s = attention(s, b.widths[s])
    elif embed == "token":
        table = rng.integers(-127, 128, size=(VOCAB, width))  # 8-bit, whatever the weights
        x = b.add(g.TokenEmbed("embed", ("input",), "x0", table=table))
        for with_attention, ffn in blocks:
            if with_attention:
                x = residual(x, attention(b.fire(x, per_channel=True), width))
            if ffn:
                x = residual(x, b.linear(b.fire(x, per_channel=True), ffn))
        s = b.fire(x, per_channel=True)
    else:
        raise ValueError(f"embed must be 'spike' or 'token', not {embed!r}")
    for n in head:
        s = b.linear(s, n)
    outputs = classes or VOCAB
    bias = rng.integers(-b.limit, b.limit + 1, size=(timesteps, outputs) if elastic else outputs)
    logits = b.add(g.Readout("readout", (s,), "logits" if classes else "output",
                             weight=b.weight(outputs, b.widths[s]), bias=bias,
                             leak=b.leak(1, False)[:, 0] if elastic and timesteps > 1 else None))
    if classes:
        b.add(g.Pool("pool", (logits,), "output", n_outputs=classes))
    return g.Graph(tuple(b.ops), timesteps, weight_bits)

