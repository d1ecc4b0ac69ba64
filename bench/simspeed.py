"""Simulation speed: the cocotb bit-exact run against a plain Verilator run of the same Verilog.

``python -m bench.simspeed [--ckpt PATH] [--samples N] [--json PATH]``

Both runs simulate the same generated Verilog (``hw.InferenceHarness`` around the accelerator)
on the same golden contexts, compiled by the same Verilator with the same ``-O3``:

- *cocotb*: ``rtl_gen sim``'s testbench (the clock in the simulator, Python woken once per
  inference to drive a context and compare 256 logits with the reference);
- *plain*: ``bench/simspeed_main.cpp``, a C++ loop that toggles the clock itself and reads only
  the next byte and the cycle counter (no checking at all): the upper bound.

The rate is the accelerator's own cycles (its ``cycles`` port, summed over the samples) per
second of the run, compile excluded; both runs must report the same cycles and next bytes.
*Steady state* takes out the start-up (for cocotb, about a second of Python and cocotb
initialisation) by timing a one-sample run too: cycles of samples 2..N over the time they
added.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sim.runner import run_build, verilator_environment

from .common import DEFAULT_CKPT, emit, parser, rtl_gen, table

MAIN = Path(__file__).with_name("simspeed_main.cpp")


def plain_verilator(build_dir: Path, contexts: np.ndarray) -> dict:
    """Compile the build's Verilog with the C++ loop, run it; return its per-sample results
    (and the run time of the first context alone, for the steady state)."""
    plan = json.loads((build_dir / "plan.json").read_text())
    verilator_environment()
    work = build_dir / "sim_plain"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    start = time.perf_counter()
    compile_cmd = [
        "verilator", "--cc", "--exe", "--build", "-O3", "-Wno-fatal", "-Wno-WIDTHEXPAND",
        "-Wno-WIDTHTRUNC", "--top-module", plan["top_module"], "--prefix", "Vtop",
        "-Mdir", str(work / "obj"), "-o", "simspeed", "-j", str(os.cpu_count() or 1),
        str(build_dir / "rtl" / plan["top_file"]), str(MAIN),
    ]
    proc = subprocess.run(compile_cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"Verilator could not compile the plain testbench:\n{proc.stderr[-2000:]}")
    compiled = time.perf_counter()
    lines = [" ".join(str(int(b)) for b in row) + "\n" for row in contexts]
    (work / "contexts.txt").write_text("".join(lines))
    (work / "first.txt").write_text(lines[0])
    first = _timed([str(work / "obj" / "simspeed"), str(work / "first.txt")])[0]
    run_seconds, proc = _timed([str(work / "obj" / "simspeed"), str(work / "contexts.txt")])
    lines = proc.stdout.split("\n")
    samples = [tuple(int(v) for v in line.split()) for line in lines if line and
               not line.startswith("ticks")]
    return {"compile_seconds": compiled - start, "run_seconds": run_seconds,
            "first_seconds": first,
            "tokens": [s[0] for s in samples], "cycles": [s[1] for s in samples]}


def _timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"the plain Verilator run failed:\n{proc.stderr[-2000:]}")
    return seconds, proc


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--ckpt", default=DEFAULT_CKPT)
    p.add_argument("--samples", type=int, default=256)
    args = p.parse_args(argv)
    out = args.work / "simspeed"
    rtl_gen("build", "--ckpt", args.ckpt, "--out", out, "--samples", args.samples, "--force")
    cocotb_first = run_build(out.resolve(), samples=1)
    cocotb_run = run_build(out.resolve())
    if cocotb_run.matched != len(cocotb_run.samples):
        sys.exit("the cocotb run is not bit-exact; fix that before timing it")
    with np.load(out / "golden.npz") as golden:
        contexts = golden["input"][: len(cocotb_run.samples)]
    plain = plain_verilator(out.resolve(), contexts)
    cocotb_cycles = [s["cycles"] for s in cocotb_run.samples]
    cocotb_tokens = [s["token"] for s in cocotb_run.samples]
    if plain["cycles"] != cocotb_cycles or plain["tokens"] != cocotb_tokens:
        sys.exit("the plain and cocotb runs disagree on cycles or next bytes")
    cycles = sum(cocotb_cycles)
    later = cycles - cocotb_cycles[0]
    runs = {
        "cocotb (bit-exact check)": (cocotb_first.compile_seconds, cocotb_run.run_seconds,
                                     cocotb_first.run_seconds),
        "plain Verilator (C++ loop)": (plain["compile_seconds"], plain["run_seconds"],
                                       plain["first_seconds"]),
    }
    figures = {
        name: {"compile_seconds": c, "run_seconds": r, "first_sample_seconds": f,
               "cycles_per_second": cycles / r, "steady_cycles_per_second": later / (r - f)}
        for name, (c, r, f) in runs.items()
    }
    cocotb, plain_ = figures["cocotb (bit-exact check)"], figures["plain Verilator (C++ loop)"]
    ratio = cocotb["cycles_per_second"] / plain_["cycles_per_second"]
    steady = cocotb["steady_cycles_per_second"] / plain_["steady_cycles_per_second"]
    rows = [[name, f["compile_seconds"], f["run_seconds"], f["cycles_per_second"],
             f["steady_cycles_per_second"]] for name, f in figures.items()]
    text = table(
        f"Simulation speed, default model, {len(contexts)} inferences of"
        f" {cycles / len(contexts):,.0f} cycles (cocotb / plain: {ratio:.0%} over the run,"
        f" {steady:.0%} in steady state)",
        ["run", "compile (s)", "run (s)", "cycles/s", "cycles/s, steady state"], rows,
    )
    emit(args, text, {"samples": len(contexts), "cycles": cycles, "runs": figures,
                      "cocotb_over_plain": ratio, "cocotb_over_plain_steady": steady})


if __name__ == "__main__":
    main()
