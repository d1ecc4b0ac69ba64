"""The IR interpreter: runs a graph node by node with the integer reference's own functions."""

from __future__ import annotations

import numpy as np

from contract import ContractError, IntModel, reference
from contract import Readout as ContractReadout
from contract import SpikingLayer as ContractLayer

from .interpret_transformer import interpret_transformer
from .ir import Accumulate, Embed, Fire, Graph, Readout, SpikingLayer
from .tir import TGraph

__all__ = ["interpret", "to_int_model"]


def interpret(graph, ids):
    """Logits and the spikes of every spiking node, for contexts ``ids[N, k]`` of an MLP
    :class:`Graph` (a :class:`contract.reference.Trace`), or streams ``ids[N, L]`` of a
    transformer :class:`~rtl_gen.tir.TGraph` (a ``TransformerTrace``, logits of every position).

    Token ids outside 0..255 raise :class:`contract.ContractError`, as in the reference (a
    negative id would otherwise index the spike table from its end)."""
    if isinstance(graph, TGraph):
        return interpret_transformer(graph, ids)
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] != graph.context:
        raise ContractError(f"ids must have shape [N, {graph.context}], not {ids.shape}")
    if ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() > 255):
        raise ContractError("token ids must be integers in 0..255")
    values = None
    spikes = []
    logits = None
    for node in graph.nodes:
        if isinstance(node, Embed):
            values = node.table[ids].transpose(0, 2, 1, 3).reshape(ids.shape[0], node.timesteps, -1)
            spikes.append(values)
        elif isinstance(node, Accumulate):
            values = reference.accumulate(values, node.weight)
        elif isinstance(node, Fire):
            values = reference.fire(values, node.bias, node.threshold, node.reset)
            spikes.append(values)
        elif isinstance(node, SpikingLayer):
            values = reference.fire(
                reference.accumulate(values, node.weight), node.bias, node.threshold, node.reset
            )
            spikes.append(values)
        elif isinstance(node, Readout):
            logits = reference.readout(values, ContractReadout(node.weight, node.bias))
        else:
            raise TypeError(f"the interpreter has no rule for {type(node).__name__}")
    return reference.Trace(logits, tuple(spikes))


def to_int_model(graph: Graph) -> IntModel:
    """The contract's model of a fused graph (Embed, SpikingLayer*, Readout)."""
    embed, *layers, readout = graph.nodes
    if not all(isinstance(layer, SpikingLayer) for layer in layers):
        raise TypeError("to_int_model needs a fused graph: run the FuseLayers pass first")
    return IntModel(
        context=graph.context,
        embed_dim=embed.embed_dim,
        timesteps=embed.timesteps,
        weight_bits=graph.weight_bits,
        spike_table=embed.table,
        layers=tuple(ContractLayer(n.weight, n.bias, n.threshold, n.reset) for n in layers),
        readout=ContractReadout(readout.weight, readout.bias),
        logit_scale=graph.logit_scale,
    )
