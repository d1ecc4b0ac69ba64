"""ECP5 block RAM output registers: a netlist step between yosys and nextpnr.

yosys maps every memory onto DP16KD block RAMs without their output register
(``REGMODE=NOREG``), and its memory mapper has no way to use that register. Without it a
DP16KD's data leave 5.8 ns after the clock, nearly all of a 150 MHz cycle; with it, 0.96 ns
(nextpnr's timing data). :class:`hw.bank.RegisteredBank` puts a plain register straight after
the RAM's data pins; this step moves such registers into the RAM.

A RAM port's registers are moved only when every data pin of the port that anything uses
drives exactly one flip-flop, on its ``DI``, and the flip-flops are what the output register
does: clocked by the port's clock on the same edge, no set or reset, starting at zero, all
with one clock enable (which becomes the register's ``OCE``); and the port's own reset is tied
off. A 36-bit (pseudo dual port) RAM reads all 36 bits through port B, and nextpnr gives such
a RAM one ``REGMODE`` for both halves, so both are set together. The netlist's function is
unchanged; what it loses is one flip-flop per data bit.
"""

from __future__ import annotations

from collections import defaultdict

__all__ = ["absorb_output_registers"]

_PINS = 18


def _top(netlist: dict) -> dict:
    for module in netlist["modules"].values():
        if int(str(module.get("attributes", {}).get("top", "0")), 2):
            return module
    raise ValueError("the netlist has no top module (attribute top)")


def _int(value) -> int:
    return value if isinstance(value, int) else int(str(value).strip(), 2)


def _str(value) -> str:
    return str(value).strip()


def _enable(ff: dict, clock):
    """The clock enable of the TRELLIS_FF ``ff`` (``"1"`` or a net) if it is a register that
    an output register can be: on ``clock``, no set or reset, starting at zero; else None."""
    params, conn = ff["parameters"], ff["connections"]
    no_reset = conn.get("LSR", ["0"]) == ["0"] or _str(params.get("LSRMUX", "LSR")) == "0"
    if not (no_reset and conn.get("CLK") == [clock]
            and _str(params.get("CLKMUX", "CLK")) == "CLK"
            and _str(params.get("REGSET", "RESET")) == "RESET"
            and _str(params.get("GSR", "DISABLED")) == "DISABLED"):
        return None
    mux, enable = _str(params.get("CEMUX", "CE")), conn.get("CE", ["1"])[0]
    if mux == "1" or enable == "1":
        return "1"
    return enable if mux == "CE" else None


def absorb_output_registers(netlist: dict) -> dict:
    """Move the flip-flops that register a DP16KD port's data into its output register, in
    place; return ``{"rams": ports changed, "registers": flip-flops removed}``."""
    top = _top(netlist)
    cells = top["cells"]
    sinks: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for name, cell in cells.items():
        directions = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if directions.get(port, "input") != "output":
                for bit in bits:
                    if isinstance(bit, int):
                        sinks[bit].append((name, port))
    for port in top.get("ports", {}).values():
        if port["direction"] != "input":
            for bit in port["bits"]:
                if isinstance(bit, int):
                    sinks[bit].append(("", "top"))

    changed = removed = 0
    for cell in list(cells.values()):
        if cell["type"] != "DP16KD":
            continue
        params, conn = cell["parameters"], cell["connections"]
        if _int(params.get("DATA_WIDTH_B", 18)) == 36:  # pseudo dual port: one read port, B
            groups = [("B", [f"DO{side}{i}" for side in "AB" for i in range(_PINS)],
                       ("RSTA", "RSTB"), ("REGMODE_A", "REGMODE_B"))]
        else:
            groups = [(side, [f"DO{side}{i}" for i in range(_PINS)], (f"RST{side}",),
                       (f"REGMODE_{side}",)) for side in "AB"]
        for side, pins, resets, modes in groups:
            if any(_str(params.get(mode, "NOREG")) != "NOREG" for mode in modes):
                continue
            if any(conn.get(reset, ["0"]) != ["0"] for reset in resets):
                continue
            if _str(params.get(f"CLK{side}MUX", f"CLK{side}")) != f"CLK{side}":
                continue
            clock = conn.get(f"CLK{side}", [None])[0]
            used = [pin for pin in pins
                    if isinstance(conn.get(pin, ["x"])[0], int) and sinks[conn[pin][0]]]
            if not used or not isinstance(clock, int):
                continue
            registers, enables = {}, set()
            for pin in used:
                users = sinks[conn[pin][0]]
                if len(users) != 1 or users[0][1] != "DI":
                    break
                ff = cells[users[0][0]]
                enable = _enable(ff, clock) if ff["type"] == "TRELLIS_FF" else None
                if enable is None:
                    break
                registers[pin] = users[0][0]
                enables.add(enable)
            else:
                if len(enables) != 1:  # one output register enable for the whole port
                    continue
                for pin, ff_name in registers.items():
                    conn[pin] = list(cells[ff_name]["connections"]["Q"])
                    del cells[ff_name]
                for mode in modes:
                    params[mode] = "OUTREG"
                conn[f"OCE{side}"] = [enables.pop()]
                changed += 1
                removed += len(registers)
    return {"rams": changed, "registers": removed}
