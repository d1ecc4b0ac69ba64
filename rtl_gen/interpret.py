"""The IR interpreter: the contract's one graph executor (:func:`contract.graph.run`).

A pass is checked on any graph, fused or not, by running it before and after; token ids
outside 0..255 raise :class:`contract.ContractError`, as in the reference.
"""

from __future__ import annotations

from contract.graph import Graph, Trace, run

__all__ = ["interpret"]


def interpret(graph: Graph, ids) -> Trace:
    """Logits of every position ``[N, L, 256]`` and the spikes of every spiking op, in graph
    order, for byte streams ``ids[N, L]`` (an MLP's ``[N, k]`` windows are ``k``-byte
    streams)."""
    return run(graph, ids)
