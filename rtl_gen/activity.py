"""Switching activity from a simulation, to weight each cell's power by the activity its
output really had: toggles per signal from Verilator's toggle coverage (``coverage.dat``, the
counts kept by the simulation itself) or from a VCD (read as a stream, one line at a time, so
a dump of hundreds of megabytes costs time, not memory), and the cell instances of a
gate-level netlist. Only the signals of one scope (the netlist's top module) are counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Activity", "Instance", "parse_netlist", "read_coverage", "read_vcd"]


@dataclass(frozen=True)
class Activity:
    """Toggles (0 -> 1 or 1 -> 0) of every bit of one scope, over ``cycles`` clock cycles."""

    toggles: dict[str, int]
    cycles: float

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


def read_vcd(path: Path, scope: list[str], clock: str = "clk") -> Activity:
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
        for line in vcd:
            head = line[0] if line else ""
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
    return Activity(toggles, toggles.get(clock, 0) / 2)


_MANGLED = re.compile(r"__0([0-9a-fA-F]{2})")


def read_coverage(path: Path, scope: str, clock: str = "clk") -> Activity:
    """Toggles of every bit that Verilator's ``--coverage-toggle`` counted in the instance
    ``scope`` (a dotted path, e.g. ``spikeforge_sim_top.harness``), from the ``coverage.dat``
    at ``path``. Each bit has two points, ``name:0->1`` and ``name:1->0``; Verilator writes a
    character that is not an identifier's as ``__0`` and its hex code, undone here."""
    toggles: dict[str, int] = {}
    with Path(path).open(encoding="latin-1") as data:
        for line in data:
            if not line.startswith("C '"):
                continue
            keys, _, count = line[3:].rstrip().rpartition("' ")
            fields = dict(item.split("\x02", 1) for item in keys.split("\x01")[1:])
            if fields.get("t") != "toggle" or fields.get("h") != scope:
                continue
            name = _MANGLED.sub(lambda m: chr(int(m[1], 16)), fields["o"].rpartition(":")[0])
            toggles[name] = toggles.get(name, 0) + int(count)
    return Activity(toggles, toggles.get(clock, 0) / 2)


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
