"""The co-design explorer: a grid of build knobs, each point built, checked and measured by the
toolkit's own commands, on a Dask cluster, with a Pareto front over the objectives a spec names.

``python -m rtl_gen explore SPEC --out DIR [--workers N] [--scheduler ADDRESS]``

``SPEC`` is a TOML file::

    checkpoint = "../checkpoints/spikelm-mlp-small.pt"  # relative to the spec
    stages = ["build", "evaluate", "sim"]  # build always; the others add their figures
    samples = 16                       # golden samples (transformer: streams) per point
    eval_samples = 4096                # held-out positions for evaluate
    objectives = ["bits_per_byte:min", "cycles_per_inference:min"]

    [knobs]                            # every combination is a point
    rows = [1, 2]
    cols = [2, 4]
    threshold_scale = ["1", "3/2"]

Knobs: ``rows``, ``cols``, ``target``, ``dense``, ``threshold_scale``, ``weights`` (the flags of
``rtl_gen build``), ``lib`` and ``clock_ns`` (of ``rtl_gen asic``) and ``seed`` (nextpnr's,
for ``synth``). A point runs ``build`` (:func:`rtl_gen.build.build`), then the stages asked:
``evaluate`` (the integer model as the point compiles it, thresholds scaled, on held-out text:
bits per byte, or an encoder's accuracy; :func:`model.metrics.heldout`), ``sim`` (Verilator,
bit-exact or the point fails; cycles and firing rates), ``synth`` (yosys and nextpnr on the
point's target: LUTs, FFs, block RAMs, Fmax, tokens per second) and ``asic`` (OSU cells: area,
Fmax, energy). A point that fails is recorded with its one-line error; it never stops the
run.

Instead of (or beside) ``checkpoint``, a spec may give a ``[train]`` recipe (the flags of
``python -m model.train``: ``steps``, ``batch``, ``seed``, ...); then the training knobs
``weight_bits``, ``timesteps``, ``neuron``, ``context``, ``hidden`` and ``d_model`` may be listed
under ``[knobs]`` too. Each distinct training configuration is trained once, as a Dask task
that the points on it wait for, and cached in ``DIR/models/<key>/`` (:mod:`.explore_train`).
With both, every hardware point runs on the checkpoint as well (a ``model`` column:
``checkpoint`` or ``trained``).

``search = "nsga2"`` (or ``"tpe"``) with ``trials = N`` searches the same knob space with an
Optuna study instead of running the whole grid (:mod:`.explore_search`): ``population`` trials
at a time (default 8), the sampler seeded by ``seed`` (default 0), the objectives the study's
directions, its storage ``DIR/optuna.db``; every trial is a point of the same cache.

Each point is one task on a ``dask.distributed`` cluster: a ``LocalCluster`` of ``--workers``
processes by default, or the running scheduler at ``--scheduler tcp://host:8786`` (whose workers
must see the same files). Results are cached in ``DIR/points/<key>/result.json``, the key a
hash of the point, the stages, the samples and the checkpoint's bytes, so an interrupted or
repeated run recomputes nothing already done. ``DIR`` gets ``results.csv`` and ``results.md``
(every point), ``pareto.md`` (the non-dominated points over ``objectives``, each ``column:min``
or ``column:max``) and ``pareto.png`` (the first two objectives, the front joined).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import time
import tomllib
from pathlib import Path

from .errors import BuildError, SpikeForgeError
from .explore_train import TRAIN_KNOBS, check_recipe, recipe_key, recipe_of

__all__ = ["KNOBS", "SEARCHES", "STAGES", "explore", "load_spec", "pareto_front", "point_key",
           "run_point"]

#: knob -> the type its values must have (the training knobs need a [train] recipe)
KNOBS = {"rows": int, "cols": int, "target": str, "dense": bool, "threshold_scale": str,
         "weights": str, "lib": str, "clock_ns": float, "seed": int, **TRAIN_KNOBS}
STAGES = ("build", "evaluate", "sim", "synth", "asic")
SEARCHES = ("grid", "nsga2", "tpe")
_SPEC_KEYS = {"checkpoint", "train", "stages", "samples", "eval_samples", "objectives", "knobs",
              "search", "trials", "population", "seed"}
#: columns of the results table, in order (knobs first)
COLUMNS = ("status", "trial", "bits_per_byte", "accuracy", "bit_exact", "cycles_per_inference",
           "ideal_cycles_per_inference", "cycles_over_ideal", "firing_rate", "pes",
           "estimated_brams", "luts", "ffs", "brams",
           "fmax_mhz", "slow_inputs", "tokens_per_second", "asic_area_mm2", "asic_fmax_mhz",
           "energy_per_inference_nj", "train_seconds", "seconds", "error")


def _fail(message: str):
    raise BuildError(message)


def load_spec(path: Path) -> dict:
    """Read and check a spec; returns it with the checkpoint as an absolute path (or None),
    the ``[train]`` recipe (or None), ``space`` (knob -> its values) and, for a grid,
    ``points`` (a list of knob dicts)."""
    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text())
    except OSError as exc:
        _fail(f"cannot read the spec {path}: {exc.strerror}")
    except tomllib.TOMLDecodeError as exc:
        _fail(f"the spec {path} is not valid TOML ({exc}); fix it")
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        _fail(f"the spec {path} has unknown key(s) {', '.join(unknown)}; use"
              f" {', '.join(sorted(_SPEC_KEYS))}")
    if "checkpoint" not in spec and "train" not in spec:
        _fail(f"the spec {path} names no model; add checkpoint = \"model.pt\" or a [train]"
              " recipe (steps = N)")
    ckpt = None
    if "checkpoint" in spec:
        ckpt = (path.parent / spec["checkpoint"]).resolve()
        if not ckpt.is_file():
            _fail(f"the spec's checkpoint {ckpt} does not exist; give a path relative to the"
                  " spec")
    stages = spec.get("stages", ["build", "sim"])
    if not isinstance(stages, list) or any(s not in STAGES for s in stages):
        _fail(f"stages must be a list of {', '.join(STAGES)}, not {stages!r}")
    stages = [s for s in STAGES if s in stages or s == "build"]
    samples = spec.get("samples", 16)
    eval_samples = spec.get("eval_samples", 4096)
    for name, value in (("samples", samples), ("eval_samples", eval_samples)):
        if not _positive(value):
            _fail(f"{name} must be a positive integer, not {value!r}")
    knobs = spec.get("knobs", {})
    if not isinstance(knobs, dict):
        _fail("[knobs] must be a table of lists")
    for name, values in knobs.items():
        if name not in KNOBS:
            _fail(f"unknown knob {name!r}; use {', '.join(KNOBS)}")
        if not isinstance(values, list) or not values:
            _fail(f"knob {name} must be a non-empty list, not {values!r}")
        kind = KNOBS[name]
        for v in values:
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool) if kind is float
                  else isinstance(v, kind) and (kind is bool or not isinstance(v, bool)))
            if not ok:
                _fail(f"knob {name} takes {kind.__name__} values, not {v!r}")
        if name in TRAIN_KNOBS and "train" not in spec:
            _fail(f"knob {name} is a training knob; add a [train] recipe (steps = N) or drop"
                  " it")
    train = None
    if "train" in spec:
        from .explore_train import validate

        train = check_recipe(spec["train"], knobs)
        validate(train, knobs)
    space = {n: knobs[n] for n in sorted(knobs)}
    if ckpt is not None and train is not None:
        space["model"] = ["checkpoint", "trained"]
    objectives = [_objective(o) for o in spec.get("objectives", [])]
    result = {"checkpoint": ckpt, "train": train, "stages": stages, "samples": samples,
              "eval_samples": eval_samples, "knobs": list(space), "space": space,
              "objectives": objectives, **_search(spec)}
    if result["search"] != "grid" and not objectives:
        _fail(f"search = \"{result['search']}\" needs objectives (\"column:min\" or"
              " \"column:max\") to search for")
    if result["search"] == "grid":
        names = list(space)
        points = [dict(zip(names, combo, strict=True))
                  for combo in itertools.product(*(space[n] for n in names))]
        result["points"] = list({json.dumps(p, sort_keys=True): p
                                 for p in map(plain_point, points)}.values())
    return result


def _positive(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _search(spec: dict) -> dict:
    """The ``search``, ``trials``, ``population`` and ``seed`` of a spec, checked."""
    search = spec.get("search", "grid")
    if search not in SEARCHES:
        _fail(f"search is one of {', '.join(SEARCHES)}, not {search!r}")
    given = [k for k in ("trials", "population", "seed") if k in spec]
    if search == "grid":
        if given:
            _fail(f"{', '.join(given)} are for a search; add search = \"nsga2\" (or \"tpe\")"
                  " or drop them")
        return {"search": "grid"}
    if "trials" not in spec:
        _fail(f"search = \"{search}\" needs a trial budget; add trials = N")
    trials, population, seed = spec["trials"], spec.get("population", 8), spec.get("seed", 0)
    if not _positive(trials):
        _fail(f"trials must be a positive integer, not {trials!r}")
    if not _positive(population) or population < 2:
        _fail(f"population must be an integer of at least 2, not {population!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        _fail(f"seed (the sampler's) must be a non-negative integer, not {seed!r}")
    return {"search": search, "trials": trials, "population": population, "seed": seed}


def plain_point(point: dict) -> dict:
    """A point as it is cached: a point on the checkpoint carries no training knobs."""
    if point.get("model") == "checkpoint":
        return {k: v for k, v in point.items() if k not in TRAIN_KNOBS}
    return point


def source(point: dict, spec: dict) -> dict | None:
    """The training recipe that ``point`` runs on, or None (the spec's checkpoint)."""
    if spec["train"] is None or point.get("model") == "checkpoint":
        return None
    return recipe_of(point, spec["train"])


def key_of(point: dict, spec: dict, ckpt_hash: str | None) -> str:
    """The cache key of ``point`` in ``spec``: its model is the checkpoint's bytes or its
    training recipe."""
    recipe = source(point, spec)
    model = ckpt_hash if recipe is None else f"train:{recipe_key(recipe)}"
    return point_key(point, spec["stages"], spec["samples"], model, spec["eval_samples"])


def _objective(text) -> tuple[str, str]:
    if not isinstance(text, str) or text.count(":") != 1:
        _fail(f"an objective is 'column:min' or 'column:max', not {text!r}")
    column, sense = text.split(":")
    if sense not in ("min", "max"):
        _fail(f"an objective is 'column:min' or 'column:max', not {text!r}")
    if column not in COLUMNS and column not in KNOBS:
        _fail(f"objective {column!r} is not a result column; use one of"
              f" {', '.join(c for c in COLUMNS if c not in ('status', 'error'))}")
    return column, sense


def _file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def point_key(point: dict, stages, samples: int, ckpt_hash: str, eval_samples: int) -> str:
    """The cache key of a point: a hash of everything its result depends on."""
    text = json.dumps({"point": point, "stages": list(stages), "samples": samples,
                       "eval_samples": eval_samples, "checkpoint": ckpt_hash}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _evaluate(point: dict, ckpt: Path, samples: int) -> dict:
    """Held-out bits per byte (an encoder: accuracy) of the integer model as the point builds
    it (thresholds scaled by its ``threshold_scale``)."""
    from model.checkpoint import load_checkpoint
    from model.metrics import heldout

    from .passes import ScaleThresholds

    model, _ = load_checkpoint(ckpt, kind="spiking")
    graph = model.to_graph()
    if point.get("threshold_scale") is not None:
        graph = ScaleThresholds(point["threshold_scale"]).run(graph)
    result = heldout(model, samples, graph=graph)
    return {k: result[k] for k in ("bits_per_byte", "accuracy") if k in result}


def run_point(point: dict, stages, samples: int, ckpt: str, folder: str,
              eval_samples: int = 4096, extra: dict | None = None) -> dict:
    """Build, check and measure one point in ``folder``; returns its row (never raises for a
    point that fails: ``status`` is ``failed`` and ``error`` says why), ``extra``'s columns
    added. Writes ``folder/result.json`` when done."""
    from .build import BuildConfig, build
    from .report import load_report

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "build"
    start = time.monotonic()
    row: dict = {**point, **(extra or {})}
    quiet = lambda *a, **k: None  # noqa: E731
    try:
        build(BuildConfig(out=out, ckpt=Path(ckpt), rows=point.get("rows", 8),
                          cols=point.get("cols", 8), target=point.get("target", "ecp5-85k"),
                          dense=point.get("dense", False),
                          threshold_scale=point.get("threshold_scale"), samples=samples,
                          weights=point.get("weights", "auto"), force=True), progress=quiet)
        report = load_report(out)
        row["pes"] = report["array"]["rows"] * report["array"]["cols"]
        row["ideal_cycles_per_inference"] = report["ideal_cycles_per_inference"]
        row["estimated_brams"] = report.get("estimated_brams")
        if "evaluate" in stages:
            row.update(_evaluate(point, Path(ckpt), eval_samples))
        if "sim" in stages:
            from .simulate import simulate

            r = simulate(out, samples, progress=quiet)
            sim = r["sim"]
            row["bit_exact"] = f"{sim['matched']}/{sim['samples']}"
            row["cycles_per_inference"] = r["cycles_per_inference"]
            row["cycles_over_ideal"] = r["cycles_per_inference"] / r["ideal_cycles_per_inference"]
            rates = list(r["hardware_firing_rates"].values())
            row["firing_rate"] = sum(rates) / len(rates) if rates else None
        if "synth" in stages:
            from .synth import synthesize

            s = synthesize(out, point.get("target", "ecp5-85k"), seed=point.get("seed", 1),
                           progress=quiet)
            row.update(luts=s["luts"], ffs=s["ffs"], brams=s["brams"], fmax_mhz=s["fmax_mhz"],
                       slow_inputs=(s.get("slow_registers") or {}).get("over"))
            if row.get("cycles_per_inference"):
                row["tokens_per_second"] = s["fmax_mhz"] * 1e6 / row["cycles_per_inference"]
        if "asic" in stages:
            from .asic import asic

            a = asic(out, point.get("lib", "osu018"), point.get("clock_ns", 10.0), 2)
            row.update(asic_area_mm2=a["area_um2"]["total"] / 1e6, asic_fmax_mhz=a["fmax_mhz"],
                       energy_per_inference_nj=a["energy_per_inference_nj"])
        row["status"] = "ok"
    except SpikeForgeError as exc:
        row.update(status="failed", error=str(exc).splitlines()[0])
    except Exception as exc:  # noqa: BLE001 - a point's failure is data, never fatal
        row.update(status="failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                   if str(exc) else type(exc).__name__)
    row["seconds"] = round(time.monotonic() - start, 1)
    write_row(folder, row)
    return row


def write_row(folder: Path, row: dict) -> None:
    """Cache ``row`` as ``folder/result.json``, atomically (a killed run leaves none)."""
    tmp = Path(folder) / "result.json.tmp"
    tmp.write_text(json.dumps(row, indent=1, sort_keys=True))
    tmp.replace(Path(folder) / "result.json")


def pareto_front(rows: list[dict], objectives: list[tuple[str, str]]) -> list[dict]:
    """The rows (with every objective a number) that no other such row dominates."""
    def values(row):
        return [row[c] if s == "min" else -row[c] for c, s in objectives]

    usable = [r for r in rows if r.get("status") == "ok"
              and all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                      for c, _ in objectives)]
    front = []
    for row in usable:
        mine = values(row)
        if not any(all(o <= m for o, m in zip(values(other), mine, strict=True))
                   and values(other) != mine for other in usable):
            front.append(row)
    return sorted(front, key=values)


def _shown(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_shown(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _plot(front: list[dict], rows: list[dict], objectives, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (x, _), (y, _) = objectives[:2]
    ok = [r for r in rows if r.get("status") == "ok" and r.get(x) is not None
          and r.get(y) is not None]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter([r[x] for r in ok], [r[y] for r in ok], color="0.6", label="points")
    line = sorted(front, key=lambda r: r[x])
    ax.plot([r[x] for r in line], [r[y] for r in line], "o-", color="C3", label="Pareto front")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _write(out: Path, spec: dict, rows: list[dict]) -> list[dict]:
    columns = list(spec["knobs"]) + [c for c in COLUMNS
                                     if any(r.get(c) is not None for r in rows)]
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (out / "results.md").write_text(_markdown(rows, columns))
    front = []
    if spec["objectives"]:
        front = pareto_front(rows, spec["objectives"])
        named = ", ".join(f"{c} ({s})" for c, s in spec["objectives"])
        (out / "pareto.md").write_text(f"Pareto front over {named}: {len(front)} of"
                                       f" {len(rows)} points\n\n" + _markdown(front, columns))
        if len(spec["objectives"]) >= 2 and front:
            _plot(front, rows, spec["objectives"], out / "pareto.png")
    return front


def _eta(done_seconds: list[float], left: int, workers: int) -> str:
    if not done_seconds or not left:
        return "-"
    seconds = sum(done_seconds) / len(done_seconds) * math.ceil(left / max(1, workers))
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def explore(spec_path: Path, out: Path, workers: int = 2, scheduler: str | None = None,
            progress=print) -> dict:
    """Run every point of the spec (a search: its trials) not yet in ``out``'s cache; write
    the tables and the front. Returns ``{"rows", "front", "computed", "cached", "failed"}``
    (a search also ``trials``: ``(number, state, key)`` of every trial)."""
    spec = load_spec(spec_path)
    if workers < 1:
        _fail(f"--workers must be a positive integer, not {workers}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        _fail(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    ckpt_hash = None if spec["checkpoint"] is None else _file_hash(spec["checkpoint"])
    runner = Runner(spec, out, ckpt_hash, workers, scheduler, progress)
    extra = {}
    try:
        if spec["search"] == "grid":
            keys = [key_of(p, spec, ckpt_hash) for p in spec["points"]]
            todo = [(k, p) for k, p in zip(keys, spec["points"], strict=True)
                    if runner.cached(k) is None]
            progress(f"{len(keys)} points: {len(keys) - len(todo)} cached, {len(todo)} to run"
                     f" ({', '.join(spec['stages'])})")
            rows = runner.run(todo)
            ordered = [runner.cached(k) if k not in rows else rows[k] for k in keys]
        else:
            from .explore_search import search

            ordered, extra["trials"] = search(spec, runner)
    finally:
        runner.close()
    front = _write(out, spec, ordered)
    failed = sum(r.get("status") != "ok" for r in ordered)
    progress(f"wrote {out}/results.csv, results.md" + (", pareto.md" if spec["objectives"]
                                                        else "")
             + (", pareto.png" if (out / "pareto.png").exists() else "")
             + f": {len(ordered) - failed} ok, {failed} failed, {len(front)} on the front")
    return {"rows": ordered, "front": front, "computed": runner.computed,
            "cached": len(ordered) - runner.computed, "failed": failed, **extra}


class Runner:
    """Runs points on a Dask cluster, started at the first point to compute: each point's
    training (once per recipe, cached in ``out/models``) and then the point (cached in
    ``out/points``), reporting progress."""

    def __init__(self, spec, out: Path, ckpt_hash, workers: int, scheduler, progress):
        self.spec, self.out, self.ckpt_hash = spec, out, ckpt_hash
        self.workers, self.scheduler, self.progress = workers, scheduler, progress
        self.client = self.cluster = None
        self.trainings: dict = {}
        self.computed = 0

    def cached(self, key: str) -> dict | None:
        """The cached row of the point ``key``, or None."""
        path = self.out / "points" / key / "result.json"
        return json.loads(path.read_text()) if path.exists() else None

    def _start(self):
        import logging

        from dask.distributed import Client, LocalCluster

        for name in ("distributed", "bokeh", "tornado"):
            logging.getLogger(name).setLevel(logging.ERROR)
        if self.scheduler is None:
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                        processes=True, dashboard_address=None)
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(self.scheduler, timeout=30)
            except OSError as exc:
                _fail(f"cannot reach the Dask scheduler at {self.scheduler} ({exc}); start one"
                      " (dask scheduler) or leave --scheduler out for a local cluster")
        self.slots = sum(self.client.nthreads().values()) or self.workers

    def submit(self, key: str, point: dict):
        """A future of the row of ``point`` (its training submitted first if need be)."""
        from .explore_train import cached_training, run_trained_point, train_recipe

        if self.client is None:
            self._start()
        folder = str(self.out / "points" / key)
        spec = self.spec
        args = (point, spec["stages"], spec["samples"])
        recipe = source(point, spec)
        if recipe is None:
            return self.client.submit(run_point, *args, str(spec["checkpoint"]), folder,
                                      spec["eval_samples"], key=f"point-{key}", pure=False)
        rkey = recipe_key(recipe)
        if rkey not in self.trainings:
            models = self.out / "models" / rkey
            self.trainings[rkey] = cached_training(models)
            if self.trainings[rkey] is None:
                future = self.client.submit(train_recipe, recipe, str(models),
                                            key=f"train-{rkey}", pure=False)
                future.add_done_callback(self._trained)
                self.trainings[rkey] = future
        return self.client.submit(run_trained_point, self.trainings[rkey], *args, folder,
                                  spec["eval_samples"], key=f"point-{key}", pure=False)

    def _trained(self, future) -> None:
        if future.status != "finished":
            return
        result = future.result()
        knobs = " ".join(f"{k}={v}" for k, v in result["recipe"].items()
                         if k in self.spec["knobs"])
        figure = (f"{result['train_bits_per_byte']:.3f} bits/byte held-out"
                  if result.get("train_bits_per_byte") is not None else "trained")
        status = figure if result["status"] == "ok" else f"FAILED: {result['error']}"
        self.progress(f"[training] {knobs or 'the recipe'}: {status}"
                      f" ({result['train_seconds']:.0f} s)")

    def run(self, todo: list[tuple[str, dict]]) -> dict[str, dict]:
        """Compute the points ``todo`` (``(key, point)`` pairs, keys distinct); their rows by
        key, reported as each finishes."""
        from dask.distributed import as_completed

        if not todo:
            return {}
        futures = {self.submit(key, point): key for key, point in todo}
        rows, seconds, failed = {}, [], 0
        for future in as_completed(futures):
            key = futures[future]
            row = rows[key] = future.result()
            seconds.append(row.get("seconds", 0.0))
            failed += row.get("status") != "ok"
            done = len(seconds)
            running = min(self.slots, len(todo) - done)
            knobs = " ".join(f"{k}={row.get(k)}" for k in self.spec["knobs"] if k in row)
            status = "ok" if row.get("status") == "ok" else f"FAILED: {row.get('error')}"
            self.progress(f"[{done}/{len(todo)} done, {running} running, {failed} failed, ETA"
                          f" {_eta(seconds, len(todo) - done, self.slots)}]"
                          f" {knobs or 'point'}: {status} ({row.get('seconds', 0):.0f} s)")
        self.computed += len(rows)
        return rows

    def close(self) -> None:
        """Close the client and the local cluster, if started."""
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
