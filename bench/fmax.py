"""Fmax over nextpnr seeds, and the tokens per second a user gets at the median.

``python -m bench.fmax [--designs mlp,transformer,small,transformer-w64] [--seeds 1,2,3]
[--workers 2]``

Fmax depends on nextpnr's placement seed, so each design is placed and routed with every seed
and the table gives the minimum, median and maximum. Tokens (inferences) per second are the
median Fmax over the cycles measured on Verilator; the event-driven bound is the same Fmax over
the ideal cycles (every PE busy on a non-zero accumulation every cycle), and the ratio says how
much of it the design reaches. On the ECP5 each seed also counts the register inputs that miss
the target's 150 MHz (``rtl_gen.synth.slow_registers``): how many paths a faster clock would
have to shorten, not only how slow the worst is. The designs: the default MLP and the shipped
transformer on ecp5-85k (8x8 arrays; ``transformer-w64`` is the 64-byte-window one of the
README's main job, not in the default set: its place and route is the longest), the small MLP
on ice40-up5k (2x2). Each seed is one point of an ``rtl_gen explore`` sweep (a Dask
``LocalCluster`` of ``--workers`` processes), cached in ``--work``: a repeated run places
nothing again. Place and route takes minutes per seed (the transformers on ecp5-85k the
longest).
"""

from __future__ import annotations

import statistics

from .common import ROOT, emit, parser, table

DESIGNS = {
    "mlp": ("spikelm-mlp.pt", "ecp5-85k", 8, 8),
    "transformer": ("spikelm-transformer.pt", "ecp5-85k", 8, 8),
    "transformer-w64": ("spikelm-transformer-w64.pt", "ecp5-85k", 8, 8),
    "small": ("spikelm-mlp-small.pt", "ice40-up5k", 2, 2),
}


def spec_text(design: str, seeds: list[int]) -> str:
    """The explore spec of one design over ``seeds``."""
    ckpt, target, rows, cols = DESIGNS[design]
    return (f'checkpoint = "{ROOT / "checkpoints" / ckpt}"\n'
            'stages = ["build", "sim", "synth"]\nsamples = 8\n'
            f'[knobs]\ntarget = ["{target}"]\nrows = [{rows}]\ncols = [{cols}]\n'
            f"seed = {seeds}\n")


def main(argv=None) -> None:
    from rtl_gen.explore import explore

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--designs", default="mlp,transformer,small",
                   help=f"comma-separated subset of {', '.join(DESIGNS)}")
    p.add_argument("--seeds", default="1,2,3", help="nextpnr seeds (default 1,2,3)")
    p.add_argument("--workers", type=int, default=2, help="Dask workers (default 2)")
    args = p.parse_args(argv)
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    unknown = [d for d in designs if d not in DESIGNS]
    if unknown or not designs:
        p.error(f"--designs takes names from {', '.join(DESIGNS)}, not {', '.join(unknown)!r}")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows, figures = [], {}
    for design in designs:
        work = args.work / "fmax" / design
        work.mkdir(parents=True, exist_ok=True)
        spec = work / "spec.toml"
        spec.write_text(spec_text(design, seeds))
        result = explore(spec, work / "sweep", args.workers)
        ok = [r for r in result["rows"] if r["status"] == "ok"]
        failed = [f"seed {r['seed']}: {r['error']}" for r in result["rows"] if r["status"] != "ok"]
        if not ok:
            raise SystemExit(f"{design}: every seed failed: {'; '.join(failed)}")
        ok.sort(key=lambda r: r["fmax_mhz"])
        fmax = [r["fmax_mhz"] for r in ok]
        median = statistics.median(fmax)
        cycles, ideal = ok[0]["cycles_per_inference"], ok[0]["ideal_cycles_per_inference"]
        rate, bound = median * 1e6 / cycles, median * 1e6 / ideal
        figures[design] = {"target": ok[0]["target"], "seeds": {r["seed"]: r["fmax_mhz"]
                                                               for r in ok},
                           "slow_inputs": {r["seed"]: r.get("slow_inputs") for r in ok},
                           "failed": failed, "min": fmax[0], "median": median, "max": fmax[-1],
                           "luts": ok[0]["luts"], "cycles": cycles, "ideal_cycles": ideal,
                           "per_second": rate, "bound_per_second": bound}
        slow = ", ".join("-" if r.get("slow_inputs") is None else f"{r['slow_inputs']:,}"
                         for r in ok)
        rows.append([design, ok[0]["target"], ", ".join(f"{f:.1f}" for f in fmax), fmax[0],
                     median, fmax[-1], slow, ok[0]["luts"], cycles, rate, bound, rate / bound])
    emit(args, table(f"Fmax over nextpnr seeds {args.seeds}",
                     ["design", "target", "Fmax by seed (MHz)", "min", "median", "max",
                      "register inputs over the target (same order)", "LUTs",
                      "cycles/inference", "per second at median", "event-driven bound /s",
                      "of the bound"], rows), figures)


if __name__ == "__main__":
    main()
