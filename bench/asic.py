"""ASIC area, Fmax and energy per token: the accumulate-only PE array against the int8 MAC array
of the same shape (``bench.designs.PEArray``), on the same open standard cells, in one run.

``python -m bench.asic [--lib osu018] [--shape 8x8] [--clock-ns 10] [--build DIR]``

Each array goes through the flow of ``rtl_gen asic`` (yosys to the library's cells, OpenSTA)
and a gate-level Icarus simulation of its ``gates.v`` (the cells' Liberty functions) drives it
with random stimulus (``bench/asic_tb.v``): new weights every cycle through the shift chains,
as a weight memory would supply them, and for the spiking array ternary spikes at the build's
measured firing rate (0 otherwise; half of the non-zero ones negative), for the MAC array
uniform int8 activations. Power is OpenSTA's per-cell power weighted by each cell's toggles
in that run.

Energy per token is the array's energy per cycle times its cycles per token for the MLP of
``--build``: the spiking array's measured (simulated) cycles, or the ideal ones when the build
was not simulated; the MAC array's multiply-accumulates per token (every weight once, no time
steps) divided by its PEs. The arrays only: no memories, no control, in both.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from rtl_gen.activity import parse_netlist, read_vcd
from rtl_gen.asic import run_asic_flow, weighted_power
from rtl_gen.liberty import find_library, parse_liberty
from rtl_gen.sta import parse_instance_power

from .common import ROOT, emit, parser, report, table
from .designs import PEArray

ACC_BITS = 16
CYCLES = 2000
TB = Path(__file__).with_name("asic_tb.v")
KINDS = ("spiking", "mac")


def stimulus(kind: str, rows: int, cols: int, rate: float, seed: int = 0) -> list[int]:
    """One 18-bit word per cycle: ``{clear, w_in, shift, x_in}`` (see ``bench/asic_tb.v``).
    The chains are loaded while ``clear`` holds for the first ``rows * cols + rows + 4``
    cycles; afterwards ``clear`` pulses every 32 cycles, as a tile's end would."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(-128, 128, CYCLES) & 0xFF
    if kind == "spiking":
        fire = rng.random(CYCLES) < rate
        negative = rng.random(CYCLES) < 0.5
        x = np.where(fire, np.where(negative, 0b11, 0b01), 0)
    else:
        x = rng.integers(-128, 128, CYCLES) & 0xFF
    load = rows * cols + rows + 4
    clear = [(i < load) or (i % 32 == 0) for i in range(CYCLES)]
    return [int(c) << 17 | int(w) << 9 | 1 << 8 | int(v)
            for c, w, v in zip(clear, weights, x, strict=True)]


def run_array(work: Path, kind: str, rows: int, cols: int, lib, clock_ns: float,
              rate: float) -> dict:
    """Synthesis, timing, a gate-level run and the activity-weighted power of one array."""
    folder = work / f"asic_{lib.name}_{kind}_{rows}x{cols}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "top.v").write_text(verilog.convert(PEArray(kind, rows, cols, ACC_BITS),
                                                  name="top", emit_src=False))
    result = run_asic_flow(folder, "top", lib, clock_ns, None, progress=lambda _: None)
    words = stimulus(kind, rows, cols, rate)
    (folder / "stimulus.hex").write_text("".join(f"{w:05x}\n" for w in words))
    shutil.copyfile(TB, folder / TB.name)
    half = clock_ns / 2
    subprocess.run(["iverilog", "-g2012", "-o", "sim.vvp", "-s", "asic_bench_tb",
                    f"-Pasic_bench_tb.CYCLES={CYCLES}", f"-Pasic_bench_tb.HALF_PERIOD_NS={half:g}",
                    TB.name, "gates.v"], cwd=folder, check=True,
                   capture_output=True)
    subprocess.run(["vvp", "-n", "sim.vvp"], cwd=folder, check=True, capture_output=True)
    activity = read_vcd(folder / "activity.vcd", ["asic_bench_tb", "dut"])
    (folder / "activity.vcd").unlink()
    cells = parse_liberty((folder / "cells.lib").read_text())
    power = weighted_power(
        parse_instance_power((folder / "instances0.txt").read_text()),
        parse_instance_power((folder / "instances1.txt").read_text()),
        parse_netlist(folder / "netlist.v", set(cells)), activity,
        {name: c["outputs"] for name, c in cells.items()})
    watts = sum(power["watts"].values())
    result.update(power_mw=watts * 1e3, energy_per_cycle_pj=watts * clock_ns * 1e3,
                  simulated_cycles=activity.cycles)
    return result


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--lib", default="osu018")
    p.add_argument("--shape", default="8x8")
    p.add_argument("--clock-ns", type=float, default=10.0)
    p.add_argument("--build", type=Path, default=ROOT / "build" / "spikelm-mlp",
                   help="the MLP build whose cycles and firing rates set the workload")
    args = p.parse_args(argv)
    lib = find_library(args.lib)
    rows, cols = (int(v) for v in args.shape.lower().split("x"))
    r = report(args.build)
    rates = r.get("hardware_firing_rates") or r["firing_rates"]
    rate = float(np.mean(list(rates.values())))
    measured = r.get("cycles_per_inference")
    spiking_cycles = measured or r["ideal_cycles_per_inference"]
    sizes = r["model"]["layer_sizes"]
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    cycles = {"spiking": spiking_cycles, "mac": macs / (rows * cols)}
    runs = {kind: run_array(args.work, kind, rows, cols, lib, args.clock_ns, rate)
            for kind in KINDS}
    for kind, f in runs.items():
        f["cycles_per_token"] = cycles[kind]
        f["energy_per_token_nj"] = f["energy_per_cycle_pj"] * cycles[kind] / 1e3
    s, m = runs["spiking"], runs["mac"]
    figures = [("area (um2)", lambda f: f["area_um2"]["total"]),
               ("cells", lambda f: f["cells"]),
               ("flip-flops", lambda f: f["flip_flops"]),
               ("critical path (ns)", lambda f: f["critical_path_ns"]),
               ("Fmax (MHz)", lambda f: f["fmax_mhz"]),
               (f"power at {args.clock_ns} ns (mW)", lambda f: f["power_mw"]),
               ("energy per cycle (pJ)", lambda f: f["energy_per_cycle_pj"]),
               ("cycles per token", lambda f: f["cycles_per_token"]),
               ("energy per token (nJ)", lambda f: f["energy_per_token_nj"])]
    rows_out = [[name, get(s), get(m), f"{get(m) / get(s):.2f}x"] for name, get in figures]
    note = "measured" if measured else "ideal (the build was not simulated)"
    text = table(
        f"{rows}x{cols} array of {ACC_BITS}-bit accumulators on {lib.name}: accumulate-only vs"
        f" int8 MAC (same wrapper, same run; spiking cycles per token {note}, spike rate"
        f" {rate:.3f}; ratio is MAC / spiking)",
        ["figure", "spiking", "int8 MAC", "MAC / spiking"], rows_out)
    emit(args, text, {"arrays": runs, "rate": rate, "spiking_cycles": note})


if __name__ == "__main__":
    main()
