"""Elastic bi-spiking math: the ternary quantizer and the T-step integrate-and-fire neuron.

The spike of SpikeLM (arXiv 2406.03287) is ternary, ``s in {-1, 0, +1}``, times a learned
amplitude ``alpha``. This module holds the pure functions and their autograd wrappers:

* :func:`ternary_quantize` -- ``q(u, alpha) = alpha * clip(round(u / alpha), -1, 1)`` with
  ``torch.round`` (half to even). Its gradient is straight-through for ``u`` inside the clip
  range ``|u / alpha| <= 1`` and LSQ (Esser et al., 2020) for ``alpha``, scaled by
  ``1 / sqrt(u.numel())``.
* :func:`integrate_and_fire` -- the neuron of docs/integer-contract.md in float form, run over
  the time axis with back-propagation through time.
* :class:`Neuron` and :func:`run_neuron` -- the neuron options: SpikeForge's IF neuron or
  SpikeLM's (the official code's ``SpikeLinear``), shared or per-step amplitudes, a learned
  amplitude held by the rate regulariser or one calibrated from the membrane, ternary or
  binary spikes (docs/neurons.md).

Nothing here knows about layers; :mod:`model.blocks` builds modules on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import ModelConfigError

__all__ = ["AMPLITUDES", "FIRINGS", "NEURONS", "SPIKES", "Neuron", "TernaryQuantize",
           "calibrated_amplitude", "integrate_and_fire", "run_neuron", "spike_rate",
           "ternary_quantize", "without_plain_neuron"]

NEURONS = ("if", "spikelm")
AMPLITUDES = ("shared", "per-step")
FIRINGS = ("regularizer", "calibrated")
SPIKES = ("ternary", "binary")
#: SpikeLM's leak: ``u_t = 0.25 (alpha_{t-1} - o_{t-1}) u_{t-1} + I_t``
SPIKELM_LEAK = 0.25
#: SpikeForge caps SpikeLM's leak factor at 1 (docs/neurons.md): the same neuron as the official
#: code while ``alpha <= 2`` (LayerNorm'd inputs), no runaway membrane beyond
SPIKELM_LEAK_CAP = 1.0
#: momentum of a calibrated amplitude's running estimate while training
CALIBRATION_MOMENTUM = 0.1


class TernaryQuantize(torch.autograd.Function):
    """Autograd form of the ternary quantizer with an LSQ gradient for the amplitude."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, alpha: torch.Tensor, grad_scale: float,
                low: float = -1.0) -> torch.Tensor:
        v = u / alpha
        s = torch.clamp(torch.round(v), low, 1.0)
        ctx.save_for_backward(v, s)
        ctx.grad_scale = grad_scale
        ctx.low = low
        return alpha * s

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        v, s = ctx.saved_tensors
        inside = (v >= ctx.low) & (v <= 1.0)
        grad_u = grad_out * inside.to(grad_out.dtype)
        # LSQ: d(alpha*round(v))/d alpha = round(v) - v inside the range, the clip value outside.
        dq_dalpha = torch.where(inside, s - v, s)
        grad_alpha = (grad_out * dq_dalpha).sum() * ctx.grad_scale
        return grad_u, grad_alpha.reshape(()), None, None


def ternary_quantize(u: torch.Tensor, alpha: torch.Tensor, binary: bool = False,
                     shards: int = 1) -> torch.Tensor:
    """``alpha * clip(round(u / alpha), -1, 1)`` with STE for ``u`` and LSQ for ``alpha``.

    ``alpha`` is a positive scalar tensor. The LSQ gradient is scaled by ``1/sqrt(u.numel())``,
    the elements of the whole batch when ``u`` is one of ``shards`` equal shares of it
    (data-parallel training). ``binary`` clips at 0 instead of -1: spikes in {0, 1}.
    """
    grad_scale = 1.0 / math.sqrt(max(1, u.numel() * shards))
    return TernaryQuantize.apply(u, alpha, grad_scale, 0.0 if binary else -1.0)


def spike_rate(out: torch.Tensor, u: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Fraction of non-zero spikes, with a gradient that can move it both ways.

    The value is exactly ``mean(out != 0)``. Its gradient is that of the surrogate
    ``mean(clip(|u| / alpha, 0, 1))`` (``u`` the membrane before firing), so the firing-rate
    regulariser can also wake silent neurons, which ``|s|`` alone (gradient 0 at 0) cannot.
    """
    true_rate = (out != 0).to(u.dtype).mean()
    alpha = alpha.detach()
    if alpha.ndim:  # one amplitude per step, axis 1 of ``u``
        alpha = alpha.reshape(1, -1, *([1] * (u.ndim - 2)))
    surrogate = torch.clamp(u.abs() / alpha, 0.0, 1.0).mean()
    return surrogate + (true_rate - surrogate).detach()


def integrate_and_fire(
    currents: torch.Tensor, alpha: torch.Tensor, detach_reset: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the ternary integrate-and-fire neuron over axis 1 (time) of ``currents[N, T, ...]``.

    Per step: ``u += I_t; out_t = q(u, alpha); u -= out_t`` with ``u = 0`` before step 0.
    Returns ``(out, rate)``: the output currents ``alpha * s_t`` stacked over time and the
    differentiable firing rate of :func:`spike_rate`. With ``detach_reset`` (the default) the
    soft reset is kept out of the graph, as usual for spiking networks trained with surrogate
    gradients; the forward values are the same either way.
    """
    steps = currents.shape[1]
    return run_neuron(currents, alpha.expand(steps), Neuron(), detach_reset)


@dataclass(frozen=True)
class Neuron:
    """The neuron options every spiking block of a model shares (docs/neurons.md).

    ``kind``: ``"if"``, SpikeForge's integrate-and-fire (``u += I; o = q(u); u -= o``), or
    ``"spikelm"``, the official SpikeLM code's (``u_t = 0.25 (alpha_{t-1} - o_{t-1}) u_{t-1} +
    I_t``, no subtraction: a hard reset after a +1 spike, a leak otherwise; the factor capped
    at :data:`SPIKELM_LEAK_CAP`). ``amplitude``:
    one ``alpha`` for all steps or one per step (default: shared for ``if``, per step for
    ``spikelm``). ``firing``: ``"regularizer"`` (``alpha`` learned by LSQ, rates held by the
    loss) or ``"calibrated"`` (``alpha_t = 2 mean|u_t|``, SpikeLM's elastic frequency: not
    learned, no rate loss; default for ``spikelm``). ``spikes``: ``"ternary"`` {-1, 0, 1} or
    ``"binary"`` {0, 1}.
    """

    kind: str = "if"
    amplitude: str | None = None
    firing: str | None = None
    spikes: str = "ternary"

    def __post_init__(self):
        spikelm = self.kind == "spikelm"
        if self.amplitude is None:
            object.__setattr__(self, "amplitude", "per-step" if spikelm else "shared")
        if self.firing is None:
            object.__setattr__(self, "firing", "calibrated" if spikelm else "regularizer")
        for field, value, choices in (("neuron", self.kind, NEURONS),
                                      ("amplitude", self.amplitude, AMPLITUDES),
                                      ("firing", self.firing, FIRINGS),
                                      ("spikes", self.spikes, SPIKES)):
            if value not in choices:
                raise ModelConfigError(f"{field} must be one of {', '.join(choices)},"
                                       f" not {value!r}")

    @property
    def plain(self) -> bool:
        """Whether this is the default neuron (IF, shared, regularised, ternary)."""
        return self == Neuron()

    @property
    def per_step(self) -> bool:
        return self.amplitude == "per-step"

    @property
    def calibrated(self) -> bool:
        return self.firing == "calibrated"

    @property
    def binary(self) -> bool:
        return self.spikes == "binary"

    def as_dict(self) -> dict:
        return {"neuron": self.kind, "amplitude": self.amplitude, "firing": self.firing,
                "spikes": self.spikes}


def without_plain_neuron(config: dict) -> dict:
    """A config dict without its neuron keys when they are the plain neuron's (so that
    checkpoints of the default neuron keep the format they had before the options)."""
    plain = Neuron().as_dict()
    if all(config.get(k, v) == v for k, v in plain.items()):
        return {k: v for k, v in config.items() if k not in plain}
    return config


def calibrated_amplitude(u: torch.Tensor) -> torch.Tensor:
    """SpikeLM's amplitude of a membrane ``u``: ``2 mean|u|`` (its ``AlphaInit`` for ternary
    spikes, ``Qp = 1``)."""
    return 2.0 * u.detach().abs().mean()


def run_neuron(currents: torch.Tensor, alphas: torch.Tensor, neuron: Neuron,
               detach_reset: bool = True, observe=None, shards: int = 1):
    """Run ``neuron`` over axis 1 (time) of ``currents[N, T, ...]``.

    ``alphas`` holds one amplitude per step ``[T]`` (a shared one repeated). ``observe(t, u)``,
    if given, is called with each step's membrane before it fires and returns the amplitude to
    fire with (calibration). ``shards``: ``currents`` is one of that many equal shares of the
    batch (:func:`ternary_quantize`). Returns ``(out, rate)`` as :func:`integrate_and_fire`.
    """
    steps = currents.shape[1]
    membrane = prev_alpha = prev_out = None
    outs, pre, used = [], [], []
    for t in range(steps):
        if membrane is None:
            u = currents[:, 0]
        elif neuron.kind == "spikelm":
            factor = torch.clamp(SPIKELM_LEAK * (prev_alpha - prev_out).detach(),
                                 max=SPIKELM_LEAK_CAP)
            u = factor * membrane + currents[:, t]
        else:
            u = membrane + currents[:, t]
        alpha = observe(t, u) if observe is not None else alphas[t]
        out = ternary_quantize(u, alpha, neuron.binary, shards)
        pre.append(u)
        outs.append(out)
        used.append(alpha.detach())
        if neuron.kind == "spikelm":
            membrane = u
        else:
            membrane = u - (out.detach() if detach_reset else out)
        prev_alpha, prev_out = alpha, out
    out = torch.stack(outs, dim=1)
    return out, spike_rate(out, torch.stack(pre, dim=1), torch.stack(used))
