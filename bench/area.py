"""Area and speed: the accumulate-only PE and array against a conventional int8 MAC PE and array
of the same shape, synthesized in the same run; and the PE's cost against accumulator width.

``python -m bench.area [--ice40-shape 2x4] [--ecp5-shape 8x8] [--widths 8,12,16,20,24,32]``

The iCE40 UP5K has 8 DSP blocks, so its default shape is the largest array whose MACs all fit
in them (2 x 4); a design that does not place is reported as such, not as a failure.

Both arrays use the same wrapper (``bench.designs.PEArray``): only the processing element
differs. Figures are nextpnr's (LUTs, DSPs, Fmax) and yosys's (FFs on iCE40).
"""

from __future__ import annotations

import shutil

from amaranth.back import verilog

from rtl_gen.errors import BuildError
from rtl_gen.synth import run_flow
from rtl_gen.targets import get_target

from .common import emit, parser, table
from .designs import PEArray

ACC_BITS = 16


KINDS = ("spiking", "mac", "mac-nodsp")
FIGURES = ("luts", "ffs", "dsps", "fmax_mhz")


def synth(work, kind: str, rows: int, cols: int, acc_bits: int, target_name: str) -> dict:
    """Place and route one array; ``mac-nodsp`` is the MAC array kept out of DSP blocks."""
    folder = work / f"area_{target_name}_{kind}_{rows}x{cols}_{acc_bits}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    design = PEArray(kind.removesuffix("-nodsp"), rows, cols, acc_bits)
    (folder / "top.v").write_text(verilog.convert(design, name="top", emit_src=False))
    try:
        return run_flow(folder, "top", get_target(target_name), progress=lambda _: None,
                        bitstream=False, dsp=not kind.endswith("-nodsp"))
    except BuildError as exc:
        return {"error": str(exc).split(" (log:")[0], **dict.fromkeys(FIGURES)}


def _shape(text: str) -> tuple[int, int]:
    rows, cols = text.lower().split("x")
    return int(rows), int(cols)


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--ice40-shape", default="2x4")
    p.add_argument("--ecp5-shape", default="8x8")
    p.add_argument("--widths", default="8,12,16,20,24,32")
    p.add_argument("--widths-target", default="ecp5-85k",
                   help="where the width sweep runs (the UP5K's 39 pins stop at 16 bits)")
    args = p.parse_args(argv)
    rows, figures = [], {"arrays": {}, "per_pe": {}}
    for target, shape in (("ice40-up5k", args.ice40_shape), ("ecp5-85k", args.ecp5_shape)):
        r, c = _shape(shape)
        pair = {kind: synth(args.work, kind, r, c, ACC_BITS, target) for kind in KINDS}
        figures["arrays"][target] = {k: {m: v.get(m) for m in (*FIGURES, "error")}
                                     for k, v in pair.items()}
        s = pair["spiking"]
        for kind, f in pair.items():
            if f.get("error"):
                rows.append([target, f"{r}x{c}", kind, f"does not place: {f['error']}", "",
                             "", ""])
                continue
            rows.append([target, f"{r}x{c}", kind, f["luts"], f["ffs"], f["dsps"],
                         f["fmax_mhz"]])
        for kind in KINDS[1:]:
            m = pair[kind]
            if m.get("error") or s.get("error"):
                continue
            rows.append([target, f"{r}x{c}", f"{kind} / spiking",
                         f"{m['luts'] / s['luts']:.2f}x", f"{m['ffs'] / s['ffs']:.2f}x",
                         f"{m['dsps']} vs {s['dsps']}", f"{m['fmax_mhz'] / s['fmax_mhz']:.2f}x"])
    width_rows = []
    for width in (int(w) for w in args.widths.split(",")):
        one = {kind: synth(args.work, kind, 1, 1, width, args.widths_target) for kind in KINDS}
        figures["per_pe"][width] = {k: {m: v.get(m) for m in (*FIGURES, "error")}
                                    for k, v in one.items()}
        width_rows.append([width, one["spiking"]["luts"], one["spiking"]["ffs"],
                           one["spiking"]["fmax_mhz"], one["mac"]["luts"], one["mac"]["dsps"],
                           one["mac-nodsp"]["luts"], one["mac-nodsp"]["fmax_mhz"]])
    text = table(f"Array of {ACC_BITS}-bit accumulators: accumulate-only vs int8 MAC"
                 " (same wrapper, same run; ratios are MAC / spiking)",
                 ["target", "shape", "PE", "LUTs", "FFs", "DSPs", "Fmax (MHz)"], rows)
    text += "\n" + table(
        f"One PE (1x1 wrapper) on {args.widths_target} against accumulator width",
        ["acc bits", "spiking LUTs", "spiking FFs", "spiking Fmax", "MAC LUTs", "MAC DSPs",
         "MAC (no DSP) LUTs", "MAC (no DSP) Fmax"], width_rows)
    emit(args, text, figures)


if __name__ == "__main__":
    main()
