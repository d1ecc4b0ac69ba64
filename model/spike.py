"""Elastic bi-spiking math: the ternary quantizer and the T-step integrate-and-fire neuron.

The spike of SpikeLM (arXiv 2406.03287) is ternary, ``s in {-1, 0, +1}``, times a learned
amplitude ``alpha``. This module holds the pure functions and their autograd wrappers:

* :func:`ternary_quantize` -- ``q(u, alpha) = alpha * clip(round(u / alpha), -1, 1)`` with
  ``torch.round`` (half to even). Its gradient is straight-through for ``u`` inside the clip
  range ``|u / alpha| <= 1`` and LSQ (Esser et al., 2020) for ``alpha``, scaled by
  ``1 / sqrt(u.numel())``.
* :func:`integrate_and_fire` -- the neuron of docs/integer-contract.md in float form, run over
  the time axis with back-propagation through time.

Nothing here knows about layers; :mod:`model.lm` builds modules on top.
"""

from __future__ import annotations

import math

import torch

__all__ = ["TernaryQuantize", "integrate_and_fire", "spike_rate", "ternary_quantize"]


class TernaryQuantize(torch.autograd.Function):
    """Autograd form of the ternary quantizer with an LSQ gradient for the amplitude."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, alpha: torch.Tensor, grad_scale: float) -> torch.Tensor:
        v = u / alpha
        s = torch.clamp(torch.round(v), -1.0, 1.0)
        ctx.save_for_backward(v, s)
        ctx.grad_scale = grad_scale
        return alpha * s

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        v, s = ctx.saved_tensors
        inside = (v >= -1.0) & (v <= 1.0)
        grad_u = grad_out * inside.to(grad_out.dtype)
        # LSQ: d(alpha*round(v))/d alpha = round(v) - v inside the range, the clip value outside.
        dq_dalpha = torch.where(inside, s - v, s)
        grad_alpha = (grad_out * dq_dalpha).sum() * ctx.grad_scale
        return grad_u, grad_alpha.reshape(()), None


def ternary_quantize(u: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``alpha * clip(round(u / alpha), -1, 1)`` with STE for ``u`` and LSQ for ``alpha``.

    ``alpha`` is a positive scalar tensor. The LSQ gradient is scaled by ``1/sqrt(u.numel())``.
    """
    grad_scale = 1.0 / math.sqrt(max(1, u.numel()))
    return TernaryQuantize.apply(u, alpha, grad_scale)


def spike_rate(out: torch.Tensor, u: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Fraction of non-zero spikes, with a gradient that can move it both ways.

    The value is exactly ``mean(out != 0)``. Its gradient is that of the surrogate
    ``mean(clip(|u| / alpha, 0, 1))`` (``u`` the membrane before firing), so the firing-rate
    regulariser can also wake silent neurons, which ``|s|`` alone (gradient 0 at 0) cannot.
    """
    true_rate = (out != 0).to(u.dtype).mean()
    surrogate = torch.clamp(u.abs() / alpha.detach(), 0.0, 1.0).mean()
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
    membrane = torch.zeros_like(currents[:, 0])
    outs = []
    pre = []
    for t in range(currents.shape[1]):
        membrane = membrane + currents[:, t]
        out = ternary_quantize(membrane, alpha)
        pre.append(membrane)
        outs.append(out)
        membrane = membrane - (out.detach() if detach_reset else out)
    out = torch.stack(outs, dim=1)
    rate = spike_rate(out, torch.stack(pre, dim=1), alpha)
    return out, rate
