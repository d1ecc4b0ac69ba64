"""The explorer's training knobs (each recipe trained once, its checkpoint reused) and its
Optuna search (NSGA-II over the same points and cache: failures recorded, a killed study
resumed without recomputing, the same seed the same trials)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rtl_gen.errors import BuildError
from rtl_gen.explore import explore, load_spec

REPO = Path(__file__).resolve().parents[2]
SMALL = REPO / "checkpoints" / "spikelm-mlp-small.pt"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
QUIET = lambda *a: None  # noqa: E731
#: a recipe of the small MLP's shape that trains in a few seconds
TINY = ("[train]\nsteps = 20\nbatch = 32\nseed = 0\ncontext = 4\nembed = 8\nhidden = 32\n"
        "eval_samples = 256\n")


def _write(tmp_path: Path, body: str, checkpoint: bool = True) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text((f'checkpoint = "{SMALL}"\n' if checkpoint else "") + body)
    return path


@pytest.mark.parametrize(("body", "words"), [
    ('search = "random"\n', "search is one of"),
    ('search = "nsga2"\nobjectives = ["pes:min"]\n', "add trials = N"),
    ("trials = 4\n", "add search ="),
    ('search = "nsga2"\ntrials = 0\nobjectives = ["pes:min"]\n', "trials must be"),
    ('search = "nsga2"\ntrials = 4\npopulation = 1\nobjectives = ["pes:min"]\n',
     "population must"),
    ('search = "tpe"\ntrials = 4\nseed = -1\nobjectives = ["pes:min"]\n', "seed"),
    ('search = "nsga2"\ntrials = 4\n', "needs objectives"),
    ("[knobs]\nweight_bits = [2]\n", "training knob; add a \\[train\\]"),
    ("[train]\nsteps = 10\ncolour = 1\n", "unknown key 'colour'"),
    ("[train]\nbatch = 8\n", "add steps = N"),
    ('[train]\nsteps = "ten"\n', "steps takes a int"),
    ("[train]\nsteps = 10\nweight_bits = 4\n[knobs]\nweight_bits = [2]\n", "keep it in one"),
    ('[train]\nsteps = 10\narch = "transformer"\n[knobs]\nhidden = [4]\n', "not a setting"),
    ("[train]\nsteps = 10\n[knobs]\nweight_bits = [2, 3]\n", "weight bits must be one of"),
    ('[train]\nsteps = 10\n[knobs]\nneuron = ["lif"]\n', "invalid choice"),
])
def test_bad_search_and_train_specs_say_what_to_change(tmp_path, body, words):
    with pytest.raises(BuildError, match=words) as info:
        load_spec(_write(tmp_path, body))
    assert "\n" not in str(info.value)


def test_a_spec_needs_a_model_and_the_cli_refuses_in_one_line(tmp_path):
    with pytest.raises(BuildError, match="names no model"):
        load_spec(_write(tmp_path, "samples = 4\n", checkpoint=False))
    spec = _write(tmp_path, 'search = "nsga2"\nobjectives = ["pes:min"]\n')
    proc = subprocess.run([sys.executable, "-m", "rtl_gen", "explore", str(spec), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, env=ENV,
                          check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "trials" in proc.stderr and not (tmp_path / "out").exists()


def test_a_checkpoint_beside_a_recipe_is_one_more_model(tmp_path):
    spec = load_spec(_write(tmp_path, TINY + "[knobs]\nweight_bits = [2, 4]\nrows = [1, 2]\n"))
    assert spec["knobs"] == ["rows", "weight_bits", "model"]
    on_ckpt = [p for p in spec["points"] if p["model"] == "checkpoint"]
    trained = [p for p in spec["points"] if p["model"] == "trained"]
    assert sorted(p["rows"] for p in on_ckpt) == [1, 2]
    assert all("weight_bits" not in p for p in on_ckpt)
    assert sorted((p["rows"], p["weight_bits"]) for p in trained) == [(1, 2), (1, 4), (2, 2),
                                                                      (2, 4)]


def _mtimes(out: Path, pattern: str) -> dict:
    return {p: p.stat().st_mtime_ns for p in out.glob(pattern)}


def test_each_training_configuration_is_trained_once_and_reused(tmp_path):
    body = ('stages = ["build", "evaluate"]\nsamples = 2\neval_samples = 256\n'
            'objectives = ["bits_per_byte:min", "ideal_cycles_per_inference:min"]\n' + TINY)
    spec = _write(tmp_path, body + "[knobs]\nweight_bits = [2, 4]\nrows = [2]\ncols = [2]\n",
                  checkpoint=False)
    out = tmp_path / "out"
    lines = []
    result = explore(spec, out, workers=2, progress=lines.append)
    assert result["computed"] == 2 and result["failed"] == 0, result["rows"]
    assert sum(line.startswith("[training] weight_bits=") for line in lines) == 2, lines
    models = sorted((out / "models").iterdir())
    assert len(models) == 2
    bits = {}
    for folder in models:
        payload = torch.load(folder / "model.pt", weights_only=True)
        assert payload["metrics"]["options"]["steps"] == 20
        bits[payload["config"]["weight_bits"]] = folder
    assert sorted(bits) == [2, 4]
    by_bits = {r["weight_bits"]: r["bits_per_byte"] for r in result["rows"]}
    assert by_bits[2] != by_bits[4] and all(2.0 < b < 9.0 for b in by_bits.values())
    trained = _mtimes(out, "models/*/*")
    spec.write_text(body + "[knobs]\nweight_bits = [4]\nrows = [1, 2]\ncols = [2]\n")
    lines = []
    more = explore(spec, out, workers=2, progress=lines.append)
    assert more["computed"] == 1 and more["cached"] == 1 and more["failed"] == 0
    assert _mtimes(out, "models/*/*") == trained, "a configuration was trained again"
    assert not any(line.startswith("[training]") for line in lines), lines
    new = next(r for r in more["rows"] if r["rows"] == 1)
    assert new["bits_per_byte"] == by_bits[4], "the new point runs on the same checkpoint"


NSGA = ('stages = ["build"]\nsamples = 2\n'
        'objectives = ["ideal_cycles_per_inference:min", "estimated_brams:min"]\n'
        'search = "nsga2"\ntrials = 6\npopulation = 3\nseed = {seed}\n'
        '[knobs]\nrows = [1, 2, 4]\ncols = [2, 4]\nthreshold_scale = ["1", "2"]\n'
        'weights = ["auto", "nowhere"]\n')


def _study(out: Path) -> list[tuple[int, str, dict]]:
    import optuna

    storage = f"sqlite:///{out / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    return [(t.number, t.state.name, t.params) for t in study.trials]


def test_nsga2_records_failures_resumes_after_a_kill_and_repeats_with_its_seed(tmp_path):
    spec = _write(tmp_path, NSGA.format(seed=3))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "rtl_gen", "explore", str(spec), "--out",
                             str(out), "--workers", "2"], env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(out.glob("points/*/result.json"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _mtimes(out, "points/*/result.json")
    assert len(done) >= 2, "the run must be killed after some points"
    assert any(state == "RUNNING" for _, state, _ in _study(out)), "killed midway"
    result = explore(spec, out, workers=2, progress=QUIET)
    assert all(p.stat().st_mtime_ns == t for p, t in done.items()), "recomputed a done point"
    trials = _study(out)
    assert len(trials) == 6 and all(state in ("COMPLETE", "FAIL") for _, state, _ in trials)
    assert {state for _, state, p in trials if p["weights"] == "nowhere"} == {"FAIL"}
    assert {state for _, state, p in trials if p["weights"] == "auto"} == {"COMPLETE"}
    failed = [r for r in result["rows"] if r["weights"] == "nowhere"]
    assert failed and all(r["status"] == "failed" and "weights" in r["error"] for r in failed)
    assert 1 <= len(result["front"]) and all(r["weights"] == "auto" for r in result["front"])
    assert "nowhere" in (out / "results.md").read_text()
    for name in ("results.csv", "pareto.md", "pareto.png"):
        assert (out / name).stat().st_size > 0
    again = explore(spec, out, workers=2, progress=QUIET)
    assert again["computed"] == 0 and again["rows"] == result["rows"]
    assert len(_study(out)) == 6

    # the same seed asks the same points: a fresh study of the first generation on a copy of
    # the cache computes nothing and asks what the killed run asked first
    fresh = tmp_path / "fresh"
    shutil.copytree(out / "points", fresh / "points")
    spec = _write(tmp_path, NSGA.format(seed=3).replace("trials = 6", "trials = 3"))
    first = explore(spec, fresh, workers=2, progress=QUIET)
    assert first["computed"] == 0 and _study(fresh) == trials[:3]
