"""Bring your own model: the README's section of that name runs as written.

The Python block and the shell commands are read from README.md, so the documentation and
this test cannot drift apart: the composed model trains, saves, reloads, and builds into an
accelerator that Verilator runs bit-exact against the integer reference.
"""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def section() -> str:
    """The README's "Bring your own model" section, up to the next section."""
    text = README.read_text()
    start = text.index("## Bring your own model\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end + 1]


def blocks(language: str) -> list[str]:
    """The fenced code blocks of ``language`` in the section, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", section(), re.S | re.M)


def run(args: list[str], cwd: Path) -> tuple[int, str]:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_snippet_has_its_parts():
    text = section()
    assert text.startswith("## Bring your own model\n")
    (code,) = blocks("python")
    assert "SpikingNet(" in code and "train_model(" in code and "save_checkpoint(" in code
    (commands,) = blocks("sh")
    assert [line.split()[:4] for line in commands.splitlines()] == [
        ["python", "-m", "rtl_gen", "build"], ["python", "-m", "rtl_gen", "sim"]]


@pytest.mark.slow
def test_bring_your_own_model_builds_and_simulates_bit_exact(tmp_path):
    (code,) = blocks("python")
    status, text = run([sys.executable, "-c", code], tmp_path)
    assert status == 0, text
    assert re.search(r"\d+\.\d{3} bits/byte held-out", text), text

    from model.checkpoint import load_checkpoint
    from model.net import NetConfig

    net, _ = load_checkpoint(tmp_path / "my.pt", kind="spiking")
    assert isinstance(net.config, NetConfig) and net.context == 6
    assert [type(b).__name__ for b in net.blocks] == [
        "SpikeEmbed", "SpikingLinear", "SpikingLinear", "Readout"]

    (commands,) = blocks("sh")
    outputs = []
    for line in commands.strip().splitlines():
        args = shlex.split(line)
        assert args[0] == "python"
        status, text = run([sys.executable, *args[1:]], tmp_path)
        assert status == 0, f"{line}\n{text}"
        outputs.append(text)
    samples = int(re.search(r"--samples (\d+)", commands).group(1))
    assert f"{samples}/{samples} samples matched the integer reference bit for bit" in outputs[-1]

    build = tmp_path / "build" / "my"
    report = json.loads((build / "report.json").read_text())
    assert report["model"]["layer_sizes"] == [48, 48, 24, 256]
    assert report["model"]["weight_bits"] == 4 and report["model"]["timesteps"] == 3
    assert report["sim"]["matched"] == report["sim"]["samples"] == samples
    rates = list(report["hardware_firing_rates"].values())
    assert all(0.02 < r < 0.98 for r in rates), rates
