"""Switching activity from a simulation: toggles per net of a VCD, and the cell instances of a
gate-level netlist (which net each pin of each cell is on), to weight each cell's power by the
activity its output really had.

The VCD is read as a stream, one line at a time, so a dump of hundreds of megabytes costs
time, not memory. Only the variables of one scope (the netlist's top module) are counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Instance", "VcdActivity", "parse_netlist", "read_vcd"]


@dataclass(frozen=True)
class VcdActivity:
    """Toggles (0 -> 1 or 1 -> 0) of every bit of one scope, over ``duration`` time units."""

    toggles: dict[str, int]
    duration: int
    clock_toggles: int

    @property
    def cycles(self) -> float:
        """Clock cycles in the dump (two clock toggles each)."""
        return self.clock_toggles / 2

    def per_cycle(self, net: str) -> float | None:
        """Toggles per clock cycle of ``net`` (None when the dump has no such net)."""
        count = self.toggles.get(net)
        return None if count is None or not self.cycles else count / self.cycles


def _bit_names(name: str, width: int, select: str | None) -> list[str]:
    """The names of a VCD variable's bits, most significant first (``x[7]`` ... ``x[0]``)."""
    if width == 1 and select is None:
        return [name]
    if select is None:
        select = f"[{width - 1}:0]"
    if ":" not in select:
        return [f"{name}{select}"]
    msb, lsb = (int(v) for v in select.strip("[]").split(":"))
    step = -1 if msb >= lsb else 1
    return [f"{name}[{i}]" for i in range(msb, lsb + step, step)]


def read_vcd(path: Path, scope: list[str], clock: str = "clk") -> VcdActivity:
    """Count the toggles of every bit declared directly in ``scope`` (a path of scope names
    from the root, e.g. ``["spikeforge_sim_top", "harness"]``) of the VCD at ``path``."""
    ids: dict[str, list[str]] = {}
    stack: list[str] = []
    with Path(path).open() as vcd:
        for line in vcd:
            words = line.split()
            if not words:
                continue
            if words[0] == "$scope":
                stack.append(words[2])
            elif words[0] == "$upscope":
                stack.pop()
            elif words[0] == "$var" and stack == scope:
                width, code, name = int(words[2]), words[3], words[4].removeprefix("\\")
                select = words[5] if len(words) > 6 and words[5].startswith("[") else None
                ids.setdefault(code, []).extend(_bit_names(name, width, select))
            elif words[0] == "$enddefinitions":
                break
        counts = {code: [0] * len(bits) for code, bits in ids.items()}
        last = {code: "x" * len(bits) for code, bits in ids.items()}
        first_time = end_time = None
        for line in vcd:
            head = line[0] if line else ""
            if head == "#":
                end_time = int(line[1:])
                first_time = end_time if first_time is None else first_time
                continue
            if head in "01xzXZ" and head:
                code, value = line[1:].strip(), head
            elif head in "bB":
                value, code = line[1:].split()
            else:
                continue
            if code not in counts:
                continue
            before, tally = last[code], counts[code]
            value = value.rjust(len(before), "0" if value[0] in "01" else value[0])
            for i, (a, b) in enumerate(zip(before, value, strict=True)):
                if a != b and a in "01" and b in "01":
                    tally[i] += 1
            last[code] = value
    toggles = {}
    for code, bits in ids.items():
        for bit, count in zip(bits, counts[code], strict=True):
            toggles[bit] = count
    return VcdActivity(toggles, (end_time or 0) - (first_time or 0), toggles.get(clock, 0))


@dataclass(frozen=True)
class Instance:
    """One cell of a flat netlist: its name, its cell type and the net on each pin."""

    name: str
    cell: str
    pins: dict[str, str]


_INSTANCE = re.compile(r"^\s*(\w+)\s+(\\\S+|\w+)\s*\(\s*$")
_PIN = re.compile(r"\.(\w+)\((.*)\)")


def _net(text: str) -> str:
    """A net reference of ``write_verilog`` as a plain name: ``\\a.b[3] `` -> ``a.b[3]``."""
    text = text.strip()
    return text[1:].strip() if text.startswith("\\") else text.replace(" ", "")


def parse_netlist(path: Path, cells: set[str]) -> list[Instance]:
    """The instances of library ``cells`` in a flat netlist written by yosys's
    ``write_verilog -noattr`` (one pin connection per line)."""
    instances = []
    current = None
    with Path(path).open() as netlist:
        for line in netlist:
            if current is None:
                m = _INSTANCE.match(line)
                if m and m.group(1) in cells:
                    current = Instance(_net(m.group(2)), m.group(1), {})
                continue
            pin = _PIN.search(line)
            if pin:
                current.pins[pin.group(1)] = _net(pin.group(2))
            if line.strip().endswith(");"):
                instances.append(current)
                current = None
    return instances
