"""How a graph is checked, in one place (Amaranth-free, so the build's first steps can ask before
any hardware is imported).

Every graph runs on the one layer-program accelerator (``hw.Accelerator``). A graph whose
input is a ``SpikeEmbed`` and which has no attention depends at each position on the window of
its last ``k`` bytes alone: it is checked on windows at their last position (the harness takes
``k - 1`` held bytes and the last). Every other graph carries state from byte to byte (the
key/value caches) and is checked at every position of whole streams, a byte at a time. An
encoder (a bidirectional attention, its logits pooled) is checked a whole sequence per start,
on its pooled logits: the harness sends the sequence twice (docs/architecture.md).
"""

from __future__ import annotations

from contract.graph import Attention, Graph, SpikeEmbed

__all__ = ["checks_streams", "start_bytes"]


def checks_streams(graph: Graph) -> bool:
    """Whether a build of ``graph`` checks whole byte streams at every position rather than
    windows at their last position (see the module)."""
    if not graph.causal:
        return False
    return bool(graph.of_type(Attention)) or not graph.of_type(SpikeEmbed)


def start_bytes(graph: Graph) -> int:
    """Bytes per start of a graph not checked on streams: a chain's context, or an encoder's
    window (its sequences)."""
    return graph.context if graph.causal else graph.causal_window
