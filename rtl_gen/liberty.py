"""The open standard-cell libraries of the ASIC flow (Debian's ``qflow-tech-osu*`` packages) and
the little of a Liberty file that the flow reads itself: each cell's area and output pins."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError

__all__ = ["LIBRARIES", "CellLibrary", "find_library", "parse_liberty"]

TECH = Path("/usr/share/qflow/tech")

INSTALL = (
    "install it as root with `apt-get install -y iverilog opensta qflow-tech-osu018"
    " qflow-tech-osu035 qflow-tech-osu050` (the README's setup command does)"
)


@dataclass(frozen=True)
class CellLibrary:
    """One library: its Liberty timing and power file and its Verilog cell models."""

    name: str
    package: str
    liberty: Path
    models: Path
    feature_nm: int

    @property
    def installed(self) -> bool:
        return self.liberty.is_file() and self.models.is_file()


LIBRARIES = {
    "osu018": CellLibrary("osu018", "qflow-tech-osu018", TECH / "osu018/osu018_stdcells.lib",
                          TECH / "osu018/osu018_stdcells.v", 180),
    "osu035": CellLibrary("osu035", "qflow-tech-osu035", TECH / "osu035/osu035_stdcells.lib",
                          TECH / "osu035/osu035_stdcells.v", 350),
    "osu050": CellLibrary("osu050", "qflow-tech-osu050", TECH / "osu050/osu05_stdcells.lib",
                          TECH / "osu050/osu05_stdcells.v", 500),
}


def find_library(name: str) -> CellLibrary:
    """The library called ``name``, or a one-line error saying what to choose or install."""
    try:
        lib = LIBRARIES[name]
    except KeyError:
        raise BuildError(
            f"unknown cell library {name!r}; choose one of {', '.join(sorted(LIBRARIES))}"
        ) from None
    if not lib.installed:
        raise BuildError(f"cell library {name} is not installed ({lib.liberty} is missing):"
                         f" {INSTALL}")
    return lib


_CELL = re.compile(r"^\s*cell\s*\(\s*\"?(\w+)\"?\s*\)\s*\{", re.M)
_AREA = re.compile(r"^\s*area\s*:\s*([0-9.eE+-]+)\s*;", re.M)
_PIN = re.compile(r"^\s*pin\s*\(\s*\"?(\w+)\"?\s*\)\s*\{", re.M)
_DIRECTION = re.compile(r"^\s*direction\s*:\s*\"?(\w+)\"?\s*;", re.M)
_CLOCK = re.compile(r"^\s*clock\s*:\s*true\s*;", re.M)


def _sections(pattern: re.Pattern, text: str):
    """``(name, text)`` from each match of ``pattern`` to the next."""
    marks = [(m.start(), m.group(1)) for m in pattern.finditer(text)]
    ends = [start for start, _ in marks[1:]] + [len(text)] if marks else []
    for (start, name), end in zip(marks, ends, strict=True):
        yield name, text[start:end]


def parse_liberty(text: str) -> dict[str, dict]:
    """``{cell: {"area": um2, "outputs": [pin, ...], "clocks": [pin, ...]}}`` of a Liberty
    file's text (cells are split at their ``cell (`` lines; pins at their ``pin (`` lines)."""
    cells = {}
    for name, body in _sections(_CELL, text):
        area = _AREA.search(body)
        outputs, clocks = [], []
        for pin, chunk in _sections(_PIN, body):
            direction = _DIRECTION.search(chunk)
            if direction and direction.group(1) == "output":
                outputs.append(pin)
            if _CLOCK.search(chunk):
                clocks.append(pin)
        cells[name] = {"area": float(area.group(1)) if area else 0.0, "outputs": outputs,
                       "clocks": clocks}
    return cells
