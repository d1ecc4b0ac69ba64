"""The hardware half of ``build``: plan, memory images, Verilog, testbench, report.

Every graph becomes a layer program on the one accelerator (``hw.Accelerator``). The simulated
top is :class:`hw.InferenceHarness`: a byte per start for a graph checked on streams,
the ``k`` bytes of a window for one checked on windows (:mod:`rtl_gen.machines`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time

import numpy as np
from amaranth.back import verilog

from contract.graph import SpikeEmbed
from contract.ops import attention_blocks, key_counts
from hw import AcceleratorParams, InferenceHarness, LayerKind
from hw.harness import sdram_interval
from hw.layout import (
    const_bank_images,
    const_lane_bits,
    external_weight_image,
    spike_table_image,
    weight_bank_images,
)
from sim.runner import TESTBENCH

from .machines import checks_streams, start_bytes
from .memory import memory_section
from .plan_program import ProgramPlan, plan_program
from .report import save_report
from .targets import get_target

__all__ = ["HW_STEPS", "ideal_by_layer"]

TOP_MODULE = "spikeforge_top"
SYNTH_MODULE = "spikeforge_synth"

log = logging.getLogger(__name__)


def _write_hex(path, words, width: int) -> None:
    digits = max(1, -(-width // 4))
    path.write_text("".join(f"{int(w):0{digits}x}\n" for w in words))


def _window(state) -> int:
    """Bytes per start of the harness: the context of a graph checked on windows, an encoder's
    sequence, else 1."""
    return 1 if checks_streams(state.graph) else start_bytes(state.graph)


def step_plan(state) -> None:
    """The layer program and its memory images; the range analysis sets every width."""
    cfg = state.config
    plan = plan_program(state.graph, cfg.rows, cfg.cols, get_target(cfg.target), cfg.dense,
                        cfg.weights)
    p = plan.params
    mem = state.dir / "mem"
    mem.mkdir()
    if p.weights_offchip:  # the external memory's image: a bus word a line from address 0
        _write_hex(mem / "weights_external.hex", external_weight_image(p), p.bus_data_bits)
        log.info("weights off chip: %d bytes behind the AXI4 port",
                 p.weight_depth * p.weight_row_bytes)
    else:
        for bank, image in enumerate(weight_bank_images(p)):
            _write_hex(mem / f"weights_row{bank}.hex", image, p.cols * p.weight_bits)
    for bank, image in enumerate(const_bank_images(p)):
        _write_hex(mem / f"consts_row{bank}.hex", image, p.cols * const_lane_bits(p))
    if p.spike_table is not None:
        _write_hex(mem / "spike_table.hex", spike_table_image(p), 2 * p.embed_dim)
    state.plan = plan
    window = _window(state)
    (state.dir / "plan.json").write_text(json.dumps({
        "streams": checks_streams(state.graph),
        "top_module": TOP_MODULE,
        "top_file": f"{TOP_MODULE}.v",
        "context": window,
        "context_bits": 8 * window + 1,
        "outputs": p.outputs,
        "encoder": p.bidirectional,
        "rows": p.rows,
        "cols": p.cols,
        "timesteps": p.timesteps,
        "tiles": list(p.tiles),
        "layers": [{"name": layer.name, "kind": layer.kind.name, "n_out": layer.n_out}
                   for layer in p.layers],
        "widths": {"weight": p.weight_bits, "bias": p.bias_bits, "const": p.const_bits,
                   "membrane": p.membrane_bits, "residual": p.residual_bits,
                   "score": p.score_bits},
        "spike_counters": len(p.spiking_layers),
        "spike_counter_width": 24,
        "dense": p.dense,
        "weights": "offchip" if p.weights_offchip else "onchip",
    }, indent=2) + "\n")


def _harness(state) -> InferenceHarness:
    """The simulation top: with the weights off chip, it holds the external memory model."""
    cfg = state.config
    return InferenceHarness(state.plan.params, stall_seed=cfg.stall_seed,
                            window=_window(state), memory_latency=cfg.memory_latency,
                            memory_interval=cfg.memory_interval)


def step_rtl(state) -> None:
    """Verilog of the simulation top (the harness, with random stalls under ``--stall-seed``)
    and of the synthesis top."""
    import hw

    rtl = state.dir / "rtl"
    rtl.mkdir()
    params = state.plan.params
    harness = _harness(state)
    tops = ((harness, TOP_MODULE), (hw.SynthTop(params), SYNTH_MODULE))
    for component, name in tops:
        start = time.perf_counter()
        text = verilog.convert(component, name=name, emit_src=False)
        (rtl / f"{name}.v").write_text(text)
        log.info("%s: %d lines of Verilog in %.1f s", name, text.count("\n"),
                 time.perf_counter() - start)


def ideal_by_layer(p: AcceleratorParams, tensors: dict, ids: np.ndarray) -> list[np.ndarray]:
    """Per layer of the program, per position ``[N, L]``: its non-zero accumulations / PEs.
    A layer reading spikes does ``nnz(input) * n_out`` of them; an attention does one per
    (step, key, channel) whose head scores above zero and whose cached value spike is
    non-zero; any other layer (EMBED, NORM) none."""
    dh = p.head_dim
    length = ids.shape[1]
    layers = []
    for layer in p.layers:
        total = np.zeros(ids.shape, dtype=np.float64)
        if layer.kind in (LayerKind.LINEAR, LayerKind.RESIDUAL, LayerKind.READOUT):
            spikes = tensors[layer.source]  # [N, T, L, n]
            total += np.count_nonzero(spikes, axis=(1, 3)) * layer.n_out
        elif layer.kind == LayerKind.ATTENTION:
            q, k, v = (tensors[name] for name in (layer.source, layer.keys, layer.values))
            n, steps = q.shape[:2]
            split = (n, steps, length, p.heads, dh)
            qh, kh, vh = (x.reshape(split).transpose(0, 1, 3, 2, 4) for x in (q, k, v))
            for queries, keys, column, seen in attention_blocks(length, p.window, layer.causal):
                scores = qh[..., queries, :] @ kh[..., keys, :].transpose(0, 1, 2, 4, 3)
                active = (scores + layer.score_bias[..., column] > 0) & seen
                work = active.astype(np.int64) @ (vh[..., keys, :] != 0).astype(np.int64)
                total[:, queries] += work.sum(axis=(1, 2, 4))  # [N, T, H, Lq, dh] -> [N, Lq]
        layers.append(total / p.pes)
    return layers


def counted_rates(graph, trace, last_only: bool = False) -> dict[str, float]:
    """The reference's firing rate of every population the hardware counts (every spiking op
    but a SpikeEmbed, whose spikes come from a ROM), by a readable name: the neuron's node
    (``b0_q`` of a fused ``b0_q_acc+b0_q_fire``), in graph order; ``last_only``: at the last
    position of each window, the only one that runs."""
    populations = [op for op in graph.ops if op.fires]
    spikes = [s[:, :, -1:] if last_only else s for s in trace.spikes]
    return {op.name.split("+")[-1].removesuffix("_fire"): float(np.count_nonzero(s)) / s.size
            for op, s in zip(populations, spikes, strict=True)
            if not isinstance(op, SpikeEmbed)}


def step_testbench(state) -> None:
    """The cocotb testbench, beside the design it checks."""
    tb = state.dir / "tb"
    tb.mkdir()
    shutil.copyfile(TESTBENCH, tb / TESTBENCH.name)


def dense_cycles(p: AcceleratorParams) -> int:
    """The dense scan of a chain, ``Σ_l tiles_l * T * (n_in_l + 1)`` (every input lane a cycle,
    and the FIRE), the fixed overhead not included."""
    return sum(t * p.timesteps * (layer.n_in + 1) for t, layer in zip(p.tiles, p.layers,
                                                                          strict=True))


def step_report(state) -> None:
    """``report.json`` and ``report.md``: everything known before simulation."""
    plan: ProgramPlan = state.plan
    cfg, trace = state.config, state.trace
    p, graph = plan.params, plan.graph
    streams = checks_streams(graph)

    def per_inference(positions: np.ndarray) -> np.ndarray:
        if p.bidirectional:  # an encoder's sequence: every position, one inference
            return positions.sum(axis=1)
        return positions if streams else positions[:, -1]  # a window: its last position

    by_layer = [per_inference(x) for x in ideal_by_layer(p, trace.tensors, state.inputs)]
    ideal = sum(by_layer)
    full = key_counts(state.inputs.shape[1], p.window) == p.window
    rates = counted_rates(graph, trace, last_only=not streams and not p.bidirectional)
    weights = sum(int(layer.weight.size) for layer in p.layers if layer.weight is not None)
    report = {
        "streams": streams,
        "name": cfg.out.name,
        "source": str(cfg.ckpt if cfg.ckpt is not None else cfg.onnx_path),
        "threshold_scale": str(cfg.threshold_scale or 1),
        "stall_seed": cfg.stall_seed,
        "model": {
            "context": p.window if streams or p.bidirectional else p.context,
            "embed_dim": p.embed_dim,
            "layer_sizes": [p.layers[0].n_in, *(layer.n_out for layer in p.layers)],
            "d_model": p.d_model,
            "heads": p.heads,
            "attentions": sum(layer.kind == LayerKind.ATTENTION for layer in p.layers),
            "timesteps": p.timesteps,
            "weight_bits": graph.weight_bits,
            "parameters": weights,
            "layers": [f"{layer.kind.name.lower()} {layer.n_out}" for layer in p.layers],
        },
        "array": {"rows": p.rows, "cols": p.cols, "pes": p.pes, "dense": p.dense,
                  "tiles": list(p.tiles)},
        "widths": {"weight": p.weight_bits, "bias": p.bias_bits, "const": p.const_bits,
                   "membrane": p.membrane_bits, "residual": p.residual_bits,
                   "score": p.score_bits},
        "memories": {m.name: {"count": m.count, "width": m.width, "depth": m.depth,
                              "bits": m.bits, "estimated_brams": m.brams}
                     for m in plan.memories},
        "target": plan.target.name,
        "estimated_brams": plan.brams,
        "multipliers": 0,
        "multiplier_note": (
            "none: a weight times a ternary spike is an add, a subtract or nothing; a score is"
            " ternary x ternary (AND, XOR, popcount); the attention weight times a ternary"
            " value is an add, a subtract or nothing; scales are shifts and thresholds"),
        "golden_streams": int(state.inputs.shape[0]),
        "golden_samples": int(state.inputs.shape[0]),
        "golden_positions": int(state.inputs.size if streams else state.inputs.shape[0]),
        "full_context_positions": int(state.inputs.shape[0] * (full.sum() if streams else 1)),
        "firing_rates": rates,
        "spiking_layer_names": list(rates),
        "spiking_layer_sizes": [p.layers[i].n_out for i in p.spiking_layers],
        # how often a counter's layer runs per inference: an encoder's, per pass and position
        "spiking_layer_runs": [
            (p.runs_in_prefill(i) + p.runs_in_query(i)) * state.inputs.shape[1]
            if p.bidirectional else 1 for i in p.spiking_layers],
        "cycles_per_inference": None,
        "ideal_cycles_per_inference": round(float(ideal.mean()), 1),
        "dense_cycles_per_inference": None if streams or p.bidirectional
        else float(dense_cycles(p)),
        "cycles": {"ideal_min": round(float(ideal.min()), 1),
                   "ideal_max": round(float(ideal.max()), 1)},
        # per layer of the program; ``rtl_gen sim`` adds the measured run and drain cycles
        "cycle_profile": [{"layer": layer.name, "kind": layer.kind.name.lower(),
                           "tiles": int(tiles), "ideal": round(float(x.mean()), 1)}
                          for layer, tiles, x in zip(p.layers, p.tiles, by_layer, strict=True)],
        "rtl": {"top_file": f"{TOP_MODULE}.v", "top_module": TOP_MODULE,
                "synth_file": f"{SYNTH_MODULE}.v", "synth_module": SYNTH_MODULE},
        "synth": {},
        "timings": {f"build_{k}": v for k, v in state.timings.items()},
    }
    report["memory"] = memory_section(
        p, trace.tensors, state.inputs, streams=streams, mode=cfg.weights,
        latency=cfg.memory_latency, interval=cfg.memory_interval or sdram_interval(p))
    save_report(state.dir, report)


HW_STEPS = [
    ("plan", step_plan),
    ("rtl", step_rtl),
    ("testbench", step_testbench),
    ("report", step_report),
]
