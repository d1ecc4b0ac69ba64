"""ONNX front end: one handler per op type, each returning a typed IR node.

The graph must be the chain that ``contract.onnx_io.to_onnx`` writes: ``SpikeEmbed``, then
``SpikeAccumulate`` + ``TernaryIF`` per hidden layer, then ``SpikeReadout``. An op without a
handler raises :class:`UnsupportedOpError` naming the op and the node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import FrontendError, UnsupportedOpError
from .ir import Accumulate, Embed, Fire, Graph, Node, Readout
from .tir import TGraph

__all__ = ["load_graph", "read_onnx"]

log = logging.getLogger(__name__)

DOMAIN = "spikeforge"
VOCAB = 256


class _Context:
    """What handlers need: the initializers, the node being lowered."""

    def __init__(self, model: onnx.ModelProto):
        self.inits = {t.name: t for t in model.graph.initializer}

    def array(self, node: onnx.NodeProto, position: int, what: str, ndim: int) -> np.ndarray:
        if position >= len(node.input) or node.input[position] not in self.inits:
            raise FrontendError(
                f"node {node.name}: its {what} must be a constant initializer of the graph"
            )
        arr = numpy_helper.to_array(self.inits[node.input[position]])
        if arr.dtype.kind not in "iu":
            raise FrontendError(
                f"node {node.name}: {what} must hold integers, not {arr.dtype}; "
                "export the integer model with `python -m model.export`"
            )
        if arr.ndim != ndim:
            raise FrontendError(
                f"node {node.name}: {what} must have {ndim} dimensions, not shape {arr.shape}"
            )
        return arr.astype(np.int64)

    def scalar(self, node: onnx.NodeProto, position: int, what: str) -> int:
        value = int(self.array(node, position, what, 0))
        if value < 1:
            raise FrontendError(f"node {node.name}: {what} must be at least 1, not {value}")
        return value


def _embed(node, ctx: _Context) -> Node:
    table = ctx.array(node, 1, "spike table", 3)
    if table.shape[0] != VOCAB or table.size == 0:
        raise FrontendError(f"node {node.name}: spike table must be [256, T, E], not {table.shape}")
    if table.min() < -1 or table.max() > 1:
        raise FrontendError(f"node {node.name}: spike table entries must be -1, 0 or +1")
    return Embed(node.name, table)


def _accumulate(node, ctx: _Context) -> Node:
    return Accumulate(node.name, ctx.array(node, 1, "weight", 2).T)


def _fire(node, ctx: _Context) -> Node:
    return Fire(
        node.name,
        ctx.array(node, 1, "bias", 1),
        ctx.scalar(node, 2, "threshold"),
        ctx.scalar(node, 3, "reset"),
    )


def _readout(node, ctx: _Context) -> Node:
    weight = ctx.array(node, 1, "weight", 2).T
    bias = ctx.array(node, 2, "bias", 1)
    if weight.shape[0] != VOCAB or bias.shape != (VOCAB,):
        raise FrontendError(f"node {node.name}: the readout must have 256 outputs")
    return Readout(node.name, weight, bias)


HANDLERS: dict[tuple[str, str], Callable[[onnx.NodeProto, _Context], Node]] = {
    (DOMAIN, "SpikeEmbed"): _embed,
    (DOMAIN, "SpikeAccumulate"): _accumulate,
    (DOMAIN, "TernaryIF"): _fire,
    (DOMAIN, "SpikeReadout"): _readout,
}


def read_onnx(path: Path) -> onnx.ModelProto:
    """Load and check an ONNX file, with a one-line error when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FrontendError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # the protobuf and checker errors have no common base
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FrontendError(f"{path}: not a valid ONNX model ({first})") from None
    if not model.graph.node:
        raise FrontendError(f"{path}: the ONNX graph has no nodes")
    return model


def _context_length(model: onnx.ModelProto) -> int:
    constants = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise FrontendError(f"the graph must have one input (token ids), not {len(inputs)}")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].HasField("dim_value"):
        raise FrontendError(
            f"input {inputs[0].name} must have shape [N, k] with a fixed context length k"
        )
    return int(dims[1].dim_value)


def load_graph(path: Path) -> Graph | TGraph:
    """The IR of an ONNX file written by ``model.export``: a :class:`Graph` for the MLP, a
    :class:`rtl_gen.tir.TGraph` for a transformer."""
    model = read_onnx(path)
    from .frontend_transformer import is_transformer, lower_transformer

    if is_transformer(model):
        return lower_transformer(model, _metadata(model))
    ctx = _Context(model)
    nodes = []
    previous = None
    context = _context_length(model)
    for onnx_node in model.graph.node:
        handler = HANDLERS.get((onnx_node.domain, onnx_node.op_type))
        if handler is None:
            raise UnsupportedOpError(onnx_node.op_type, onnx_node.domain, onnx_node.name)
        if previous is not None and onnx_node.input[0] != previous:
            raise FrontendError(
                f"node {onnx_node.name} does not consume the output of the node before it;"
                " the generator handles a chain of spiking ops only"
            )
        nodes.append(handler(onnx_node, ctx))
        previous = onnx_node.output[0]
    if [o.name for o in model.graph.output] != [previous]:
        raise FrontendError("the graph's only output must be the readout's logits")
    graph = Graph(tuple(nodes), context, *_metadata(model))
    check_structure(graph)
    log.info("front end: %d IR nodes from %s", len(nodes), path)
    return graph


def _metadata(model: onnx.ModelProto) -> tuple[int, float, dict]:
    props = {p.key: p.value for p in model.metadata_props}
    try:
        weight_bits = int(props.get("weight_bits", "8"))
        logit_scale = float(props.get("logit_scale", "1.0"))
    except ValueError:
        raise FrontendError("the metadata weight_bits/logit_scale are not numbers") from None
    if not np.isfinite(logit_scale) or logit_scale <= 0:
        raise FrontendError(f"logit_scale must be a positive finite number, not {logit_scale}")
    return weight_bits, logit_scale, props


def check_structure(graph: Graph) -> None:
    """Kinds, order and shapes of the nodes: Embed, (Accumulate Fire)*, Readout."""
    nodes = graph.nodes
    kinds = "".join({Embed: "E", Accumulate: "A", Fire: "F", Readout: "R"}[type(n)] for n in nodes)
    body = kinds[1:-1]
    if kinds[:1] != "E" or kinds[-1:] != "R" or body != "AF" * (len(body) // 2) or not body:
        raise FrontendError(
            "the graph must be SpikeEmbed, then SpikeAccumulate + TernaryIF per hidden layer"
            " (at least one), then SpikeReadout"
        )
    n_in = graph.context * nodes[0].embed_dim
    limit = (1 << (graph.weight_bits - 1)) - 1
    for node in nodes[1:]:
        if isinstance(node, Accumulate | Readout):
            if node.weight.shape[1] != n_in:
                raise FrontendError(
                    f"node {node.name} takes {node.weight.shape[1]} inputs but receives {n_in}"
                )
            if np.abs(node.weight).max(initial=0) > limit:
                raise FrontendError(
                    f"node {node.name} has weights beyond ±{limit}, the range of"
                    f" {graph.weight_bits}-bit weights"
                )
            n_in = node.weight.shape[0]
        elif isinstance(node, Fire):
            if node.bias.shape != (n_in,):
                raise FrontendError(f"node {node.name}: bias must have {n_in} entries")
        elif isinstance(node, Embed):
            raise FrontendError(f"node {node.name}: only the first node may be SpikeEmbed")
