"""Cycles per inference, per layer and in total: measured in simulation, ideal bound, dense.

``python -m bench.cycles [--ckpt PATH] [--rows R --cols C] [--samples N] [--json PATH]``

Per layer (from the integer reference's spikes on the golden inputs, averaged over samples):

- *ideal*: non-zero input spikes x outputs / PEs: every PE busy with a real accumulation;
- *scan*: what the event-driven scanner spends, ``tiles * sum_t (sum_words max(1, nnz) + 1)``:
  the accelerator's cycles in that layer (``tests/hw`` checks that the measured total is the
  scan plus a fixed, data-independent overhead, shown on its own row);
- *dense*: ``tiles * T * (n_in + 1)``: every spike scanned, zero or not.

The total row adds the measured cycles of the Verilator runs (``rtl_gen sim``) of the
event-driven build and of the same model built with ``--dense``; measured minus the scan total
is the fixed cost (context load, pipeline drains, streaming 256 logits).
"""

from __future__ import annotations

import numpy as np

from rtl_gen.frontend import load_graph
from rtl_gen.interpret import interpret

from .common import DEFAULT_CKPT, emit, parser, report, rtl_gen, table


def _words(spikes: np.ndarray, lanes: int) -> np.ndarray:
    """Non-zero count of every ``lanes``-wide word: ``[N, T, words]``."""
    n, steps, width = spikes.shape
    padded = np.zeros((n, steps, -(-width // lanes) * lanes), dtype=bool)
    padded[:, :, :width] = spikes != 0
    return padded.reshape(n, steps, -1, lanes).sum(axis=3)


def per_layer(build_dir, rows: int, cols: int) -> list[dict]:
    """The per-layer figures of a build, from its own model and golden inputs."""
    graph = load_graph(build_dir / "model.onnx")
    with np.load(build_dir / "golden.npz") as golden:
        ids = golden["input"]
    trace = interpret(graph, ids)
    r = report(build_dir)
    sizes = r["model"]["layer_sizes"]
    embed_dim, pes = r["model"]["embed_dim"], rows * cols
    layers = []
    for index, spikes in enumerate(trace.spikes):
        n_in, n_out = sizes[index], sizes[index + 1]
        tiles = -(-n_out // pes)
        lanes = embed_dim if index == 0 else cols
        words = _words(spikes, lanes)
        nnz = np.count_nonzero(spikes, axis=(1, 2))
        scan = tiles * (np.maximum(words, 1).sum(axis=(1, 2)) + spikes.shape[1])
        layers.append({
            "layer": "readout" if index == len(trace.spikes) - 1 else f"hidden{index}",
            "n_in": n_in, "n_out": n_out, "tiles": tiles,
            "nonzero_inputs": float(nnz.mean()),
            "ideal": float((nnz * n_out / pes).mean()),
            "scan": float(scan.mean()),
            "dense": float(tiles * spikes.shape[1] * (n_in + 1)),
        })
    return layers


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--ckpt", default=DEFAULT_CKPT)
    p.add_argument("--rows", type=int, default=8)
    p.add_argument("--cols", type=int, default=8)
    p.add_argument("--samples", type=int, default=256)
    args = p.parse_args(argv)
    out = args.work / f"cycles_{args.rows}x{args.cols}"
    rtl_gen("build", "--ckpt", args.ckpt, "--out", out, "--rows", args.rows, "--cols", args.cols,
            "--samples", args.samples, "--force")
    rtl_gen("sim", out)
    dense_out = args.work / f"cycles_{args.rows}x{args.cols}_dense"
    rtl_gen("build", "--ckpt", args.ckpt, "--out", dense_out, "--rows", args.rows, "--cols",
            args.cols, "--samples", args.samples, "--dense", "--force")
    rtl_gen("sim", dense_out)
    layers = per_layer(out, args.rows, args.cols)
    r = report(out)
    total = {k: sum(layer[k] for layer in layers) for k in ("ideal", "scan", "dense")}
    measured = r["cycles_per_inference"]
    measured_dense = report(dense_out)["cycles_per_inference"]
    rows = [[x["layer"], x["n_in"], x["n_out"], x["tiles"], x["nonzero_inputs"], x["ideal"],
             x["scan"], x["dense"], "", ""] for x in layers]
    rows.append(["fixed: context, drains, logit stream", "", "", "", "", "",
                 measured - total["scan"], measured_dense - total["dense"], "", ""])
    rows.append(["total", "", "", "", "", total["ideal"], total["scan"], total["dense"],
                 measured, measured_dense])
    text = table(
        f"Cycles per inference, {args.rows}x{args.cols} array, {r['sim']['samples']} samples"
        f" (measured/ideal {measured / total['ideal']:.3f}, measured/dense"
        f" {measured / total['dense']:.3f})",
        ["layer", "n_in", "n_out", "tiles", "non-zero inputs", "ideal", "scan", "dense",
         "measured", "measured, --dense build"],
        rows,
    )
    emit(args, text, {"layers": layers, "total": total, "measured": measured,
                      "measured_dense_build": measured_dense,
                      "measured_over_ideal": measured / total["ideal"],
                      "measured_over_dense": measured / total["dense"],
                      "array": [args.rows, args.cols], "samples": r["sim"]["samples"]})


if __name__ == "__main__":
    main()
