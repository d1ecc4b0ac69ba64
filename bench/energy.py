"""Energy per token from the hardware's spike counters, in two conventions, side by side.

``python -m bench.energy [BUILD_DIR] [--json PATH]`` (default: the ``bench.cycles`` build).

What is counted, per token (averaged over the simulated samples):

- spiking accelerator, from ``spike_counts`` of the Verilator run: accumulations
  (every non-zero input spike of layer l adds or subtracts one weight in each of its
  ``n_out`` neurons), weight-bank reads (one ``C``-lane word per row per event per output
  tile), bias reads and neuron updates (one per PE per time step per tile);
- the float twin (same layer sizes, float activations, no time steps): one multiply-accumulate
  and one 32-bit weight read per weight; and, for a fairer baseline, the same network as an
  int8 multiply-accumulate accelerator (8-bit multiply 0.2 pJ + 32-bit add 0.1 pJ, 8-bit
  weight reads).

Conventions:

- *SNN literature* (45 nm, as SpikeLM and most SNN papers): 0.9 pJ per accumulate, 4.6 pJ
  per multiply-accumulate, memory not counted.
- *Honest* (Horowitz, ISSCC 2014, 45 nm): integer add 0.03 pJ at 8 bits to 0.1 pJ at 32
  (linear in width); FP32 multiply 3.7 pJ + add 0.9 pJ; SRAM 64-bit read 10 pJ (8 KB),
  20 pJ (32 KB), 100 pJ (1 MB), log-interpolated in the memory's size, and scaled to the
  word width read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .common import WORK, emit, parser, report, table

SNN_AC_PJ, SNN_MAC_PJ = 0.9, 4.6
FP32_MAC_PJ = 3.7 + 0.9
SRAM_POINTS = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))


def int_add_pj(bits: int) -> float:
    """Horowitz: 0.03 pJ at 8 bits, 0.1 pJ at 32, linear between (and beyond)."""
    return 0.03 + (bits - 8) * (0.1 - 0.03) / 24


def sram_read_pj(size_bytes: float, word_bits: int) -> float:
    """Energy of reading ``word_bits`` from an SRAM of ``size_bytes`` (Horowitz's 64-bit points)."""
    (s0, e0), (s1, e1), (s2, e2) = SRAM_POINTS
    x = math.log(max(size_bytes, 1))
    if size_bytes <= s1:
        e = e0 + (x - math.log(s0)) * (e1 - e0) / (math.log(s1) - math.log(s0))
    else:
        e = e1 + (x - math.log(s1)) * (e2 - e1) / (math.log(s2) - math.log(s1))
    return max(e, 1.0) * word_bits / 64


def counts(build_dir: Path) -> dict:
    """Operation counts per token of a simulated build."""
    r = report(build_dir)
    results = json.loads((build_dir / "sim_build_verilator" / "results.json").read_text())
    spikes = np.array([s["spike_counts"] for s in results["samples"]], dtype=float)
    steps = r["model"]["timesteps"]
    sizes = r["model"]["layer_sizes"]
    rows, pes = r["array"]["rows"], r["array"]["pes"]
    tiles = r["array"]["tiles"]
    per_layer = spikes.reshape(len(spikes), -1, steps).sum(axis=2).mean(axis=0)
    accumulations = sum(n * sizes[i + 1] for i, n in enumerate(per_layer))
    weight_words = sum(n * tiles[i] * rows for i, n in enumerate(per_layer))
    updates = sum(t * steps * pes for t in tiles)
    return {
        "accumulations": float(accumulations),
        "weight_words": float(weight_words),
        "bias_words": float(sum(t * steps * rows for t in tiles)),
        "neuron_updates": float(updates),
        "float_macs": float(sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))),
        "report": r,
    }


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("build", nargs="?", type=Path, default=WORK / "cycles_8x8")
    args = p.parse_args(argv)
    c = counts(args.build)
    r = c.pop("report")
    widths, mem = r["widths"], r["memories"]
    bank = mem["weight banks"]
    bank_bytes = bank["width"] * bank["depth"] / 8
    add = int_add_pj(widths["membrane"])
    snn_lit = c["accumulations"] * SNN_AC_PJ
    ann_lit = c["float_macs"] * SNN_MAC_PJ
    snn_compute = (c["accumulations"] + 2 * c["neuron_updates"]) * add
    snn_memory = (c["weight_words"] * sram_read_pj(bank_bytes, bank["width"])
                  + c["bias_words"] * sram_read_pj(bank_bytes / 8, mem["bias banks"]["width"]))
    float_bytes = c["float_macs"] * 4
    ann_compute = c["float_macs"] * FP32_MAC_PJ
    ann_memory = c["float_macs"] * sram_read_pj(float_bytes, 32)
    int8_compute = c["float_macs"] * (0.2 + int_add_pj(32))
    int8_memory = c["float_macs"] * sram_read_pj(c["float_macs"], 8)
    snn_total = snn_compute + snn_memory
    rows = [
        ["SNN literature (0.9 pJ AC, 4.6 pJ MAC)", snn_lit / 1e3, ann_lit / 1e3,
         ann_lit / snn_lit, "", ""],
        ["honest: arithmetic only", snn_compute / 1e3, ann_compute / 1e3,
         ann_compute / snn_compute, int8_compute / 1e3, int8_compute / snn_compute],
        ["honest: arithmetic + SRAM reads", snn_total / 1e3, (ann_compute + ann_memory) / 1e3,
         (ann_compute + ann_memory) / snn_total, (int8_compute + int8_memory) / 1e3,
         (int8_compute + int8_memory) / snn_total],
    ]
    ops = [[k.replace("_", " "), v] for k, v in c.items()]
    text = table("Operations per token", ["operation", "count"], ops) + "\n" + table(
        "Energy per token (nJ), spiking accelerator vs float twin",
        ["convention", "spiking", "float twin", "float / spiking", "int8 MAC",
         "int8 / spiking"], rows)
    emit(args, text, {"counts": c, "energy_nj": {row[0]: row[1:] for row in rows}})


if __name__ == "__main__":
    main()
