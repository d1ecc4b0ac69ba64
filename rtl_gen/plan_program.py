"""The hardware plan of the layer-program accelerator: a fused graph as a program on one array.

Every op of the fused :class:`~contract.graph.Graph` becomes one layer of
:class:`hw.AcceleratorParams`, in graph order, whatever the composition (blocks
with or without attention or feed-forward, several attentions, spiking heads); spike tensors
become regions of the spike banks, the tensors an attention reads as keys and values become
its caches, and the residual stream lives in place in the residual banks (which the plan checks
is legal: no op reads a residual after a later one replaced it). Widths come from the
contract's range analysis per op (:func:`contract.ranges.analyse`) and from the constants. An
op or a shape the accelerator cannot run is refused with the node named.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from contract.graph import (
    Accumulate,
    Attention,
    Fire,
    Graph,
    Pool,
    Readout,
    ResidualAdd,
    SpikeEmbed,
    SpikingLinear,
    TokenEmbed,
)
from contract.ranges import Ranges, analyse, signed_bits
from hw import AcceleratorParams, LayerKind, XLayer
from hw.bank import rom_in_logic
from hw.layout import const_lane_bits

from .errors import FrontendError, TargetFitError
from .targets import Target

__all__ = ["MemoryPlan", "ProgramPlan", "memory_plan", "plan_program", "program_params"]



def _per_neuron(value: np.ndarray, n: int, steps: int | None = None) -> np.ndarray:
    """``value`` per neuron ``[n]``, or per step and neuron ``[T, n]`` with ``steps``."""
    shape = (n,) if steps is None else (steps, n)
    return np.broadcast_to(np.asarray(value, dtype=np.int64), shape).copy()


def _neuron(op, n: int, steps: int) -> dict:
    """An op's neuron constants as :class:`hw.XLayer` fields (per step when it has them)."""
    per_step = steps if op.per_step else None
    return {"bias": _per_neuron(op.bias, n, per_step),
            "threshold": _per_neuron(op.threshold, n, per_step),
            "reset": _per_neuron(op.reset, n, per_step), "leak": op.leak, "binary": op.binary}


def _layers(graph: Graph) -> tuple[XLayer, ...]:
    layers = []
    residual = None
    table = next((op.output for op in graph.of_type(SpikeEmbed)), None)
    stale: set[str] = set()
    for op in graph.ops:
        for tensor in op.inputs:
            if tensor in stale:
                raise FrontendError(f"node {op.name} reads the residual {tensor} after a later"
                                    " residual add replaced it; the residual lives in place")
        if table in op.inputs and not isinstance(op, SpikingLinear):
            raise FrontendError(f"node {op.name} reads the SpikeEmbed's spikes; on the"
                                " layer-program accelerator only a spiking linear layer does")
        if isinstance(op, SpikeEmbed):
            continue  # its spikes are read from the spike table, where a LINEAR reads them
        if isinstance(op, TokenEmbed):
            layers.append(XLayer(LayerKind.EMBED, op.name, op.width(), weight=op.table.T))
            residual = op.output
        elif isinstance(op, Fire):
            if op.inputs[0] != residual:
                raise FrontendError(f"node {op.name}: a TernaryIF of currents must be fused with"
                                    " its SpikeAccumulate (the FuseLinear pass)")
            layers.append(XLayer(LayerKind.NORM, op.name, op.width(), dest=op.output,
                                 **_neuron(op, op.width(), graph.timesteps)))
        elif isinstance(op, SpikingLinear):
            layers.append(XLayer(LayerKind.LINEAR, op.name, op.width(), weight=op.weight,
                                 source=op.inputs[0], dest=op.output,
                                 table=op.inputs[0] == table,
                                 **_neuron(op, op.width(), graph.timesteps)))
        elif isinstance(op, Attention):
            if not op.causal and len(graph.of_type(Attention)) > 1:
                raise FrontendError(f"node {op.name}: an encoder's program holds one"
                                    " bidirectional attention (its sequence runs twice: keys"
                                    " and values, then queries); use one encoder block")
            q, k, v = op.inputs
            threshold, reset = op.threshold, op.reset
            if op.per_step:
                threshold, reset = (np.broadcast_to(c, (graph.timesteps, op.window)).copy()
                                    for c in (threshold, reset))
            layers.append(XLayer(LayerKind.ATTENTION, op.name, op.width(),
                                 threshold=threshold, reset=reset, leak=op.leak,
                                 binary=op.binary, score_bias=op.score_bias, source=q, keys=k,
                                 values=v, dest=op.output, causal=op.causal))
        elif isinstance(op, ResidualAdd):
            if op.inputs[0] != residual:
                raise FrontendError(f"node {op.name} adds to {op.inputs[0]}, not to the current"
                                    f" residual {residual}")
            stale.add(residual)
            residual = op.output
            layers.append(XLayer(LayerKind.RESIDUAL, op.name, op.width(), weight=op.weight,
                                 shift=op.shift, scale=op.scale, source=op.inputs[1]))
        elif isinstance(op, Readout):
            leak = None if op.leak is None else np.repeat(op.leak[:, None], 3, axis=1)
            layers.append(XLayer(LayerKind.READOUT, op.name, op.width(), weight=op.weight,
                                 bias=op.bias, leak=leak, source=op.inputs[0]))
            if graph.causal != (not graph.of_type(Pool)):
                raise FrontendError(f"node {op.name}: on the accelerator an encoder's readout"
                                    " is pooled over the sequence, a language model's is not")
        elif isinstance(op, Pool):
            continue  # the logit memory of an encoder's program sums the positions
        else:
            hint = (": an Accumulate must be fused with the one TernaryIF that reads it (the"
                    " FuseLinear pass)" if isinstance(op, Accumulate) else "")
            raise FrontendError(f"node {op.name}: the layer-program accelerator has no layer for"
                                f" {type(op).__name__}{hint}")
    return tuple(layers)


def _shape(graph: Graph) -> tuple[int, int, int]:
    """``(d_model, heads, window)`` of the program: the residual's width (the attention's
    without a residual) and the one attention shape every attention shares (1 head, window 1
    without attention)."""
    embeds = graph.of_type(TokenEmbed, SpikeEmbed)
    if len(embeds) != 1 or graph.ops[0] is not embeds[0]:
        op = embeds[1] if len(embeds) > 1 else graph.ops[0]
        raise FrontendError(f"node {op.name}: the layer-program accelerator starts from one"
                            " embedding (a TokenEmbed or a SpikeEmbed)")
    attentions = graph.of_type(Attention)
    first = attentions[0] if attentions else None
    for op in attentions[1:]:
        if (op.heads, op.window) != (first.heads, first.window):
            raise FrontendError(f"node {op.name}: every attention of a program must have"
                                f" {first.heads} heads and a window of {first.window}, as"
                                f" {first.name} has")
    if isinstance(embeds[0], TokenEmbed):
        d_model = embeds[0].width()
    else:
        d_model = first.d_model if first else 1
        for op in attentions:
            if op.d_model != d_model:
                raise FrontendError(f"node {op.name}: every attention of a program must have"
                                    f" {d_model} channels, as {first.name} has")
    return d_model, first.heads if first else 1, first.window if first else 1


def program_params(graph: Graph, rows: int, cols: int, dense: bool = False
                   ) -> tuple[AcceleratorParams, Ranges]:
    """``hw.Accelerator``'s parameters for a fused graph on a ``rows`` x ``cols`` array (the
    scanner in ``dense`` mode: every input lane a cycle), and the graph's range analysis (which
    sets the widths)."""
    d_model, heads, window = _shape(graph)
    layers = _layers(graph)
    ranges = analyse(graph)
    constants = [layer.threshold for layer in layers if layer.threshold is not None]
    constants += [layer.reset for layer in layers if layer.reset is not None]
    biggest_const = max(int(np.max(c)) for c in constants)
    biggest_bias = max(int(np.abs(layer.bias).max(initial=0)) for layer in layers
                       if layer.bias is not None)
    best_score = max([int(np.maximum(op.head_dim + op.score_bias, 0).max(initial=0))
                      for op in graph.of_type(Attention)], default=1)
    embed = graph.ops[0]
    tokens = embed.table if isinstance(embed, TokenEmbed) else np.zeros(1)
    spikes = embed if isinstance(embed, SpikeEmbed) else None
    params = AcceleratorParams(
        rows=rows, cols=cols, timesteps=graph.timesteps, window=window,
        d_model=d_model, heads=heads, layers=layers,
        spike_table=None if spikes is None else spikes.table,
        context=1 if spikes is None else spikes.context, dense=dense,
        weight_bits=max(graph.weight_bits, signed_bits(int(np.abs(tokens).max(initial=0)))),
        bias_bits=signed_bits(biggest_bias), const_bits=max(1, biggest_const.bit_length()),
        membrane_bits=max(signed_bits(ranges.datapath), biggest_const.bit_length() + 1),
        residual_bits=signed_bits(ranges.residual),
        score_bits=max(1, best_score.bit_length()),
    )
    return params, ranges


@dataclass(frozen=True)
class MemoryPlan:
    """One kind of memory: how many, how wide, how deep, and its block RAMs on the target."""

    name: str
    count: int
    width: int
    depth: int
    brams: int

    @property
    def bits(self) -> int:
        return self.count * self.width * self.depth


@dataclass(frozen=True)
class ProgramPlan:
    """The program on the array, and what its memories cost on the target."""

    graph: Graph
    ranges: Ranges
    params: AcceleratorParams
    target: Target
    memories: tuple[MemoryPlan, ...]

    @property
    def brams(self) -> int:
        return sum(m.brams for m in self.memories)


def memory_plan(p: AcceleratorParams, target: Target) -> tuple[MemoryPlan, ...]:
    """The on-chip memories of ``p`` and their block RAMs on ``target`` (no weight banks when
    its weights are off chip, but the weight fetch's row cache and its tags). A row's small
    read-only bank is logic (:func:`hw.bank.rom_in_logic`) and a writable memory may be LUT
    RAM (:meth:`Target.brams_for`): neither takes a block RAM."""
    # (name, count, width, depth, kind, read ports): kind "bank" a row's read-only
    # RegisteredBank, "rom" another read-only memory, "ram" a writable one
    shapes = [
        ("weight row cache", 1, p.rows * p.cols * p.weight_bits, p.weight_cache_depth, "ram", 1),
        ("weight cache tags", 1, p.addr_bits, p.weight_cache_depth, "ram", 1),
    ] if p.weights_offchip else [
        ("weight banks", p.rows, p.cols * p.weight_bits, p.weight_depth, "bank", 1)]
    shapes += [
        ("constant banks", p.rows, p.cols * const_lane_bits(p), p.const_depth, "bank", 1),
        ("spike banks (with key caches)", p.rows, 2 * p.cols, p.spike_depth, "ram", 1),
        # the encoder's pooling reads the logit memory through a second port
        ("logit memory", 1, p.cols * p.membrane_bits, p.logit_depth, "ram",
         2 if p.bidirectional else 1),
    ]
    if p.has_residual:
        shapes.append(("residual banks", p.rows, p.cols * p.residual_bits, p.residual_depth,
                       "ram", 1))
    if p.attentions:
        shapes.append(("value caches", p.rows, 2 * p.cols, p.v_depth, "ram", 1))
    if p.spike_table is not None:
        shapes.append(("spike table", 1, 2 * p.embed_dim, p.table_depth, "rom", 1))
    return tuple(
        MemoryPlan(name, count, width, depth,
                   0 if kind == "bank" and rom_in_logic(depth) else
                   count * target.brams_for(width, depth, writable=kind == "ram",
                                            read_ports=ports))
        for name, count, width, depth, kind, ports in shapes)


def plan_program(graph: Graph, rows: int, cols: int, target: Target,
                 dense: bool = False, weights: str = "onchip") -> ProgramPlan:
    """Place a fused graph on the array; raise if it cannot fit the target.

    ``weights``: ``onchip`` (weight banks in block RAM), ``offchip`` (an external memory behind
    the AXI4 weight port) or ``auto`` (on chip when the target's block RAM holds every memory,
    else off chip)."""
    if weights not in ("onchip", "offchip", "auto"):
        raise ValueError(f"weights must be onchip, offchip or auto, not {weights!r}")
    try:
        params, ranges = program_params(graph, rows, cols, dense)
        plan = ProgramPlan(graph, ranges, params, target, memory_plan(params, target))
        if weights == "offchip" or (weights == "auto" and plan.brams > target.brams):
            params = dataclasses.replace(params, weights_offchip=True)
            plan = ProgramPlan(graph, ranges, params, target, memory_plan(params, target))
    except ValueError as exc:
        raise FrontendError(f"the model does not map onto a {rows}x{cols} array: {exc}"
                            ) from None
    if plan.brams > target.brams:
        detail = ", ".join(f"{m.name} {m.brams}" for m in plan.memories if m.brams)
        where = ("even with the weights off chip" if params.weights_offchip
                 else "with its weights on chip")
        advice = "" if params.weights_offchip else ", --weights offchip (or auto)"
        raise TargetFitError(
            f"the model needs about {plan.brams} block RAMs {where} ({detail}) but"
            f" {target.name} has {target.brams}; choose a larger --target{advice} or a"
            " smaller model")
    return plan
