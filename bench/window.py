"""Memory and time against the attention window: training, evaluation, export and build of
the default-size spiking transformer at windows 16, 64, 128 and 256.

``python -m bench.window [--windows 16,64,128,256] [--steps 3] [--samples 512] [--no-build]``

Each phase of each window runs in a fresh process, so its peak resident memory (``ru_maxrss``)
is its own: ``train`` (``--steps`` Adam steps on the default batch of 64 streams of 4 windows,
after calibration; seconds per step), ``evaluate`` (the integer model's held-out bits per byte
on about ``--samples`` held-out bytes, by streams as ``model.metrics.heldout`` scores the whole
split; milliseconds per scored byte), ``export`` (ONNX and the held-out streams)
and ``build`` (``rtl_gen build``: the accelerator's Verilog and its golden trace). The models
are untrained (calibrated on one batch): memory and time do not depend on the weights' values.
Attention costs ``W`` keys per position, so time per byte grows with the window; memory should
not grow faster than linearly with it.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .common import ROOT, emit, parser, table

PHASES = ("train", "evaluate", "export", "build")


def _phase(phase: str, window: int, work: Path, steps: int, samples: int) -> dict:
    """Run one phase here (the child process); returns its figures."""
    import torch

    from model import data, train
    from model.checkpoint import load_checkpoint, save_checkpoint
    from model.export import export
    from model.metrics import heldout
    from model.zoo import TransformerConfig, build_model

    torch.set_num_threads(1)
    ckpt = work / f"window{window}.pt"
    start = time.perf_counter()
    figures: dict = {}
    if phase == "train":
        torch.manual_seed(0)
        model = build_model(TransformerConfig(context=window))
        options = train.TrainOptions(steps=steps, batch=64, seed=0)
        rng = train._seed_everything(0)
        corpus = data.load_corpus(window)
        model.calibrate(train._batch(model, rng, corpus, options)[0])
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        start = time.perf_counter()
        for _ in range(steps):
            ce, rates = train._loss_terms(model, *train._batch(model, rng, corpus, options))
            optimizer.zero_grad()
            (ce + model.rate_penalty(rates)).backward()
            optimizer.step()
        figures["seconds_per_step"] = (time.perf_counter() - start) / steps
        save_checkpoint(ckpt, model.eval(), {}, force=True)
    elif phase == "evaluate":
        model, _ = load_checkpoint(ckpt, kind="spiking")
        start = time.perf_counter()
        result = heldout(model, samples)
        figures["ms_per_sample"] = 1000 * (time.perf_counter() - start) / result["samples"]
        figures["bits_per_byte"] = result["bits_per_byte"]
    elif phase == "export":
        model, _ = load_checkpoint(ckpt, kind="spiking")
        export(model.to_graph(), work / f"export{window}", samples=16)
    else:
        from rtl_gen.__main__ import main as rtl_gen

        rtl_gen(["build", "--ckpt", str(ckpt), "--out", str(work / f"build{window}"), "--force"])
    figures["seconds"] = time.perf_counter() - start
    figures["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--windows", default="16,64,128,256", help="windows to measure")
    p.add_argument("--steps", type=int, default=3, help="training steps per window")
    p.add_argument("--samples", type=int, default=512, help="held-out bytes evaluated (about)")
    p.add_argument("--no-build", action="store_true", help="skip rtl_gen build")
    p.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    p.add_argument("--window", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    work = args.work / "window"
    work.mkdir(parents=True, exist_ok=True)
    if args.phase is not None:  # the child: one phase of one window
        print(json.dumps(_phase(args.phase, args.window, work, args.steps, args.samples)))
        return
    windows = [int(w) for w in args.windows.split(",")]
    phases = [ph for ph in PHASES if not (args.no_build and ph == "build")]
    figures: dict = {}
    for window in windows:
        for phase in phases:
            print(f"window {window}: {phase} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(
                [sys.executable, "-m", "bench.window", "--phase", phase, "--window", str(window),
                 "--steps", str(args.steps), "--samples", str(args.samples),
                 "--work", str(args.work)],
                capture_output=True, text=True, cwd=ROOT, check=False)
            if proc.returncode != 0:
                sys.exit(f"window {window} {phase} failed:\n{proc.stderr.strip()[-2000:]}")
            figures[f"{window}/{phase}"] = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = []
    for window in windows:
        row = [window]
        for phase in phases:
            f = figures[f"{window}/{phase}"]
            row += [f["peak_mib"], f["seconds"]]
        f = figures[f"{window}/train"]
        row += [f["seconds_per_step"], figures[f"{window}/evaluate"]["ms_per_sample"]]
        rows.append(row)
    columns = ["window"]
    for phase in phases:
        columns += [f"{phase} peak MiB", f"{phase} s"]
    columns += ["s per training step", "ms per held-out byte"]
    emit(args, table("Memory and time against the window (default transformer, one thread)",
                     columns, rows), figures)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
