"""The hardware plan of a transformer: a fused graph as a layer program on one array.

Every op of the fused :class:`~rtl_gen.ir.Graph` becomes one layer of
:class:`hw.transformer.TransformerParams`, in graph order; spike tensors become regions of
the spike banks, the tensors an attention reads as keys and values become its caches, and the
residual stream lives in place in the residual banks (which the plan checks is legal: no op
reads a residual after a later one replaced it). Widths come from the contract's range
analysis (``contract.transformer.derive_transformer_widths``) and from the constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract import Readout as ContractReadout
from contract import SpikingLayer as ContractLayer
from contract import transformer as xf
from contract.graph import run
from contract.transformer import IntTransformer, derive_transformer_widths
from contract.widths import signed_bits
from hw.transformer import LayerKind, TransformerParams, XLayer
from hw.transformer.layout import const_lane_bits

from .errors import FrontendError, TargetFitError
from .ir import Attention, Fire, Graph, Readout, ResidualAdd, SpikingLinear, TokenEmbed
from .plan import MemoryPlan
from .targets import Target

__all__ = ["TransformerPlan", "plan_transformer", "to_int_transformer", "transformer_params"]



class _Reader:
    """Walks the ops of a fused graph in the order the contract's blocks have them."""

    def __init__(self, graph: Graph):
        self.ops = list(graph.ops)
        self.index = 0

    def take(self, kind, what: str):
        if self.index >= len(self.ops) or not isinstance(self.ops[self.index], kind):
            found = type(self.ops[self.index]).__name__ if self.index < len(self.ops) else "end"
            name = self.ops[self.index].name if self.index < len(self.ops) else "the end"
            raise FrontendError(
                f"the graph does not have the transformer's block structure: expected"
                f" {what} ({kind.__name__}) at op {self.index}, found {found} (node {name})")
        self.index += 1
        return self.ops[self.index - 1]


def _norm(op: Fire) -> xf.IntNorm:
    d = op.width()
    return xf.IntNorm(op.bias, np.broadcast_to(op.threshold, (d,)),
                      np.broadcast_to(op.reset, (d,)))


def _layer(op: SpikingLinear) -> ContractLayer:
    if op.threshold.ndim or op.reset.ndim:
        raise FrontendError(f"node {op.name}: a linear layer has one threshold and one reset")
    return ContractLayer(op.weight, op.bias, int(op.threshold), int(op.reset))


def to_int_transformer(graph: Graph) -> xf.IntTransformer:
    """The contract's transformer of a fused graph; :class:`FrontendError` if it is not one."""
    read = _Reader(graph)
    embed = read.take(TokenEmbed, "the token embedding")
    blocks = []
    attention = None
    while read.index + 1 < len(read.ops) and isinstance(read.ops[read.index + 1], SpikingLinear):
        norm1 = read.take(Fire, "a normalising neuron")
        q, k, v = (read.take(SpikingLinear, name) for name in ("q", "k", "v"))
        attention = read.take(Attention, "the attention")
        out = read.take(ResidualAdd, "the attention's output projection")
        norm2 = read.take(Fire, "a normalising neuron")
        ff1 = read.take(SpikingLinear, "the feed-forward layer")
        ff2 = read.take(ResidualAdd, "the feed-forward projection")
        blocks.append(xf.IntBlock(
            norm1=_norm(norm1), q=_layer(q), k=_layer(k), v=_layer(v),
            score_bias=attention.score_bias, attn_threshold=attention.threshold,
            attn_reset=attention.reset, out=xf.IntOutProj(out.weight, out.shift),
            norm2=_norm(norm2), ff1=_layer(ff1), ff2=xf.IntOutProj(ff2.weight, ff2.shift)))
    norm_f = read.take(Fire, "the final normalising neuron")
    readout = read.take(Readout, "the readout")
    if read.index != len(read.ops) or attention is None:
        raise FrontendError("the transformer graph does not end with its final norm and readout")
    model = xf.IntTransformer(
        context=attention.window, d_model=embed.width(), heads=attention.heads,
        timesteps=graph.timesteps, weight_bits=graph.weight_bits, tok_embed=embed.table,
        blocks=tuple(blocks), norm_f=_norm(norm_f),
        readout=ContractReadout(readout.weight, readout.bias), logit_scale=graph.logit_scale)
    probe = np.random.default_rng(0).integers(0, 256, size=(4, 2 * model.context))
    if not np.array_equal(run(graph, probe).logits, xf.forward(model, probe, all_positions=True)):
        raise FrontendError("the transformer graph wires its ops unlike the contract's blocks")
    return model


def _per_neuron(value: np.ndarray, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.int64), (n,)).copy()


def _layers(graph: Graph) -> tuple[XLayer, ...]:
    layers = []
    residual = None
    stale: set[str] = set()
    for op in graph.ops:
        for tensor in op.inputs:
            if tensor in stale:
                raise FrontendError(f"node {op.name} reads the residual {tensor} after a later"
                                    " residual add replaced it; the residual lives in place")
        if isinstance(op, TokenEmbed):
            layers.append(XLayer(LayerKind.EMBED, op.name, op.width(), weight=op.table.T))
            residual = op.output
        elif isinstance(op, Fire):
            if op.inputs[0] != residual:
                raise FrontendError(f"node {op.name}: a TernaryIF of currents must be fused with"
                                    " its SpikeAccumulate (the FuseLinear pass)")
            n = op.width()
            layers.append(XLayer(LayerKind.NORM, op.name, n, bias=op.bias,
                                 threshold=_per_neuron(op.threshold, n),
                                 reset=_per_neuron(op.reset, n), dest=op.output))
        elif isinstance(op, SpikingLinear):
            n = op.width()
            layers.append(XLayer(LayerKind.LINEAR, op.name, n, weight=op.weight, bias=op.bias,
                                 threshold=_per_neuron(op.threshold, n),
                                 reset=_per_neuron(op.reset, n), source=op.inputs[0],
                                 dest=op.output))
        elif isinstance(op, Attention):
            q, k, v = op.inputs
            layers.append(XLayer(LayerKind.ATTENTION, op.name, op.width(),
                                 threshold=op.threshold, reset=op.reset,
                                 score_bias=op.score_bias, source=q, keys=k, values=v,
                                 dest=op.output))
        elif isinstance(op, ResidualAdd):
            if op.inputs[0] != residual:
                raise FrontendError(f"node {op.name} adds to {op.inputs[0]}, not to the current"
                                    f" residual {residual}")
            stale.add(residual)
            residual = op.output
            layers.append(XLayer(LayerKind.RESIDUAL, op.name, op.width(), weight=op.weight,
                                 shift=op.shift, source=op.inputs[1]))
        elif isinstance(op, Readout):
            layers.append(XLayer(LayerKind.READOUT, op.name, op.width(), weight=op.weight,
                                 bias=op.bias, source=op.inputs[0]))
        else:
            raise FrontendError(f"node {op.name}: the hardware plan has no layer for"
                                f" {type(op).__name__}")
    return tuple(layers)


def _membrane_bound(model: IntTransformer) -> int:
    widths = derive_transformer_widths(model)
    accumulators = [
        int(np.abs(proj.weight).sum(axis=1).max(initial=0))
        for block in model.blocks for proj in (block.out, block.ff2)
    ]
    return max(widths.membrane_bound, widths.logit_bound, widths.residual_bound, *accumulators)


def transformer_params(graph: Graph, rows: int, cols: int
                       ) -> tuple[TransformerParams, IntTransformer]:
    """``hw.transformer``'s parameters for a fused graph on a ``rows`` x ``cols`` array, and the
    contract's model of the graph (whose range analysis sets the widths)."""
    model = to_int_transformer(graph)
    layers = _layers(graph)
    widths = derive_transformer_widths(model)
    constants = [layer.threshold for layer in layers if layer.threshold is not None]
    constants += [layer.reset for layer in layers if layer.reset is not None]
    biggest_const = max(int(np.max(c)) for c in constants)
    biggest_bias = max(int(np.abs(layer.bias).max(initial=0)) for layer in layers
                       if layer.bias is not None)
    best_score = max(int(np.maximum(model.head_dim + b.score_bias, 0).max(initial=0))
                     for b in model.blocks)
    membrane = max(signed_bits(_membrane_bound(model)), biggest_const.bit_length() + 1)
    params = TransformerParams(
        rows=rows, cols=cols, timesteps=model.timesteps, window=model.context,
        d_model=model.d_model, heads=model.heads, layers=layers,
        weight_bits=max(model.weight_bits, signed_bits(int(np.abs(model.tok_embed).max()))),
        bias_bits=signed_bits(biggest_bias), const_bits=max(1, biggest_const.bit_length()),
        membrane_bits=membrane, residual_bits=widths.residual,
        score_bits=max(1, best_score.bit_length()),
    )
    return params, model


@dataclass(frozen=True)
class TransformerPlan:
    """The transformer on the array, and what its memories cost on the target."""

    model: IntTransformer
    params: TransformerParams
    target: Target
    memories: tuple[MemoryPlan, ...]

    @property
    def brams(self) -> int:
        return sum(m.brams for m in self.memories)


def _memories(p: TransformerParams, target: Target) -> tuple[MemoryPlan, ...]:
    shapes = [
        ("weight banks", p.rows, p.cols * p.weight_bits, p.weight_depth),
        ("constant banks", p.rows, p.cols * const_lane_bits(p), p.const_depth),
        ("residual banks", p.rows, p.cols * p.residual_bits, p.residual_depth),
        ("spike banks (with key caches)", p.rows, 2 * p.cols, p.spike_depth),
        ("value caches", p.rows, 2 * p.cols, p.v_depth),
        ("logit memory", 1, p.cols * p.membrane_bits, p.logit_depth),
    ]
    return tuple(MemoryPlan(name, count, width, depth, count * target.brams_for(width, depth))
                 for name, count, width, depth in shapes)


def plan_transformer(graph: Graph, rows: int, cols: int, target: Target) -> TransformerPlan:
    """Place a fused transformer graph on the array; raise if it cannot fit the target."""
    try:
        params, model = transformer_params(graph, rows, cols)
    except ValueError as exc:
        raise FrontendError(f"the transformer does not map onto a {rows}x{cols} array: {exc}"
                            ) from None
    memories = _memories(params, target)
    plan = TransformerPlan(model, params, target, memories)
    if plan.brams > target.brams:
        detail = ", ".join(f"{m.name} {m.brams}" for m in memories if m.brams)
        raise TargetFitError(
            f"the transformer needs about {plan.brams} block RAMs ({detail}) but {target.name}"
            f" has {target.brams}; choose a larger --target or a smaller model")
    return plan
