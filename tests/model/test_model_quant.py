"""Weight fake-quantization: integer range, scale rule and straight-through gradient."""

from __future__ import annotations

import pytest
import torch

from model.quant import fake_quantize, qmax, quantize_weight, weight_scale


@pytest.mark.parametrize(("bits", "limit"), [(8, 127), (4, 7), (2, 1)])
def test_integers_lie_in_range(bits, limit):
    torch.manual_seed(bits)
    weight = torch.randn(33, 17)
    integers, scale = quantize_weight(weight, bits)
    assert qmax(bits) == limit
    assert torch.equal(integers, torch.round(integers))
    assert integers.abs().max() <= limit
    assert integers.abs().max() == limit
    assert torch.allclose(fake_quantize(weight, bits), integers * scale)


def test_absmax_scale_and_ternary_rule():
    weight = torch.tensor([[0.5, -1.27, 0.01]])
    assert torch.isclose(weight_scale(weight, 8), torch.tensor(1.27 / 127))
    assert torch.isclose(weight_scale(weight, 2), 1.4 * weight.abs().mean())


def test_straight_through_gradient():
    weight = torch.randn(8, 8, requires_grad=True)
    (fake_quantize(weight, 4) * 3.0).sum().backward()
    assert torch.equal(weight.grad, torch.full_like(weight, 3.0))


def test_unsupported_bits():
    with pytest.raises(ValueError, match="8"):
        qmax(3)
