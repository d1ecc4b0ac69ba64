"""``rtl_gen synth`` on the ECP5: which registers miss the constraint (``slow_registers``)."""

import json
import subprocess
import sys

import onnx
import pytest

from contract.onnx_io import to_onnx
from contract.random_model import random_model
from rtl_gen.report import slow_line
from rtl_gen.synth import slow_registers


def _net(driver, *ends):
    return {"driver": driver, "port": "F", "net": driver,
            "endpoints": [{"cell": c, "port": p, "delay": [0.5, t]} for c, p, t in ends]}


def test_slow_registers_counts_the_inputs_over_the_period_by_register():
    """At 150 MHz (6.67 ns): the data, M and enable inputs of flip-flops under the module,
    their latest arrival over the period; indices folded; a reset input, a LUT input and a
    register outside the module do not count; an input reached by two nets counts once, at
    its latest."""
    pnr = {"detailed_net_timings": [
        _net("a", ("acc.row0.pe1.u_TRELLIS_FF_Q_3", "M", 7.1),
             ("acc.row1.pe0.u_TRELLIS_FF_Q", "DI", 6.9),
             ("acc.row1.pe0.u_TRELLIS_FF_Q", "LSR", 9.0),
             ("acc.row0.lut_LUT4_Z", "A", 8.0)),
        _net("b", ("acc.scanner.single_TRELLIS_FF_Q", "CE", 6.5),
             ("acc.fired$102_TRELLIS_FF_Q_2", "DI", 7.0),
             ("top.status_data_TRELLIS_FF_Q", "DI", 10.8)),
        _net("c", ("acc.scanner.single_TRELLIS_FF_Q", "CE", 6.8)),
    ]}
    slow = slow_registers(pnr, 150, "acc.")
    assert slow == {"constraint_mhz": 150, "endpoints": 4, "over": 4,
                    "registers": [("rowN.peN.u", 2), ("fired", 1), ("scanner.single", 1)],
                    "latest_ns": 7.1}
    assert slow_registers(pnr, 100, "acc.")["over"] == 0
    assert slow_line(slow).startswith("4 of 4 register inputs miss 150 MHz; the most:"
                                      " rowN.peN.u 2, fired 1")
    assert slow_registers({}, 150, "acc.")["endpoints"] == 0


@pytest.mark.slow
def test_synth_on_the_ecp5_says_which_registers_miss_the_clock(tmp_path):
    """A small MLP placed and routed on the ECP5-85k: no register inside the accelerator
    arrives after nextpnr's own Fmax period (a clock 1% slower misses none), and when the
    critical path ends inside, its arrival is that period."""
    onnx.save(to_onnx(random_model(0, hidden=(5,))), tmp_path / "m.onnx")
    build = tmp_path / "b"
    for args in (["build", "--onnx", tmp_path / "m.onnx", "--out", build, "--rows", 1,
                  "--cols", 2, "--samples", 2], ["synth", build, "--target", "ecp5-85k"]):
        proc = subprocess.run([sys.executable, "-m", "rtl_gen", *map(str, args)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "register inputs" in proc.stdout
    synth = json.loads((build / "report.json").read_text())["synth"]["ecp5-85k"]
    slow = synth["slow_registers"]
    assert slow["endpoints"] > 50 and slow["constraint_mhz"] == 150
    period = 1000 / synth["fmax_mhz"]
    assert slow["latest_ns"] <= period + 0.01
    pnr = json.loads((build / "synth" / "ecp5-85k" / "nextpnr.json").read_text())
    assert slow_registers(pnr, synth["fmax_mhz"] * 0.99, "accelerator.")["over"] == 0
    clocked = [p for p in pnr["critical_paths"] if "<async>" not in (p["from"], p["to"])]
    if clocked[0]["path"][-1]["to"]["cell"].startswith("accelerator."):
        assert slow["latest_ns"] == pytest.approx(period, abs=0.01)
    assert "register inputs" in (build / "report.md").read_text()
