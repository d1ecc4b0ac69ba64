"""The hardware half of ``build``: plan, memory images, Verilog, testbench, report."""

from __future__ import annotations

import json
import logging
import shutil
import time

import numpy as np
from amaranth.back import verilog

from hw import layout
from sim.runner import TESTBENCH

from . import hwsteps_program as xsteps
from .build import BuildState
from .machines import is_chain
from .plan import plan_hardware
from .report import save_report
from .targets import get_target

__all__ = ["HW_STEPS"]

log = logging.getLogger(__name__)

TOP_MODULE = "spikeforge_top"
SYNTH_MODULE = "spikeforge_synth"


def _write_hex(path, words, width: int) -> None:
    digits = max(1, -(-width // 4))
    path.write_text("".join(f"{int(w):0{digits}x}\n" for w in words))


def step_plan(state: BuildState) -> None:
    """The array plan and its memory images; the range analysis sets every width."""
    if not is_chain(state.graph):
        xsteps.step_plan(state, TOP_MODULE)
        return
    cfg = state.config
    plan = plan_hardware(state.graph, cfg.rows, cfg.cols, get_target(cfg.target), cfg.dense)
    p = plan.params
    mem = state.dir / "mem"
    mem.mkdir()
    for bank, image in enumerate(layout.weight_bank_images(p)):
        _write_hex(mem / f"weights_row{bank}.hex", image, p.cols * p.weight_bits)
    for bank, image in enumerate(layout.bias_bank_images(p)):
        _write_hex(mem / f"bias_row{bank}.hex", image, p.cols * p.bias_bits)
    _write_hex(mem / "spike_table.hex", layout.spike_table_image(p), 2 * p.embed_dim)
    state.plan = plan
    (state.dir / "plan.json").write_text(
        json.dumps(
            {
                "top_module": TOP_MODULE,
                "top_file": f"{TOP_MODULE}.v",
                "context": p.context,
                "rows": p.rows,
                "cols": p.cols,
                "timesteps": p.timesteps,
                "tiles": list(p.tiles),
                "n_outs": list(p.n_outs),
                "widths": {
                    "weight": p.weight_bits,
                    "bias": p.bias_bits,
                    "membrane": p.membrane_bits,
                },
                "spike_counters": p.spike_counters,
                "spike_counter_width": p.spike_count_bits,
                "dense": p.dense,
            },
            indent=2,
        )
        + "\n"
    )


def step_rtl(state: BuildState) -> None:
    """Verilog of the simulation top (the harness, with random stalls under ``--stall-seed``)
    and of the synthesis top."""
    import hw

    if not is_chain(state.graph):
        xsteps.step_rtl(state, TOP_MODULE, SYNTH_MODULE)
        return
    rtl = state.dir / "rtl"
    rtl.mkdir()
    params = state.plan.params
    harness = hw.InferenceHarness(params, stall_seed=state.config.stall_seed)
    tops = ((harness, TOP_MODULE), (hw.SynthTop(params), SYNTH_MODULE))
    for component, name in tops:
        start = time.perf_counter()
        text = verilog.convert(component, name=name, emit_src=False)
        (rtl / f"{name}.v").write_text(text)
        log.info(
            "%s: %d lines of Verilog in %.1f s", name, text.count("\n"), time.perf_counter() - start
        )


def step_testbench(state: BuildState) -> None:
    """The cocotb testbench, beside the design it checks."""
    tb = state.dir / "tb"
    tb.mkdir()
    shutil.copyfile(TESTBENCH, tb / TESTBENCH.name)


def step_report(state: BuildState) -> None:
    """``report.json`` and ``report.md``: everything known before simulation."""
    if not is_chain(state.graph):
        xsteps.step_report(state, TOP_MODULE, SYNTH_MODULE)
        return
    plan, cfg, trace = state.plan, state.config, state.trace
    p, model = plan.params, plan.model
    names = ["embedding", *(f"hidden{i}" for i in range(len(model.layers)))]
    sizes = [model.n_inputs, *(layer.n_out for layer in model.layers)]
    spikes = [s[:, :, -1] for s in trace.spikes]  # the window's last position: what runs
    rates = [float(np.count_nonzero(s)) / max(1, s.size) for s in spikes]
    ideal = plan.ideal_cycles(spikes)
    report = {
        "name": cfg.out.name,
        "source": str(cfg.ckpt if cfg.ckpt is not None else cfg.onnx_path),
        "threshold_scale": str(cfg.threshold_scale or 1),
        "stall_seed": cfg.stall_seed,
        "model": {
            "context": model.context,
            "embed_dim": model.embed_dim,
            "timesteps": model.timesteps,
            "weight_bits": model.weight_bits,
            "layer_sizes": [model.n_inputs, *p.n_outs],
            "parameters": int(sum(layer.weight.size for layer in p.all_layers)),
            "thresholds": [layer.threshold for layer in model.layers],
            "resets": [layer.reset for layer in model.layers],
        },
        "array": {
            "rows": p.rows,
            "cols": p.cols,
            "pes": p.pes,
            "dense": p.dense,
            "tiles": list(p.tiles),
        },
        "widths": {
            "weight": p.weight_bits,
            "bias": p.bias_bits,
            "membrane": p.membrane_bits,
            "membrane_bounds": list(plan.widths.membrane_bounds),
            "logit_bound": plan.widths.logit_bound,
        },
        "memories": {
            m.name: {
                "count": m.count,
                "width": m.width,
                "depth": m.depth,
                "bits": m.bits,
                "estimated_brams": m.brams,
            }
            for m in plan.memories
        },
        "target": plan.target.name,
        "estimated_brams": plan.brams,
        "multipliers": 0,
        "golden_samples": int(len(state.inputs)),
        "firing_rates": dict(zip(names, rates, strict=True)),
        "spiking_layer_sizes": sizes,
        "cycles_per_inference": None,
        "ideal_cycles_per_inference": round(float(np.mean(ideal)), 1),
        "dense_cycles_per_inference": float(p.dense_cycles()),
        "cycles": {
            "ideal_min": round(float(ideal.min()), 1),
            "ideal_max": round(float(ideal.max()), 1),
        },
        "rtl": {
            "top_file": f"{TOP_MODULE}.v",
            "top_module": TOP_MODULE,
            "synth_file": f"{SYNTH_MODULE}.v",
            "synth_module": SYNTH_MODULE,
        },
        "synth": {},
        "timings": {f"build_{k}": v for k, v in state.timings.items()},
    }
    save_report(state.dir, report)


HW_STEPS = [
    ("plan", step_plan),
    ("rtl", step_rtl),
    ("testbench", step_testbench),
    ("report", step_report),
]
