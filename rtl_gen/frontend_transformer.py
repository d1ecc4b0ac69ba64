"""ONNX front end of the spiking transformer: one handler per op type, each a typed IR op.

The graph is what :func:`contract.onnx_transformer.transformer_to_onnx` writes (``TokenEmbed``,
``TernaryIF``, ``SpikeAccumulate``, ``SpikeAttention``, ``ResidualAdd``, ``SpikeReadout`` of
the ``spikeforge`` domain); the ops may come in any order that defines a tensor before it is
read, and :meth:`rtl_gen.tir.TGraph.check` type-checks the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import onnx

from .errors import FrontendError, UnsupportedOpError
from .frontend import DOMAIN, VOCAB, _Context
from .tir import Accumulate, Attention, Fire, Op, Readout, ResidualAdd, TGraph, TokenEmbed

__all__ = ["TRANSFORMER_OPS", "is_transformer", "lower_transformer"]

log = logging.getLogger(__name__)


class _TContext(_Context):
    """The MLP front end's context, plus the widths of the tensors lowered so far."""

    def __init__(self, model: onnx.ModelProto):
        super().__init__(model)
        self.widths: dict[str, int] = {}

    def vector_or_scalar(self, node, position: int, what: str, positive: bool) -> np.ndarray:
        arr = None
        for ndim in (0, 1):
            try:
                arr = self.array(node, position, what, ndim)
                break
            except FrontendError as exc:
                if "dimensions" not in str(exc):
                    raise
        if arr is None:
            raise FrontendError(f"node {node.name}: {what} must be a scalar or a vector")
        if positive and arr.size and arr.min() < 1:
            raise FrontendError(f"node {node.name}: {what} must be at least 1")
        return arr

    def power_of_two(self, node, position: int, what: str) -> int:
        value = int(self.array(node, position, what, 0))
        if value < 1 or value & (value - 1):
            raise FrontendError(f"node {node.name}: {what} must be a power of two, not {value}")
        return value.bit_length() - 1


def _io(node) -> dict:
    return {"name": node.name, "output": node.output[0]}


def _embed(node, ctx: _TContext) -> Op:
    table = ctx.array(node, 1, "token embedding", 2)
    if table.shape[0] != VOCAB:
        raise FrontendError(f"node {node.name}: the token embedding must be [256, d]")
    return TokenEmbed(inputs=(node.input[0],), table=table, **_io(node))


def _accumulate(node, ctx: _TContext) -> Op:
    return Accumulate(inputs=(node.input[0],), weight=ctx.array(node, 1, "weight", 2).T,
                      **_io(node))


def _fire(node, ctx: _TContext) -> Op:
    bias = ctx.vector_or_scalar(node, 1, "bias", positive=False)
    width = ctx.widths.get(node.input[0], bias.size)
    if bias.ndim == 0:
        bias = np.full(width, int(bias))
    return Fire(inputs=(node.input[0],), bias=bias,
                threshold=ctx.vector_or_scalar(node, 2, "threshold", positive=True),
                reset=ctx.vector_or_scalar(node, 3, "reset", positive=True), **_io(node))


def _attention(node, ctx: _TContext) -> Op:
    score_bias = ctx.array(node, 3, "score bias", 2)
    heads, window = score_bias.shape
    threshold = ctx.vector_or_scalar(node, 4, "attention threshold", positive=True)
    reset = ctx.vector_or_scalar(node, 5, "attention reset", positive=True)
    if threshold.shape != (window,) or reset.shape != (window,):
        raise FrontendError(f"node {node.name}: attention thresholds need {window} entries,"
                            " one per key count")
    d_model = ctx.widths.get(node.input[0], 0)
    if heads < 1 or d_model % heads:
        raise FrontendError(f"node {node.name}: {d_model} channels do not split into {heads}"
                            " heads")
    return Attention(inputs=tuple(node.input[:3]), heads=heads, score_bias=score_bias,
                     threshold=threshold, reset=reset, d_model=d_model, **_io(node))


def _residual(node, ctx: _TContext) -> Op:
    up = ctx.power_of_two(node, 3, "mult")
    down = ctx.power_of_two(node, 4, "div")
    if up and down:
        raise FrontendError(f"node {node.name}: a shift is a mult or a div, not both")
    return ResidualAdd(inputs=tuple(node.input[:2]), weight=ctx.array(node, 2, "weight", 2).T,
                       shift=up - down, **_io(node))


def _readout(node, ctx: _TContext) -> Op:
    weight = ctx.array(node, 1, "weight", 2).T
    bias = ctx.array(node, 2, "bias", 1)
    if weight.shape[0] != VOCAB or bias.shape != (VOCAB,):
        raise FrontendError(f"node {node.name}: the readout must have 256 outputs")
    return Readout(inputs=(node.input[0],), weight=weight, bias=bias, **_io(node))


TRANSFORMER_OPS: dict[tuple[str, str], Callable[[onnx.NodeProto, _TContext], Op]] = {
    (DOMAIN, "TokenEmbed"): _embed,
    (DOMAIN, "TernaryIF"): _fire,
    (DOMAIN, "SpikeAccumulate"): _accumulate,
    (DOMAIN, "SpikeAttention"): _attention,
    (DOMAIN, "ResidualAdd"): _residual,
    (DOMAIN, "SpikeReadout"): _readout,
}


def is_transformer(model: onnx.ModelProto) -> bool:
    """Whether the ONNX graph is a transformer (it embeds with ``TokenEmbed``)."""
    return any(n.domain == DOMAIN and n.op_type == "TokenEmbed" for n in model.graph.node)


def _stream_input(model: onnx.ModelProto) -> str:
    constants = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in constants]
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 2:
        raise FrontendError("the graph must have one input: byte streams [N, L]")
    return inputs[0].name


def lower_transformer(model: onnx.ModelProto, metadata: tuple[int, float, dict]) -> TGraph:
    """The typed IR of a transformer ONNX model (already read and checked)."""
    ctx = _TContext(model)
    ops = []
    for node in model.graph.node:
        handler = TRANSFORMER_OPS.get((node.domain, node.op_type))
        if handler is None:
            raise UnsupportedOpError(node.op_type, node.domain, node.name, TRANSFORMER_OPS)
        op = handler(node, ctx)
        ctx.widths[op.output] = op.width()
        ops.append(op)
    outputs = [o.name for o in model.graph.output]
    if len(outputs) != 1:
        raise FrontendError("the graph must have one output: the logits")
    weight_bits, logit_scale, props = metadata
    try:
        timesteps = int(props["timesteps"])
    except (KeyError, ValueError):
        raise FrontendError("the metadata must give timesteps as an integer") from None
    graph = TGraph(tuple(ops), _stream_input(model), outputs[0], timesteps, weight_bits,
                   logit_scale, props)
    log.info("front end: %d transformer ops", len(ops))
    return graph
