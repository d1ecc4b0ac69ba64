"""The spiking blocks a model is composed of, each in three forms.

Each block has its float (QAT) forward, its float-twin form (``float_twin``: float weights,
``clamp(x, -alpha, alpha)`` activations, no time axis) and its integer form: the ops of
:mod:`contract.graph` it emits given the amplitude of the spikes and the unit of the residual
it receives, which is the folding of the float scales into integers of
docs/integer-contract.md ("Where the scales went") and docs/transformer.md ("Folding the
scales"). The registers and the base class are in :mod:`model.block`; the attention block is
:class:`model.attention.SpikingAttention`.

| block | reads | writes | ops it emits |
| --- | --- | --- | --- |
| :class:`SpikeEmbed` | byte ids | spikes | ``SpikeEmbed`` (context concatenated) |
| :class:`TokenEmbed` | byte ids | residual | ``TokenEmbed`` |
| :class:`SpikingLinear` | spikes | spikes | ``Accumulate``, ``Fire`` |
| :class:`NormNeuron` | residual | spikes | ``Fire`` (per-channel constants) |
| :class:`model.attention.SpikingAttention` | spikes | spikes | 3 x linear, ``Attention`` |
| :class:`ResidualAdd` | residual, spikes | residual | ``ResidualAdd`` (a shift) |
| :class:`Readout` | spikes | logits | ``Readout`` |

A model runs either on *windows* (no block mixes positions: ``ids[N, k]`` give the logits of
the window's last position) or on *streams* (an attention block: ``ids[N, L]`` give the logits
of every position).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from contract import graph as g
from contract.ops import VOCAB

from .block import (
    ALPHA_MIN,
    Block,
    Flow,
    Widths,
    check_positive,
    fold_neuron,
    out_shift,
    round_to_grid,
    shift_add_terms,
    step_amplitudes,
)
from .errors import ModelConfigError
from .quant import qmax, quantize_weight
from .spike import run_neuron

__all__ = [
    "ALPHA_MIN",
    "EMBED_BITS",
    "NORMS",
    "NormNeuron",
    "Readout",
    "ResidualAdd",
    "SpikeEmbed",
    "SpikingLinear",
    "TokenEmbed",
    "out_shift",
]

EMBED_BITS = 8
GAMMA_MIN = 1e-2
NORMS = ("affine", "layernorm")


class SpikeEmbed(Block):
    """Byte embedding ``256 x embed`` into an IF neuron, over the last ``context`` bytes.

    Each byte's embedding is a constant current for ``T`` steps into the embedding neuron
    (amplitude ``alpha``); the spikes of the ``context`` bytes are concatenated, the oldest
    first (``context * embed`` spikes; byte 0 before a stream's start). Its integer form is the
    spike table: the neuron run once on every byte.
    """

    stem = "embed"

    def __init__(self, context: int = 8, embed: int = 16, name: str | None = None):
        check_positive(context=context, embed=embed)
        super().__init__(name, context=context, embed=embed)
        self.context = context
        self.embed_dim = embed

    def _build(self, widths):
        if widths != Widths():
            raise ModelConfigError("an embedding must be the first block")
        self.embedding = nn.Embedding(VOCAB, self.embed_dim)
        self.alpha = self.amplitude()
        return Widths(spikes=self.context * self.embed_dim)

    def _windows(self, flow: Flow) -> torch.Tensor:
        """Byte ids ``[N, k]`` of the window (streams: ``[N, L, k]``, one per position)."""
        ids, k = flow.ids, self.context
        if flow.streams:
            return F.pad(ids, (k - 1, 0)).unfold(1, k, 1)
        if ids.shape[1] == k:
            return ids
        return F.pad(ids, (max(0, k - ids.shape[1]), 0))[:, -k:]

    def forward(self, flow):
        emb = self.embedding(self._windows(flow))  # [N, (L,) k, E]
        current = emb
        if not self.settings.float_twin:
            current = emb.unsqueeze(1).expand(-1, self.settings.timesteps, *emb.shape[1:])
        out = self.fire(flow, current, self.alpha)
        flow.spikes = out.reshape(*out.shape[:-2], -1)
        flow.amplitude = self.alpha()
        return flow

    @torch.no_grad()
    def spike_table(self) -> np.ndarray:
        """The embedding neuron run for ``T`` steps on every byte: int8 ``[256, T, E]``."""
        steps = self.settings.timesteps
        emb = self.embedding(torch.arange(VOCAB).unsqueeze(1))  # 256 contexts of one byte
        currents = emb.unsqueeze(1).expand(-1, steps, -1, -1)
        alphas = self.alpha.steps(steps)
        out, _ = run_neuron(currents, alphas, self.settings.neuron)
        spikes = torch.round(out / alphas.reshape(1, steps, 1, 1)).reshape(VOCAB, steps, -1)
        return spikes.to(torch.int8).numpy()

    def emit(self, e, name):
        e.spikes = e.add(g.SpikeEmbed(name, ("input",), f"{name}_s", table=self.spike_table(),
                                      context=self.context))
        e.amplitude = self.alpha.value()


class TokenEmbed(Block):
    """Token embedding ``256 x width`` as the residual stream (the transformer's input).

    The residual's unit is ``rho = max|E| / 127``: the embedding is trained on that grid and
    its integer form is ``round(E / rho)``, 8-bit whatever the weights.
    """

    stem = "embed"

    def __init__(self, width: int = 64, name: str | None = None):
        check_positive(width=width)
        super().__init__(name, width=width)
        self.width = width

    def _build(self, widths):
        if widths != Widths():
            raise ModelConfigError("an embedding must be the first block")
        self.embedding = nn.Embedding(VOCAB, self.width)
        nn.init.normal_(self.embedding.weight, std=0.5)
        return Widths(residual=self.width)

    def rho(self) -> float:
        """The residual unit: embeddings are ``EMBED_BITS``-bit integers times ``rho``."""
        absmax = float(self.embedding.weight.detach().abs().max())
        return max(absmax, 1e-8) / qmax(EMBED_BITS)

    def forward(self, flow):
        tok = self.embedding.weight
        if not self.settings.float_twin:
            tok = round_to_grid(tok, self.rho())
        residual = tok[flow.ids if flow.streams else flow.ids[:, -1]]  # [N, (L,) d]
        if not self.settings.float_twin:
            residual = residual.unsqueeze(1).expand(-1, self.settings.timesteps,
                                                    *residual.shape[1:])
        flow.residual, flow.unit = residual, self.rho()
        return flow

    def emit(self, e, name):
        rho = self.rho()
        table = torch.round(self.embedding.weight.double() / rho).long().numpy()
        e.residual = e.add(g.TokenEmbed(name, ("input",), f"{name}_x", table=table))
        e.unit = rho


class SpikingLinear(Block):
    """Fake-quantized linear layer (``width`` outputs, with bias) into the model's neuron.

    Integer form, with ``s_w`` the weight scale and ``alpha_in`` the incoming amplitude:
    ``W = round(W_f / s_w)``, ``B = round(b / (s_w alpha_in))``,
    ``R = max(1, round(alpha / (s_w alpha_in)))``, ``Theta = R // 2 + 1`` for the IF neuron
    with shared amplitudes; per step and for SpikeLM's neuron see
    :func:`~model.block.fold_neuron`.
    """

    stem = "linear"

    def __init__(self, width: int, name: str | None = None):
        check_positive(width=width)
        super().__init__(name, width=width)
        self.width = width

    def _build(self, widths):
        self._needs(widths, "spikes")
        self.linear = nn.Linear(widths.spikes, self.width)
        self.alpha = self.amplitude()
        return Widths(spikes=self.width, residual=widths.residual)

    def current(self, x: torch.Tensor) -> torch.Tensor:
        """Input current ``W x + b``."""
        return F.linear(x, self.weight(self.linear), self.linear.bias)

    def forward(self, flow):
        flow.spikes = self.fire(flow, self.current(flow.spikes), self.alpha)
        flow.amplitude = self.alpha()
        return flow

    def fold(self, alpha_in) -> tuple[np.ndarray, dict]:
        """``W`` and the neuron's constants (``Fire``'s keyword arguments) for spikes of
        amplitude ``alpha_in`` (a float, or one per step)."""
        steps = self.settings.timesteps
        weight, scale = quantize_weight(self.linear.weight, self.settings.weight_bits)
        units = (float(scale) * step_amplitudes(alpha_in, steps))[:, None]
        neuron = fold_neuron(self.settings.neuron, units,
                             step_amplitudes(self.alpha.value(), steps),
                             self.linear.bias.detach().double().numpy(), scalar=True)
        return weight.long().numpy(), neuron

    def emit(self, e, name):
        weight, neuron = self.fold(e.amplitude)
        current = e.add(g.Accumulate(f"{name}_acc", (e.spikes,), f"{name}_a", weight=weight))
        e.spikes = e.add(g.Fire(f"{name}_fire", (current,), f"{name}_s", **neuron))
        e.amplitude = self.alpha.value()


class NormNeuron(Block):
    """Normalisation as a neuron: ``IF(gamma * r + beta)`` of the residual, per channel.

    The affine folds into per-channel integers with the unit ``gamma_c rho``:
    ``B_c = round(beta_c / (gamma_c rho))``, ``R_c = max(1, round(alpha / (gamma_c rho)))``,
    ``Theta_c = R_c // 2 + 1`` (``gamma >= 0.01``). ``norm="layernorm"`` (and every float
    twin) puts a LayerNorm in its place, a float operation without integer form.
    """

    stem = "norm"

    def __init__(self, norm: str = "affine", name: str | None = None):
        if norm not in NORMS:
            raise ModelConfigError(f"norm must be one of {NORMS}, not {norm!r}")
        super().__init__(name, norm=norm)
        self.norm = norm

    def _build(self, widths):
        self._needs(widths, "residual")
        d = widths.residual
        if self.norm == "layernorm" or self.settings.float_twin:
            self.ln = nn.LayerNorm(d)
        else:
            self.gamma = nn.Parameter(torch.ones(d))
            self.beta = nn.Parameter(torch.zeros(d))
        self.alpha = self.amplitude()
        return Widths(spikes=d, residual=d)

    def gain(self) -> torch.Tensor:
        """``gamma``, kept positive."""
        return torch.clamp(self.gamma, min=GAMMA_MIN)

    def current(self, residual: torch.Tensor) -> torch.Tensor:
        """``gamma * r + beta`` (or ``LayerNorm(r)``)."""
        if hasattr(self, "ln"):
            return self.ln(residual)
        return self.gain() * residual + self.beta

    def forward(self, flow):
        flow.spikes = self.fire(flow, self.current(flow.residual), self.alpha)
        flow.amplitude = self.alpha()
        return flow

    def integer_problem(self):
        if self.norm == "layernorm":
            return "a LayerNorm is a float operation; use norm='affine' (--norm affine)"
        return None

    def emit(self, e, name):
        steps = self.settings.timesteps
        unit = (self.gain().detach().double() * e.unit).numpy()
        neuron = fold_neuron(self.settings.neuron, np.broadcast_to(unit, (steps, len(unit))),
                             step_amplitudes(self.alpha.value(), steps),
                             self.beta.detach().double().numpy())
        e.spikes = e.add(g.Fire(name, (e.residual,), f"{name}_s", **neuron))
        e.amplitude = self.alpha.value()


class ResidualAdd(Block):
    """An output projection of the spikes into the residual: ``r += W s`` (no bias).

    Its weight scale is forced to ``rho 2^k / alpha_in`` (:func:`out_shift`), so that ``W s``
    joins the residual by a shift of ``k``, rounded half up to ``rho`` for ``k < 0`` (in QAT
    too). Spikes of per-step amplitudes ``alpha_t`` take the scale of the largest,
    ``alpha_ref``, and join by a per-step multiplier ``2^k alpha_t / alpha_ref`` rounded to
    ``2^a ± 2^b`` (:func:`~model.block.shift_add_terms`; the QAT forward uses the rounded
    factor too). A float twin's projection is a plain linear layer with bias. Empties the
    spikes.
    """

    stem = "residual"

    def __init__(self, name: str | None = None):
        super().__init__(name)

    def _build(self, widths):
        self._needs(widths, "residual", "spikes")
        self.linear = nn.Linear(widths.spikes, widths.residual, bias=self.settings.float_twin)
        return Widths(residual=widths.residual)

    def _integer_weight(self, alpha_in: float, rho: float) -> tuple[torch.Tensor, int, float]:
        bits = self.settings.weight_bits
        weight = self.linear.weight
        k = out_shift(weight, bits, alpha_in, rho)
        scale = rho * 2.0**k / alpha_in
        integers = torch.clamp(torch.round(weight.detach() / scale), -qmax(bits), qmax(bits))
        return integers, k, scale

    @staticmethod
    def step_scales(alphas: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """For per-step amplitudes ``alphas`` ``[T]`` (``None`` when they are all the same):
        the terms ``[T, 2, 2]`` of ``2^k alpha_t / alpha_ref`` and the factors they make, over
        the exact ones ``[T]``."""
        if (alphas == alphas[0]).all():
            return None
        exact = 2.0**k * alphas / alphas.max()
        terms = np.stack([shift_add_terms(f) for f in exact])
        made = np.array([sum(sign * 2.0**e for sign, e in t) for t in terms])
        return terms, made / exact

    def forward(self, flow):
        if self.settings.float_twin:
            flow.residual = flow.residual + self.linear(flow.spikes)
        else:
            rho = flow.unit
            alphas = flow.amplitude.detach().double().reshape(-1).cpu().numpy()
            integers, k, scale = self._integer_weight(float(alphas.max()), rho)
            w = self.linear.weight
            out = F.linear(flow.spikes, w + (integers * scale - w).detach())
            steps = self.step_scales(alphas, k)
            if steps is not None:  # the multiplier each step really applies
                correction = torch.as_tensor(steps[1], dtype=out.dtype, device=out.device)
                out = out * correction.reshape(1, -1, *([1] * (out.ndim - 2)))
                k = min(int(e) for sign, e in steps[0].reshape(-1, 2) if sign)
            flow.residual = flow.residual + (round_to_grid(out, rho) if k < 0 else out)
        flow.spikes = flow.amplitude = None
        return flow

    def emit(self, e, name):
        alphas = step_amplitudes(e.amplitude, self.settings.timesteps)
        integers, k, _ = self._integer_weight(float(alphas.max()), e.unit)
        steps = self.step_scales(alphas, k)
        fields = {"shift": k} if steps is None else {"scale": steps[0]}
        e.residual = e.add(g.ResidualAdd(name, (e.residual, e.spikes), f"{name}_x",
                                         weight=integers.long().numpy(), **fields))
        e.spikes = e.amplitude = None


class Readout(Block):
    """The output layer: ``logits = mean_t(W s_t) + b`` over the 256 bytes (no neuron).

    With ``classes`` it is an encoder's classification head instead: ``classes`` logits per
    position, averaged over the positions of the sequence (mean pooling), so the model predicts
    one class per sequence. Integer form: ``B = round(b / (s_w alpha_in))`` and ``logit_scale =
    s_w alpha_in / T`` (metadata: float logits are ``logit_scale`` times the integer logits;
    pooled, the integer logits are the sum over the ``L`` positions: ``logit_scale / L``).
    """

    stem = "readout"

    def __init__(self, classes: int | None = None, name: str | None = None):
        if classes is not None:
            check_positive(classes=classes)
            if classes < 2:
                raise ModelConfigError(f"a classification head needs at least 2 classes, not"
                                       f" {classes}")
        super().__init__(name, **({} if classes is None else {"classes": classes}))
        self.classes = classes

    @property
    def outputs(self) -> int:
        """Logits per prediction: 256 bytes, or the classes."""
        return VOCAB if self.classes is None else self.classes

    def _build(self, widths):
        self._needs(widths, "spikes")
        self.linear = nn.Linear(widths.spikes, self.outputs)
        return Widths()

    def forward(self, flow):
        if self.settings.float_twin:
            flow.logits = F.linear(flow.spikes, self.linear.weight, self.linear.bias)
        else:
            flow.logits = (F.linear(flow.spikes, self.weight(self.linear)).mean(dim=1)
                           + self.linear.bias)
        if self.classes is not None and flow.streams:
            flow.logits = flow.logits.mean(dim=1)  # [N, L, C] -> [N, C]
        return flow

    def emit(self, e, name):
        steps = self.settings.timesteps
        weight, scale = quantize_weight(self.linear.weight, self.settings.weight_bits)
        units = float(scale) * step_amplitudes(e.amplitude, steps)
        bias = np.round(self.linear.bias.detach().double().numpy()[None, :] / units[:, None])
        bias = bias.astype(np.int64)
        leak = None
        if not (units == units[0]).all():
            leak = np.stack([shift_add_terms(units[t] / units[t + 1]) for t in range(steps - 1)])
        pooled = self.classes is not None
        logits = e.add(g.Readout(name, (e.spikes,), f"{name}_logits" if pooled else "output",
                                 weight=weight.long().numpy(),
                                 bias=bias[0] if (bias == bias[0]).all() else bias, leak=leak))
        if pooled:
            e.add(g.Pool(f"{name}_pool", (logits,), "output", n_outputs=self.classes))
        e.logit_scale = float(units[-1]) / steps
