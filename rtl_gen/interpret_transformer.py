"""The transformer IR interpreter and the IR's contract model.

:func:`interpret_transformer` runs a :class:`~rtl_gen.tir.TGraph` op by op with the integer
reference's own functions (``contract.reference.fire`` and ``accumulate``,
``contract.transformer.attention_current``, ``key_counts`` and ``shift_round``), so a pass can
be checked on any graph, fused or not. :func:`to_int_transformer` recognises the block
structure of the contract in a graph and returns the :class:`contract.transformer.IntTransformer`
it is, for the golden ONNX file and for the whole-model reference.
"""

from __future__ import annotations

import numpy as np

from contract import Readout as ContractReadout
from contract import SpikingLayer as ContractLayer
from contract import reference
from contract import transformer as xf
from contract.intmodel import ContractError

from .errors import FrontendError
from .tir import (
    Accumulate,
    Attention,
    Fire,
    Readout,
    ResidualAdd,
    SpikingLinear,
    TGraph,
    TokenEmbed,
)

__all__ = ["interpret_transformer", "to_int_transformer"]


def _check_ids(ids) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] < 1:
        raise ContractError(f"ids must have shape [N, L] with L >= 1, not {ids.shape}")
    if ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() > 255):
        raise ContractError("token ids must be integers in 0..255")
    return ids.astype(np.int64)


def interpret_transformer(graph: TGraph, ids) -> xf.TransformerTrace:
    """Logits of every position ``[N, L, 256]`` and the spikes of every spiking op, in graph
    order, for byte streams ``ids[N, L]``."""
    ids = _check_ids(ids)
    env: dict[str, np.ndarray] = {graph.input: ids}
    spikes, names = [], []
    length = ids.shape[1]
    for op in graph.ops:
        args = [env[name] for name in op.inputs]
        if isinstance(op, TokenEmbed):
            value = np.repeat(op.table[args[0]][:, None], graph.timesteps, axis=1)
        elif isinstance(op, Accumulate):
            value = reference.accumulate(args[0], op.weight)
        elif isinstance(op, Fire):
            value = reference.fire(args[0], op.bias, op.threshold, op.reset)
        elif isinstance(op, SpikingLinear):
            value = reference.fire(reference.accumulate(args[0], op.weight), op.bias,
                                   op.threshold, op.reset)
        elif isinstance(op, Attention):
            a = xf.attention_current(*args, op.heads, op.score_bias, op.window)
            counts = xf.key_counts(length, op.window) - 1
            value = reference.fire(a, 0, op.threshold[counts][:, None], op.reset[counts][:, None])
        elif isinstance(op, ResidualAdd):
            value = args[0] + xf.shift_round(reference.accumulate(args[1], op.weight), op.shift)
        elif isinstance(op, Readout):
            value = (reference.accumulate(args[0], op.weight) + op.bias).sum(axis=1)
        else:
            raise TypeError(f"the interpreter has no rule for {type(op).__name__}")
        env[op.output] = value
        if op.makes.value == "spikes":
            spikes.append(value)
            names.append(op.name)
    return xf.TransformerTrace(env[graph.output], tuple(spikes), tuple(names), {}, env)


class _Reader:
    """Walks the ops of a fused graph in the order the contract's blocks have them."""

    def __init__(self, graph: TGraph):
        self.ops = list(graph.ops)
        self.index = 0

    def take(self, kind, what: str):
        if self.index >= len(self.ops) or not isinstance(self.ops[self.index], kind):
            found = type(self.ops[self.index]).__name__ if self.index < len(self.ops) else "end"
            raise FrontendError(
                f"the transformer graph does not have the contract's block structure: expected"
                f" {what} ({kind.__name__}) at op {self.index}, found {found}")
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


def to_int_transformer(graph: TGraph) -> xf.IntTransformer:
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
    if not np.array_equal(interpret_transformer(graph, _probe(model)).logits,
                          xf.forward(model, _probe(model), all_positions=True)):
        raise FrontendError("the transformer graph wires its ops unlike the contract's blocks")
    return model


def _probe(model: xf.IntTransformer) -> np.ndarray:
    """A few seeded streams two windows long: enough to tell a mis-wired graph."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(4, 2 * model.context))
