"""``rtl_gen generate``: a transformer build generates text in Verilator, checked byte for byte.

Each prompt becomes a stream that starts as every file of the corpus does, after ``W`` zero
bytes (the window's "start of file"); the testbench feeds it a byte at a time and then every
byte the hardware predicts. The reference generation comes from the build's own golden model
(``model.onnx``, through the front end, to the contract's ``generate``), so the check needs
nothing but the build folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from contract import transformer as xf
from sim.runner import SimulatorError, run_build

from .errors import BuildError, VerificationError
from .frontend import load_graph
from .passes import FuseLinear, run_pipeline
from .plan_transformer import to_int_transformer
from .report import save_report
from .workdir import check_build_dir

__all__ = ["generate"]

log = logging.getLogger(__name__)


def _fmax(report: dict) -> tuple[float | None, str | None]:
    synth = report.get("synth") or {}
    target = report.get("target")
    chosen = synth.get(target) or next(iter(synth.values()), None)
    if not chosen:
        return None, None
    name = target if target in synth else next(iter(synth))
    return float(chosen["fmax_mhz"]), name


def generate(build_dir: Path, prompts: list[bytes], tokens: int,
             simulator: str = "verilator", progress=print) -> dict:
    """Generate ``tokens`` bytes after each prompt in RTL; raise if any byte differs from the
    reference. Returns the texts, the cycles per token and the tokens/s at the synthesized
    Fmax (when the build was synthesized)."""
    build_dir = Path(build_dir)
    report = check_build_dir(build_dir)
    if report.get("arch") != "transformer":
        raise BuildError(f"{build_dir} is not a transformer build; generate needs one (rtl_gen"
                         " build --ckpt checkpoints/spikelm-transformer.pt)")
    if tokens < 1:
        raise BuildError(f"--tokens must be a positive integer, not {tokens}")
    model = to_int_transformer(run_pipeline(load_graph(build_dir / "model.onnx"), [FuseLinear()]))
    streams = [[0] * model.context + list(prompt) for prompt in prompts]
    expected = [xf.generate(model, stream, tokens) for stream in streams]
    job = build_dir / "generate.json"
    job.write_text(json.dumps({"prompts": streams, "tokens": tokens, "expected": expected}))
    progress(f"compiling {report['name']} with {simulator}, then generating {tokens} bytes"
             f" after {len(prompts)} prompt(s)")
    try:
        result = run_build(build_dir, None, simulator, generate=job)
    except SimulatorError as exc:
        raise BuildError(str(exc)) from None
    if not result.generations or len(result.generations) != len(prompts):
        raise VerificationError("the testbench generated nothing")
    generated = [g["cycles"][len(s):] for g, s in zip(result.generations, streams, strict=True)]
    per_token = [c for cycles in generated for c in cycles]
    cycles_per_token = sum(per_token) / max(1, len(per_token))
    fmax, target = _fmax(report)
    out = {
        "prompts": [p.decode("utf-8", "replace") for p in prompts],
        "texts": [bytes(g["tokens"]).decode("utf-8", "replace") for g in result.generations],
        "matched": sum(g["first_difference"] is None for g in result.generations),
        "tokens": tokens,
        "cycles_per_token": round(cycles_per_token, 1),
        "fmax_mhz": fmax,
        "target": target,
        "tokens_per_second": round(fmax * 1e6 / cycles_per_token, 1) if fmax else None,
        "simulator": simulator,
    }
    report["generate"] = out
    save_report(build_dir, report)
    bad = [i for i, g in enumerate(result.generations) if g["first_difference"] is not None]
    if bad:
        first = result.generations[bad[0]]["first_difference"]
        raise VerificationError(
            f"{len(bad)} of {len(prompts)} generations differ from the reference (prompt"
            f" {bad[0]}, from byte {first}); see {build_dir}/sim_build_{simulator}/test.log")
    return out
