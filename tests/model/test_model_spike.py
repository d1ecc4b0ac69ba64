"""The ternary quantizer, its LSQ gradient and the integrate-and-fire neuron."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.spike import integrate_and_fire, spike_rate, ternary_quantize


def test_quantizer_values_and_half_to_even():
    alpha = torch.tensor(2.0)
    u = torch.tensor([-5.0, -3.0, -1.0, -0.5, 0.0, 0.99, 1.0, 1.01, 2.9, 3.0, 100.0])
    expected = torch.tensor([-2.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    # u/alpha = 0.5 rounds to 0 (half to even) and 1.5 to 2, clipped to 1.
    assert torch.equal(ternary_quantize(u, alpha), expected)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=1, max_size=20), st.floats(0.05, 5.0))
def test_quantizer_is_ternary_times_alpha(values, alpha):
    out = ternary_quantize(torch.tensor(values), torch.tensor(alpha))
    spikes = out / alpha
    assert set(torch.round(spikes).tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.allclose(spikes, torch.round(spikes))


def test_straight_through_gradient_for_u():
    alpha = torch.tensor(1.0)
    u = torch.tensor([-2.0, -1.0, -0.3, 0.4, 1.0, 1.5], requires_grad=True)
    ternary_quantize(u, alpha).sum().backward()
    assert u.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_lsq_gradient_for_alpha():
    u = torch.tensor([-3.0, -0.8, 0.2, 0.6, 4.0])
    alpha = torch.tensor(1.0, requires_grad=True)
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    (ternary_quantize(u, alpha) * weights).sum().backward()
    v = u / 1.0
    s = torch.clamp(torch.round(v), -1, 1)
    inside = v.abs() <= 1
    dq = torch.where(inside, s - v, s)
    expected = (weights * dq).sum() / math.sqrt(u.numel())
    assert torch.allclose(alpha.grad, expected)


def test_integrate_and_fire_matches_contract_float_form():
    torch.manual_seed(3)
    currents = torch.randn(5, 6, 7)
    alpha = torch.tensor(0.7)
    out, rate = integrate_and_fire(currents, alpha)
    u = torch.zeros(5, 7)
    for t in range(6):
        u = u + currents[:, t]
        s = torch.clamp(torch.round(u / alpha), -1, 1)
        u = u - alpha * s
        assert torch.equal(out[:, t], alpha * s)
    assert math.isclose(float(rate), float((out != 0).float().mean()), rel_tol=1e-6)


def test_bptt_reaches_every_step_and_alpha():
    currents = torch.randn(4, 3, 5, requires_grad=True)
    alpha = torch.tensor(0.5, requires_grad=True)
    out, rate = integrate_and_fire(currents, alpha)
    (out.sum() + rate).backward()
    assert currents.grad is not None and torch.count_nonzero(currents.grad) > 0
    assert alpha.grad is not None and torch.isfinite(alpha.grad)


def test_rate_gradient_can_wake_silent_neurons():
    u = torch.tensor([0.1, -0.2, 0.3], requires_grad=True)
    alpha = torch.tensor(1.0)
    out = ternary_quantize(u, alpha)
    rate = spike_rate(out, u, alpha)
    assert rate.item() == 0.0
    (-rate).backward()
    assert torch.all(u.grad.abs() > 0)
