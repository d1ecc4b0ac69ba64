"""The interface every pass implements."""

from __future__ import annotations

from contract.graph import Graph

__all__ = ["Pass"]


class Pass:
    """A graph rewrite. ``changes_semantics`` is True only for deliberate model changes."""

    changes_semantics = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def run(self, graph: Graph) -> Graph:
        raise NotImplementedError
