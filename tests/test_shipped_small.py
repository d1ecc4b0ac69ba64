"""The shipped small checkpoint fits the iCE40 UP5K and runs bit-exact on real held-out text."""

import json
import subprocess
import sys
from pathlib import Path

CKPT = Path(__file__).resolve().parent.parent / "checkpoints" / "spikelm-mlp-small.pt"


def rtl_gen(*args):
    proc = subprocess.run([sys.executable, "-m", "rtl_gen", *map(str, args)],
                          capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_small_checkpoint_fits_ice40_and_is_bit_exact(tmp_path):
    out = tmp_path / "small"
    code, text = rtl_gen("build", "--ckpt", CKPT, "--out", out, "--rows", 2, "--cols", 2,
                         "--target", "ice40-up5k", "--samples", 32)
    assert code == 0, text
    code, text = rtl_gen("sim", out)
    assert code == 0, text
    assert "32/32 samples matched" in text
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["layer_sizes"] == [32, 64, 256]
    assert report["cycles_per_inference"] >= report["ideal_cycles_per_inference"] > 0
