"""The model zoo: the shipped architectures as compositions of blocks.

| name | configuration | composition |
| --- | --- | --- |
| ``mlp`` | :class:`LMConfig` | ``SpikeEmbed(context, embed)``, ``SpikingLinear(h)`` per hidden layer, ``Readout`` |
| ``transformer`` | :class:`TransformerConfig` | ``TokenEmbed(d)``; per block ``NormNeuron``, ``SpikingAttention``, ``ResidualAdd``, ``NormNeuron``, ``SpikingLinear(ffn)``, ``ResidualAdd``; ``NormNeuron``, ``Readout`` |
| ``encoder`` | :class:`EncoderConfig` | the transformer's blocks with bidirectional attention (``causal=False``) over a sequence of ``context`` bytes, ``Readout(classes)`` (mean pooling, a class per sequence) |

A zoo configuration is what ``python -m model.train --arch NAME`` builds from its flags and
what the checkpoint stores (the dict of ``spikeforge-ckpt/1``: an MLP's carries no ``arch``, a
transformer's ``"arch": "transformer"``, a composition's ``"arch": "composed"``).
Checkpoints of the zoo keep the parameter names of the models they were first trained as
(``embedding.weight``, ``layers.0.linear.weight``, ``blocks.0.q.linear.weight``, ...);
:meth:`LMConfig.key_map` and :meth:`TransformerConfig.key_map` translate them to the blocks'.
"""  # noqa: E501

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .attention import SCORES, SpikingAttention
from .blocks import NORMS, NormNeuron, Readout, ResidualAdd, SpikeEmbed, SpikingLinear, TokenEmbed
from .errors import ModelConfigError
from .net import NetConfig, SpikingNet, check_settings
from .spike import Neuron, without_plain_neuron

__all__ = ["ZOO", "EncoderConfig", "LMConfig", "TransformerConfig", "build_model",
           "config_from_dict"]


class _ZooConfig:
    """What the zoo's configurations share: settings, dict form, validation."""

    def _check(self, *positive: str) -> None:
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ModelConfigError(f"{name} must be a positive integer, not {value!r}")
        check_settings(self.timesteps, self.weight_bits, self.rate_target, self.rate_lambda)
        Neuron(self.neuron, self.amplitude, self.firing, self.spikes)

    def settings(self) -> dict:
        """Keyword arguments of :class:`~model.net.SpikingNet` besides the blocks."""
        return {name: getattr(self, name) for name in ("timesteps", "weight_bits", "float_twin",
                                                       "rate_target", "rate_lambda",
                                                       "detach_reset", "neuron", "amplitude",
                                                       "firing", "spikes")}

    def to_dict(self) -> dict:
        """Plain-Python form for checkpoints."""
        return without_plain_neuron(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict):
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ModelConfigError(f"unknown config keys {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class LMConfig(_ZooConfig):
    """The spiking MLP (``mlp``): the last ``context`` bytes' spikes through hidden layers."""

    context: int = 8
    embed: int = 16
    hidden: tuple[int, ...] = (256, 256)
    timesteps: int = 4
    weight_bits: int = 8
    float_twin: bool = False
    rate_target: float = 0.2
    rate_lambda: float = 2.0
    detach_reset: bool = True
    neuron: str = "if"
    amplitude: str = "shared"
    firing: str = "regularizer"
    spikes: str = "ternary"

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not self.hidden or min(self.hidden) < 1:
            raise ModelConfigError(
                f"need at least one hidden layer of positive width, not {self.hidden!r}"
            )
        self._check("context", "embed", "timesteps")

    def make_blocks(self) -> list:
        """``SpikeEmbed``, one ``SpikingLinear`` per hidden layer, ``Readout``."""
        return [SpikeEmbed(self.context, self.embed), *(SpikingLinear(h) for h in self.hidden),
                Readout()]

    def key_map(self) -> list[tuple[str, str]]:
        """``(checkpoint prefix, module prefix)`` of every parameter group."""
        n = len(self.hidden)
        return [("embedding.", "blocks.0.embedding."), ("alpha0.", "blocks.0.alpha."),
                *((f"layers.{i}.", f"blocks.{i + 1}.") for i in range(n)),
                ("readout.", f"blocks.{n + 1}.linear.")]

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["hidden"] = list(self.hidden)
        return out


@dataclass(frozen=True)
class TransformerConfig(_ZooConfig):
    """The spiking transformer (``transformer``); ``context`` is the attention window.

    ``norm="layernorm"`` and ``attention="softmax"`` are the float ablations (no integer
    form); see docs/transformer.md.
    """

    context: int = 16
    d_model: int = 64
    heads: int = 2
    layers: int = 1
    ffn: int = 128
    timesteps: int = 4
    weight_bits: int = 8
    float_twin: bool = False
    norm: str = "affine"
    attention: str = "relu"
    rate_target: float = 0.3
    rate_lambda: float = 0.25
    detach_reset: bool = True
    neuron: str = "if"
    amplitude: str = "shared"
    firing: str = "regularizer"
    spikes: str = "ternary"
    arch: str = "transformer"

    ARCH = "transformer"

    def __post_init__(self):
        self._check("context", "d_model", "heads", "layers", "ffn", "timesteps")
        if self.d_model % self.heads:
            raise ModelConfigError(
                f"d_model {self.d_model} must be a multiple of heads {self.heads}"
            )
        if self.norm not in NORMS:
            raise ModelConfigError(f"norm must be one of {NORMS}, not {self.norm!r}")
        if self.attention not in SCORES:
            raise ModelConfigError(f"attention must be one of {SCORES}, not {self.attention!r}")
        if self.arch != self.ARCH:
            raise ModelConfigError(f"arch must be {self.ARCH!r}, not {self.arch!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    @property
    def integer_exportable(self) -> bool:
        """Whether every op has an integer form (spiking, folded affine, ReLU attention)."""
        return not self.float_twin and self.norm == "affine" and self.attention == "relu"

    def make_blocks(self) -> list:
        """The token embedding, ``layers`` pre-norm blocks, the final norm and the readout."""
        blocks = [TokenEmbed(self.d_model)]
        for _ in range(self.layers):
            blocks += [NormNeuron(self.norm), self._attention(), ResidualAdd(),
                       NormNeuron(self.norm), SpikingLinear(self.ffn), ResidualAdd()]
        return [*blocks, NormNeuron(self.norm), self._readout()]

    def _attention(self) -> SpikingAttention:
        return SpikingAttention(self.heads, self.context, self.attention)

    def _readout(self) -> Readout:
        return Readout()

    def key_map(self) -> list[tuple[str, str]]:
        """``(checkpoint prefix, module prefix)`` of every parameter group."""
        pairs = [("tok.", "blocks.0.embedding.")]
        for b in range(self.layers):
            old, j = f"blocks.{b}.", 1 + 6 * b
            attn = f"blocks.{j + 1}."
            pairs += [(old + "norm1.", f"blocks.{j}."), (old + "score_bias", attn + "score_bias"),
                      (old + "tau", attn + "tau"), (old + "q.", attn + "q."),
                      (old + "k.", attn + "k."), (old + "v.", attn + "v."),
                      (old + "attn_alpha.", attn + "alpha."),
                      (old + "out.", f"blocks.{j + 2}.linear."),
                      (old + "norm2.", f"blocks.{j + 3}."),
                      (old + "ff1.", f"blocks.{j + 4}."), (old + "ff2.", f"blocks.{j + 5}.linear.")]
        n = 1 + 6 * self.layers
        return [*pairs, ("norm_f.", f"blocks.{n}."), ("readout.", f"blocks.{n + 1}.linear.")]


@dataclass(frozen=True)
class EncoderConfig(TransformerConfig):
    """The spiking encoder (``encoder``): the transformer's blocks with bidirectional attention
    over a whole sequence of at most ``context`` bytes, and a classification head over
    ``classes`` that averages the positions (SpikeLM's discriminative half)."""

    context: int = 64
    classes: int = 8
    rate_target: float = 0.3
    arch: str = "encoder"

    ARCH = "encoder"

    def __post_init__(self):
        super().__post_init__()
        self._check("classes")

    def _attention(self) -> SpikingAttention:
        return SpikingAttention(self.heads, self.context, self.attention, causal=False)

    def _readout(self) -> Readout:
        return Readout(self.classes)

    def key_map(self) -> list[tuple[str, str]]:
        """The encoder's checkpoints use the blocks' own parameter names."""
        return []


#: the zoo, by the name ``python -m model.train --arch`` takes
ZOO = {"mlp": LMConfig, "transformer": TransformerConfig, "encoder": EncoderConfig}


def config_from_dict(data: dict):
    """The configuration a checkpoint's config dict describes (by its ``arch``)."""
    arch = data.get("arch", "mlp")
    if arch == "composed":
        return NetConfig.from_dict(data)
    if arch not in ZOO:
        raise ModelConfigError(f"unknown arch {arch!r}; known: {', '.join([*ZOO, 'composed'])}")
    if arch == "mlp":
        data = {k: v for k, v in data.items() if k != "arch"}
    return ZOO[arch].from_dict(data)


def build_model(config) -> SpikingNet:
    """A fresh model of ``config`` (a zoo configuration or a :class:`~model.net.NetConfig`)."""
    return SpikingNet.from_config(config)
