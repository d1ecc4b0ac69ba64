"""``rtl_gen sim``: run a build's golden samples through the RTL and record what it measured."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from sim.runner import SimulatorError, run_build

from .errors import BuildError, VerificationError
from .report import save_report
from .workdir import check_build_dir

__all__ = ["simulate"]

log = logging.getLogger(__name__)


def simulate(
    build_dir: Path, samples: int | None, simulator: str = "verilator", progress=print
) -> dict:
    """Run, update ``report.json`` and return its ``sim`` section; raise on any mismatch."""
    report = check_build_dir(build_dir)
    if samples is not None and samples < 1:
        raise BuildError(f"--samples must be a positive integer, not {samples}")
    count = min(samples or report["golden_samples"], report["golden_samples"])
    unit = "golden streams" if report["streams"] else "golden samples"
    progress(f"compiling {report['name']} with {simulator}, then running {count} {unit}")
    try:
        result = run_build(build_dir, samples, simulator)
    except SimulatorError as exc:
        raise BuildError(str(exc)) from None
    if not result.samples:
        raise VerificationError("the testbench ran no samples")
    counts = [s["spike_counts"] for s in result.samples]
    timesteps = report["model"]["timesteps"]
    names = report.get("spiking_layer_names") or list(report["firing_rates"])  # JSON sorts keys
    sizes = report["spiking_layer_sizes"]
    runs = report.get("spiking_layer_runs") or [1] * len(sizes)
    rates = {}
    for layer, name in enumerate(names):  # a counter per spiking layer, all steps
        fired = sum(c[layer] for c in counts)
        rates[name] = fired / (len(counts) * timesteps * sizes[layer] * runs[layer])
    report["sim"] = {
        "simulator": simulator,
        "samples": len(result.samples),
        "matched": result.matched,
        "compile_seconds": round(result.compile_seconds, 2),
        "run_seconds": round(result.run_seconds, 2),
    }
    labels_file = build_dir / "golden.npz"
    with np.load(labels_file) as golden:
        labels = golden["label"] if "label" in golden else None
    if labels is not None:  # an encoder's: the hardware's class against the held-out label
        tokens = np.array([s["token"] for s in result.samples])
        report["sim"]["accuracy"] = round(float(np.mean(tokens == labels[:len(tokens)])), 4)
    if report["streams"]:
        window = report["model"]["context"]
        full = [s for s in result.samples if s["position"] >= window - 1]
        report["sim"].update(
            streams=len({s["stream"] for s in result.samples}),
            full_context=len(full),
            full_context_matched=sum(1 for s in full if s["match"]),
        )
    report["cycles_per_inference"] = round(result.mean_cycles, 1)
    if report.get("memory", {}).get("weights") == "offchip":
        report["memory"]["measured_cycles_per_token"] = round(result.mean_cycles, 1)
    report["cycles"]["measured_over_ideal"] = (
        round(result.mean_cycles / report["ideal_cycles_per_inference"], 3)
        if report["ideal_cycles_per_inference"]
        else None
    )
    if report["dense_cycles_per_inference"]:
        report["cycles"]["measured_over_dense"] = round(
            result.mean_cycles / report["dense_cycles_per_inference"], 3
        )
    report["hardware_firing_rates"] = rates
    profile = np.mean([s["layer_cycles"] for s in result.samples], axis=0)  # [layers, 2]
    for entry, (run, drain) in zip(report["cycle_profile"], profile, strict=True):
        entry.update(run=round(float(run), 1), drain=round(float(drain), 1))
    report["cycles"]["io"] = round(result.mean_cycles - float(profile.sum()), 1)
    report.setdefault("timings", {})[f"sim_{simulator}"] = round(
        result.compile_seconds + result.run_seconds, 2
    )
    save_report(build_dir, report)
    if result.matched != len(result.samples):
        bad = [s["sample"] for s in result.samples if not s["match"]][:5]
        raise VerificationError(
            f"{len(result.samples) - result.matched} of {len(result.samples)} samples differ"
            f" from the reference (first: {bad}); see {build_dir}/sim_build_{simulator}/test.log"
        )
    return report
