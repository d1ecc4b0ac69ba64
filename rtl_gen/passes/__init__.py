"""Graph passes: one rewrite per pass, one pass per file, run as an explicit list.

Every pass is checked for exact semantic preservation: the IR interpreter must give the same
integers before and after (``run_pipeline(..., check_ids=...)``), except passes that declare
``changes_semantics`` (the threshold knob), whose effect is the point.
"""

from __future__ import annotations

import logging

import numpy as np

from contract.graph import Graph

from ..errors import VerificationError
from ..interpret import interpret
from .base import Pass
from .fuse_linear import FuseLinear
from .scale_thresholds import ScaleThresholds

__all__ = ["FuseLinear", "Pass", "ScaleThresholds", "default_pipeline", "run_pipeline"]

log = logging.getLogger(__name__)


def default_pipeline(threshold_scale=None) -> list[Pass]:
    """The passes of ``rtl_gen build``, in order (the same for every graph)."""
    passes: list[Pass] = [FuseLinear()]
    if threshold_scale is not None:
        passes.append(ScaleThresholds(threshold_scale))
    return passes


def run_pipeline(graph: Graph, passes: list[Pass], check_ids=None) -> Graph:
    """Apply ``passes`` in order; with ``check_ids``, verify each keeps the logits exactly."""
    for p in passes:
        before = interpret(graph, check_ids).logits if check_ids is not None else None
        graph = p.run(graph)
        if before is not None and not p.changes_semantics:
            after = interpret(graph, check_ids).logits
            if not np.array_equal(before, after):
                raise VerificationError(f"pass {p.name} changed the model's logits")
        log.info("pass %s done", p.name)
    return graph
