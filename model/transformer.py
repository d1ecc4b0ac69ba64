"""SpikingTransformer: a byte-level spiking transformer LM, its float twin and its integer form.

The model reads a byte stream; position ``i`` attends to the last ``W = context`` positions
(itself included), so that hardware keeps a key/value cache of ``W`` entries. Per time step
``t`` (every spiking neuron keeps its membrane across steps)::

    r      = E_tok[byte]                                  residual, integer multiples of rho
    per block:
      s    = IF_norm1(gamma * r + beta)                   per-channel affine folded in thresholds
      q,k,v= IF_q(Wq s), IF_k(Wk s), IF_v(Wv s)          ternary spikes
      a_i  = sum_{i-W<j<=i} relu(q_i . k_j + P[h, i-j]) v_j / n_i    n_i = min(i+1, W) keys
      o    = IF_attn(a)                                   1/n_i folded in per-count thresholds
      r   += Wo o                                         weight scale rho * 2^k / alpha: a shift
      h    = IF_ff(W1 IF_norm2(gamma2 * r + beta2))
      r   += W2 h
    logits = mean_t(Wr IF_normf(gamma_f * r + beta_f)) + b     (every position)

Position enters through the learned relative score bias ``P`` (per head and distance, on the
integer grid of the scores) and the key count; there is no absolute position embedding, so a
cached key stays valid while the window slides. Switches for the ablations:
``norm="layernorm"`` puts a LayerNorm before each normalising neuron, ``attention="softmax"``
replaces the ReLU/count form with ``softmax(tau * Q.K + P)``; both are float operations, so
such a model has no integer form. ``float_twin`` has float activations, LayerNorm and softmax
(with the same relative bias and window), and the same shapes. See docs/transformer.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from contract.intmodel import VOCAB, Readout, SpikingLayer
from contract.transformer import IntBlock, IntNorm, IntOutProj, IntTransformer

from .errors import CheckpointError, ModelConfigError
from .lm import ALPHA_MIN, _Amplitude, rate_penalty
from .quant import SUPPORTED_BITS, fake_quantize, qmax, quantize_weight
from .spike import integrate_and_fire

__all__ = ["EMBED_BITS", "SpikingTransformer", "TransformerConfig", "int_forward", "out_shift"]

EMBED_BITS = 8
_CALIBRATION_RATE = 0.3
_GAMMA_MIN = 1e-2
NORMS = ("affine", "layernorm")
ATTENTIONS = ("relu", "softmax")


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture and regularisation of a :class:`SpikingTransformer`."""

    context: int = 16
    d_model: int = 64
    heads: int = 2
    layers: int = 1
    ffn: int = 128
    timesteps: int = 4
    weight_bits: int = 8
    float_twin: bool = False
    norm: str = "affine"
    attention: str = "relu"
    rate_target: float = 0.3
    rate_lambda: float = 0.25
    detach_reset: bool = True
    arch: str = "transformer"

    def __post_init__(self):
        for name in ("context", "d_model", "heads", "layers", "ffn", "timesteps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ModelConfigError(f"{name} must be a positive integer, not {value!r}")
        if self.d_model % self.heads:
            raise ModelConfigError(
                f"d_model {self.d_model} must be a multiple of heads {self.heads}"
            )
        if self.weight_bits not in SUPPORTED_BITS:
            raise ModelConfigError(
                f"weight bits must be one of {SUPPORTED_BITS}, not {self.weight_bits!r}"
            )
        if self.norm not in NORMS:
            raise ModelConfigError(f"norm must be one of {NORMS}, not {self.norm!r}")
        if self.attention not in ATTENTIONS:
            raise ModelConfigError(
                f"attention must be one of {ATTENTIONS}, not {self.attention!r}"
            )
        if self.arch != "transformer":
            raise ModelConfigError(f"arch must be 'transformer', not {self.arch!r}")
        if not 0.0 <= self.rate_target <= 1.0:
            raise ModelConfigError(f"rate target must lie in [0, 1], not {self.rate_target!r}")
        if not (self.rate_lambda >= 0.0 and math.isfinite(self.rate_lambda)):
            raise ModelConfigError(
                f"rate lambda must be finite and non-negative, not {self.rate_lambda!r}"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    @property
    def integer_exportable(self) -> bool:
        """Whether every op has an integer form (spiking, folded affine, ReLU attention)."""
        return not self.float_twin and self.norm == "affine" and self.attention == "relu"

    def to_dict(self) -> dict:
        """Plain-Python form for checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TransformerConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ModelConfigError(f"unknown config keys {sorted(unknown)}")
        return cls(**data)


def out_shift(weight: torch.Tensor, bits: int, alpha_in: float, rho: float) -> int:
    """Power-of-two exponent ``k`` of an output projection's weight scale ``rho 2^k / alpha_in``.

    The smallest ``k`` with ``max|W| <= qmax * rho * 2^k / alpha_in``: nothing is clipped, and
    the projection's accumulator turns into residual units by a shift of ``k``.
    """
    absmax = float(weight.detach().abs().max())
    if absmax == 0.0:
        return 0
    return math.ceil(math.log2(absmax * alpha_in / (qmax(bits) * rho)) - 1e-12)


def _round_to_grid(x: torch.Tensor, unit: float) -> torch.Tensor:
    """``unit * floor(x / unit + 1/2)`` forward, identity backward."""
    return x + (unit * torch.floor(x / unit + 0.5) - x).detach()


class _NormNeuron(nn.Module):
    """Normalisation as a neuron: ``IF(gamma * r + beta)`` or ``IF(LayerNorm(r))``."""

    def __init__(self, d: int, config: TransformerConfig):
        super().__init__()
        self.config = config
        if config.norm == "layernorm" or config.float_twin:
            self.ln = nn.LayerNorm(d)
        else:
            self.gamma = nn.Parameter(torch.ones(d))
            self.beta = nn.Parameter(torch.zeros(d))
        self.alpha = _Amplitude()

    def gain(self) -> torch.Tensor:
        return torch.clamp(self.gamma, min=_GAMMA_MIN)

    def current(self, r: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "ln"):
            return self.ln(r)
        return self.gain() * r + self.beta


class SpikingTransformer(nn.Module):
    """Byte-level spiking transformer LM (see module docstring)."""

    def __init__(self, config: TransformerConfig | None = None):
        super().__init__()
        self.config = cfg = config or TransformerConfig()
        d = cfg.d_model
        self.tok = nn.Embedding(VOCAB, d)
        nn.init.normal_(self.tok.weight, std=0.5)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.layers))
        self.norm_f = _NormNeuron(d, cfg)
        self.readout = nn.Linear(d, VOCAB)
        self._calibrating = False

    # ------------------------------------------------------------ neurons

    def fire(self, current: torch.Tensor, amp: _Amplitude, rates: list) -> torch.Tensor:
        """The neuron every layer uses: IF over axis 1 (or a clamp for the float twin)."""
        if self._calibrating:
            first = current if self.config.float_twin else current[:, 0]
            amp.raw.fill_(max(ALPHA_MIN, first.abs().mean().item() / _CALIBRATION_RATE))
        alpha = amp()
        if self.config.float_twin:
            return torch.maximum(torch.minimum(current, alpha), -alpha)
        out, rate = integrate_and_fire(current, alpha, self.config.detach_reset)
        rates.append(rate)
        return out

    def rho(self) -> float:
        """The residual unit: embeddings are ``EMBED_BITS``-bit integers times ``rho``."""
        absmax = float(self.tok.weight.detach().abs().max())
        return max(absmax, 1e-8) / qmax(EMBED_BITS)

    def out_project(self, x: torch.Tensor, linear: nn.Linear, amp: _Amplitude) -> torch.Tensor:
        """An output projection into the residual: shift-scaled weights, rounded to ``rho``."""
        cfg = self.config
        if cfg.float_twin:
            return linear(x)
        rho = self.rho()
        alpha = float(amp().detach())
        k = out_shift(linear.weight, cfg.weight_bits, alpha, rho)
        scale = rho * 2.0**k / alpha
        w = linear.weight
        w_int = torch.clamp(torch.round(w.detach() / scale), -qmax(cfg.weight_bits),
                            qmax(cfg.weight_bits))
        out = F.linear(x, w + (w_int * scale - w).detach())
        return _round_to_grid(out, rho) if k < 0 else out

    # ------------------------------------------------------------ forward

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """The residual stream at the input, ``[N, L, d]`` (on the ``rho`` grid if spiking)."""
        tok = self.tok.weight
        if not self.config.float_twin:
            tok = _round_to_grid(tok, self.rho())
        return tok[ids]

    def forward_all(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits of every position of streams ``ids[N, L]`` (``[N, L, 256]``) and the
        differentiable firing rates; each stream starts with an empty window."""
        cfg = self.config
        rates: list[torch.Tensor] = []
        r = self.embed(ids)
        if not cfg.float_twin:
            r = r.unsqueeze(1).expand(-1, cfg.timesteps, -1, -1)  # [N, T, L, d]
        for block in self.blocks:
            r = block(self, r, rates)
        s = self.fire(self.norm_f.current(r), self.norm_f.alpha, rates)
        if cfg.float_twin:
            return self.readout(s), rates
        weight = fake_quantize(self.readout.weight, cfg.weight_bits)
        return F.linear(s, weight).mean(dim=1) + self.readout.bias, rates

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits of the last position ``[N, 256]`` and the rates (as :class:`SpikingLM`)."""
        logits, rates = self.forward_all(ids)
        return logits[:, -1], rates

    def rate_penalty(self, rates: list[torch.Tensor]) -> torch.Tensor:
        """``lambda * sum_l (rate_l - target)^2`` over the spiking neurons."""
        return rate_penalty(rates, self.config.rate_target, self.config.rate_lambda)

    @torch.no_grad()
    def calibrate(self, ids: torch.Tensor) -> None:
        """Set every amplitude to ``mean|I| / 0.3`` of its first-step current on one batch."""
        self._calibrating = True
        try:
            self.forward_all(ids)
        finally:
            self._calibrating = False

    # ------------------------------------------------------------ integer form

    def check_finite(self) -> None:
        """Raise :class:`CheckpointError` naming the first parameter holding NaN or inf."""
        for name, tensor in self.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise CheckpointError(f"parameter {name!r} holds NaN or inf; retrain the model")

    @torch.no_grad()
    def to_int_model(self) -> IntTransformer:
        """The integer model of docs/transformer.md ("Folding the scales")."""
        cfg = self.config
        if not cfg.integer_exportable:
            raise CheckpointError(
                "only a spiking transformer with --norm affine and --attention relu has an"
                f" integer form (this one: float_twin={cfg.float_twin}, norm={cfg.norm},"
                f" attention={cfg.attention})"
            )
        self.check_finite()
        rho = self.rho()
        tok = torch.round(self.tok.weight.double() / rho).long().numpy()
        blocks = []
        for block in self.blocks:
            norm1 = _int_norm(block.norm1, rho)
            a_n1 = float(block.norm1.alpha())
            q, k, v = (_int_linear(lin, cfg, a_n1) for lin in (block.q, block.k, block.v))
            score_unit = float(block.q.alpha()) * float(block.k.alpha())
            score_bias = torch.round(block.score_bias.double() / score_unit).long().numpy()
            unit = score_unit * float(block.v.alpha())
            a_att = float(block.attn_alpha())
            resets = [max(1, round(n * a_att / unit)) for n in range(1, cfg.context + 1)]
            out = _int_out(block.out, cfg, float(block.attn_alpha()), rho)
            norm2 = _int_norm(block.norm2, rho)
            ff1 = _int_linear(block.ff1, cfg, float(block.norm2.alpha()))
            ff2 = _int_out(block.ff2, cfg, float(block.ff1.alpha()), rho)
            blocks.append(IntBlock(
                norm1=norm1, q=q, k=k, v=v, score_bias=score_bias,
                attn_threshold=np.array([r // 2 + 1 for r in resets]),
                attn_reset=np.array(resets), out=out, norm2=norm2, ff1=ff1, ff2=ff2,
            ))
        weight, scale = quantize_weight(self.readout.weight, cfg.weight_bits)
        unit = float(scale) * float(self.norm_f.alpha())
        bias = torch.round(self.readout.bias.double() / unit).long()
        return IntTransformer(
            context=cfg.context, d_model=cfg.d_model, heads=cfg.heads,
            timesteps=cfg.timesteps, weight_bits=cfg.weight_bits, tok_embed=tok,
            blocks=tuple(blocks), norm_f=_int_norm(self.norm_f, rho),
            readout=Readout(weight.long().numpy(), bias.numpy()),
            logit_scale=unit / cfg.timesteps,
            meta={"source": "model.transformer.SpikingTransformer", "config": cfg.to_dict()},
        )


    @torch.no_grad()
    def int_forward(self, ids, int_model: IntTransformer | None = None) -> torch.Tensor:
        """Integer logits of the last position (int64 ``[N, 256]``), in torch int64 ops."""
        return int_forward(int_model or self.to_int_model(), ids)


def _t(array) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.int64))


def _fire_step(state: dict, name: str, current, threshold, reset) -> torch.Tensor:
    v = state.get(name, 0) + current
    s = (v >= threshold).long() - (v <= -threshold).long()
    state[name] = v - reset * s
    return s


def _shift(acc: torch.Tensor, shift: int) -> torch.Tensor:
    if shift >= 0:
        return acc * (1 << shift)
    return torch.div(acc + (1 << (-shift - 1)), 1 << (-shift), rounding_mode="floor")


def _window(length: int, window: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distance ``i - j`` clipped into the window, the window mask and the key counts."""
    distance = torch.arange(length)[:, None] - torch.arange(length)[None, :]
    mask = (distance >= 0) & (distance < window)
    counts = torch.clamp(torch.arange(1, length + 1), max=window)
    return distance.clamp(0, window - 1), mask, counts


def int_forward(model: IntTransformer, ids, all_positions: bool = False) -> torch.Tensor:
    """The contract's transformer forward pass in torch int64 (a second implementation).

    Step by step (all layers of step ``t`` before step ``t + 1``), where the contract goes
    layer by layer; gives exactly ``contract.transformer.forward``.
    """
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.int64)
    if ids.ndim != 2 or ids.shape[1] < 1:
        raise ValueError(f"ids must have shape [N, L], not {tuple(ids.shape)}")
    n, length, heads = ids.shape[0], ids.shape[1], model.heads
    x0 = _t(model.tok_embed)[ids]
    distance, mask, counts = _window(length, model.context)
    state: dict = {}
    logits = torch.zeros((n, length, VOCAB), dtype=torch.int64)

    def linear(name, s, layer):
        cur = s @ _t(layer.weight).T + _t(layer.bias)
        return _fire_step(state, name, cur, layer.threshold, layer.reset)

    def norm(name, x, layer):
        return _fire_step(state, name, x + _t(layer.bias), _t(layer.threshold),
                          _t(layer.reset))

    def split(x):
        return x.reshape(n, length, heads, -1).transpose(1, 2)

    for _ in range(model.timesteps):
        x = x0
        for i, block in enumerate(model.blocks):
            s = norm(f"{i}n1", x, block.norm1)
            q, k, v = (split(linear(f"{i}{c}", s, layer))
                       for c, layer in (("q", block.q), ("k", block.k), ("v", block.v)))
            scores = q @ k.transpose(-1, -2) + _t(block.score_bias)[:, distance]
            scores = torch.clamp(scores, min=0) * mask
            a = (scores @ v).transpose(1, 2).reshape(n, length, model.d_model)
            o = _fire_step(state, f"{i}a", a, _t(block.attn_threshold)[counts - 1][:, None],
                           _t(block.attn_reset)[counts - 1][:, None])
            x = x + _shift(o @ _t(block.out.weight).T, block.out.shift)
            h = linear(f"{i}f", norm(f"{i}n2", x, block.norm2), block.ff1)
            x = x + _shift(h @ _t(block.ff2.weight).T, block.ff2.shift)
        s = norm("nf", x, model.norm_f)
        logits += s @ _t(model.readout.weight).T + _t(model.readout.bias)
    return logits if all_positions else logits[:, -1]


class _SpikingLinear(nn.Module):
    """Fake-quantized linear layer and the amplitude of the neuron it feeds."""

    def __init__(self, n_in: int, n_out: int, config: TransformerConfig, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out, bias=bias)
        self.alpha = _Amplitude()
        self.config = config

    def current(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.linear.weight
        if not self.config.float_twin:
            weight = fake_quantize(weight, self.config.weight_bits)
        return F.linear(x, weight, self.linear.bias)


class _Block(nn.Module):
    """Attention and feed-forward sub-blocks, each behind a normalising neuron."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.norm1 = _NormNeuron(d, cfg)
        self.q, self.k, self.v = (_SpikingLinear(d, d, cfg) for _ in range(3))
        self.score_bias = nn.Parameter(torch.zeros(cfg.heads, cfg.context))
        self.attn_alpha = _Amplitude()
        self.tau = nn.Parameter(torch.tensor(1.0 / math.sqrt(cfg.head_dim)))
        self.out = nn.Linear(d, d, bias=cfg.float_twin)
        self.norm2 = _NormNeuron(d, cfg)
        self.ff1 = _SpikingLinear(d, cfg.ffn, cfg)
        self.ff2 = nn.Linear(cfg.ffn, d, bias=cfg.float_twin)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        *lead, k, d = x.shape
        return x.reshape(*lead, k, self.cfg.heads, d // self.cfg.heads).transpose(-3, -2)

    def score_bias_current(self) -> torch.Tensor:
        """``P [heads, W]`` as the scores see it: on the integer grid ``alpha_q alpha_k`` of a
        spiking model (rounded half to even, straight-through), as it is for the float twin."""
        if self.cfg.float_twin or self.cfg.attention == "softmax":
            return self.score_bias
        unit = (self.q.alpha() * self.k.alpha()).detach()
        grid = unit * torch.round(self.score_bias / unit)
        return self.score_bias + (grid - self.score_bias).detach()

    def attention(self, q, k, v) -> torch.Tensor:
        """Windowed causal attention on ``[..., L, d]`` tensors; per time step when spiking."""
        cfg = self.cfg
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        distance, mask, counts = _window(q.shape[-2], cfg.context)
        scores = q @ k.transpose(-1, -2)
        bias = self.score_bias_current()[:, distance]  # [H, L, L]
        if cfg.float_twin:
            scores = scores / math.sqrt(cfg.head_dim) + bias
            weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        elif cfg.attention == "softmax":
            unit = self.q.alpha() * self.k.alpha()
            scores = self.tau * scores / unit + bias
            weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        else:
            count = counts.to(q.dtype).unsqueeze(-1)
            weights = torch.relu(scores + bias).masked_fill(~mask, 0.0) / count
        out = weights @ v
        return out.transpose(-3, -2).reshape(*out.shape[:-3], q.shape[-2], cfg.d_model)

    def forward(self, model: SpikingTransformer, r: torch.Tensor, rates: list) -> torch.Tensor:
        s = model.fire(self.norm1.current(r), self.norm1.alpha, rates)
        if self.cfg.float_twin:
            q, k, v = self.q.current(s), self.k.current(s), self.v.current(s)
            r = r + self.out(self.attention(q, k, v))
        else:
            q, k, v = (model.fire(lin.current(s), lin.alpha, rates)
                       for lin in (self.q, self.k, self.v))
            o = model.fire(self.attention(q, k, v), self.attn_alpha, rates)
            r = r + model.out_project(o, self.out, self.attn_alpha)
        s = model.fire(self.norm2.current(r), self.norm2.alpha, rates)
        h = model.fire(self.ff1.current(s), self.ff1.alpha, rates)
        if self.cfg.float_twin:
            return r + self.ff2(h)
        return r + model.out_project(h, self.ff2, self.ff1.alpha)


def _int_norm(norm: _NormNeuron, rho: float) -> IntNorm:
    unit = norm.gain().double() * rho
    alpha = float(norm.alpha())
    reset = torch.clamp(torch.round(alpha / unit), min=1).long()
    bias = torch.round(norm.beta.double() / unit).long()
    return IntNorm(bias=bias.numpy(), threshold=(reset // 2 + 1).numpy(), reset=reset.numpy())


def _int_linear(layer: _SpikingLinear, cfg: TransformerConfig, alpha_in: float) -> SpikingLayer:
    weight, scale = quantize_weight(layer.linear.weight, cfg.weight_bits)
    unit = float(scale) * alpha_in
    bias = torch.round(layer.linear.bias.double() / unit).long()
    reset = max(1, round(float(layer.alpha()) / unit))
    return SpikingLayer(weight.long().numpy(), bias.numpy(), reset // 2 + 1, reset)


def _int_out(linear: nn.Linear, cfg: TransformerConfig, alpha_in: float, rho: float) -> IntOutProj:
    k = out_shift(linear.weight, cfg.weight_bits, alpha_in, rho)
    scale = rho * 2.0**k / alpha_in
    limit = qmax(cfg.weight_bits)
    w_int = torch.clamp(torch.round(linear.weight.detach() / scale), -limit, limit)
    return IntOutProj(weight=w_int.long().numpy(), shift=k)
