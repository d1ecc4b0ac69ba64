"""Spiking building blocks: the layers a model is composed of, each in three forms.

A model (:class:`model.net.SpikingNet`) is a chain of blocks over two registers: the latest
*spikes* (``alpha * s`` with ternary ``s``, ``[N, T, ..., width]``, and their amplitude
``alpha``) and the *residual* (a stream of multiples of one unit ``rho``). Every block

* creates its parameters once the chain tells it the widths it receives (:meth:`Block.build`);
* runs the float (QAT) forward on a :class:`Flow`: fake-quantized weights and ternary
  integrate-and-fire neurons over ``T`` time steps, or, for a float twin (``float_twin``), float
  weights and ``clamp(x, -alpha, alpha)`` activations without a time axis;
* emits its ops of :mod:`contract.graph` on an :class:`Emitter`, given the amplitude of the
  spikes and the unit of the residual it receives (:meth:`Block.emit`). That is the folding of
  the float scales into integers of docs/integer-contract.md ("Where the scales went") and
  docs/transformer.md ("Folding the scales").

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

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from contract import graph as g
from contract.intmodel import VOCAB

from .errors import ModelConfigError
from .quant import fake_quantize, qmax, quantize_weight
from .spike import integrate_and_fire

__all__ = [
    "ALPHA_MIN",
    "EMBED_BITS",
    "Amplitude",
    "Block",
    "Emitter",
    "Flow",
    "NormNeuron",
    "Readout",
    "ResidualAdd",
    "Settings",
    "SpikeEmbed",
    "SpikingLinear",
    "TokenEmbed",
    "Widths",
    "out_shift",
    "round_to_grid",
]

ALPHA_MIN = 1e-3
CALIBRATION_RATE = 0.3
EMBED_BITS = 8
GAMMA_MIN = 1e-2
NORMS = ("affine", "layernorm")


@dataclass(frozen=True)
class Settings:
    """What every block of one model shares."""

    timesteps: int
    weight_bits: int
    float_twin: bool = False
    detach_reset: bool = True


@dataclass(frozen=True)
class Widths:
    """Widths of the two registers between blocks (``None``: the register is empty)."""

    spikes: int | None = None
    residual: int | None = None


@dataclass
class Flow:
    """The float forward's registers: what one block hands the next.

    ``spikes`` are ``alpha * s`` ``[N, T, (L,) width]`` (a float twin: activations without the
    time axis), ``amplitude`` their ``alpha``; ``residual`` is on the grid of ``unit``. Every
    spiking neuron appends its differentiable firing rate to ``rates``; with ``calibrating``
    each neuron first sets its amplitude from the current it sees (:meth:`Block.fire`).
    """

    ids: torch.Tensor
    streams: bool
    spikes: torch.Tensor | None = None
    amplitude: torch.Tensor | None = None
    residual: torch.Tensor | None = None
    unit: float | None = None
    logits: torch.Tensor | None = None
    rates: list = field(default_factory=list)
    calibrating: bool = False


@dataclass
class Emitter:
    """The integer form's registers while blocks emit their ops: tensor names, the amplitude
    ``alpha`` of the spikes and the unit ``rho`` of the residual they stand for."""

    timesteps: int
    weight_bits: int
    ops: list = field(default_factory=list)
    spikes: str | None = None
    amplitude: float | None = None
    residual: str | None = None
    unit: float | None = None
    logit_scale: float | None = None

    def add(self, op: g.Op) -> str:
        """Append ``op``; returns its output tensor."""
        self.ops.append(op)
        return op.output


class Amplitude(nn.Module):
    """A learned positive amplitude ``alpha`` (clamped at :data:`ALPHA_MIN`)."""

    def __init__(self):
        super().__init__()
        self.raw = nn.Parameter(torch.tensor(1.0))

    def forward(self) -> torch.Tensor:
        return torch.clamp(self.raw, min=ALPHA_MIN)


def round_to_grid(x: torch.Tensor, unit: float) -> torch.Tensor:
    """``unit * floor(x / unit + 1/2)`` forward, identity backward."""
    return x + (unit * torch.floor(x / unit + 0.5) - x).detach()


def out_shift(weight: torch.Tensor, bits: int, alpha_in: float, rho: float) -> int:
    """Power-of-two exponent ``k`` of an output projection's weight scale ``rho 2^k / alpha_in``.

    The smallest ``k`` with ``max|W| <= qmax * rho * 2^k / alpha_in``: nothing is clipped, and
    the projection's accumulator turns into residual units by a shift of ``k``.
    """
    absmax = float(weight.detach().abs().max())
    if absmax == 0.0:
        return 0
    return math.ceil(math.log2(absmax * alpha_in / (qmax(bits) * rho)) - 1e-12)


def _positive(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelConfigError(f"{name} must be a positive integer, not {value!r}")


class Block(nn.Module):
    """Base of every block: its constructor arguments (:meth:`spec`), its name and the shared
    :class:`Settings` it receives when a model builds it."""

    #: stem of the default name (``linear0``, ``norm1``, ...)
    stem: ClassVar[str] = "block"
    #: whether the block reads other positions (then the model runs on streams)
    mixes_positions: ClassVar[bool] = False

    def __init__(self, name: str | None = None, **spec):
        super().__init__()
        if name is not None and not (isinstance(name, str) and name.isidentifier()):
            raise ModelConfigError(f"a block name must be an identifier, not {name!r}")
        self.name = name
        self._spec = spec
        self.settings: Settings | None = None

    def spec(self) -> dict:
        """The constructor arguments, as plain data (what a checkpoint stores)."""
        out = {"block": type(self).__name__, **self._spec}
        if self.name is not None:
            out["name"] = self.name
        return out

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._spec.items())

    def build(self, widths: Widths, settings: Settings) -> Widths:
        """Create the parameters for the incoming ``widths``; returns the outgoing ones."""
        if self.settings is not None:
            raise ModelConfigError(f"this {type(self).__name__} already belongs to a model;"
                                   " create a new block for each model")
        self.settings = settings
        return self._build(widths)

    def _build(self, widths: Widths) -> Widths:
        raise NotImplementedError

    def forward(self, flow: Flow) -> Flow:
        """The float forward: update the registers of ``flow``."""
        raise NotImplementedError

    def emit(self, e: Emitter, name: str) -> None:
        """Append the block's integer ops to ``e`` (op names start with ``name``)."""
        raise NotImplementedError

    def integer_problem(self) -> str | None:
        """Why the block has no integer form (``None``: it has one)."""
        return None

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _needs(widths: Widths, *registers: str) -> None:
        for register in registers:
            if getattr(widths, register) is None:
                hint = {"spikes": "put a spiking block (an embedding, a SpikingLinear, a"
                                  " NormNeuron) before it",
                        "residual": "start the model with a TokenEmbed"}[register]
                raise ModelConfigError(f"it reads {register} but none reach it; {hint}")

    def weight(self, linear: nn.Linear) -> torch.Tensor:
        """``linear``'s weight: fake-quantized, or float for a twin."""
        if self.settings.float_twin:
            return linear.weight
        return fake_quantize(linear.weight, self.settings.weight_bits)

    def fire(self, flow: Flow, current: torch.Tensor, amp: Amplitude) -> torch.Tensor:
        """The neuron of every block: IF over axis 1 of ``current``, or a clamp for a twin.

        While calibrating, ``alpha`` is first set to ``mean|I| / 0.3`` of the first-step
        current, so that a rate-coded neuron starts near a firing rate of 0.3 (a twin's clamp:
        around the bulk of its inputs).
        """
        settings = self.settings
        if flow.calibrating:
            first = current if settings.float_twin else current[:, 0]
            amp.raw.fill_(max(ALPHA_MIN, first.abs().mean().item() / CALIBRATION_RATE))
        alpha = amp()
        if settings.float_twin:
            return torch.maximum(torch.minimum(current, alpha), -alpha)
        out, rate = integrate_and_fire(current, alpha, settings.detach_reset)
        flow.rates.append(rate)
        return out


class SpikeEmbed(Block):
    """Byte embedding ``256 x embed`` into an IF neuron, over the last ``context`` bytes.

    Each byte's embedding is a constant current for ``T`` steps into the embedding neuron
    (amplitude ``alpha``); the spikes of the ``context`` bytes are concatenated, the oldest
    first (``context * embed`` spikes; byte 0 before a stream's start). Its integer form is the
    spike table: the neuron run once on every byte.
    """

    stem = "embed"

    def __init__(self, context: int = 8, embed: int = 16, name: str | None = None):
        _positive(context=context, embed=embed)
        super().__init__(name, context=context, embed=embed)
        self.context = context
        self.embed_dim = embed

    def _build(self, widths):
        if widths != Widths():
            raise ModelConfigError("an embedding must be the first block")
        self.embedding = nn.Embedding(VOCAB, self.embed_dim)
        self.alpha = Amplitude()
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
        out, _ = integrate_and_fire(currents, self.alpha())
        spikes = torch.round(out / self.alpha()).reshape(VOCAB, steps, -1)
        return spikes.to(torch.int8).numpy()

    def emit(self, e, name):
        e.spikes = e.add(g.SpikeEmbed(name, ("input",), f"{name}_s", table=self.spike_table(),
                                      context=self.context))
        e.amplitude = float(self.alpha())


class TokenEmbed(Block):
    """Token embedding ``256 x width`` as the residual stream (the transformer's input).

    The residual's unit is ``rho = max|E| / 127``: the embedding is trained on that grid and
    its integer form is ``round(E / rho)``, 8-bit whatever the weights.
    """

    stem = "embed"

    def __init__(self, width: int = 64, name: str | None = None):
        _positive(width=width)
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
    """Fake-quantized linear layer (``width`` outputs, with bias) into an IF neuron.

    Integer form, with ``s_w`` the weight scale and ``alpha_in`` the incoming amplitude:
    ``W = round(W_f / s_w)``, ``B = round(b / (s_w alpha_in))``,
    ``R = max(1, round(alpha / (s_w alpha_in)))``, ``Theta = R // 2 + 1``.
    """

    stem = "linear"

    def __init__(self, width: int, name: str | None = None):
        _positive(width=width)
        super().__init__(name, width=width)
        self.width = width

    def _build(self, widths):
        self._needs(widths, "spikes")
        self.linear = nn.Linear(widths.spikes, self.width)
        self.alpha = Amplitude()
        return Widths(spikes=self.width, residual=widths.residual)

    def current(self, x: torch.Tensor) -> torch.Tensor:
        """Input current ``W x + b``."""
        return F.linear(x, self.weight(self.linear), self.linear.bias)

    def forward(self, flow):
        flow.spikes = self.fire(flow, self.current(flow.spikes), self.alpha)
        flow.amplitude = self.alpha()
        return flow

    def fold(self, alpha_in: float) -> tuple[np.ndarray, np.ndarray, int, int]:
        """``(W, B, Theta, R)`` for spikes of amplitude ``alpha_in``."""
        weight, scale = quantize_weight(self.linear.weight, self.settings.weight_bits)
        unit = float(scale) * alpha_in
        bias = torch.round(self.linear.bias.double() / unit).long()
        reset = max(1, round(float(self.alpha()) / unit))
        return weight.long().numpy(), bias.numpy(), reset // 2 + 1, reset

    def emit(self, e, name):
        weight, bias, threshold, reset = self.fold(e.amplitude)
        current = e.add(g.Accumulate(f"{name}_acc", (e.spikes,), f"{name}_a", weight=weight))
        e.spikes = e.add(g.Fire(f"{name}_fire", (current,), f"{name}_s", bias=bias,
                                threshold=threshold, reset=reset))
        e.amplitude = float(self.alpha())


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
        self.alpha = Amplitude()
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
        unit = self.gain().double() * e.unit
        reset = torch.clamp(torch.round(float(self.alpha()) / unit), min=1).long()
        bias = torch.round(self.beta.double() / unit).long()
        e.spikes = e.add(g.Fire(name, (e.residual,), f"{name}_s", bias=bias.numpy(),
                                threshold=(reset // 2 + 1).numpy(), reset=reset.numpy()))
        e.amplitude = float(self.alpha())


class ResidualAdd(Block):
    """An output projection of the spikes into the residual: ``r += W s`` (no bias).

    Its weight scale is forced to ``rho 2^k / alpha_in`` (:func:`out_shift`), so that ``W s``
    joins the residual by a shift of ``k``, rounded half up to ``rho`` for ``k < 0`` (in QAT
    too). A float twin's projection is a plain linear layer with bias. Empties the spikes.
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

    def forward(self, flow):
        if self.settings.float_twin:
            flow.residual = flow.residual + self.linear(flow.spikes)
        else:
            rho = flow.unit
            integers, k, scale = self._integer_weight(float(flow.amplitude.detach()), rho)
            w = self.linear.weight
            out = F.linear(flow.spikes, w + (integers * scale - w).detach())
            flow.residual = flow.residual + (round_to_grid(out, rho) if k < 0 else out)
        flow.spikes = flow.amplitude = None
        return flow

    def emit(self, e, name):
        integers, k, _ = self._integer_weight(e.amplitude, e.unit)
        e.residual = e.add(g.ResidualAdd(name, (e.residual, e.spikes), f"{name}_x",
                                         weight=integers.long().numpy(), shift=k))
        e.spikes = e.amplitude = None


class Readout(Block):
    """The output layer: ``logits = mean_t(W s_t) + b`` over the 256 bytes (no neuron).

    Integer form: ``B = round(b / (s_w alpha_in))`` and ``logit_scale = s_w alpha_in / T``
    (metadata: float logits are ``logit_scale`` times the integer logits).
    """

    stem = "readout"

    def __init__(self, name: str | None = None):
        super().__init__(name)

    def _build(self, widths):
        self._needs(widths, "spikes")
        self.linear = nn.Linear(widths.spikes, VOCAB)
        return Widths()

    def forward(self, flow):
        if self.settings.float_twin:
            flow.logits = F.linear(flow.spikes, self.linear.weight, self.linear.bias)
        else:
            flow.logits = (F.linear(flow.spikes, self.weight(self.linear)).mean(dim=1)
                           + self.linear.bias)
        return flow

    def emit(self, e, name):
        weight, scale = quantize_weight(self.linear.weight, self.settings.weight_bits)
        unit = float(scale) * e.amplitude
        bias = torch.round(self.linear.bias.double() / unit).long()
        e.add(g.Readout(name, (e.spikes,), "output", weight=weight.long().numpy(),
                        bias=bias.numpy()))
        e.logit_scale = unit / self.settings.timesteps
