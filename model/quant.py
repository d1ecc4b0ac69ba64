"""Per-tensor symmetric weight fake-quantization with a straight-through estimator.

Weights are stored in float and quantized on the fly: ``W_float ~= s_w * W`` with integers
``W`` in ``[-qmax, qmax]``, ``qmax = 2^(bits-1) - 1``. The scale ``s_w`` is not learned:

* 8 and 4 bits: ``s_w = max|W_float| / qmax`` (absmax; nothing is clipped).
* 2 bits (ternary, ``qmax = 1``): ``s_w = 1.4 * mean|W_float|``, the ternary-weight-network
  rule, which zeroes the weights below ``0.7 * mean|W_float|``. Absmax would zero almost all.

The scale is treated as a constant in the backward pass; the rounding is straight-through.
"""

from __future__ import annotations

import torch

__all__ = ["SUPPORTED_BITS", "fake_quantize", "qmax", "quantize_weight", "weight_scale"]

SUPPORTED_BITS = (2, 4, 8)
_TERNARY_SCALE = 1.4


def qmax(bits: int) -> int:
    """Largest integer magnitude of a ``bits``-bit symmetric weight."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"weight bits must be one of {SUPPORTED_BITS}, not {bits!r}")
    return (1 << (bits - 1)) - 1


def weight_scale(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """The per-tensor scale ``s_w`` (a detached positive scalar)."""
    w = weight.detach()
    limit = qmax(bits)
    if bits == 2:
        scale = _TERNARY_SCALE * w.abs().mean()
    else:
        scale = w.abs().max() / limit
    return torch.clamp(scale, min=torch.finfo(w.dtype).tiny)


def quantize_weight(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer weights (as a float tensor of integral values) and their scale ``s_w``."""
    scale = weight_scale(weight, bits)
    limit = qmax(bits)
    return torch.clamp(torch.round(weight.detach() / scale), -limit, limit), scale


def fake_quantize(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """``s_w * W`` in the forward pass, identity gradient in the backward pass."""
    integers, scale = quantize_weight(weight, bits)
    return weight + (integers * scale - weight).detach()
