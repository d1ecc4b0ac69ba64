"""SpikingNet: a model composed of blocks, its training hooks and its integer graph.

::

    net = SpikingNet([SpikeEmbed(context=6, embed=8), SpikingLinear(48), SpikingLinear(24),
                      Readout()], timesteps=3, weight_bits=4)

The first block is an embedding and the last a :class:`~model.blocks.Readout`; the chain builds
each block for the widths it receives. The model's float forward runs the blocks in order
(:meth:`SpikingNet.forward`), and :meth:`SpikingNet.to_graph` lets each block emit its ops: the
model's :class:`contract.graph.Graph`, which ``contract.graph.run`` executes, ``model.export``
writes as ONNX and ``rtl_gen`` compiles. :class:`NetConfig` (the block specs and the shared
settings) is what a checkpoint stores to rebuild the model; the zoo's configurations
(:mod:`model.zoo`) build their blocks the same way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from contract.graph import Graph, run

from .attention import SpikingAttention
from .block import Block, Emitter, Flow, Settings, Widths
from .blocks import NormNeuron, Readout, ResidualAdd, SpikeEmbed, SpikingLinear, TokenEmbed
from .errors import CheckpointError, ModelConfigError
from .lift import int_model_of
from .quant import SUPPORTED_BITS
from .spike import Neuron, without_plain_neuron

__all__ = ["BLOCK_TYPES", "NetConfig", "SpikingNet", "block_from_spec", "check_settings",
           "rate_penalty"]

#: every block a composition may hold, by class name (what a checkpoint's specs name)
BLOCK_TYPES: dict[str, type[Block]] = {cls.__name__: cls for cls in (
    SpikeEmbed, TokenEmbed, SpikingLinear, NormNeuron, SpikingAttention, ResidualAdd, Readout)}


def check_settings(timesteps, weight_bits, rate_target, rate_lambda) -> None:
    """Raise :class:`ModelConfigError` for settings no model can have."""
    if not isinstance(timesteps, int) or timesteps < 1:
        raise ModelConfigError(f"timesteps must be a positive integer, not {timesteps!r}")
    if weight_bits not in SUPPORTED_BITS:
        raise ModelConfigError(
            f"weight bits must be one of {', '.join(map(str, SUPPORTED_BITS))},"
            f" not {weight_bits!r}"
        )
    if not 0.0 <= rate_target <= 1.0:
        raise ModelConfigError(f"rate target must lie in [0, 1], not {rate_target!r}")
    if not (rate_lambda >= 0.0 and math.isfinite(rate_lambda)):
        raise ModelConfigError(
            f"rate lambda must be finite and non-negative, not {rate_lambda!r}"
        )


def rate_penalty(rates: list[torch.Tensor], target: float, weight: float) -> torch.Tensor:
    """The firing-rate regulariser: ``weight * sum_l (rate_l - target)^2``."""
    if not rates:
        return torch.zeros(())
    return weight * sum((r - target) ** 2 for r in rates)


def block_from_spec(spec: dict) -> Block:
    """A fresh block from :meth:`Block.spec` output."""
    if not isinstance(spec, dict) or spec.get("block") not in BLOCK_TYPES:
        found = spec.get("block") if isinstance(spec, dict) else spec
        raise ModelConfigError(f"unknown block {found!r}; known: {', '.join(BLOCK_TYPES)}")
    args = {k: v for k, v in spec.items() if k != "block"}
    try:
        return BLOCK_TYPES[spec["block"]](**args)
    except TypeError as exc:
        raise ModelConfigError(f"bad arguments for {spec['block']}: {exc}") from None


@dataclass(frozen=True)
class NetConfig:
    """A composition as plain data: block specs in order and the settings they share."""

    blocks: tuple[dict, ...]
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
    arch: str = "composed"

    def __post_init__(self):
        object.__setattr__(self, "blocks", tuple(dict(b) for b in self.blocks))
        check_settings(self.timesteps, self.weight_bits, self.rate_target, self.rate_lambda)
        Neuron(self.neuron, self.amplitude, self.firing, self.spikes)
        if self.arch != "composed":
            raise ModelConfigError(f"arch must be 'composed', not {self.arch!r}")

    def settings(self) -> dict:
        """Keyword arguments of :class:`SpikingNet` besides the blocks."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("blocks", "arch")}

    def make_blocks(self) -> list[Block]:
        """Fresh (unbuilt) blocks of the composition."""
        return [block_from_spec(spec) for spec in self.blocks]

    def key_map(self) -> list[tuple[str, str]]:
        """State-dict prefixes of the checkpoint against the module's (none to translate)."""
        return []

    def to_dict(self) -> dict:
        """Plain-Python form for checkpoints."""
        out = without_plain_neuron(dataclasses.asdict(self))
        out["blocks"] = [dict(b) for b in self.blocks]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> NetConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ModelConfigError(f"unknown config keys {sorted(unknown)}")
        return cls(**data)


class SpikingNet(nn.Module):
    """A spiking byte-level LM composed of blocks (see the module docstring).

    ``timesteps``, ``weight_bits`` (8, 4 or 2) and ``float_twin`` are shared by every block;
    ``rate_target`` and ``rate_lambda`` set the firing-rate regulariser of training;
    ``neuron``, ``amplitude``, ``firing`` and ``spikes`` choose the neuron of every block
    (:class:`model.spike.Neuron`: ``neuron="spikelm"`` is SpikeLM's, with per-step, calibrated
    amplitudes unless those are given).
    """

    def __init__(self, blocks: Sequence[Block], *, timesteps: int = 4, weight_bits: int = 8,
                 float_twin: bool = False, rate_target: float = 0.2, rate_lambda: float = 2.0,
                 detach_reset: bool = True, neuron: str = "if", amplitude: str | None = None,
                 firing: str | None = None, spikes: str = "ternary"):
        super().__init__()
        blocks = list(blocks)
        check_settings(timesteps, weight_bits, rate_target, rate_lambda)
        if not blocks or not isinstance(blocks[-1], Readout):
            raise ModelConfigError("the last block must be a Readout")
        choice = Neuron(neuron, amplitude, firing, spikes)
        self.settings = Settings(timesteps, weight_bits, bool(float_twin), bool(detach_reset),
                                 choice)
        self.rate_target, self.rate_lambda = rate_target, rate_lambda
        self.blocks = nn.ModuleList()
        widths = Widths()
        for index, block in enumerate(blocks):
            if not isinstance(block, Block):
                raise ModelConfigError(f"block {index} is a {type(block).__name__}, not a block"
                                       " of model.blocks")
            if (index == 0) != isinstance(block, SpikeEmbed | TokenEmbed):
                raise ModelConfigError(f"block {index} ({type(block).__name__}): the first"
                                       " block, and only it, must be an embedding (SpikeEmbed"
                                       " or TokenEmbed)")
            if isinstance(block, Readout) and index != len(blocks) - 1:
                raise ModelConfigError(f"block {index}: only the last block may be a Readout")
            try:
                widths = block.build(widths, self.settings)
            except ModelConfigError as exc:
                raise ModelConfigError(f"block {index} ({type(block).__name__}): {exc}") from None
            self.blocks.append(block)
        self._check_encoder()
        self.names = self._names()
        #: set while training data-parallel (:mod:`model.parallel`): the batch a forward sees
        #: is this rank's share, and batch statistics are averaged over the ranks
        self.ranks = None
        self.config = NetConfig(tuple(b.spec() for b in blocks), timesteps, weight_bits,
                                bool(float_twin), rate_target, rate_lambda, bool(detach_reset),
                                *choice.as_dict().values())

    @classmethod
    def from_config(cls, config) -> SpikingNet:
        """The model of ``config``: a :class:`NetConfig` or a zoo configuration (anything with
        ``make_blocks()``, ``settings()`` and ``to_dict()``), which the model keeps as
        :attr:`config`."""
        net = cls(config.make_blocks(), **config.settings())
        net.config = config
        return net

    def _check_encoder(self) -> None:
        """A classification head pools a whole sequence, which only a bidirectional attention
        reads; a bidirectional attention sees the future, which only a classifier may."""
        bidirectional = any(isinstance(b, SpikingAttention) and not b.causal for b in self.blocks)
        if self.classes is not None and not bidirectional:
            raise ModelConfigError("a Readout with classes pools whole sequences: put a"
                                   " bidirectional SpikingAttention(causal=False) before it")
        if self.classes is None and bidirectional:
            raise ModelConfigError("a bidirectional attention sees the bytes after each position:"
                                   " end the model with a classification head, Readout(classes=C)")

    def _names(self) -> tuple[str, ...]:
        names, counts = [], {}
        for block in self.blocks:
            n = counts.get(block.stem, 0)
            counts[block.stem] = n + 1
            unique = block.stem in ("embed", "readout") and not n
            names.append(block.name or (block.stem if unique else f"{block.stem}{n}"))
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ModelConfigError(f"block names must be unique; {', '.join(duplicates)} is used"
                                   " twice")
        return tuple(names)

    # ---------------------------------------------------------------- what it is

    @property
    def streams(self) -> bool:
        """Whether a block mixes positions (attention): the model then reads byte streams
        ``[N, L]`` and predicts every position, else windows ``[N, context]``."""
        return any(block.mixes_positions for block in self.blocks)

    @property
    def classes(self) -> int | None:
        """An encoder's classes (its readout pools the sequence); ``None`` for a language
        model."""
        return self.blocks[-1].classes

    @property
    def context(self) -> int:
        """Bytes a prediction reads: the embedding's context or the attention window."""
        reach = [b.context for b in self.blocks if isinstance(b, SpikeEmbed)]
        reach += [b.window for b in self.blocks if isinstance(b, SpikingAttention)]
        return max(reach, default=1)

    @property
    def stream_warmup(self) -> int:
        """Positions before a scored one that a stream must hold so that the prediction is
        that of one long stream: ``W - 1`` per causal attention (each widens what a position
        depends on by its window)."""
        return sum(b.window - 1 for b in self.blocks
                   if isinstance(b, SpikingAttention) and b.causal)

    def integer_problem(self) -> str | None:
        """Why the model has no integer form (``None``: it has one)."""
        if self.settings.float_twin:
            return ("a float twin has no integer form; train the model without --float"
                    " (float_twin=False)")
        for index, (block, name) in enumerate(zip(self.blocks, self.names, strict=True)):
            problem = block.integer_problem()
            if problem:
                return f"block {index} ({name}) has no integer form: {problem}"
        return None

    @property
    def integer_exportable(self) -> bool:
        """Whether every block has an integer form."""
        return self.integer_problem() is None

    # ---------------------------------------------------------------- float forward

    def _run(self, ids: torch.Tensor, streams: bool, calibrating: bool = False) -> Flow:
        flow = Flow(ids=torch.as_tensor(ids), streams=streams, calibrating=calibrating,
                    ranks=None if calibrating else self.ranks)
        for block in self.blocks:
            flow = block(flow)
        return flow

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Float logits ``[N, 256]`` of the last position of ``ids[N, L]`` (a window model:
        ``ids[N, context]``) and the differentiable firing rate of every spiking neuron, in
        block order (none for a float twin). An encoder (:attr:`classes`) gives the class logits
        ``[N, C]`` of each whole sequence ``ids[N, L]``."""
        if self.classes is not None:
            flow = self._run(ids, streams=True)
            return flow.logits, flow.rates
        if self.streams:
            logits, rates = self.forward_all(ids)
            return logits[:, -1], rates
        flow = self._run(ids, streams=False)
        return flow.logits, flow.rates

    def forward_all(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits of every position of streams ``ids[N, L]`` (``[N, L, 256]``) and the rates;
        each stream starts with an empty window (byte 0 before it)."""
        if self.classes is not None:
            raise ModelConfigError("an encoder predicts one class per sequence, not a logit per"
                                   " position; call the model itself")
        ids = torch.as_tensor(ids)
        if self.streams:
            flow = self._run(ids, streams=True)
            return flow.logits, flow.rates
        k = self.context
        windows = F.pad(ids, (k - 1, 0)).unfold(1, k, 1).reshape(-1, k)
        logits, rates = self.forward(windows)
        return logits.reshape(*ids.shape, -1), rates

    def rate_penalty(self, rates: list[torch.Tensor]) -> torch.Tensor:
        """``lambda * sum_l (rate_l - target)^2`` over the spiking neurons (none for a
        calibrated firing, whose rates follow the membranes instead)."""
        if self.settings.neuron.calibrated:
            return torch.zeros(())
        return rate_penalty(rates, self.rate_target, self.rate_lambda)

    @torch.no_grad()
    def calibrate(self, ids: torch.Tensor) -> None:
        """Data-dependent initialisation of every amplitude from one batch: each ``alpha``
        becomes ``mean|I| / 0.3`` of its first-step current (see :meth:`Block.fire`)."""
        self._run(ids, streams=self.streams, calibrating=True)

    # ---------------------------------------------------------------- integer form

    def check_finite(self) -> None:
        """Raise :class:`CheckpointError` naming the first parameter holding NaN or inf."""
        for name, tensor in self.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise CheckpointError(f"parameter {name!r} holds NaN or inf; retrain the model")

    @torch.no_grad()
    def emit_graph(self) -> Graph:
        """Every block's ops, in order, with names from the block names (:attr:`names`)."""
        problem = self.integer_problem()
        if problem:
            raise CheckpointError(problem)
        self.check_finite()
        e = Emitter(self.settings.timesteps, self.settings.weight_bits)
        for block, name in zip(self.blocks, self.names, strict=True):
            block.emit(e, name)
        meta = {"source": "model.net.SpikingNet", "config": self.config.to_dict()}
        return Graph(tuple(e.ops), self.settings.timesteps, self.settings.weight_bits,
                     logit_scale=e.logit_scale, meta=meta)

    def to_graph(self) -> Graph:
        """The integer model as a :class:`contract.graph.Graph`.

        For a zoo model of the plain neuron this is ``to_int_model().graph()``, op for op and
        with its op names; for any other composition (or neuron) the graph of
        :meth:`emit_graph`.
        """
        graph = self.emit_graph()
        if isinstance(self.config, NetConfig):
            return graph
        int_model = int_model_of(graph)
        return graph if int_model is None else int_model.graph()

    def to_int_model(self):
        """The integer model as a ``contract.IntModel`` (a chain ``SpikeEmbed``, spiking
        layers, ``Readout``) or a ``contract.zoo.IntTransformer`` (the transformer's
        block structure); :class:`CheckpointError` for any other composition."""
        int_model = int_model_of(self.emit_graph())
        if int_model is None:
            raise CheckpointError("this composition is neither the MLP chain nor the transformer;"
                                  " use to_graph() for its integer graph")
        return int_model

    @torch.no_grad()
    def int_forward(self, ids, graph: Graph | None = None,
                    all_positions: bool = False) -> torch.Tensor:
        """Integer logits of the last position (int64 ``[N, 256]``; ``all_positions``:
        ``[N, L, 256]``) by ``contract.graph.run`` on ``graph`` (default :meth:`to_graph`)."""
        trace = run(graph or self.to_graph(), np.asarray(ids), last_only=not all_positions)
        return torch.from_numpy(trace.logits if all_positions else trace.logits[:, -1])
