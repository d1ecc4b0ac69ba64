"""``rtl_gen build``: a named sequence of steps over one :class:`BuildConfig`.

Each step leaves its artefact in the output folder and, where it can, checks it against the
integer reference before the next step runs:

| step | artefact | check |
| --- | --- | --- |
| export | ``source.onnx``, held-out inputs | ``model.export`` on a checkpoint, in a subprocess |
| frontend | the IR | onnxruntime on the source ONNX == the IR interpreter |
| passes | the IR after the pipeline | every semantics-preserving pass keeps the logits |
| golden | ``model.onnx``, ``golden.npz`` | onnxruntime on ``model.onnx`` == IR interpreter |
| plan | ``plan.json``, ``mem/*.hex`` | widths cover the range analysis; the model fits the target |
| rtl | ``rtl/*.v`` | Verilog from Amaranth, reproducible |
| testbench | ``tb/`` | (run by ``rtl_gen sim``) |
| report | ``report.json``, ``report.md`` | |
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from contract.graph import Graph
from contract.onnx_io import to_onnx
from hw.params import MAX_BURST

from .errors import BuildError, VerificationError
from .frontend import load_graph
from .interpret import interpret
from .machines import checks_streams, start_bytes
from .memory import WEIGHT_MODES
from .passes import default_pipeline, run_pipeline
from .passes.scale_thresholds import parse_scale
from .targets import get_target
from .workdir import staged_output

__all__ = ["DEFAULT_CKPT", "BuildConfig", "BuildState", "build", "run_onnx"]

log = logging.getLogger(__name__)

#: streams of a graph without attention are sampled as for a window of this many bytes
STREAM_WINDOW = 8

DEFAULT_CKPT = Path(__file__).resolve().parent.parent / "checkpoints" / "spikelm-mlp.pt"


@dataclass
class BuildConfig:
    """Everything ``build`` needs; the CLI fills it from the command line."""

    out: Path
    ckpt: Path | None = None
    onnx_path: Path | None = None
    inputs: Path | None = None
    rows: int = 8
    cols: int = 8
    target: str = "ecp5-85k"
    dense: bool = False
    threshold_scale: str | None = None
    samples: int | None = None
    seed: int = 0
    force: bool = False
    stall_seed: int | None = None
    weights: str = "auto"
    memory_latency: int = 10
    memory_interval: int | None = None

    def validate(self) -> None:
        """One-line errors for flags that cannot work, before anything is written."""
        if self.ckpt is not None and self.onnx_path is not None:
            raise BuildError("give --ckpt or --onnx, not both")
        if self.ckpt is None and self.onnx_path is None:
            self.ckpt = DEFAULT_CKPT
        for name in ("rows", "cols", "samples"):
            value = getattr(self, name)
            if name == "samples" and value is None:
                continue
            if not isinstance(value, int) or value < 1:
                raise BuildError(f"--{name} must be a positive integer, not {value!r}")
        if self.rows * self.cols > 1024:
            raise BuildError(f"--rows x --cols = {self.rows * self.cols} PEs; use at most 1024")
        get_target(self.target)
        if self.threshold_scale is not None:
            parse_scale(self.threshold_scale)
        if self.weights not in WEIGHT_MODES:
            raise BuildError(f"--weights must be one of {', '.join(WEIGHT_MODES)}, not"
                             f" {self.weights!r}")
        if self.weights == "offchip" and self.rows > MAX_BURST:
            raise BuildError(f"--weights offchip reads a weight row as one AXI4 burst of a beat"
                             f" per array row: use at most {MAX_BURST} --rows, not {self.rows}")
        for name in ("memory_latency", "memory_interval"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise BuildError(f"--{name.replace('_', '-')} must be a positive integer,"
                                 f" not {value!r}")
        if self.stall_seed is not None and not 0 <= self.stall_seed < 1 << 16:
            raise BuildError(f"--stall-seed must lie in 0..65535, not {self.stall_seed}")
        source = self.ckpt if self.ckpt is not None else self.onnx_path
        if not Path(source).is_file():
            raise BuildError(f"{source}: no such file")
        if self.inputs is not None and not Path(self.inputs).is_file():
            raise BuildError(f"{self.inputs}: no such file")


@dataclass
class BuildState:
    """What the steps hand each other."""

    config: BuildConfig
    dir: Path
    inputs: np.ndarray | None = None
    labels: np.ndarray | None = None  #: an encoder's held-out classes, from its checkpoint
    graph: Graph | None = None
    plan: object = None
    trace: object = None
    timings: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)


def run_onnx(path: Path, ids: np.ndarray) -> np.ndarray:
    """Logits of an ONNX file in onnxruntime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": np.asarray(ids, dtype=np.int64)})[0]


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def step_export(state: BuildState) -> None:
    """From a checkpoint, ``model.export`` writes the ONNX file and held-out inputs."""
    cfg = state.config
    if cfg.ckpt is None:
        shutil.copyfile(cfg.onnx_path, state.dir / "source.onnx")
        return
    export_dir = state.dir / "export"
    cmd = [
        sys.executable,
        "-m",
        "model.export",
        "--ckpt",
        str(cfg.ckpt),
        "--out",
        str(export_dir),
        *(["--samples", str(cfg.samples)] if cfg.samples is not None else []),
        "--seed",
        str(cfg.seed),
    ]
    log.info("exporting %s", cfg.ckpt)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(_tail(proc.stderr or proc.stdout))
    (export_dir / "model.onnx").rename(state.dir / "source.onnx")
    with np.load(export_dir / "heldout.npz") as data:
        state.inputs = np.asarray(data["input"], dtype=np.int64)
        target = np.asarray(data["target"], dtype=np.int64)
    if target.shape == state.inputs.shape[:1]:  # an encoder's snippets: a class each
        state.labels = target
    shutil.rmtree(export_dir)


def _load_inputs(state: BuildState, context: int, streams: bool) -> None:
    """The golden inputs: ``[N, k]`` contexts of an MLP, ``[N, L]`` byte streams of a
    transformer (``context`` is then its window)."""
    cfg = state.config
    if cfg.inputs is not None:
        try:
            with np.load(cfg.inputs) as data:
                state.inputs = np.asarray(data["input"], dtype=np.int64)[: cfg.samples]
        except (OSError, ValueError, KeyError):
            raise BuildError(f"{cfg.inputs}: not an .npz file with an array named input") from None
    elif state.inputs is None:
        cmd = [
            sys.executable,
            "-m",
            "model.export",
            "--heldout-only",
            "--context",
            str(context),
            "--out",
            str(state.dir / "export"),
            *(["--samples", str(cfg.samples)] if cfg.samples is not None else []),
            *(["--streams"] if streams else []),
            "--seed",
            str(cfg.seed),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BuildError(f"could not sample held-out text: {_tail(proc.stderr)}")
        with np.load(state.dir / "export" / "heldout.npz") as data:
            state.inputs = np.asarray(data["input"], dtype=np.int64)
        shutil.rmtree(state.dir / "export")
    ids = state.inputs
    if streams and (ids.ndim != 2 or ids.shape[0] == 0 or ids.shape[1] == 0):
        raise BuildError(f"inputs must be byte streams of shape [N, L], not {ids.shape}")
    if not streams and (ids.ndim != 2 or ids.shape[1] != context or ids.shape[0] == 0):
        raise BuildError(f"inputs must have shape [N, {context}], not {ids.shape}")
    if ids.min() < 0 or ids.max() > 255:
        raise BuildError("inputs must be byte values 0..255")


def step_frontend(state: BuildState) -> None:
    """ONNX to IR, checked against onnxruntime on the same file."""
    cfg = state.config
    # the user's own file when there is one, so that an error names it, not the staging copy
    graph = load_graph(cfg.onnx_path if cfg.ckpt is None else state.dir / "source.onnx")
    if checks_streams(graph):  # every position of whole streams, a byte at a time
        _load_inputs(state, graph.causal_window or STREAM_WINDOW, streams=True)
    else:  # a chain's windows at their last position, an encoder's whole sequences
        _load_inputs(state, start_bytes(graph), streams=False)
    ort_logits = run_onnx(state.dir / "source.onnx", state.inputs)
    if not np.array_equal(ort_logits, interpret(graph, state.inputs).logits):
        raise VerificationError(
            "onnxruntime and the integer reference disagree on the source ONNX: its spiking"
            " functions are not the contract's"
        )
    state.graph = graph


def step_passes(state: BuildState) -> None:
    """The pass pipeline, each pass checked for exact preservation."""
    passes = default_pipeline(state.config.threshold_scale)
    state.graph = run_pipeline(state.graph, passes, check_ids=state.inputs)


def step_golden(state: BuildState) -> None:
    """``model.onnx`` of the final IR and ``golden.npz``; onnxruntime must agree exactly."""
    onnx.save(to_onnx(state.graph), state.dir / "model.onnx")
    (state.dir / "source.onnx").unlink()
    trace = interpret(state.graph, state.inputs)
    ort_logits = run_onnx(state.dir / "model.onnx", state.inputs)
    if not np.array_equal(ort_logits, trace.logits):
        raise VerificationError("onnxruntime on model.onnx disagrees with the integer reference")
    if not np.any(trace.logits):
        raise VerificationError("the reference logits are all zero: the model computes nothing")
    # windows of a graph without attention are checked at their last position, streams at all
    golden = trace.logits if checks_streams(state.graph) else trace.logits[:, -1]
    extra = {} if state.labels is None else {"label": state.labels}
    np.savez(state.dir / "golden.npz", input=state.inputs, output=golden.astype(np.int32),
             **extra)
    state.trace = trace


STEPS: list[tuple[str, Callable[[BuildState], None]]] = [
    ("export", step_export),
    ("frontend", step_frontend),
    ("passes", step_passes),
    ("golden", step_golden),
]


def build(config: BuildConfig, progress=print) -> Path:
    """Run every step into a staging folder; ``config.out`` appears only when all succeed."""
    from .hwsteps import HW_STEPS  # Amaranth is imported only when a build gets this far

    config.validate()
    with staged_output(config.out, config.force) as staging:
        state = BuildState(config, staging)
        steps = STEPS + HW_STEPS
        for index, (name, step) in enumerate(steps, 1):
            progress(f"[{index}/{len(steps)}] {name}")
            start = time.perf_counter()
            step(state)
            state.timings[name] = round(time.perf_counter() - start, 3)
        _record_timings(staging, state.timings)
    return Path(config.out)


def _record_timings(build_dir: Path, timings: dict) -> None:
    from .report import load_report, save_report

    report = load_report(build_dir)
    report["timings"] = {f"build_{k}": v for k, v in timings.items()}
    report["timings"]["build"] = round(sum(timings.values()), 2)
    save_report(build_dir, report)
