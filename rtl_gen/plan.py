"""The hardware plan: a fused IR graph placed on an R x C array for one FPGA target.

The plan decides the array shape, the register widths (from the range analysis of
``contract.widths``) and where every weight lives (``hw.layout``), and checks that the memories
fit the target's block RAMs before any Verilog is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract import IntModel, derive_widths
from contract import Readout as ContractReadout
from contract import SpikingLayer as ContractLayer
from contract.widths import Widths
from hw.params import AcceleratorParams, HiddenLayerParams, ReadoutParams

from .errors import FrontendError, TargetFitError
from .ir import Graph
from .machines import is_chain
from .targets import Target

__all__ = ["HardwarePlan", "MemoryPlan", "accelerator_params", "plan_hardware", "to_int_model"]


def to_int_model(graph: Graph) -> IntModel:
    """The contract's MLP of a fused chain graph (see :func:`is_chain`)."""
    if not is_chain(graph):
        raise FrontendError("the graph is not a chain of SpikeEmbed, fused spiking layers with"
                            " one threshold each, and SpikeReadout; run the FuseLinear pass")
    embed, *layers, readout = graph.ops
    return IntModel(
        context=embed.context,
        embed_dim=embed.embed_dim,
        timesteps=embed.timesteps,
        weight_bits=graph.weight_bits,
        spike_table=embed.table,
        layers=tuple(ContractLayer(n.weight, n.bias, int(n.threshold), int(n.reset))
                     for n in layers),
        readout=ContractReadout(readout.weight, readout.bias),
        logit_scale=graph.logit_scale,
    )


@dataclass(frozen=True)
class MemoryPlan:
    """One kind of memory: how many, how wide, how deep, and its block RAMs on the target."""

    name: str
    count: int
    width: int
    depth: int
    brams: int

    @property
    def bits(self) -> int:
        return self.count * self.width * self.depth


@dataclass(frozen=True)
class HardwarePlan:
    """The model on the array: parameters of ``hw.Accelerator`` and what they cost."""

    model: IntModel
    params: AcceleratorParams
    widths: Widths
    target: Target
    memories: tuple[MemoryPlan, ...]

    @property
    def brams(self) -> int:
        return sum(m.brams for m in self.memories)

    def ideal_cycles(self, spikes) -> np.ndarray:
        """Per sample: non-zero spike accumulations / PEs (``spikes``: a reference trace's)."""
        total = np.zeros(spikes[0].shape[0])
        for layer_spikes, n_out in zip(spikes, self.params.n_outs, strict=True):
            total += np.count_nonzero(layer_spikes, axis=(1, 2)) * n_out
        return total / self.params.pes


def _memories(p: AcceleratorParams, target: Target) -> tuple[MemoryPlan, ...]:
    shapes = [
        ("weight banks", p.rows, p.cols * p.weight_bits, p.weight_depth),
        ("bias banks", p.rows, p.cols * p.bias_bits, p.bias_depth),
        ("spike table", 1, 2 * p.embed_dim, p.table_depth),
        ("spike buffers", 2 * p.rows, 2 * p.cols, p.spike_buffer_depth),
        ("logit memory", 1, p.cols * p.membrane_bits, p.logit_depth),
    ]
    return tuple(
        MemoryPlan(name, count, width, depth, count * target.brams_for(width, depth))
        for name, count, width, depth in shapes
    )


def accelerator_params(
    model: IntModel, rows: int, cols: int, dense: bool = False
) -> tuple[AcceleratorParams, Widths]:
    """``hw.Accelerator``'s parameters for ``model`` on a ``rows`` x ``cols`` array, with the
    widths of the range analysis."""
    widths = derive_widths(model)
    params = AcceleratorParams(
        rows=rows,
        cols=cols,
        timesteps=model.timesteps,
        context=model.context,
        embed_dim=model.embed_dim,
        spike_table=model.spike_table,
        layers=tuple(
            HiddenLayerParams(layer.weight, layer.bias, layer.threshold, layer.reset)
            for layer in model.layers
        ),
        readout=ReadoutParams(model.readout.weight, model.readout.bias),
        weight_bits=widths.weight,
        bias_bits=widths.bias,
        membrane_bits=widths.membrane,
        dense=dense,
    )
    return params, widths


def plan_hardware(graph: Graph, rows: int, cols: int, target: Target, dense: bool) -> HardwarePlan:
    """Place ``graph`` (fused) on a ``rows`` x ``cols`` array; raise if it cannot fit."""
    model = to_int_model(graph)
    params, widths = accelerator_params(model, rows, cols, dense)
    memories = _memories(params, target)
    plan = HardwarePlan(model, params, widths, target, memories)
    if plan.brams > target.brams:
        detail = ", ".join(f"{m.name} {m.brams}" for m in memories if m.brams)
        raise TargetFitError(
            f"the model needs about {plan.brams} block RAMs ({detail}) but {target.name} has"
            f" {target.brams}; choose a larger --target or a smaller model (fewer or narrower"
            " layers, fewer weight bits)"
        )
    return plan
