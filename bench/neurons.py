"""The neuron ablation: SpikeForge's IF neuron against SpikeLM's, one idea switched at a time.

``python -m bench.neurons [--steps 5000] [--luts] [--work DIR]``

Every row trains the default MLP (``python -m model.train``, seed 0, the same corpus, steps and
batches) with one choice of ``--neuron``, ``--amplitude``, ``--firing`` and ``--spikes``, then
measures: held-out bits per byte of the integer model and of its QAT float forward (their
difference is what the integer form's rounding costs), the firing rate, and the accelerator's
cycles per inference on the golden samples in Verilator (``rtl_gen build`` + ``sim``, bit-exact
or the row fails). ``--luts`` adds yosys's LUT4 count of the synthesis top on the ECP5 (no
placement). Checkpoints already in ``--work`` are reused, so a rerun only measures.
"""

from __future__ import annotations

import sys

import numpy as np

from .common import emit, parser, report, rtl_gen, run, table

#: (row, flags of ``model.train``)
ROWS = (
    ("IF (default): shared, regularizer, ternary", []),
    ("IF, per-step amplitude", ["--amplitude", "per-step"]),
    ("IF, calibrated firing", ["--firing", "calibrated"]),
    ("IF, binary spikes", ["--spikes", "binary"]),
    ("SpikeLM: per-step, calibrated, ternary", ["--neuron", "spikelm"]),
    ("SpikeLM, binary spikes", ["--neuron", "spikelm", "--spikes", "binary"]),
)
EVAL_SAMPLES = 32768


def _bits_per_byte(ckpt) -> tuple[float, float, float]:
    """Held-out bits/byte of the integer model and of the QAT float forward, and the mean
    firing rate of the integer model."""
    from model import data
    from model.checkpoint import load_checkpoint
    from model.metrics import evaluate_float, evaluate_int

    model, _ = load_checkpoint(ckpt, kind="spiking")
    inputs, targets = data.heldout_samples(EVAL_SAMPLES, model.context, seed=0)
    integer = dict(evaluate_int(model.to_graph(), inputs, targets))
    qat = dict(evaluate_float(model, inputs, targets))
    return integer["bits_per_byte"], qat["bits_per_byte"], float(np.mean(integer["rates"]))


def _luts(build) -> int:
    from rtl_gen.synth import yosys_cells
    from rtl_gen.targets import get_target
    from rtl_gen.workdir import tool_folder

    rtl = report(build)["rtl"]
    work = tool_folder(build, "synth", "yosys-ecp5", rtl["synth_file"])
    return int(yosys_cells(work, rtl["synth_module"], get_target("ecp5-85k"))["LUT4"])


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5000, help="training steps of every row")
    p.add_argument("--luts", action="store_true", help="also count LUT4s with yosys (minutes"
                   " a row)")
    args = p.parse_args(argv)
    work = args.work / "neurons"
    work.mkdir(parents=True, exist_ok=True)
    rows, figures = [], {"steps": args.steps, "rows": {}}
    for index, (name, flags) in enumerate(ROWS):
        ckpt = work / f"row{index}-{args.steps}.pt"
        print(f"[{index + 1}/{len(ROWS)}] {name}", file=sys.stderr, flush=True)
        if not ckpt.exists():
            run(sys.executable, "-m", "model.train", "--out", ckpt, "--steps", args.steps,
                "--seed", 0, *flags)
        integer, qat, rate = _bits_per_byte(ckpt)
        build = work / f"row{index}-build"
        rtl_gen("build", "--ckpt", ckpt, "--out", build, "--force")
        rtl_gen("sim", build)
        r = report(build)
        if r["sim"]["matched"] != r["sim"]["samples"]:
            sys.exit(f"row {name}: the RTL is not bit-exact ({r['sim']['matched']} of"
                     f" {r['sim']['samples']} samples)")
        row = {"bits_per_byte": integer, "qat_bits_per_byte": qat, "firing_rate": rate,
               "cycles": r["cycles_per_inference"], "ideal": r["ideal_cycles_per_inference"],
               "membrane_bits": r["widths"]["membrane"], "flags": flags}
        if args.luts:
            row["luts"] = _luts(build)
        figures["rows"][name] = row
        rows.append([name, integer, integer - qat, rate, row["cycles"],
                     row["cycles"] / row["ideal"], row["membrane_bits"],
                     row.get("luts", "not run")])
    columns = ["neuron", "held-out bits/byte", "rounding cost (int - QAT float)", "firing rate",
               "cycles/inference (Verilator)", "x ideal", "membrane bits", "LUT4 (yosys)"]
    emit(args, table(f"Neuron ablation: default MLP, {args.steps} steps, seed 0", columns, rows),
         figures)


if __name__ == "__main__":
    main()
