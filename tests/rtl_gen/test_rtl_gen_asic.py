"""``rtl_gen asic``: the parsers on real tool output (OpenSTA 2.0.17, Icarus 11, the OSU
Liberty files), the command line's one-line errors, and (slow) the whole flow on a small build:
positive area, Fmax and power, and the gate-level netlist bit-exact on Icarus.

Icarus is slow on the gate-level harness: on this machine the small build below reached 594
cycles of its first golden sample (about 800) in six CPU-minutes (docs/asic.md). So the two
gate-level tests run only with ``SPIKEFORGE_ASIC_LONG=1`` (well over CI's budget otherwise);
synthesis and timing of the same build run with the slow tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from contract.onnx_io import to_onnx
from contract.random_model import random_model
from rtl_gen.activity import parse_netlist, read_vcd
from rtl_gen.asic import group_of, synth_script
from rtl_gen.liberty import LIBRARIES, parse_liberty
from rtl_gen.sta import parse_instance_power, parse_timing, parse_total_power

DATA = Path(__file__).with_name("data")
OSU018 = LIBRARIES["osu018"]
TOOLS = (shutil.which("iverilog") and shutil.which("sta") and OSU018.installed)
NO_TOOLS = "needs iverilog, OpenSTA and qflow-tech-osu018 (the README's setup installs them)"


def rtl_gen(*args):
    proc = subprocess.run([sys.executable, "-m", "rtl_gen", *map(str, args)],
                          capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_timing_report_of_opensta():
    """The worst path of a real report: the clock minus the slack is the critical path."""
    t = parse_timing((DATA / "opensta_timing.txt").read_text(), 10.0)
    assert t.startpoint.startswith("accelerator.c4716 (rising edge")
    assert t.arrival_ns == pytest.approx(2.533) and t.slack_ns == pytest.approx(7.280)
    assert t.critical_ns == pytest.approx(2.720)
    assert t.fmax_mhz == pytest.approx(1000 / 2.720)


def test_power_reports_of_opensta():
    rows = parse_instance_power((DATA / "opensta_instances.txt").read_text())
    assert len(rows) == 9  # twelve lines: a three-line header and nine instances
    first = rows["accelerator.c5371"]
    assert first.internal == pytest.approx(3.873157e-05)
    assert first.total == pytest.approx(7.727160e-05)
    assert {group_of(name) for name in rows} == {"harness", "accelerator", "memories"}
    total = parse_total_power((DATA / "opensta_power.txt").read_text())
    assert total.total == pytest.approx(6.142617e-01)


def test_vcd_toggles_of_icarus():
    """A 3-bit counter dumped by Icarus for 16 clock cycles: bit i toggles 16 / 2^i times."""
    a = read_vcd(DATA / "icarus_counter.vcd", ["tb", "dut"])
    assert a.cycles == pytest.approx(16, abs=0.5)
    assert [a.toggles[f"count[{i}]"] for i in range(3)] == [16, 8, 4]
    assert a.toggles["odd.bit"] == a.toggles["count[0]"]
    assert a.per_cycle("count[0]") == pytest.approx(1.0, abs=0.05)
    assert a.per_cycle("nothing") is None
    assert read_vcd(DATA / "icarus_counter.vcd", ["tb"]).toggles == {}


@pytest.mark.skipif(not OSU018.installed, reason=NO_TOOLS)
def test_liberty_cells_of_osu018():
    cells = parse_liberty(OSU018.liberty.read_text())
    assert cells["DFFPOSX1"] == {"area": 96.0, "outputs": ["Q"], "clocks": ["CLK"]}
    assert cells["FAX1"]["outputs"] == ["YC", "YS"]
    assert cells["LATCH"]["area"] == 0  # as the library has it
    assert all(c["area"] > 0 for name, c in cells.items() if name != "LATCH")


def test_synth_script_keeps_the_accelerator_and_its_memories_apart():
    script = synth_script("spikeforge_top", 10.0, "spikeforge_top.accelerator")
    assert "abc -liberty cells.lib -constr abc.constr -D 10000" in script
    assert 'setattr -set submod "memories" t:$mem_v2' in script
    assert script.index("submod") < script.index("synth -top") < script.index("flatten\nopt")
    assert "write_verilog -noattr -noexpr -simple-lhs netlist.v" in script


def test_unknown_library_is_one_line(tmp_path):
    code, _, stderr = rtl_gen("asic", tmp_path, "--lib", "osu999")
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    # the folder is checked first: not a build
    assert "not a SpikeForge build" in stderr


def test_missing_build_is_one_line(tmp_path):
    code, _, stderr = rtl_gen("asic", tmp_path / "nothing")
    assert code == 2 and stderr.strip() == (
        f"error: {tmp_path / 'nothing'}: no such folder; run `python -m rtl_gen build --out"
        f" {tmp_path / 'nothing'}`")


def test_bad_clock_is_one_line(tmp_path):
    code, _, stderr = rtl_gen("asic", tmp_path, "--clock-ns", "0")
    assert code == 2 and "expected a positive number" in stderr
    assert len(stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    """A random model (2 bytes of context, 3 spikes each, 5 hidden, T = 3, 4-bit weights) on
    a 2 x 3 array: about 30,000 cells, under 1,000 cycles per inference."""
    root = tmp_path_factory.mktemp("asic")
    model = random_model(3, context=2, embed_dim=3, hidden=(5,), timesteps=3, weight_bits=4)
    ids = np.random.default_rng(3).integers(0, 256, size=(4, model.context))
    onnx.save(to_onnx(model), root / "m.onnx")
    np.savez(root / "inputs.npz", input=ids)
    out = root / "build"
    code, stdout, stderr = rtl_gen("build", "--onnx", root / "m.onnx", "--inputs",
                                   root / "inputs.npz", "--out", out, "--rows", 2, "--cols", 3,
                                   "--samples", 4)
    assert code == 0, stdout + stderr
    return out


@pytest.mark.skipif(not OSU018.installed, reason=NO_TOOLS)
def test_asic_refuses_a_library_not_installed(small_build, monkeypatch):
    from rtl_gen.asic import asic
    from rtl_gen.errors import BuildError
    from rtl_gen.liberty import LIBRARIES as libs

    monkeypatch.setitem(libs, "osu018", libs["osu018"].__class__(
        "osu018", "qflow-tech-osu018", Path("/nonexistent/osu018.lib"), OSU018.models, 180))
    with pytest.raises(BuildError, match="not installed .*apt-get install"):
        asic(small_build, "osu018")


LONG = pytest.mark.skipif(os.environ.get("SPIKEFORGE_ASIC_LONG") != "1",
                          reason="tens of minutes of Icarus: set SPIKEFORGE_ASIC_LONG=1")


@pytest.mark.slow
@pytest.mark.skipif(not TOOLS, reason=NO_TOOLS)
@LONG
def test_asic_flow_on_a_small_build(small_build):
    """yosys -> OSU 0.18 um cells -> OpenSTA -> Icarus on the cell models: the netlist is
    bit-exact on a golden sample and every figure is positive and consistent."""
    code, stdout, stderr = rtl_gen("asic", small_build, "--lib", "osu018", "--samples", 1)
    assert code == 0, stdout + stderr
    assert "1/1 golden samples bit-exact" in stdout
    a = json.loads((small_build / "report.json").read_text())["asic"]["osu018"]
    area = a["area_um2"]
    assert area["total"] > area["accelerator"] > area["memories"] > 0
    assert area["total"] == pytest.approx(area["accelerator"] + area["harness"])
    assert a["flip_flops"] > 0 and a["cells"] == sum(a["cells_by_kind"].values())
    assert 0 < a["critical_path_ns"] and a["fmax_mhz"] > 50
    gate = a["gate_level"]
    assert gate["matched"] == gate["samples"] == 1 and gate["simulated_cycles"] > 500
    assert a["instances_without_activity"] == 0
    # the measured power lies between the idle (clock and leakage only) and full activity
    assert 0 < a["accelerator_power_mw"]
    assert a["idle_power_mw"] < sum(a["power_mw"].values())
    assert a["energy_per_inference_nj"] == pytest.approx(
        a["accelerator_power_mw"] * 1e-3 * gate["cycles_per_inference"] * a["clock_ns"], rel=1e-3)
    assert "## ASIC" in (small_build / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(not TOOLS, reason=NO_TOOLS)
@LONG
def test_gate_level_netlist_with_a_corrupted_cell_fails(small_build):
    """The gate-level check can fail: swap one NAND2 of the memories for an AND2 and the
    golden samples no longer match (this test reuses the netlist of the test above)."""
    from rtl_gen.asic import _gate_level
    from rtl_gen.errors import BuildError

    work = small_build / "asic" / "osu018"
    if not (work / "netlist.v").is_file():
        pytest.skip("needs the netlist of test_asic_flow_on_a_small_build")
    bad = small_build / "asic" / "bad"
    shutil.copytree(work, bad, dirs_exist_ok=True)
    text = (bad / "netlist.v").read_text()
    cells = parse_netlist(bad / "netlist.v", {"NAND2X1"})
    victim = next(c.name for c in cells if c.name.startswith("accelerator.c"))
    marker = f"NAND2X1 \\{victim} "
    assert marker in text
    (bad / "netlist.v").write_text(text.replace(marker, f"AND2X1 \\{victim} ", 1))
    try:
        result, _ = _gate_level(small_build, bad, OSU018, 1, "icarus")
    except BuildError:
        return  # the corrupted netlist did not even finish: also a failure
    assert result.matched < len(result.samples)


@pytest.mark.slow
@pytest.mark.skipif(not TOOLS, reason=NO_TOOLS)
def test_synthesis_and_timing_on_a_small_build(small_build, tmp_path):
    """yosys to OSU 0.18 um cells and OpenSTA on the small build's harness (a minute or two):
    the memories are measured apart, the path and the power reports are real."""
    from rtl_gen.asic import ACCELERATOR, run_asic_flow
    from rtl_gen.sta import parse_total_power

    top = json.loads((small_build / "report.json").read_text())["rtl"]
    shutil.copyfile(small_build / "rtl" / top["top_file"], tmp_path / "top.v")
    a = run_asic_flow(tmp_path, top["top_module"], OSU018, 10.0, ACCELERATOR,
                      progress=lambda _: None)
    area = a["area_um2"]
    assert area["total"] > area["accelerator"] > area["memories"] > 0
    assert area["total"] == pytest.approx(area["accelerator"] + area["harness"])
    assert a["cells"] == sum(a["cells_by_kind"].values()) and a["flip_flops"] > 100
    assert 0 < a["critical_path_ns"] < 10 and a["fmax_mhz"] > 100
    idle = parse_total_power((tmp_path / "power0.txt").read_text())
    busy = parse_total_power((tmp_path / "power1.txt").read_text())
    assert 0 < idle.total < busy.total and idle.switching == 0
    instances = parse_instance_power((tmp_path / "instances1.txt").read_text())
    assert len(instances) == a["cells"]
    assert {group_of(name) for name in instances} == {"harness", "accelerator", "memories"}
