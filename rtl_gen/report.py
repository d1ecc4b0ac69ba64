"""``report.json`` and ``report.md``: what a build is, what it costs, what it measured."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["load_report", "render_markdown", "save_report", "slow_line"]


def load_report(build_dir: Path) -> dict:
    return json.loads((Path(build_dir) / "report.json").read_text())


def save_report(build_dir: Path, report: dict) -> None:
    """Write both files; the Markdown is always derived from the JSON."""
    build_dir = Path(build_dir)
    (build_dir / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (build_dir / "report.md").write_text(render_markdown(report))


def profile_table(r: dict) -> list[str]:
    """Markdown lines of the measured cycle profile (``rtl_gen sim``): per layer its ideal and
    its cycles, from its start until the array is idle after it (``report.json`` splits them
    into ``run``, the sequencer issuing, and ``drain``); then taking the byte and sending the
    next token (I/O). Empty before simulation."""
    profile = r.get("cycle_profile") or []
    if not profile or "run" not in profile[0]:
        return []
    lines = ["", "| layer | kind | tiles | ideal | measured | measured - ideal |",
             "| --- | --- | --- | --- | --- | --- |"]
    for e in profile:
        measured = e["run"] + e["drain"]
        lines.append(f"| {e['layer']} | {e['kind']} | {e['tiles']} | {e['ideal']:,.1f} |"
                     f" {measured:,.1f} | {measured - e['ideal']:,.1f} |")
    ideal = sum(e["ideal"] for e in profile)
    total = r["cycles_per_inference"]
    io = r["cycles"]["io"]
    lines += [f"| byte in, token out | | | | {io:,.1f} | {io:,.1f} |",
              f"| **total** | | | {ideal:,.1f} | {total:,.1f} | {total - ideal:,.1f} |"]
    return lines


def _fmt(value, digits=1) -> str:
    if value is None:
        return "not measured yet"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _model_lines(r: dict) -> list[str]:
    m = r["model"]
    if r["streams"]:
        return [
            (f"- layer program: residual of {m['d_model']} channels, {m['attentions']}"
             f" attention(s) of {m['heads']} heads over {m['context']} bytes,"
             f" {m['timesteps']} time steps, {m['weight_bits']}-bit weights"),
            f"- program: {', '.join(m['layers'])} ({m['parameters']:,} weights)",
            (f"- golden: {r['golden_streams']} held-out streams, {r['golden_positions']}"
             f" positions ({r['full_context_positions']} with a full window)"),
        ]
    return [
        (
            f"- context {m['context']} bytes, {m['embed_dim']} spikes per byte,"
            f" {m['timesteps']} time steps, {m['weight_bits']}-bit weights"
        ),
        (
            f"- layers: {' -> '.join(str(n) for n in m['layer_sizes'])}"
            f" ({m['parameters']:,} weights)"
        ),
        f"- threshold scale: {r['threshold_scale']}",
    ]


def _asic_lines(asic: dict, unit: str) -> list[str]:
    """The ASIC section: one row per cell library (``rtl_gen asic``)."""
    if not asic:
        return []
    lines = [
        "",
        "## ASIC (open standard cells; no SRAM: memories are cells)",
        "",
        ("| library | cells | area (mm2): total / accelerator / its memories | critical path"
         f" (ns) | Fmax (MHz) | gate-level bit-exact | power at clock (mW) | energy per {unit}"
         " (nJ) |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, a in sorted(asic.items()):
        area, gate = a["area_um2"], a["gate_level"]
        lines.append(
            f"| {name} | {a['cells']:,} | {area['total'] / 1e6:.3f} /"
            f" {area['accelerator'] / 1e6:.3f} / {area['memories'] / 1e6:.3f} |"
            f" {a['critical_path_ns']:.2f} | {a['fmax_mhz']:.1f} |"
            f" {gate['matched']}/{gate['samples']} ({gate['simulator']}) |"
            f" {a['accelerator_power_mw']:.3f} at {a['clock_ns']} ns |"
            f" {a['energy_per_inference_nj']:,.1f} |"
        )
    lines += ["", ("Power and energy are the accelerator's (the harness's logit registers left"
                   " out), from OpenSTA's per-cell power weighted by each cell's toggles in the"
                   f" gate-level simulation; energy per {unit} is the whole run's (reset, each"
                   " sample, its logits leaving) over its samples (docs/asic.md).")]
    return lines


def _board_lines(boards: dict, run: dict | None) -> list[str]:
    """The boards section: one row per board bitstream (``rtl_gen synth --board``) and the
    last ``rtl_gen run``."""
    lines = []
    if boards:
        lines += [
            "",
            "## Boards (the accelerator behind a UART, docs/boards.md)",
            "",
            ("| board | part | LUTs | FFs | BRAMs | Fmax (MHz) at clock (MHz) | bitstream (bytes)"
             " | build id | wall (s) |"),
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, b in sorted(boards.items()):
            lines.append(
                f"| {name} | {b['target']} | {_fmt(b['luts'])} ({b['lut_percent']:.0f}%) |"
                f" {_fmt(b['ffs'])} | {_fmt(b['brams'])} | {b['fmax_mhz']:.1f} at"
                f" {b['clock_mhz']:g} | {b['bitstream']} ({_fmt(b['bitstream_bytes'])}) |"
                f" {b['build_id']} | {b['seconds']:.0f} |"
            )
    if run:
        lines += [
            "",
            "## Last run over the UART",
            "",
            (f"- {run['where']}, build {run['build_id']}: {run['matched']} of"
             f" {len(run['prompts'])} generations of {run['tokens']} bytes equal to the"
             f" reference, {run['counters_matched']} of {run['inferences']} inferences' spike"
             f" counters equal; {run['cycles_per_inference']:,.1f} cycles per inference"),
        ]
    return lines


def render_markdown(r: dict) -> str:
    a = r["array"]
    unit = "token" if r["streams"] else "inference"
    lines = [
        f"# SpikeForge build: {r['name']}",
        "",
        "## Model",
        "",
        *_model_lines(r),
        "",
        "## Array",
        "",
        (
            f"- {a['rows']} x {a['cols']} = {a['pes']} accumulate-only PEs,"
            f" {'dense' if a['dense'] else 'event-driven (zero skipping)'} scan"
        ),
        (
            f"- widths: weight {r['widths']['weight']}, bias {r['widths']['bias']},"
            f" membrane {r['widths']['membrane']} bits"
        ),
        f"- multipliers: {r['multipliers']}",
        "",
        "## Firing rates (reference, golden inputs)",
        "",
        "| layer | rate |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {rate:.3f} |" for name, rate in r["firing_rates"].items()]
    hw_rates = r.get("hardware_firing_rates")
    if hw_rates:
        lines += [
            "",
            "Hardware spike counters agree: "
            + ", ".join(f"{k} {v:.3f}" for k, v in hw_rates.items()),
        ]
    c = r["cycles"] if "cycles" in r else {}
    lines += [
        "",
        f"## Cycles per {unit}",
        "",
        "| measured (simulation) | ideal (non-zero accumulations / PEs) | dense |",
        "| --- | --- | --- |",
        (
            f"| {_fmt(r['cycles_per_inference'])} | {_fmt(r['ideal_cycles_per_inference'])} |"
            f" {_fmt(r['dense_cycles_per_inference'])} |"
        ),
    ]
    if c.get("measured_over_ideal") is not None:
        lines.append(f"\nmeasured / ideal = {c['measured_over_ideal']:.2f}")
    lines += profile_table(r)
    memory = r.get("memory")
    if memory:
        bus, model = memory["bus"], memory["model"]
        lines += [
            "",
            (f"## Weights: {'off chip' if memory['weights'] == 'offchip' else 'on chip'}"
             f" ({memory['weight_bytes']:,} bytes as weight rows)"),
            "",
            (f"- {bus['protocol']}, {bus['data_bits']}-bit beats, {bus['burst_beats']} beats"
             f" ({bus['row_bytes']} bytes) a weight row; memory model: first beat after"
             f" {model['latency_cycles']} cycles, a beat every {model['cycles_per_beat']}"),
            "",
            f"| per {unit} | bytes | cycles |",
            "| --- | --- | --- |",
            (f"| read (a row per tile and input that fired, once per {unit}) |"
             f" {_fmt(memory['bytes_per_token'])} |"
             f" {_fmt(memory['bandwidth_bound_cycles_per_token'])} bandwidth-bound,"
             f" {_fmt(memory['one_burst_at_a_time_cycles_per_token'])} one burst at a time,"
             f" {_fmt(memory['measured_cycles_per_token'])} measured |"),
            (f"| without the row cache (a row per tile, step and non-zero spike) |"
             f" {_fmt(memory['bytes_per_token_without_cache'])} | |"),
        ]
    gen = r.get("generate")
    if gen:
        lines += [
            "",
            "## Generation",
            "",
            (f"- {gen['matched']} of {len(gen['prompts'])} generations of {gen['tokens']} bytes"
             f" equal the reference; {gen['cycles_per_token']:,.1f} cycles per token"),
        ]
        if gen.get("tokens_per_second"):
            lines.append(f"- {gen['tokens_per_second']:,.0f} tokens/s at {gen['fmax_mhz']:.1f}"
                         f" MHz ({gen['target']})")
    sim = r.get("sim")
    if sim:
        lines += [
            "",
            "## Simulation",
            "",
            (
                f"- {sim['matched']} of {sim['samples']} golden samples bit-exact on"
                f" {sim['simulator']}"
            ),
            f"- compile {sim['compile_seconds']:.1f} s, run {sim['run_seconds']:.1f} s",
        ]
    synth = r.get("synth") or {}
    if synth:
        lines += [
            "",
            "## Synthesis",
            "",
            ("| target | LUTs | FFs | BRAMs | DSPs | Fmax (MHz) | wall (s) |"),
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for target, s in sorted(synth.items()):
            lines.append(
                f"| {target} | {_fmt(s['luts'])} ({s['lut_percent']:.0f}%) | {_fmt(s['ffs'])} |"
                f" {_fmt(s['brams'])} | {_fmt(s['dsps'])} | {s['fmax_mhz']:.1f} |"
                f" {s['seconds']:.0f} |"
            )
        slow = [f"- {target}: {slow_line(s['slow_registers'])}"
                for target, s in sorted(synth.items()) if s.get("slow_registers")]
        lines += ["", *slow] if slow else []
    lines += _board_lines(r.get("boards") or {}, r.get("board_run"))
    lines += _asic_lines(r.get("asic") or {}, unit)
    timings = r.get("timings") or {}
    if timings:
        lines += ["", "## Wall time (s)", ""]
        lines += [f"- {k}: {v:.1f}" for k, v in timings.items()]
    return "\n".join(lines) + "\n"


def slow_line(slow: dict) -> str:
    """One line of :func:`rtl_gen.synth.slow_registers`' figures."""
    if not slow["over"]:
        return (f"every one of {slow['endpoints']:,} register inputs meets"
                f" {slow['constraint_mhz']:g} MHz")
    most = ", ".join(f"{name} {n:,}" for name, n in slow["registers"])
    return (f"{slow['over']:,} of {slow['endpoints']:,} register inputs miss"
            f" {slow['constraint_mhz']:g} MHz; the most: {most}")
