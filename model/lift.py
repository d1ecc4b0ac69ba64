"""The contract's two model classes from a graph of their shape.

``rtl_gen``'s hardware plans and the range analyses read a ``contract.IntModel`` (the chain
``SpikeEmbed``, ``Accumulate`` + ``Fire`` per layer, ``Readout``) or a
``contract.zoo.IntTransformer`` (token embedding, blocks of normalising neuron, Q/K/V,
attention, output projection, normalising neuron, feed-forward layer, projection; a final
normalising neuron and the readout). :func:`int_model_of` recognises either shape in a graph
emitted by blocks (by op type and wiring, not by name) and returns the same integers in that
class; its ``graph()`` then has the class's op names.
"""

from __future__ import annotations

import numpy as np

from contract import graph as g
from contract.ops import ContractError
from contract.zoo import (
    IntBlock,
    IntModel,
    IntNorm,
    IntOutProj,
    IntTransformer,
    Readout,
    SpikingLayer,
)

__all__ = ["int_model_of"]


class _NoMatch(Exception):
    """The graph is not of the shape being read."""


class _Reader:
    """Takes the ops of a graph one by one, each of an expected type and wiring."""

    def __init__(self, graph: g.Graph):
        self.ops = graph.ops
        self.index = 0

    @property
    def left(self) -> int:
        return len(self.ops) - self.index

    def take(self, kind: type, *inputs: str) -> g.Op:
        if not self.left:
            raise _NoMatch
        op = self.ops[self.index]
        if not isinstance(op, kind) or (inputs and op.inputs != inputs):
            raise _NoMatch
        if getattr(op, "per_step", False) or getattr(op, "leak", None) is not None \
                or getattr(op, "binary", False) or getattr(op, "scale", None) is not None \
                or getattr(op, "elastic", False):
            raise _NoMatch  # the classes hold the plain neuron only
        self.index += 1
        return op

    def linear(self, spikes: str) -> tuple[SpikingLayer, str]:
        """An ``Accumulate`` then a ``Fire`` of one threshold: a layer and its output."""
        acc = self.take(g.Accumulate, spikes)
        fire = self.take(g.Fire, acc.output)
        if fire.threshold.ndim or fire.reset.ndim:
            raise _NoMatch
        layer = SpikingLayer(acc.weight, fire.bias, int(fire.threshold), int(fire.reset))
        return layer, fire.output

    def norm(self, residual: str) -> tuple[IntNorm, str]:
        """A ``Fire`` of the residual with per-channel constants."""
        fire = self.take(g.Fire, residual)
        n = fire.width()
        if fire.threshold.shape != (n,) or fire.reset.shape != (n,):
            raise _NoMatch
        return IntNorm(fire.bias, fire.threshold, fire.reset), fire.output


def _mlp(graph: g.Graph) -> IntModel:
    read = _Reader(graph)
    embed = read.take(g.SpikeEmbed)
    layers, s = [], embed.output
    while read.left > 1:
        layer, s = read.linear(s)
        layers.append(layer)
    readout = read.take(g.Readout, s)
    return IntModel(context=embed.context, embed_dim=embed.embed_dim, timesteps=graph.timesteps,
                    weight_bits=graph.weight_bits, spike_table=embed.table, layers=tuple(layers),
                    readout=Readout(readout.weight, readout.bias),
                    logit_scale=graph.logit_scale, meta=dict(graph.meta))


def _transformer(graph: g.Graph) -> IntTransformer:
    read = _Reader(graph)
    embed = read.take(g.TokenEmbed)
    x = embed.output
    blocks, attentions = [], []
    while read.left > 2:
        norm1, s = read.norm(x)
        (q, sq), (k, sk), (v, sv) = read.linear(s), read.linear(s), read.linear(s)
        attn = read.take(g.Attention, sq, sk, sv)
        out = read.take(g.ResidualAdd, x, attn.output)
        norm2, s = read.norm(out.output)
        ff1, h = read.linear(s)
        ff2 = read.take(g.ResidualAdd, out.output, h)
        x = ff2.output
        attentions.append(attn)
        blocks.append(IntBlock(norm1=norm1, q=q, k=k, v=v, score_bias=attn.score_bias,
                               attn_threshold=attn.threshold, attn_reset=attn.reset,
                               out=IntOutProj(out.weight, out.shift), norm2=norm2, ff1=ff1,
                               ff2=IntOutProj(ff2.weight, ff2.shift)))
    norm_f, s = read.norm(x)
    readout = read.take(g.Readout, s)
    if not attentions or len({(a.window, a.heads) for a in attentions}) != 1:
        raise _NoMatch
    return IntTransformer(context=attentions[0].window, d_model=attentions[0].d_model,
                          heads=attentions[0].heads, timesteps=graph.timesteps,
                          weight_bits=graph.weight_bits, tok_embed=np.asarray(embed.table),
                          blocks=tuple(blocks), norm_f=norm_f,
                          readout=Readout(readout.weight, readout.bias),
                          logit_scale=graph.logit_scale, meta=dict(graph.meta))


def int_model_of(graph: g.Graph) -> IntModel | IntTransformer | None:
    """``graph`` as an ``IntModel`` or an ``IntTransformer`` (``None``: it is neither, or the
    class refuses it, as ``IntModel`` does a chain without hidden layers; an encoder)."""
    if not graph.causal:
        return None
    for lift in (_mlp, _transformer):
        try:
            return lift(graph)
        except (_NoMatch, ContractError):
            continue
    return None
