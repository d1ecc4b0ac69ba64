"""Tool speed: wall time of build, sim and synth for the default model.

``python -m bench.toolspeed [--target T] [--samples N] [--json PATH]``
"""

from __future__ import annotations

from .common import DEFAULT_CKPT, emit, parser, report, rtl_gen, table


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--target", default="ecp5-85k")
    p.add_argument("--samples", type=int, default=256)
    args = p.parse_args(argv)
    out = args.work / "toolspeed"
    times = {
        "build": rtl_gen("build", "--ckpt", DEFAULT_CKPT, "--out", out, "--samples",
                         args.samples, "--force"),
        "sim": rtl_gen("sim", out),
        f"synth {args.target}": rtl_gen("synth", out, "--target", args.target),
    }
    r = report(out)
    steps = {k.removeprefix("build_"): v for k, v in r["timings"].items()
             if k.startswith("build_")}
    rows = [[name, seconds] for name, seconds in times.items()]
    rows.append(["(sim: Verilator compile)", r["sim"]["compile_seconds"]])
    rows.append([f"(sim: {r['sim']['samples']} samples)", r["sim"]["run_seconds"]])
    synth = r["synth"][args.target]
    rows.append(["(synth: yosys)", synth["yosys_seconds"]])
    rows.append(["(synth: nextpnr)", synth["nextpnr_seconds"]])
    text = table("Wall time of the default flow (s, 2-core machine)", ["command", "seconds"],
                 rows)
    emit(args, text, {"wall_seconds": times, "build_steps": steps, "sim": r["sim"],
                      "synth": {k: v for k, v in synth.items() if k != "yosys_cells"}})


if __name__ == "__main__":
    main()
