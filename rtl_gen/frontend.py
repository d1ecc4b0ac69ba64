"""ONNX front end: one handler per op type, each returning a typed IR op.

The graph is what ``contract.onnx_io.to_onnx`` writes: nodes of the ``spikeforge`` domain
(``SpikeEmbed``, ``TokenEmbed``, ``SpikeAccumulate``, ``TernaryIF``, ``SpikeAttention``,
``ResidualAdd``, ``SpikeReadout``, ``SpikePool``) in any order that defines a tensor before it
is read, over byte streams ``[N, L]``; :meth:`contract.graph.Graph.check` type-checks the
result. An op without a handler raises :class:`UnsupportedOpError` naming the op and the node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from contract.graph import (
    Accumulate,
    Attention,
    Fire,
    Graph,
    GraphError,
    Op,
    Pool,
    Readout,
    ResidualAdd,
    SpikeEmbed,
    TokenEmbed,
)
from contract.ops import LEAK_TERMS

from .errors import FrontendError, UnsupportedOpError

__all__ = ["HANDLERS", "load_graph", "lower", "read_onnx"]

log = logging.getLogger(__name__)

DOMAIN = "spikeforge"
VOCAB = 256


class _Context:
    """What handlers need: the initializers and the widths of the tensors lowered so far."""

    def __init__(self, model: onnx.ModelProto):
        self.inits = {t.name: t for t in model.graph.initializer}
        self.widths: dict[str, int] = {}

    def array(self, node: onnx.NodeProto, position: int, what: str, ndim) -> np.ndarray:
        """Input ``position`` of ``node``: an integer initializer of ``ndim`` dimensions (an int
        or a tuple of allowed ones)."""
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
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            dims = " or ".join(str(d) for d in allowed)
            raise FrontendError(
                f"node {node.name}: {what} must have {dims} dimensions, not shape {arr.shape}"
            )
        return arr.astype(np.int64)

    def positive(self, node, position: int, what: str, ndim=(0, 1)) -> np.ndarray:
        arr = self.array(node, position, what, ndim)
        if arr.size and arr.min() < 1:
            raise FrontendError(f"node {node.name}: {what} must be at least 1")
        return arr

    def power_of_two(self, node, position: int, what: str) -> int:
        value = int(self.array(node, position, what, 0))
        if value < 1 or value & (value - 1):
            raise FrontendError(f"node {node.name}: {what} must be a power of two, not {value}")
        return value.bit_length() - 1


def _io(node, inputs: int) -> dict:
    return {"name": node.name, "inputs": tuple(node.input[:inputs]), "output": node.output[0]}


def _spike_embed(node, ctx: _Context) -> Op:
    table = ctx.array(node, 1, "spike table", 3)
    if table.shape[0] != VOCAB or table.size == 0:
        raise FrontendError(f"node {node.name}: spike table must be [256, T, E], not {table.shape}")
    context = int(ctx.positive(node, 2, "context", 0))
    return SpikeEmbed(table=table, context=context, **_io(node, 1))


def _token_embed(node, ctx: _Context) -> Op:
    return TokenEmbed(table=ctx.array(node, 1, "token embedding", 2), **_io(node, 1))


def _accumulate(node, ctx: _Context) -> Op:
    return Accumulate(weight=ctx.array(node, 1, "weight", 2).T, **_io(node, 1))


def _leak(node, ctx: _Context, position: int, codes: int, what: str = "leak",
          rows: int | None = None) -> np.ndarray | None:
    """A leak table ``[T - 1, codes, J, 3]`` of ``(sign, mult, div)`` as the graph's
    ``(sign, e)`` terms, or ``None`` for the identity (``what``: a residual's ``scale``)."""
    table = ctx.array(node, position, what, 4)
    if table.shape[1:] != (codes, LEAK_TERMS, 3):
        raise FrontendError(f"node {node.name}: the {what} must be [T{'' if rows else ' - 1'},"
                            f" {codes}, {LEAK_TERMS}, 3], not {table.shape}")
    sign, mult, div = table[..., 0], table[..., 1], table[..., 2]
    for part, arr in (("mult", mult), ("div", div)):
        if arr.size and (arr.min() < 1 or (arr & (arr - 1)).any()):
            raise FrontendError(f"node {node.name}: every {what} {part} must be a power of two")
    if ((mult > 1) & (div > 1)).any():
        raise FrontendError(f"node {node.name}: a {what} term is a mult or a div, not both")
    exponent = np.log2(mult).astype(np.int64) - np.log2(div).astype(np.int64)
    identity = (sign[..., 0] == 1) & (exponent[..., 0] == 0) & (sign[..., 1:] == 0).all(-1)
    if identity.all():
        return None
    terms = np.stack([sign, np.where(sign != 0, exponent, 0)], axis=-1)
    return terms if codes > 1 else terms[:, 0]


def _per_step(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Constants written with one row per step, without the time axis when no row differs."""
    if all((a == a[0]).all() for a in arrays):
        return [a[0] for a in arrays]
    width = max(a.shape[-1] if a.ndim == 2 else 1 for a in arrays)
    return [np.broadcast_to(a.reshape(a.shape[0], -1), (a.shape[0], width)) for a in arrays]


def _fire(node, ctx: _Context) -> Op:
    bias, threshold, reset = _per_step([ctx.array(node, k, what, (1, 2)) for k, what in
                                        ((1, "bias"), (2, "threshold"), (3, "reset"))])
    if bias.ndim == 0:
        bias = np.full(ctx.widths.get(node.input[0], 1), int(bias))
    if threshold.size and threshold.min() < 1:
        raise FrontendError(f"node {node.name}: threshold must be at least 1")
    if reset.size and reset.min() < 0:
        raise FrontendError(f"node {node.name}: reset must not be negative")
    binary = int(ctx.array(node, 5, "binary", 0))
    if binary not in (0, 1):
        raise FrontendError(f"node {node.name}: binary must be 0 or 1, not {binary}")
    return Fire(bias=bias, threshold=threshold, reset=reset, leak=_leak(node, ctx, 4, 3),
                binary=bool(binary), **_io(node, 1))


def _attention(node, ctx: _Context) -> Op:
    d_model = ctx.widths.get(node.input[0], 0)
    count = len(node.input)
    causal = 1
    if count in (7, 9):  # a bidirectional graph's form: its last input is the causal flag
        causal = int(ctx.array(node, count - 1, "causal flag", 0))
        if causal not in (0, 1):
            raise FrontendError(f"node {node.name}: causal must be 0 or 1, not {causal}")
        count -= 1
    if count == 6:
        score_bias = ctx.array(node, 3, "score bias", 2)
        return Attention(heads=score_bias.shape[0], score_bias=score_bias,
                         threshold=ctx.positive(node, 4, "attention threshold", 1),
                         reset=ctx.positive(node, 5, "attention reset", 1),
                         d_model=d_model, causal=bool(causal), **_io(node, 3))
    if count != 8:
        raise FrontendError(f"node {node.name}: a SpikeAttention takes 6 inputs (q, k, v, score"
                            " bias, thresholds, resets) or 8 (and a leak and the binary flag),"
                            f" and the causal flag in a bidirectional graph; not"
                            f" {len(node.input)}")
    score_bias = ctx.array(node, 3, "score bias", 3)
    if score_bias.size and (score_bias == score_bias[0]).all():
        score_bias = score_bias[0]
    threshold, reset = _per_step([ctx.array(node, k, what, 2) for k, what in
                                  ((4, "attention threshold"), (5, "attention reset"))])
    if threshold.size and threshold.min() < 1:
        raise FrontendError(f"node {node.name}: attention thresholds must be at least 1")
    if reset.size and reset.min() < 0:
        raise FrontendError(f"node {node.name}: attention resets must not be negative")
    binary = int(ctx.array(node, 7, "binary", 0))
    if binary not in (0, 1):
        raise FrontendError(f"node {node.name}: binary must be 0 or 1, not {binary}")
    return Attention(heads=score_bias.shape[-2], score_bias=score_bias, threshold=threshold,
                     reset=reset, leak=_leak(node, ctx, 6, 3), binary=bool(binary),
                     d_model=d_model, causal=bool(causal), **_io(node, 3))


def _residual(node, ctx: _Context) -> Op:
    weight = ctx.array(node, 2, "weight", 2).T
    if len(node.input) == 4:  # a per-step scale: one row of terms per step
        table = ctx.array(node, 3, "scale", 4)
        scale = _leak(node, ctx, 3, 1, "scale", rows=table.shape[0])
        if scale is None:
            scale = np.broadcast_to([[1, 0], [0, 0]], (table.shape[0], LEAK_TERMS, 2))
        single = (scale[:, 0, 0] == 1) & (scale[:, 1:, 0] == 0).all(-1)
        if single.all() and (scale[:, 0, 1] == scale[0, 0, 1]).all():
            return ResidualAdd(weight=weight, shift=int(scale[0, 0, 1]), **_io(node, 2))
        return ResidualAdd(weight=weight, scale=scale, **_io(node, 2))
    up = ctx.power_of_two(node, 3, "mult")
    down = ctx.power_of_two(node, 4, "div")
    if up and down:
        raise FrontendError(f"node {node.name}: a shift is a mult or a div, not both")
    return ResidualAdd(weight=weight, shift=up - down, **_io(node, 2))


def _readout(node, ctx: _Context) -> Op:
    weight = ctx.array(node, 1, "weight", 2).T
    (bias,) = _per_step([ctx.array(node, 2, "bias", 2)])
    if bias.shape[-1] != weight.shape[0]:
        raise FrontendError(f"node {node.name}: the readout's bias has {bias.shape[-1]} entries"
                            f" for {weight.shape[0]} outputs")
    return Readout(weight=weight, bias=bias, leak=_leak(node, ctx, 3, 1), **_io(node, 1))


def _pool(node, ctx: _Context) -> Op:
    return Pool(n_outputs=ctx.widths.get(node.input[0], 0), **_io(node, 1))


HANDLERS: dict[tuple[str, str], Callable[[onnx.NodeProto, _Context], Op]] = {
    (DOMAIN, "SpikeEmbed"): _spike_embed,
    (DOMAIN, "TokenEmbed"): _token_embed,
    (DOMAIN, "SpikeAccumulate"): _accumulate,
    (DOMAIN, "TernaryIF"): _fire,
    (DOMAIN, "SpikeAttention"): _attention,
    (DOMAIN, "ResidualAdd"): _residual,
    (DOMAIN, "SpikeReadout"): _readout,
    (DOMAIN, "SpikePool"): _pool,
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


def _stream_input(model: onnx.ModelProto) -> str:
    constants = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in constants]
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 2:
        raise FrontendError("the graph must have one input: byte streams [N, L]")
    return inputs[0].name


def _metadata(model: onnx.ModelProto) -> tuple[int, int, float, dict]:
    props = {p.key: p.value for p in model.metadata_props}
    try:
        weight_bits = int(props.get("weight_bits", "8"))
        logit_scale = float(props.get("logit_scale", "1.0"))
        timesteps = int(props["timesteps"])
    except KeyError:
        raise FrontendError("the metadata must give timesteps as an integer") from None
    except ValueError:
        raise FrontendError("the metadata weight_bits/logit_scale/timesteps are not numbers"
                            ) from None
    if not np.isfinite(logit_scale) or logit_scale <= 0:
        raise FrontendError(f"logit_scale must be a positive finite number, not {logit_scale}")
    return timesteps, weight_bits, logit_scale, props


def lower(model: onnx.ModelProto) -> Graph:
    """The typed IR of an ONNX model (already read and checked)."""
    ctx = _Context(model)
    ops = []
    try:
        for node in model.graph.node:
            handler = HANDLERS.get((node.domain, node.op_type))
            if handler is None:
                raise UnsupportedOpError(node.op_type, node.domain, node.name, HANDLERS)
            op = handler(node, ctx)
            ctx.widths[op.output] = op.width()
            ops.append(op)
        outputs = [o.name for o in model.graph.output]
        if len(outputs) != 1:
            raise FrontendError("the graph must have one output: the logits")
        timesteps, weight_bits, logit_scale, props = _metadata(model)
        graph = Graph(tuple(ops), timesteps, weight_bits, _stream_input(model), outputs[0],
                      logit_scale, props)
    except GraphError as exc:
        raise FrontendError(str(exc)) from None
    log.info("front end: %d IR ops", len(ops))
    return graph


def load_graph(path: Path) -> Graph:
    """The IR of an ONNX file written by ``model.export`` (or by ``contract.onnx_io``)."""
    return lower(read_onnx(path))
