"""Command line: ``python -m rtl_gen build | sim | generate | synth | asic | explore | run |
program``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .errors import SpikeForgeError, VerificationError
from .targets import TARGETS


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m rtl_gen", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    b = sub.add_parser("build", help="generate the accelerator for a model")
    src = b.add_mutually_exclusive_group()
    src.add_argument("--ckpt", type=Path, help="checkpoint (default: the shipped spikelm-mlp.pt)")
    src.add_argument("--onnx", type=Path, help="an ONNX file written by model.export")
    b.add_argument("--inputs", type=Path, help=".npz with held-out contexts (array 'input')")
    b.add_argument("--out", type=Path, required=True, help="output folder (must not exist)")
    b.add_argument("--rows", type=_positive, default=8, help="array rows (default 8)")
    b.add_argument("--cols", type=_positive, default=8, help="array columns (default 8)")
    b.add_argument(
        "--target",
        choices=sorted(TARGETS),
        default="ecp5-85k",
        help="FPGA the build must fit (default ecp5-85k)",
    )
    b.add_argument("--dense", action="store_true", help="scan every spike, zero or not")
    b.add_argument("--threshold-scale", help="scale hidden thresholds, e.g. 1.5 or 3/2")
    b.add_argument("--samples", type=_positive, default=None,
                   help="golden samples: contexts (default 256), or a transformer's held-out"
                        " streams (default 8, each three windows long)")
    b.add_argument("--seed", type=int, default=0, help="seed of the held-out sample")
    b.add_argument("--force", action="store_true", help="replace an existing build in --out")
    b.add_argument(
        "--stall-seed",
        type=int,
        help="random stalls on the streams of the simulated top (an LFSR seed, 0..65535):"
        " results must not change, only cycles",
    )

    b.add_argument("--weights", choices=["onchip", "offchip", "auto"], default="auto",
                   help="weights in block RAM, in an external memory behind an AXI4 read port,"
                        " or on chip when the target's block RAM holds them (default auto)")
    b.add_argument("--memory-latency", type=_positive, default=10,
                   help="weights off chip: cycles from a burst's address to its first beat in"
                        " the simulated memory (default 10)")
    b.add_argument("--memory-interval", type=_positive, default=None,
                   help="weights off chip: cycles per bus beat in the simulated memory"
                        " (default: a 16-bit SDRAM, two bytes a cycle)")

    s = sub.add_parser("sim", help="check a build bit for bit in Verilator")
    s.add_argument("dir", type=Path)
    s.add_argument("--samples", type=_positive, help="how many golden samples (default all)")
    s.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator")

    g = sub.add_parser("generate", help="generate text with a build (any causal byte model) in"
                                        " Verilator, checked byte for byte against the reference")
    g.add_argument("dir", type=Path)
    g.add_argument("--prompt", action="append", required=True,
                   help="prompt text (repeat for several); the stream starts as a file does,"
                        " after the zero bytes of the model's window or context")
    g.add_argument("--tokens", type=_positive, default=64, help="bytes to generate (default 64)")
    g.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator")

    y = sub.add_parser("synth", help="synthesize, place and route with yosys + nextpnr")
    y.add_argument("dir", type=Path)
    where = y.add_mutually_exclusive_group()
    where.add_argument("--target", choices=sorted(TARGETS), default=None,
                       help="FPGA of the accelerator alone (default ecp5-85k)")
    where.add_argument("--board", default=None,
                       help="a board's bitstream, the accelerator behind a UART: icebreaker or"
                            " ulx3s-85f (docs/boards.md)")
    y.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")

    r = sub.add_parser("run", help="generate on a board over its UART (or on the simulated"
                                   " board top), checked against the integer reference")
    r.add_argument("dir", type=Path)
    link = r.add_mutually_exclusive_group(required=True)
    link.add_argument("--port", help="the board's serial port, e.g. /dev/ttyUSB0")
    link.add_argument("--sim", action="store_true",
                      help="the board top, UART included, in Verilator instead of a board")
    r.add_argument("--prompt", action="append", required=True, help="prompt text (repeat for"
                                                                    " several)")
    r.add_argument("--tokens", type=_positive, default=16, help="bytes to generate (default 16)")
    r.add_argument("--baud", type=_positive, default=None, help="baud rate (default 115200)")
    r.add_argument("--logits", action="store_true",
                   help="also bring every inference's logits back and check them (256 logits"
                        " of 2 bytes: about 45 ms an inference at 115200 baud)")

    pg = sub.add_parser("program", help="load a board's bitstream with openFPGALoader")
    pg.add_argument("dir", type=Path)
    pg.add_argument("--board", required=True, help="icebreaker or ulx3s-85f")

    a = sub.add_parser("asic", help="map to open standard cells (yosys), time and measure power"
                                    " (OpenSTA) with the activity of a gate-level simulation")
    a.add_argument("dir", type=Path)
    a.add_argument("--lib", default="osu018",
                   help="cell library: osu018, osu035 or osu050 (default osu018)")
    a.add_argument("--clock-ns", type=_positive_float, default=10.0,
                   help="clock period for timing and power (default 10)")
    a.add_argument("--samples", type=_positive, default=2,
                   help="golden samples simulated on the gate-level netlist for bit-exactness"
                        " and activity (default 2)")
    a.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"),
                   help="gate-level simulator: verilator (toggle coverage; compiles for"
                        " minutes on a large build) or icarus (a VCD; slower per cycle)")
    x = sub.add_parser("explore", help="build, check and measure a grid of knobs on a Dask"
                                       " cluster; tables and the Pareto front (rtl_gen.explore)")
    x.add_argument("spec", type=Path, help="TOML spec: checkpoint, stages, knobs, objectives")
    x.add_argument("--out", type=Path, required=True,
                   help="results folder (its cache is reused: a re-run computes only new"
                        " points)")
    x.add_argument("--workers", type=_positive, default=2,
                   help="processes of the local Dask cluster (default 2)")
    x.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler (tcp://host:8786) instead of a"
                        " local cluster")
    return parser


def _explore(args) -> None:
    from .explore import explore

    explore(args.spec, args.out, args.workers, args.scheduler)


def _build(args) -> None:
    from .build import BuildConfig, build

    start = time.perf_counter()
    config = BuildConfig(
        out=args.out,
        ckpt=args.ckpt,
        onnx_path=args.onnx,
        inputs=args.inputs,
        rows=args.rows,
        cols=args.cols,
        target=args.target,
        dense=args.dense,
        threshold_scale=args.threshold_scale,
        samples=args.samples,
        seed=args.seed,
        force=args.force,
        stall_seed=args.stall_seed,
        weights=args.weights,
        memory_latency=args.memory_latency,
        memory_interval=args.memory_interval,
    )
    out = build(config)
    from .report import load_report

    r = load_report(out)
    dense = r["dense_cycles_per_inference"]
    unit = "token" if r["streams"] else "inference"
    print(
        f"built {out} in {time.perf_counter() - start:.1f} s: {r['array']['rows']}x"
        f"{r['array']['cols']} array, membrane {r['widths']['membrane']} bits,"
        f" ideal {r['ideal_cycles_per_inference']:.0f}"
        + (f" / dense {dense:.0f}" if dense is not None else "")
        + f" cycles per {unit}"
    )
    memory = r.get("memory")
    if memory and memory["weights"] == "offchip":
        print(f"weights off chip ({memory['weight_bytes']:,} bytes):"
              f" {memory['bytes_per_token']:,.0f} bytes per {unit} (without the row cache:"
              f" {memory['bytes_per_token_without_cache']:,.0f}), bandwidth-bound"
              f" {memory['bandwidth_bound_cycles_per_token']:,.0f} cycles; image in"
              f" {out}/mem/weights_external.hex")
    print(f"next: python -m rtl_gen sim {out}")


def _sim(args) -> None:
    from .simulate import simulate

    r = simulate(args.dir, args.samples, args.simulator)
    sim = r["sim"]
    if r["streams"]:
        print(f"{sim['matched']}/{sim['samples']} positions ({sim['streams']} streams) matched"
              f" the integer reference bit for bit, {sim['full_context_matched']} of them with"
              f" a full {r['model']['context']}-byte window")
        print(f"cycles per token: {r['cycles_per_inference']:.1f} (ideal"
              f" {r['ideal_cycles_per_inference']:.1f})")
    elif r["dense_cycles_per_inference"] is None:  # an encoder: a sequence per inference
        print(f"{sim['matched']}/{sim['samples']} sequences matched the integer reference bit"
              " for bit (pooled class logits and class)")
        if "accuracy" in sim:
            print(f"accuracy of the hardware's classes on their held-out labels:"
                  f" {sim['accuracy']:.3f}")
        print(f"cycles per sequence of {r['model']['context']} bytes:"
              f" {r['cycles_per_inference']:.1f} (ideal {r['ideal_cycles_per_inference']:.1f})")
    else:
        print(f"{sim['matched']}/{sim['samples']} samples matched the integer reference bit"
              " for bit")
        print(
            f"cycles per inference: {r['cycles_per_inference']:.1f} (ideal"
            f" {r['ideal_cycles_per_inference']:.1f}, dense"
            f" {r['dense_cycles_per_inference']:.1f})"
        )
    rates = r["hardware_firing_rates"]
    order = r.get("spiking_layer_names") or list(rates)
    print("firing rates (hardware counters): " + ", ".join(f"{k} {rates[k]:.3f}" for k in order))
    above = [(e["run"] + e["drain"] - e["ideal"], e["layer"]) for e in r["cycle_profile"]]
    above.append((r["cycles"]["io"], "byte in, token out"))
    print("cycles above the ideal, largest first: " + ", ".join(
        f"{name} {cycles:.1f}" for cycles, name in sorted(above, reverse=True)[:3])
        + f" (every layer: {args.dir}/report.md)")


def _generate(args) -> None:
    from .generate import generate

    result = generate(args.dir, [p.encode() for p in args.prompt], args.tokens, args.simulator)
    for prompt, text in zip(args.prompt, result["texts"], strict=True):
        print(f"--- prompt {prompt!r}")
        print(prompt + text)
    rate = result.get("tokens_per_second")
    print(f"{result['matched']}/{len(args.prompt)} generations equal the reference byte for"
          f" byte; {result['cycles_per_token']:.1f} cycles per token"
          + (f", {rate:,.0f} tokens/s at {result['fmax_mhz']:.1f} MHz ({result['target']})"
             if rate else " (synthesize for tokens/s at Fmax)"))


def _synth(args) -> None:
    from .report import slow_line
    from .synth import synthesize

    if args.board is not None:
        from .boards import build_board

        b = build_board(args.dir, args.board, seed=args.seed)
        print(f"{b['board']} ({b['target']}): {b['luts']} LUTs ({b['lut_percent']:.1f}%),"
              f" {b['ffs']} FFs, {b['brams']} BRAMs, Fmax {b['fmax_mhz']:.1f} MHz at a"
              f" {b['clock_mhz']:g} MHz clock; {args.dir / b['bitstream']}"
              f" ({b['bitstream_bytes']:,} bytes), build {b['build_id']} ({b['seconds']:.0f} s)")
        return
    s = synthesize(args.dir, args.target or "ecp5-85k", seed=args.seed)
    print(
        f"{args.target or 'ecp5-85k'}: {s['luts']} LUTs ({s['lut_percent']:.1f}%), {s['ffs']} FFs,"
        f" {s['brams']} BRAMs, {s['dsps']} DSPs, Fmax {s['fmax_mhz']:.1f} MHz"
        f" ({s['seconds']:.0f} s)"
    )
    slow = s.get("slow_registers")
    if slow:
        print(slow_line(slow))


def _run(args) -> None:
    from .host import run

    r = run(args.dir, [p.encode() for p in args.prompt], args.tokens, port=args.port,
            baud=args.baud, sim=args.sim, logits=args.logits)
    for prompt, text in zip(args.prompt, r["texts"], strict=True):
        print(f"--- prompt {prompt!r}")
        print(prompt + text)
    print(f"{r['where']}, build {r['build_id']}: {r['matched']}/{len(args.prompt)} generations"
          f" equal the reference byte for byte, {r['counters_matched']}/{r['inferences']}"
          f" inferences' spike counters"
          + (f" and {r['logits_matched']}/{r['inferences']} their logits" if args.logits else "")
          + " equal the reference's;"
          f" {r['cycles_per_inference']:.1f} cycles per inference")


def _program(args) -> None:
    from .boards import program_board

    path = program_board(args.dir, args.board)
    print(f"programmed the {args.board} with {path}; next: python -m rtl_gen run {args.dir}"
          " --port PORT --prompt TEXT")


def _asic(args) -> None:
    from .asic import asic

    a = asic(args.dir, args.lib, args.clock_ns, args.samples, args.simulator)
    area, gate = a["area_um2"], a["gate_level"]
    print(f"{a['library']}: {a['cells']:,} cells, {area['total'] / 1e6:.3f} mm2"
          f" (accelerator {area['accelerator'] / 1e6:.3f} mm2, of which memories"
          f" {area['memories'] / 1e6:.3f}), critical path {a['critical_path_ns']:.2f} ns"
          f" (Fmax {a['fmax_mhz']:.1f} MHz)")
    print(f"gate level ({gate['simulator']}): {gate['matched']}/{gate['samples']} golden samples"
          f" bit-exact, {gate['cycles_per_inference']:,.1f} cycles per {a['energy_unit']}")
    print(f"accelerator power at {a['clock_ns']} ns: {a['accelerator_power_mw']:.3f} mW;"
          f" energy per {a['energy_unit']}: {a['energy_per_inference_nj']:,.1f} nJ"
          f" ({a['seconds']:.0f} s)")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    try:
        {"build": _build, "sim": _sim, "generate": _generate, "synth": _synth,
         "asic": _asic, "explore": _explore, "run": _run, "program": _program}[args.command](args)
    except SpikeForgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, VerificationError) else 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
