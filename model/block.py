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

import torch
from torch import nn

from contract import graph as g

from .errors import ModelConfigError
from .quant import fake_quantize, qmax
from .spike import integrate_and_fire

__all__ = [
    "ALPHA_MIN",
    "Amplitude",
    "Block",
    "Emitter",
    "Flow",
    "Settings",
    "Widths",
    "check_positive",
    "out_shift",
    "round_to_grid",
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
