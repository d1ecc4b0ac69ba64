"""Boards: ``rtl_gen synth --board``, ``rtl_gen run`` (the host over the simulated board top,
UART included, in Verilator) and ``rtl_gen program``, and their one-line errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from test_rtl_gen_cli import assert_one_line_error as one_line_error

from contract.graph import generate as reference_generate
from contract.onnx_io import to_onnx
from contract.random_model import random_graph, random_model
from rtl_gen.boards import build_identity
from rtl_gen.frontend import load_graph

CKPT = Path(__file__).resolve().parents[2] / "checkpoints" / "spikelm-mlp-small.pt"


def rtl_gen(*args):
    proc = subprocess.run([sys.executable, "-m", "rtl_gen", *map(str, args)],
                          capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(code, stdout, stderr, *fragments):
    """The CLI's one-line error, and nothing on stdout that looks like a result."""
    one_line_error(code, stderr, *fragments)
    assert "equal the reference" not in stdout and "bytes), build" not in stdout


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The shipped small MLP on a 2 x 2 array for the iCE40 UP5K (the iCEBreaker's part)."""
    out = tmp_path_factory.mktemp("boards") / "small"
    code, stdout, stderr = rtl_gen("build", "--ckpt", CKPT, "--out", out, "--rows", 2,
                                   "--cols", 2, "--target", "ice40-up5k", "--samples", 4)
    assert code == 0, stdout + stderr
    return out


@pytest.fixture(scope="module")
def tiny_ecp5(tmp_path_factory):
    """A random MLP planned for the ECP5-85k (the default target)."""
    folder = tmp_path_factory.mktemp("boards_ecp5")
    onnx.save(to_onnx(random_model(0, hidden=(5,))), folder / "m.onnx")
    code, stdout, stderr = rtl_gen("build", "--onnx", folder / "m.onnx", "--out",
                                   folder / "b", "--rows", 1, "--cols", 2, "--samples", 2)
    assert code == 0, stdout + stderr
    return folder / "b"


def test_run_sim_generates_what_the_reference_does(small):
    """Host -> UART -> RTL -> UART -> host in Verilator: every byte equal to the contract's
    greedy generation, every inference's spike counters equal to the reference's."""
    code, stdout, stderr = rtl_gen("run", small, "--sim", "--prompt", "def ", "--prompt",
                                   "import ", "--tokens", 3)
    assert code == 0, stdout + stderr
    assert "2/2 generations equal the reference byte for byte" in stdout
    run = json.loads((small / "report.json").read_text())["board_run"]
    graph = load_graph(small / "model.onnx")
    for prompt, text in zip([b"def ", b"import "], run["texts"], strict=True):
        expected = reference_generate(graph, [0] * graph.context + list(prompt), 3)
        assert text.encode() == bytes(expected)
    assert run["inferences"] == run["counters_matched"] == 6
    report = json.loads((small / "report.json").read_text())
    assert run["cycles_per_inference"] >= report["ideal_cycles_per_inference"] > 0
    assert run["build_id"] == f"{build_identity(small):08x}"


@pytest.mark.slow
def test_run_sim_on_a_stream_build(tmp_path):
    """A build checked on streams (attention, a byte per inference, the caches carried), its
    logits brought back over the UART too and checked."""
    graph = random_graph(4, width=8, window=3, timesteps=2, blocks=((True, 8),))
    onnx.save(to_onnx(graph), tmp_path / "t.onnx")
    code, stdout, stderr = rtl_gen("build", "--onnx", tmp_path / "t.onnx", "--out",
                                   tmp_path / "t", "--rows", 2, "--cols", 4, "--samples", 1)
    assert code == 0, stdout + stderr
    code, stdout, stderr = rtl_gen("run", tmp_path / "t", "--sim", "--prompt", "ab",
                                   "--tokens", 4, "--logits")
    assert code == 0, stdout + stderr
    assert "1/1 generations equal the reference byte for byte" in stdout
    assert "8/8 inferences' spike counters and 8/8 their logits equal" in stdout
    run = json.loads((tmp_path / "t" / "report.json").read_text())["board_run"]
    assert run["inferences"] == run["counters_matched"] == run["logits_matched"] == 3 + 2 + 3


def test_icebreaker_bitstream(small):
    code, stdout, stderr = rtl_gen("synth", small, "--board", "icebreaker")
    assert code == 0, stdout + stderr
    board = json.loads((small / "report.json").read_text())["boards"]["icebreaker"]
    bitstream = small / board["bitstream"]
    assert bitstream.suffix == ".bin" and bitstream.stat().st_size == board["bitstream_bytes"]
    assert bytes.fromhex("7eaa997e") in bitstream.read_bytes()[:64]  # iCE40 sync word
    assert 0 < board["luts"] <= 5280 and board["brams"] <= 30
    assert board["clock_mhz"] == 12.0 and board["fmax_mhz"] >= 12.0 and board["meets_clock"]
    assert board["build_id"] == f"{build_identity(small):08x}"
    assert "## Boards" in (small / "report.md").read_text()


@pytest.mark.slow
def test_ulx3s_bitstream(tiny_ecp5, tmp_path):
    build = tmp_path / "b"  # a copy: the bad-input tests need the shared build without boards
    shutil.copytree(tiny_ecp5, build)
    code, stdout, stderr = rtl_gen("synth", build, "--board", "ulx3s-85f")
    assert code == 0, stdout + stderr
    board = json.loads((build / "report.json").read_text())["boards"]["ulx3s-85f"]
    bitstream = build / board["bitstream"]
    assert bitstream.suffix == ".bit" and b"LFE5U-85F" in bitstream.read_bytes()[:200]
    assert board["clock_mhz"] == 25.0 and board["fmax_mhz"] >= 25.0


def test_unknown_board(small):
    code, stdout, stderr = rtl_gen("synth", small, "--board", "de10-nano")
    assert_one_line_error(code, stdout, stderr, "unknown board 'de10-nano'", "icebreaker")


def test_board_and_target_together(small):
    code, stdout, stderr = rtl_gen("synth", small, "--board", "icebreaker", "--target",
                                   "ice40-up5k")
    assert_one_line_error(code, stdout, stderr, "not allowed with")


def test_build_that_does_not_fit_the_board(tiny_ecp5):
    code, stdout, stderr = rtl_gen("synth", tiny_ecp5, "--board", "icebreaker")
    assert_one_line_error(code, stdout, stderr, "planned for ecp5-85k",
                          "rebuild with --target ice40-up5k")
    assert not (tiny_ecp5 / "board").exists()


def test_missing_port(small):
    code, stdout, stderr = rtl_gen("run", small, "--port", "/dev/no-such-spikeforge-port",
                                   "--prompt", "a", "--tokens", 1)
    assert_one_line_error(code, stdout, stderr, "cannot open /dev/no-such-spikeforge-port")


def test_run_needs_a_port_or_sim(small):
    code, stdout, stderr = rtl_gen("run", small, "--prompt", "a")
    assert_one_line_error(code, stdout, stderr, "--port", "--sim")


def test_run_on_a_folder_that_is_not_a_build(tmp_path):
    code, stdout, stderr = rtl_gen("run", tmp_path, "--sim", "--prompt", "a")
    assert_one_line_error(code, stdout, stderr, "not a SpikeForge build")


def test_program_without_a_bitstream(tiny_ecp5):
    code, stdout, stderr = rtl_gen("program", tiny_ecp5, "--board", "ulx3s-85f")
    assert_one_line_error(code, stdout, stderr, "no ulx3s-85f bitstream",
                          "synth", "--board ulx3s-85f")


@pytest.mark.skipif(shutil.which("openFPGALoader") is not None,
                    reason="openFPGALoader is installed: it would try to program a board")
def test_program_without_openfpgaloader(small):
    """After test_icebreaker_bitstream has written the bitstream (or it is written here)."""
    if "icebreaker" not in json.loads((small / "report.json").read_text()).get("boards", {}):
        code, stdout, stderr = rtl_gen("synth", small, "--board", "icebreaker")
        assert code == 0, stdout + stderr
    code, stdout, stderr = rtl_gen("program", small, "--board", "icebreaker")
    assert_one_line_error(code, stdout, stderr, "openFPGALoader is not installed")
