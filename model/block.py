"""The base of every block: the registers blocks hand on, and what blocks share.

A model (:class:`model.net.SpikingNet`) is a chain of blocks (:mod:`model.blocks`,
:mod:`model.attention`) over two registers: the latest *spikes* (``alpha * s`` with ternary
``s``, ``[N, T, ..., width]``, and their amplitude ``alpha``) and the *residual* (a stream of
multiples of one unit ``rho``). Every :class:`Block`

* creates its parameters once the chain tells it the widths it receives (:meth:`Block.build`);
* runs the float (QAT) forward on a :class:`Flow`: fake-quantized weights and ternary
  integrate-and-fire neurons over ``T`` time steps, or, for a float twin (``float_twin``), float
  weights and ``clamp(x, -alpha, alpha)`` activations without a time axis;
* emits its ops of :mod:`contract.graph` on an :class:`Emitter`, given the amplitude of the
  spikes and the unit of the residual it receives (:meth:`Block.emit`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from contract import graph as g

from .errors import ModelConfigError
from .parallel import Ranks
from .quant import fake_quantize, qmax
from .spike import (
    CALIBRATION_MOMENTUM,
    SPIKELM_LEAK,
    SPIKELM_LEAK_CAP,
    Neuron,
    calibrated_amplitude,
    run_neuron,
)

__all__ = [
    "ALPHA_MIN",
    "Amplitude",
    "Block",
    "Emitter",
    "Flow",
    "Settings",
    "Widths",
    "check_positive",
    "fold_neuron",
    "out_shift",
    "round_to_grid",
    "shift_add_terms",
    "step_amplitudes",
]

ALPHA_MIN = 1e-3
CALIBRATION_RATE = 0.3


@dataclass(frozen=True)
class Settings:
    """What every block of one model shares."""

    timesteps: int
    weight_bits: int
    float_twin: bool = False
    detach_reset: bool = True
    neuron: Neuron = Neuron()


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
    ``ranks`` is set while training data-parallel (:mod:`model.parallel`): ``ids`` are then this
    rank's share of the batch, and the statistics a neuron takes of it are the whole batch's.
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
    ranks: Ranks | None = None

    @property
    def shards(self) -> int:
        """Equal shares the batch is split into (1 without data parallelism)."""
        return 1 if self.ranks is None else self.ranks.world


@dataclass
class Emitter:
    """The integer form's registers while blocks emit their ops: tensor names, the amplitude
    ``alpha`` of the spikes and the unit ``rho`` of the residual they stand for."""

    timesteps: int
    weight_bits: int
    ops: list = field(default_factory=list)
    spikes: str | None = None
    amplitude: float | np.ndarray | None = None  #: a shared alpha, or one per step ``[T]``
    residual: str | None = None
    unit: float | None = None
    logit_scale: float | None = None

    def add(self, op: g.Op) -> str:
        """Append ``op``; returns its output tensor."""
        self.ops.append(op)
        return op.output


class Amplitude(nn.Module):
    """A positive amplitude ``alpha`` (clamped at :data:`ALPHA_MIN`): one shared by every time
    step (a scalar) or one per step (``steps > 1``: ``[T]``); ``learned=False`` keeps it out of
    the optimizer (a calibrated amplitude)."""

    def __init__(self, steps: int = 1, learned: bool = True):
        super().__init__()
        value = torch.tensor(1.0) if steps == 1 else torch.ones(steps)
        self.raw = nn.Parameter(value, requires_grad=learned)

    def forward(self) -> torch.Tensor:
        return torch.clamp(self.raw, min=ALPHA_MIN)

    @property
    def per_step(self) -> bool:
        return self.raw.ndim == 1

    def steps(self, timesteps: int) -> torch.Tensor:
        """One amplitude per step, ``[T]``."""
        alpha = self()
        return alpha if self.per_step else alpha.expand(timesteps)

    def value(self) -> float | np.ndarray:
        """The amplitude for the integer form: a float, or ``[T]`` float64 per step."""
        alpha = self().detach().double()
        return alpha.cpu().numpy().copy() if self.per_step else float(alpha)


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


#: exponents a leak term may have: ``x 2^e`` for ``e`` in this range
LEAK_EXPONENTS = range(-16, 3)


def shift_add_terms(factor: float) -> np.ndarray:
    """The closest ``2^a ± 2^b`` (or ``2^a``, or 0) to ``factor >= 0``: terms ``[2, (sign, e)]``
    of :func:`contract.ops.leak`; ties go to the single term."""
    if factor <= 0.0:
        return np.zeros((2, 2), dtype=np.int64)
    best = (abs(factor - 2.0 ** LEAK_EXPONENTS[0]), ((1, LEAK_EXPONENTS[0]), (0, 0)))
    for a in LEAK_EXPONENTS:
        candidates = [((1, a), (0, 0))]
        candidates += [((1, a), (sign, b)) for b in LEAK_EXPONENTS if b < a for sign in (1, -1)]
        for terms in candidates:
            value = sum(sign * 2.0**e for sign, e in terms)
            if abs(factor - value) < best[0] - 1e-15 * factor:
                best = (abs(factor - value), terms)
    return np.array(best[1], dtype=np.int64)


def step_amplitudes(amplitude, steps: int) -> np.ndarray:
    """An emitter's amplitude as one float per step, ``[T]``."""
    return np.broadcast_to(np.asarray(amplitude, dtype=np.float64), (steps,)).copy()


def _over_time(arr: np.ndarray, scalar: bool):
    """``[T, n]`` constants without the time axis when every step is the same (and a scalar
    when ``scalar`` and every neuron is the same too)."""
    if (arr == arr[0]).all():
        arr = arr[0]
        if scalar and (arr == arr.flat[0]).all():
            return int(arr.flat[0])
    return arr


def fold_neuron(neuron: Neuron, units: np.ndarray, alphas, bias: np.ndarray,
                scalar: bool = False) -> dict:
    """The integer constants of a neuron (docs/neurons.md) as keyword arguments of
    ``contract.graph.Fire``.

    ``units`` ``[T, k]`` (``k`` 1 or per neuron) is what one unit of the integer membrane is
    worth at each step, ``alphas`` the neuron's amplitude per step ``[T]``, ``bias`` the float
    bias ``[n]``. The IF neuron: ``B_t = round(b / c_t)``, ``R_t = max(1, round(alpha_t / c_t))``,
    ``Θ_t = R_t // 2 + 1``; SpikeLM's: ``R = 0`` and ``Θ_t = floor(alpha_t / (2 c_t)) + 1``
    (``round(u / alpha) >= 1``). Between steps the membrane is rescaled by ``c_t / c_{t+1}``
    (per-step input amplitudes) times SpikeLM's leak ``min(0.25 alpha_t (1 - s), 1)``, as shifts
    and adds
    (:func:`shift_add_terms`). Constants that do not change over time lose the time axis.
    """
    units = np.asarray(units, dtype=np.float64)
    steps, n = units.shape[0], len(bias)
    alphas = np.asarray(alphas, dtype=np.float64).reshape(steps, 1)
    shape = (steps, n)
    b = np.broadcast_to(np.round(np.asarray(bias, dtype=np.float64)[None, :] / units), shape)
    if neuron.kind == "spikelm":
        threshold = np.floor(alphas / (2.0 * units)) + 1
        reset = np.zeros_like(threshold)
    else:
        reset = np.maximum(1, np.round(alphas / units))
        threshold = reset // 2 + 1
    threshold, reset = (np.broadcast_to(x, shape).astype(np.int64) for x in (threshold, reset))
    leaks = np.zeros((max(0, steps - 1), 3, 2, 2), dtype=np.int64)
    identity = True
    for t in range(steps - 1):
        ratios = units[t] / units[t + 1]
        if not np.allclose(ratios, ratios[0], rtol=1e-12):
            raise ValueError("a neuron's units must change by one ratio for all its neurons")
        for index, spike in enumerate((-1, 0, 1)):
            scale = (min(SPIKELM_LEAK * alphas[t, 0] * (1 - spike), SPIKELM_LEAK_CAP)
                     if neuron.kind == "spikelm" else 1.0)
            factor = scale * float(ratios[0])
            leaks[t, index] = shift_add_terms(factor)
            identity &= factor == 1.0
    out = {"bias": _over_time(b.astype(np.int64), False),
           "threshold": _over_time(threshold, scalar), "reset": _over_time(reset, scalar)}
    per_step = any(np.ndim(v) == 2 for v in out.values())
    if per_step:
        out = {k: np.broadcast_to(v, shape) if np.ndim(v) < 2 else v for k, v in out.items()}
    out["leak"] = None if identity else leaks
    out["binary"] = neuron.binary
    return out


def check_positive(**values) -> None:
    """Raise :class:`ModelConfigError` unless every value is a positive integer."""
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
        try:
            return self._build(widths)
        except ModelConfigError:
            self.settings = None
            raise

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

    def amplitude(self) -> Amplitude:
        """A fresh amplitude for the model's neuron: per step or shared, learned or calibrated
        (a float twin's is shared and learned)."""
        settings = self.settings
        if settings.float_twin:
            return Amplitude()
        neuron = settings.neuron
        return Amplitude(settings.timesteps if neuron.per_step else 1,
                         learned=not neuron.calibrated)

    def weight(self, linear: nn.Linear) -> torch.Tensor:
        """``linear``'s weight: fake-quantized, or float for a twin."""
        if self.settings.float_twin:
            return linear.weight
        return fake_quantize(linear.weight, self.settings.weight_bits)

    def fire(self, flow: Flow, current: torch.Tensor, amp: Amplitude) -> torch.Tensor:
        """The neuron of every block over axis 1 of ``current``, or a clamp for a twin.

        While calibrating, a learned ``alpha`` is first set to ``mean|I| / 0.3`` of the
        first-step current, so that a rate-coded neuron starts near a firing rate of 0.3 (a
        twin's clamp: around the bulk of its inputs). A calibrated ``alpha`` (``firing=
        "calibrated"``) is set to ``2 mean|u_t|`` of the membrane it fires on, step by step,
        and then follows it while training (a running mean, momentum
        :data:`~model.spike.CALIBRATION_MOMENTUM`); it is fixed in eval mode. Data-parallel
        (``flow.ranks``), the mean is taken over every rank's share, so the amplitudes stay the
        same on all ranks.
        """
        settings = self.settings
        neuron = settings.neuron
        calibrated = neuron.calibrated and not settings.float_twin
        if flow.calibrating and not calibrated:
            first = current if settings.float_twin else current[:, 0]
            amp.raw.fill_(max(ALPHA_MIN, first.abs().mean().item() / CALIBRATION_RATE))
        if settings.float_twin:
            alpha = amp()
            return torch.maximum(torch.minimum(current, alpha), -alpha)
        observe = None
        if calibrated and (flow.calibrating or self.training):
            def observe(t: int, u: torch.Tensor) -> torch.Tensor:
                index = t if amp.per_step else ()
                with torch.no_grad():
                    target = calibrated_amplitude(u)
                    if flow.ranks is not None:
                        target = flow.ranks.average(target)
                    target = max(ALPHA_MIN, float(target))
                    if flow.calibrating:
                        if amp.per_step or t == 0:
                            amp.raw[index] = target
                    else:
                        amp.raw[index] += CALIBRATION_MOMENTUM * (target - amp.raw[index])
                return amp()[index]
        out, rate = run_neuron(current, amp.steps(settings.timesteps), neuron,
                               settings.detach_reset, observe, flow.shards)
        flow.rates.append(rate)
        return out
