"""Static timing and power of a mapped netlist with OpenSTA (Debian's ``opensta``, 2.0.17).

That version has neither ``read_vcd`` nor ``read_saif``, and its ``set_power_activity -pins``
fails (it calls a procedure that does not exist) while the underlying per-pin setting does not
change the power it reports. What does work is a global activity. Power is linear in activity
(each cell's internal and switching power is an energy per transition, from its Liberty tables
at the slews and loads OpenSTA computes, times transitions per second), so OpenSTA reports every
instance's power twice, at activity 0 and at activity 1 (transitions per clock cycle on every
non-clock net), and :func:`weighted_power` weights each instance's difference by the toggle rate
its output had in simulation. The clock's own power (the flip-flops' clock pins, at two
transitions a cycle) and leakage are in the activity-0 figure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError
from .liberty import INSTALL

__all__ = ["InstancePower", "Timing", "parse_instance_power", "parse_timing", "parse_total_power",
           "run_sta",
           "sta_script"]


def sta_script(liberty: str, netlist: str, top: str, clock_ns: float, clock: str | None) -> str:
    """The Tcl script: timing report, then every instance's power at activity 0 and 1."""
    lines = [
        f"read_liberty {liberty}",
        f"read_verilog {netlist}",
        f"link_design {top}",
    ]
    if clock:
        lines += [
            f"create_clock -name clk -period {clock_ns} [get_ports {clock}]",
            f"set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports {clock}]]",
            "set_output_delay 0 -clock clk [all_outputs]",
        ]
    lines += [
        "report_checks -path_delay max -digits 3 > timing.txt",
        "report_wns > wns.txt",
    ]
    for activity in (0, 1):
        lines += [
            f"set_power_activity -global -input -activity {activity} -duty 0.5",
            f"report_power -digits 6 > power{activity}.txt",
            f"report_power -instances [get_cells *] -digits 6 > instances{activity}.txt",
        ]
    return "\n".join(lines) + "\n"


def run_sta(work: Path, liberty: str, netlist: str, top: str, clock_ns: float,
            clock: str | None = "clk") -> None:
    """Run OpenSTA in ``work`` (its reports land there, its log in ``sta.log``)."""
    exe = shutil.which("sta")
    if exe is None:
        raise BuildError(f"OpenSTA (sta) is not on PATH: {INSTALL}")
    (work / "sta.tcl").write_text(sta_script(liberty, netlist, top, clock_ns, clock))
    log = work / "sta.log"
    with log.open("w") as handle:
        proc = subprocess.run([exe, "-no_init", "-exit", "sta.tcl"], cwd=work, stdout=handle,
                              stderr=subprocess.STDOUT, check=False)
    errors = [ln for ln in log.read_text().splitlines() if ln.startswith("Error")]
    if proc.returncode != 0 or errors or not (work / "instances1.txt").is_file():
        detail = errors[0] if errors else f"exit code {proc.returncode}"
        raise BuildError(f"OpenSTA failed: {detail} (log: {log})")


@dataclass(frozen=True)
class Timing:
    """The worst setup path of ``report_checks``."""

    startpoint: str
    endpoint: str
    arrival_ns: float
    required_ns: float
    slack_ns: float
    clock_ns: float

    @property
    def critical_ns(self) -> float:
        """The shortest clock period that meets this path (clock minus slack)."""
        return self.clock_ns - self.slack_ns

    @property
    def fmax_mhz(self) -> float:
        return 1000.0 / self.critical_ns


_FLOAT = r"(-?[0-9.]+(?:e[-+]?[0-9]+)?)"


def parse_timing(text: str, clock_ns: float) -> Timing:
    """The worst path of a ``report_checks -path_delay max`` report."""
    try:
        start = re.search(r"^Startpoint: (.*)$", text, re.M).group(1).strip()
        end = re.search(r"^Endpoint: (.*)$", text, re.M).group(1).strip()
        arrival = float(re.search(rf"^\s*{_FLOAT}\s+data arrival time", text, re.M).group(1))
        required = float(re.findall(rf"^\s*{_FLOAT}\s+data required time", text, re.M)[-1])
        slack = float(re.search(rf"^\s*{_FLOAT}\s+slack \(", text, re.M).group(1))
    except (AttributeError, IndexError):
        raise BuildError("OpenSTA reported no constrained path (is the design clocked?)") from None
    return Timing(start, end, arrival, required, slack, clock_ns)


@dataclass(frozen=True)
class InstancePower:
    """One row of ``report_power -instances``: watts."""

    internal: float
    switching: float
    leakage: float

    @property
    def total(self) -> float:
        return self.internal + self.switching + self.leakage


_ROW = re.compile(rf"^\s*{_FLOAT}\s+{_FLOAT}\s+{_FLOAT}\s+{_FLOAT}\s+(\S.*)$")


def parse_instance_power(text: str) -> dict[str, InstancePower]:
    """``{instance: power}`` from ``report_power -instances`` (names as OpenSTA prints them:
    without the Verilog escape)."""
    rows = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            internal, switching, leakage, _total = (float(m.group(i)) for i in range(1, 5))
            rows[m.group(5).strip()] = InstancePower(internal, switching, leakage)
    return rows


def parse_total_power(text: str) -> InstancePower:
    """The ``Total`` row of a design ``report_power``."""
    m = re.search(rf"^Total\s+{_FLOAT}\s+{_FLOAT}\s+{_FLOAT}\s+{_FLOAT}", text, re.M)
    if m is None:
        raise BuildError("OpenSTA's power report has no Total row")
    return InstancePower(float(m.group(1)), float(m.group(2)), float(m.group(3)))
