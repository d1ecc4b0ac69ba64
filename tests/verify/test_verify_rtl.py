"""Generated designs on the simulators: a corrupted weight bit, threshold or spike-table entry
fails the bit-exact check; Icarus agrees with Verilator; two builds of one input are
byte-identical. (Random stalls on Verilator: tests/verify/test_verify_fuzz.py.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from amaranth.back import verilog

from contract import IntModel, forward
from contract.onnx_io import to_onnx
from contract.random_model import random_model
from hw import InferenceHarness, layout
from rtl_gen.frontend import load_graph
from rtl_gen.passes import FuseLinear, run_pipeline
from rtl_gen.plan_program import program_params

ROWS, COLS, SAMPLES = 2, 3, 8
MODEL = dict(seed=3, context=2, embed_dim=3, hidden=(5,), timesteps=3, weight_bits=4)


def rtl_gen(*args, env=None, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "rtl_gen", *map(str, args)],
                          capture_output=True, text=True, check=False, env=env, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def save_inputs(root: Path, model, ids: np.ndarray):
    """``root/m.onnx`` and ``root/inputs.npz``, what :func:`build` reads."""
    onnx.save(to_onnx(model), root / "m.onnx")
    np.savez(root / "inputs.npz", input=ids)
    return model, ids


def make_inputs(root: Path) -> tuple[IntModel, np.ndarray]:
    """A model with 5 hidden neurons on a 2 x 3 array (6 divides neither 5 nor 256)."""
    model = random_model(MODEL["seed"], **{k: v for k, v in MODEL.items() if k != "seed"})
    ids = np.random.default_rng(3).integers(0, 256, size=(SAMPLES, model.context))
    return save_inputs(root, model, ids)


def program_of(out: Path):
    """The layer program of a build (its ``model.onnx``, as the build planned it)."""
    graph = run_pipeline(load_graph(out / "model.onnx"), [FuseLinear()])
    return program_params(graph, ROWS, COLS)[0]


def build(root: Path, out: Path, *flags, rows=ROWS, cols=COLS, samples=SAMPLES) -> Path:
    """``rtl_gen build`` of :func:`save_inputs`' files (``samples`` None: every input)."""
    sampling = () if samples is None else ("--samples", samples)
    code, stdout, stderr = rtl_gen("build", "--onnx", root / "m.onnx", "--inputs",
                                   root / "inputs.npz", "--out", out, "--rows", rows,
                                   "--cols", cols, *sampling, *flags)
    assert code == 0, stdout + stderr
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtl")
    model, ids = make_inputs(root)
    return model, ids, build(root, root / "build")


def samples_of(build_dir: Path, simulator: str = "verilator") -> list:
    return json.loads((build_dir / f"sim_build_{simulator}" / "results.json").read_text())[
        "samples"]


# ---- tamper: one corrupted bit of the generated design must fail the check ----------------

_INIT = re.compile(r"^\s*(\\?[\w$]+)\s?\[(\d+)\] = (\d+)'([hd])([0-9a-f]+);$")


def memory_inits(text: str) -> list[dict[int, tuple[int, int]]]:
    """Every memory initialiser of a Verilog file: ``{address: (line number, value)}``."""
    blocks, current = [], None
    for number, line in enumerate(text.splitlines()):
        if line.strip() == "initial begin":
            current = {}
            blocks.append(current)
        elif (match := _INIT.match(line)) and current is not None:
            current[int(match[2])] = (number, int(match[5], 16 if match[4] == "h" else 10))
        elif line.strip() == "end":
            current = None
    return blocks


def set_memory_word(text: str, image: list[int], address: int, value: int) -> str:
    """``text`` with word ``address`` of the memory initialised to ``image`` replaced; a bank
    split into block-RAM-sized pieces (:class:`hw.bank.RegisteredBank`) is found by the piece
    that holds the word: a memory holding a run of ``image`` that starts at a multiple of its
    own depth, or that ends with ``image``."""
    image = [int(w) for w in image]
    found = []
    for block in memory_inits(text):
        words = [block[a][1] for a in sorted(block)]
        size = len(words)
        if not size or size > len(image):
            continue
        start = address - address % size
        for base in {start, len(image) - size}:
            if base <= address < base + size and image[base:base + size] == words:
                found.append((block, base))
    assert len(found) == 1, f"{len(found)} memories hold this word of the image"
    block, base = found[0]
    lines = text.splitlines(keepends=True)
    number, old = block[address - base]
    match = _INIT.match(lines[number].rstrip("\n"))
    radix, digits = match[4], match[5]
    assert int(digits, 16 if radix == "h" else 10) == old != value
    text = f"{value:0{len(digits)}x}" if radix == "h" else str(value)
    lines[number] = lines[number].replace(f"'{radix}{digits};", f"'{radix}{text};")
    return "".join(lines)


def tampered_copy(out: Path, dest: Path, text: str) -> Path:
    shutil.copytree(out, dest, ignore=shutil.ignore_patterns("sim_build_*"))
    (dest / "rtl" / "spikeforge_top.v").write_text(text)
    return dest


def assert_sim_fails(build_dir: Path):
    code, stdout, stderr = rtl_gen("sim", build_dir, "--samples", 4)
    assert code == 1, stdout + stderr
    assert "differ from the reference" in stderr


@pytest.mark.slow
def test_one_flipped_weight_bit_fails(built, tmp_path):
    """Bit 0 of one readout weight, flipped in the Verilog memory initialiser."""
    model, ids, out = built
    params = program_of(out)
    trace = forward(model, ids[:1], trace=True)
    j = int(np.argmax(trace.logits[0]))
    drive = trace.spikes[-1][0].sum(axis=0)  # net spikes of each readout input over time
    i = int(np.flatnonzero(drive)[0])  # so that a change of the weight moves logit j
    tile, row, col = j // params.pes, (j % params.pes) // COLS, j % COLS
    address = layout.weight_address(params, len(params.layers) - 1, tile, i)
    image = layout.weight_bank_images(params)[row]
    text = (out / "rtl" / "spikeforge_top.v").read_text()
    bit = col * params.weight_bits
    corrupted = set_memory_word(text, image, address, int(image[address]) ^ (1 << bit))
    assert_sim_fails(tampered_copy(out, tmp_path / "t", corrupted))


@pytest.mark.slow
def test_one_spike_table_entry_fails(built, tmp_path):
    """One lane of one spike-table word (a byte of the first sample), in the Verilog."""
    model, ids, out = built
    params = program_of(out)
    token = int(ids[0, 0])
    expected = forward(model, ids[:1])
    for t in range(model.timesteps):
        for e in range(model.embed_dim):
            for spike in (-1, 0, 1):
                table = model.spike_table.copy()
                table[token, t, e] = spike
                if not np.array_equal(forward(replace(model, spike_table=table), ids[:1]),
                                      expected):
                    break
            else:
                continue
            break
        else:
            continue
        break
    else:
        pytest.fail("no single spike-table entry changes sample 0")
    address = token << params.table_row_bits | t
    image = layout.spike_table_image(params)
    code = {0: 0b00, 1: 0b01, -1: 0b11}[spike]
    word = (int(image[address]) & ~(0b11 << (2 * e))) | (code << (2 * e))
    text = (out / "rtl" / "spikeforge_top.v").read_text()
    corrupted = set_memory_word(text, image, address, word)
    assert_sim_fails(tampered_copy(out, tmp_path / "t", corrupted))


@pytest.mark.slow
def test_one_threshold_off_by_one_fails(built, tmp_path):
    """The hidden threshold ±1 (every width unchanged), regenerated by the same generator."""
    model, ids, out = built
    params = program_of(out)
    layer = params.layers[0]
    threshold = int(model.layers[0].threshold)
    for theta in (threshold + 1, threshold - 1):
        other = replace(model, layers=(replace(model.layers[0], threshold=theta),))
        if theta >= 1 and not np.array_equal(forward(other, ids[:4]), forward(model, ids[:4])):
            break
    else:
        pytest.fail("a threshold off by one changes none of the first samples")
    tampered = replace(params, layers=(replace(layer, threshold=np.full_like(layer.threshold,
                                                                          theta)),
                                       *params.layers[1:]))
    assert tampered.membrane_bits == params.membrane_bits
    harness = InferenceHarness(tampered, window=params.context)
    text = verilog.convert(harness, name="spikeforge_top", emit_src=False)
    assert_sim_fails(tampered_copy(out, tmp_path / "t", text))


def test_stall_seed_out_of_range_is_one_line(built, tmp_path):
    root = built[2].parent
    code, _, stderr = rtl_gen("build", "--onnx", root / "m.onnx", "--out", tmp_path / "o",
                              "--stall-seed", 70000)
    assert code == 2 and stderr.strip() == (
        "error: --stall-seed must lie in 0..65535, not 70000")
    assert not (tmp_path / "o").exists()


# ---- a second simulator ------------------------------------------------------------------

NO_ICARUS = "Icarus Verilog is not installed (not on PyPI; apt-get install iverilog)"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("iverilog") is None, reason=NO_ICARUS)
def test_icarus_agrees_with_verilator(built):
    """The same testbench on both simulators: identical logits, next bytes, spike counters and
    cycle counts, the first inference after reset included (see sim.runner.icarus_source)."""
    _, _, out = built
    both = {}
    for simulator in ("verilator", "icarus"):
        code, stdout, stderr = rtl_gen("sim", out, "--samples", 4, "--simulator", simulator)
        assert code == 0, stdout + stderr
        assert "4/4 samples matched" in stdout
        both[simulator] = samples_of(out, simulator)
    assert both["icarus"] == both["verilator"]


def test_icarus_missing_is_one_line(built):
    _, _, out = built
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if not (Path(d) / "iverilog").exists())
    code, _, stderr = rtl_gen("sim", out, "--simulator", "icarus",
                              env={**os.environ, "PATH": path})
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert "apt-get install iverilog" in stderr and "Traceback" not in stderr


# ---- determinism -------------------------------------------------------------------------

def assert_builds_identical(first: Path, second: Path):
    """Two builds of one input: the same files, byte for byte, and the same report but for
    its name and timings."""
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert {"model.onnx", "golden.npz", "plan.json"} <= {str(f) for f in files}
    assert any(f.suffix == ".v" for f in files) and any(f.suffix == ".hex" for f in files)
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in files:
        if name.name != "report.json" and name.name != "report.md":
            assert (first / name).read_bytes() == (second / name).read_bytes(), name
    reports = [json.loads((d / "report.json").read_text()) for d in (first, second)]
    for report in reports:
        del report["timings"], report["name"]
    assert reports[0] == reports[1]


def test_two_builds_are_byte_identical(tmp_path):
    make_inputs(tmp_path)
    assert_builds_identical(build(tmp_path, tmp_path / "a"), build(tmp_path, tmp_path / "b"))
