"""SpikingLM: a byte-level spiking language model and its float twin.

The model predicts the next byte from the previous ``k`` bytes::

    embedding 256 x E  ->  embedding IF neuron (constant current emb[byte], amplitude alpha_0)
                       ->  SpikingLinear x L  (fake-quant weights + bias -> IF neuron, alpha_l)
                       ->  readout: logits = mean_t(W s_t) + b

With ``float_twin`` the same layers use float activations instead of spiking neurons
(``clamp(x, -alpha, alpha)`` with a learned ``alpha``: the rate-coded limit of a ternary
neuron), full-precision weights and no time axis.

The integer form (:meth:`SpikingLM.to_int_model`) follows the table "Where the scales went" in
docs/integer-contract.md, and :meth:`SpikingLM.int_forward` runs it in torch int64.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from contract.intmodel import VOCAB, IntModel, Readout, SpikingLayer
from contract.reference import Trace

from .errors import CheckpointError, ModelConfigError
from .quant import SUPPORTED_BITS, fake_quantize, quantize_weight
from .spike import integrate_and_fire

__all__ = ["ALPHA_MIN", "LMConfig", "SpikingLM"]

logger = logging.getLogger(__name__)

ALPHA_MIN = 1e-3
_CALIBRATION_RATE = 0.3


@dataclass(frozen=True)
class LMConfig:
    """Architecture and regularisation of a :class:`SpikingLM`."""

    context: int = 8
    embed: int = 16
    hidden: tuple[int, ...] = (256, 256)
    timesteps: int = 4
    weight_bits: int = 8
    float_twin: bool = False
    rate_target: float = 0.2
    rate_lambda: float = 2.0
    detach_reset: bool = True

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        for name in ("context", "embed", "timesteps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ModelConfigError(f"{name} must be a positive integer, not {value!r}")
        if not self.hidden or min(self.hidden) < 1:
            raise ModelConfigError(
                f"need at least one hidden layer of positive width, not {self.hidden!r}"
            )
        if self.weight_bits not in SUPPORTED_BITS:
            raise ModelConfigError(
                f"weight bits must be one of {', '.join(map(str, SUPPORTED_BITS))},"
                f" not {self.weight_bits!r}"
            )
        if not 0.0 <= self.rate_target <= 1.0:
            raise ModelConfigError(f"rate target must lie in [0, 1], not {self.rate_target!r}")
        if not (self.rate_lambda >= 0.0 and math.isfinite(self.rate_lambda)):
            raise ModelConfigError(
                f"rate lambda must be finite and non-negative, not {self.rate_lambda!r}"
            )

    def to_dict(self) -> dict:
        """Plain-Python form for checkpoints."""
        out = dataclasses.asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> LMConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ModelConfigError(f"unknown config keys {sorted(unknown)}")
        return cls(**data)


class _Amplitude(nn.Module):
    """A learned positive amplitude ``alpha`` (clamped at :data:`ALPHA_MIN`)."""

    def __init__(self):
        super().__init__()
        self.raw = nn.Parameter(torch.tensor(1.0))

    def forward(self) -> torch.Tensor:
        return torch.clamp(self.raw, min=ALPHA_MIN)


class SpikingLinear(nn.Module):
    """Fake-quantized linear layer feeding a ternary integrate-and-fire neuron."""

    def __init__(self, n_in: int, n_out: int, config: LMConfig):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.alpha = _Amplitude()
        self.config = config

    def current(self, x: torch.Tensor) -> torch.Tensor:
        """Input current ``W x + b`` (weights fake-quantized unless a float twin)."""
        weight = self.linear.weight
        if not self.config.float_twin:
            weight = fake_quantize(weight, self.config.weight_bits)
        return F.linear(x, weight, self.linear.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Outputs (``[N, T, n_out]`` spikes times alpha, or ``[N, n_out]``) and the rate."""
        current = self.current(x)
        alpha = self.alpha()
        if self.config.float_twin:
            return torch.maximum(torch.minimum(current, alpha), -alpha), None
        return integrate_and_fire(current, alpha, self.config.detach_reset)


def rate_penalty(rates: list[torch.Tensor], target: float, weight: float) -> torch.Tensor:
    """The firing-rate regulariser: ``weight * sum_l (rate_l - target)^2``."""
    if not rates:
        return torch.zeros(())
    return weight * sum((r - target) ** 2 for r in rates)


class SpikingLM(nn.Module):
    """Byte-level spiking LM with elastic bi-spiking neurons (see module docstring)."""

    def __init__(self, config: LMConfig | None = None):
        super().__init__()
        self.config = config or LMConfig()
        cfg = self.config
        self.embedding = nn.Embedding(VOCAB, cfg.embed)
        self.alpha0 = _Amplitude()
        widths = [cfg.context * cfg.embed, *cfg.hidden]
        self.layers = nn.ModuleList(
            SpikingLinear(n_in, n_out, cfg) for n_in, n_out in zip(widths, widths[1:], strict=False)
        )
        self.readout = nn.Linear(widths[-1], VOCAB)

    # ---------------------------------------------------------------- float forward

    def _embed(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        cfg = self.config
        emb = self.embedding(ids)  # [N, k, E]
        alpha = self.alpha0()
        if cfg.float_twin:
            x = torch.maximum(torch.minimum(emb, alpha), -alpha)
            return x.reshape(ids.shape[0], -1), None
        currents = emb.unsqueeze(1).expand(-1, cfg.timesteps, -1, -1)  # [N, T, k, E]
        out, rate = integrate_and_fire(currents, alpha, cfg.detach_reset)
        return out.reshape(ids.shape[0], cfg.timesteps, -1), rate

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Float logits ``[N, 256]`` and the differentiable firing rate of every spiking layer.

        Rates (embedding first) are empty for a float twin.
        """
        x, rate = self._embed(ids)
        rates = [rate] if rate is not None else []
        for layer in self.layers:
            x, rate = layer(x)
            if rate is not None:
                rates.append(rate)
        weight = self.readout.weight
        if self.config.float_twin:
            return F.linear(x, weight, self.readout.bias), rates
        weight = fake_quantize(weight, self.config.weight_bits)
        logits = F.linear(x, weight).mean(dim=1) + self.readout.bias
        return logits, rates

    def rate_penalty(self, rates: list[torch.Tensor]) -> torch.Tensor:
        """``lambda * sum_l (rate_l - target)^2`` over the spiking layers."""
        return rate_penalty(rates, self.config.rate_target, self.config.rate_lambda)

    @torch.no_grad()
    def calibrate(self, ids: torch.Tensor) -> None:
        """Data-dependent initialisation of every amplitude from one batch.

        Each ``alpha`` is set to ``mean|I| / 0.3`` of its first-step input current, so that a
        rate-coded neuron starts near a firing rate of 0.3 (for a float twin: the clamp starts
        around the bulk of the pre-activations).
        """
        cfg = self.config
        emb = self.embedding(ids)
        self.alpha0.raw.fill_(max(ALPHA_MIN, emb.abs().mean().item() / _CALIBRATION_RATE))
        x, _ = self._embed(ids)
        for layer in self.layers:
            current = layer.current(x)
            first = current if cfg.float_twin else current[:, 0]
            layer.alpha.raw.fill_(max(ALPHA_MIN, first.abs().mean().item() / _CALIBRATION_RATE))
            x, _ = layer(x)

    # ---------------------------------------------------------------- integer form

    def check_finite(self) -> None:
        """Raise :class:`CheckpointError` naming the first parameter holding NaN or inf."""
        for name, tensor in self.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise CheckpointError(f"parameter {name!r} holds NaN or inf; retrain the model")

    @torch.no_grad()
    def spike_table(self) -> np.ndarray:
        """The embedding neuron run for ``T`` steps on every byte: int8 ``[256, T, E]``."""
        if self.config.float_twin:
            raise CheckpointError("a float twin has no spike table; use a spiking checkpoint")
        ids = torch.arange(VOCAB).unsqueeze(1)  # 256 contexts of one byte
        emb = self.embedding(ids)
        currents = emb.unsqueeze(1).expand(-1, self.config.timesteps, -1, -1)
        out, _ = integrate_and_fire(currents, self.alpha0())
        spikes = torch.round(out / self.alpha0()).reshape(VOCAB, self.config.timesteps, -1)
        return spikes.to(torch.int8).numpy()

    @torch.no_grad()
    def to_int_model(self) -> IntModel:
        """The integer model of docs/integer-contract.md ("Where the scales went")."""
        cfg = self.config
        if cfg.float_twin:
            raise CheckpointError(
                "a float twin has no integer form; pass a spiking checkpoint (trained without"
                " --float)"
            )
        self.check_finite()
        alpha_in = float(self.alpha0())
        layers = []
        for layer in self.layers:
            weight, scale = quantize_weight(layer.linear.weight, cfg.weight_bits)
            unit = float(scale) * alpha_in
            alpha = float(layer.alpha())
            bias = torch.round(layer.linear.bias.double() / unit).long()
            reset = max(1, round(alpha / unit))
            layers.append(
                SpikingLayer(weight.long().numpy(), bias.numpy(), reset // 2 + 1, reset)
            )
            alpha_in = alpha
        weight, scale = quantize_weight(self.readout.weight, cfg.weight_bits)
        unit = float(scale) * alpha_in
        bias = torch.round(self.readout.bias.double() / unit).long()
        return IntModel(
            context=cfg.context,
            embed_dim=cfg.embed,
            timesteps=cfg.timesteps,
            weight_bits=cfg.weight_bits,
            spike_table=self.spike_table(),
            layers=tuple(layers),
            readout=Readout(weight.long().numpy(), bias.numpy()),
            logit_scale=unit / cfg.timesteps,
            meta={"source": "model.lm.SpikingLM", "config": cfg.to_dict()},
        )

    @torch.no_grad()
    def int_forward(self, ids, int_model: IntModel | None = None, trace: bool = False):
        """Integer logits (int64 ``[N, 256]``) of the integer model, in torch int64 ops.

        Gives exactly ``contract.reference.forward``. ``int_model`` defaults to
        :meth:`to_int_model`; with ``trace`` a :class:`contract.reference.Trace` of NumPy
        arrays (logits and every layer's spikes, the embedding's first) is returned instead.
        """
        return int_forward(int_model or self.to_int_model(), ids, trace=trace)


def int_forward(model: IntModel, ids, trace: bool = False):
    """The contract's forward pass of ``model`` in torch int64 (see :meth:`SpikingLM.int_forward`).

    Batched accumulation uses int64 ``matmul``; every value is exact.
    """
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.int64)
    if ids.ndim != 2 or ids.shape[1] != model.context:
        raise ValueError(f"ids must have shape [N, {model.context}], not {tuple(ids.shape)}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= VOCAB):
        raise ValueError(f"byte ids must lie in 0..{VOCAB - 1}")
    n, steps = ids.shape[0], model.timesteps
    table = torch.from_numpy(np.array(model.spike_table, dtype=np.int64))
    spikes = table[ids].permute(0, 2, 1, 3).reshape(n, steps, model.n_inputs)
    trail = [spikes]
    for layer in model.layers:
        weight_t = torch.from_numpy(np.array(layer.weight, dtype=np.int64)).T
        bias = torch.from_numpy(np.array(layer.bias, dtype=np.int64))
        currents = torch.matmul(spikes, weight_t)
        membrane = torch.zeros((n, layer.n_out), dtype=torch.int64)
        out = torch.empty_like(currents)
        for t in range(steps):
            v = membrane + currents[:, t] + bias
            s = (v >= layer.threshold).long() - (v <= -layer.threshold).long()
            membrane = v - layer.reset * s
            out[:, t] = s
        spikes = out
        trail.append(spikes)
    weight_t = torch.from_numpy(np.array(model.readout.weight, dtype=np.int64)).T
    bias = torch.from_numpy(np.array(model.readout.bias, dtype=np.int64))
    logits = torch.matmul(spikes, weight_t).sum(dim=1) + steps * bias
    if trace:
        return Trace(logits.numpy(), tuple(s.numpy() for s in trail))
    return logits
