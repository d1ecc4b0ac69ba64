"""Threshold-scale sweep: firing rate against bits per byte against cycles (table and PNG).

``python -m bench.threshold_sweep [--ckpt PATH] [--scales 0.5,1,2] [--png PATH] [--json PATH]``

For each scale of the build-time knob (``rtl_gen build --threshold-scale``), bits per byte and
firing rates come from the integer reference on held-out text, and cycles per inference from a
Verilator run of the build with that knob.
"""

from __future__ import annotations

from pathlib import Path

from .common import DEFAULT_CKPT, emit, parser, report, rtl_gen, table


def evaluate(ckpt: Path, scales: list[str], positions: int) -> dict:
    """Bits/byte and firing rates of the integer model at each threshold scale."""
    from model.checkpoint import load_checkpoint
    from model.data import heldout_samples
    from model.metrics import evaluate_int

    model, _ = load_checkpoint(ckpt, kind="spiking")
    int_model = model.to_int_model()
    inputs, targets = heldout_samples(positions, int_model.context, seed=1)
    return {s: evaluate_int(int_model.with_threshold_scale(s), inputs, targets) for s in scales}


def plot(path: Path, rows: list[list]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r[1] for r in rows]
    fig, left = plt.subplots(figsize=(6, 4), dpi=120)
    left.plot(rates, [r[2] for r in rows], "o-", color="tab:blue")
    left.set_xlabel("mean firing rate of the hidden layers")
    left.set_ylabel("bits per byte", color="tab:blue")
    right = left.twinx()
    right.plot(rates, [r[3] for r in rows], "s--", color="tab:red")
    right.set_ylabel("cycles per inference (Verilator)", color="tab:red")
    for r in rows:
        left.annotate(f"x{r[0]}", (r[1], r[2]), textcoords="offset points", xytext=(4, 4))
    left.margins(x=0.12, y=0.08)
    left.set_title("Threshold scale: accuracy against work")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT)
    p.add_argument("--scales", default="0.5,0.75,1,1.5,2,3")
    p.add_argument("--positions", type=int, default=16384, help="held-out positions for bpb")
    p.add_argument("--samples", type=int, default=64, help="samples simulated per scale")
    p.add_argument("--png", type=Path, default=Path("build/bench/threshold_sweep.png"))
    args = p.parse_args(argv)
    scales = args.scales.split(",")
    quality = evaluate(args.ckpt, scales, args.positions)
    rows = []
    for scale in scales:
        out = args.work / f"sweep_{scale.replace('/', '_')}"
        rtl_gen("build", "--ckpt", args.ckpt, "--out", out, "--threshold-scale", scale,
                "--samples", args.samples, "--force")
        rtl_gen("sim", out)
        r = report(out)
        hidden = quality[scale]["rates"][1:]
        rows.append([scale, sum(hidden) / len(hidden), quality[scale]["bits_per_byte"],
                     r["cycles_per_inference"], r["ideal_cycles_per_inference"]])
    plot(args.png, rows)
    text = table("Threshold scale sweep (bits/byte on held-out text, cycles in Verilator)",
                 ["scale", "hidden firing rate", "bits/byte", "cycles", "ideal cycles"], rows)
    emit(args, text + f"\nplot: {args.png}\n", {"rows": [dict(zip(
        ["scale", "hidden_rate", "bits_per_byte", "cycles", "ideal_cycles"], r, strict=True))
        for r in rows], "png": str(args.png)})


if __name__ == "__main__":
    main()
