"""The co-design explorer: spec checks, the Pareto front, a Dask run, its cache and a resume
after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtl_gen.errors import BuildError
from rtl_gen.explore import explore, load_spec, pareto_front, run_point

REPO = Path(__file__).resolve().parents[2]
SMALL = REPO / "checkpoints" / "spikelm-mlp-small.pt"


def _spec(tmp_path: Path, body: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(f'checkpoint = "{SMALL}"\n' + body)
    return path


@pytest.mark.parametrize(("body", "words"), [
    ("colour = 1\n", "unknown key"),
    ("[knobs]\nwidth = [1]\n", "unknown knob"),
    ("[knobs]\nrows = 2\n", "non-empty list"),
    ("[knobs]\nrows = [1.5]\n", "int values"),
    ('objectives = ["speed:min"]\n', "not a result column"),
    ('objectives = ["cycles_per_inference:fast"]\n', "column:min"),
    ('stages = ["build", "fly"]\n', "stages must be"),
    ("samples = 0\n", "samples must be"),
])
def test_bad_specs_say_what_to_change(tmp_path, body, words):
    with pytest.raises(BuildError, match=words):
        load_spec(_spec(tmp_path, body))


def test_a_missing_checkpoint_and_bad_toml_are_one_line(tmp_path):
    (tmp_path / "a.toml").write_text('checkpoint = "nope.pt"\n')
    with pytest.raises(BuildError, match="does not exist"):
        load_spec(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text("checkpoint = \n")
    with pytest.raises(BuildError, match="not valid TOML"):
        load_spec(tmp_path / "b.toml")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "rtl_gen", "explore", str(tmp_path / "a.toml"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          env=env, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "out").exists()


def test_the_grid_is_every_combination(tmp_path):
    spec = load_spec(_spec(tmp_path, '[knobs]\nrows = [1, 2]\ncols = [2, 4, 8]\n'
                                     'threshold_scale = ["1"]\n'))
    assert len(spec["points"]) == 6
    assert {(p["rows"], p["cols"]) for p in spec["points"]} == {
        (r, c) for r in (1, 2) for c in (2, 4, 8)}


def test_pareto_front_keeps_the_non_dominated():
    rows = [{"status": "ok", "a": 1, "b": 5}, {"status": "ok", "a": 2, "b": 2},
            {"status": "ok", "a": 3, "b": 3}, {"status": "ok", "a": 5, "b": 1},
            {"status": "failed", "a": 0, "b": 0}, {"status": "ok", "a": 2, "b": None}]
    front = pareto_front(rows, [("a", "min"), ("b", "min")])
    assert [(r["a"], r["b"]) for r in front] == [(1, 5), (2, 2), (5, 1)]
    front = pareto_front(rows, [("a", "max"), ("b", "min")])
    assert [(r["a"], r["b"]) for r in front] == [(5, 1)]


def test_a_failing_point_is_recorded_not_raised(tmp_path):
    row = run_point({"weights": "nowhere"}, ["build"], 4, str(SMALL), str(tmp_path / "p"))
    assert row["status"] == "failed" and "weights" in row["error"]
    assert json.loads((tmp_path / "p" / "result.json").read_text())["status"] == "failed"


def test_explore_runs_on_dask_caches_and_resumes_after_a_kill(tmp_path):
    spec = _spec(tmp_path, 'stages = ["build", "evaluate"]\nsamples = 4\neval_samples = 512\n'
                           'objectives = ["bits_per_byte:min", "pes:min"]\n'
                           '[knobs]\nrows = [1, 2]\ncols = [2, 4]\n'
                           'threshold_scale = ["1", "2"]\n')
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "rtl_gen", "explore", str(spec), "--out",
                             str(out), "--workers", "2"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(out.glob("points/*/result.json"))) < 2:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {p: p.stat().st_mtime_ns for p in out.glob("points/*/result.json")}
    assert 2 <= len(done) < 8, "the run must be killed midway"
    result = explore(spec, out, workers=2, progress=lambda *a: None)
    assert result["cached"] == len(done) and result["computed"] == 8 - len(done)
    assert all(p.stat().st_mtime_ns == t for p, t in done.items()), "recomputed a done point"
    assert result["failed"] == 0 and len(result["rows"]) == 8
    bits = {r["threshold_scale"]: r["bits_per_byte"] for r in result["rows"]}
    assert bits["1"] != bits["2"] and all(2.0 < b < 8.0 for b in bits.values())
    assert 1 <= len(result["front"]) < 8
    for name in ("results.csv", "results.md", "pareto.md", "pareto.png"):
        assert (out / name).stat().st_size > 0
    again = explore(spec, out, workers=2, progress=lambda *a: None)
    assert again["computed"] == 0 and again["rows"] == result["rows"]
