"""Multi-objective search of the explorer's knob space with Optuna, for spaces too large for
the grid: ``search = "nsga2"`` (:class:`optuna.samplers.NSGAIISampler`) or ``"tpe"``
(:class:`optuna.samplers.TPESampler`) with ``trials = N`` in the spec.

The study lives in ``DIR/optuna.db`` (SQLite, through :class:`optuna.storages.RDBStorage`),
named by a hash of the space, the stages, the objectives and the sampler, so that raising
``trials`` extends it and another spec in the same folder starts its own. Only this process
talks to the study (ask and tell); each trial's point is a Dask task of
:class:`rtl_gen.explore.Runner`, cached like a grid point, so a point that two trials share, or
that an interrupted run finished, is never computed again. Trials are asked ``population`` at a
time and told in their order once all of the batch is done, so that a seeded study asks the
same points whatever the number of workers. A trial left running by a killed run is finished
first on the resumed run. A trial whose point fails, or lacks an objective, is told
``TrialState.FAIL`` (its error in the trial's ``error`` attribute and in the results table).
"""

from __future__ import annotations

import hashlib
import json
import logging

__all__ = ["search", "study_name"]


def study_name(spec: dict, ckpt_hash: str | None) -> str:
    """The study's name: a hash of everything the trials' values depend on, bar ``trials``."""
    text = json.dumps({k: spec[k] for k in ("space", "stages", "samples", "eval_samples",
                                            "train", "search", "population", "seed")}
                      | {"objectives": spec["objectives"], "checkpoint": ckpt_hash},
                      sort_keys=True)
    return f"explore-{spec['search']}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _sampler(spec: dict):
    import optuna

    if spec["search"] == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=spec["population"],
                                             seed=spec["seed"])
    return optuna.samplers.TPESampler(seed=spec["seed"], n_startup_trials=spec["population"])


def _values(row: dict, objectives) -> list[float] | str:
    """The trial's values, or why there are none."""
    if row.get("status") != "ok":
        return row.get("error") or "failed"
    values = []
    for column, _ in objectives:
        value = row.get(column)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"the point has no number for the objective {column}"
        values.append(float(value))
    return values


def search(spec: dict, runner) -> tuple[list[dict], list[tuple[int, str, str]]]:
    """Run the spec's study to ``trials`` finished trials on ``runner``; returns the rows of
    the distinct points the trials reached (first-reached first, ``trial`` the first trial's
    number) and ``(number, state, key)`` of every trial."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    from .explore import key_of, plain_point

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(runner.out / 'optuna.db').resolve()}")
    study = optuna.create_study(
        storage=storage, sampler=_sampler(spec), study_name=study_name(spec, runner.ckpt_hash),
        directions=["minimize" if s == "min" else "maximize" for _, s in spec["objectives"]],
        load_if_exists=True)
    space = {k: CategoricalDistribution(v) for k, v in spec["space"].items()}

    def point_of(params: dict) -> dict:
        return plain_point({k: params[k] for k in spec["space"]})

    stale = [optuna.trial.Trial(study, t._trial_id)
             for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    finished = len(study.get_trials(deepcopy=False)) - len(stale)
    runner.progress(f"{spec['search']} study {study.study_name}: {finished} of {spec['trials']}"
                    f" trials done, {len(stale)} interrupted to finish"
                    f" ({', '.join(spec['stages'])})")
    while stale or finished < spec["trials"]:
        batch = stale or [study.ask(space)
                          for _ in range(min(spec["population"], spec["trials"] - finished))]
        stale = []
        keyed = [(t, key_of(point_of(t.params), spec, runner.ckpt_hash) if set(t.params)
                  == set(space) else None) for t in batch]
        todo = {}
        for trial, key in keyed:
            if key is not None and runner.cached(key) is None:
                todo.setdefault(key, point_of(trial.params))
        rows = runner.run(list(todo.items()))
        for trial, key in keyed:
            values = ("interrupted before its point was chosen" if key is None
                      else _values(rows.get(key) or runner.cached(key), spec["objectives"]))
            if isinstance(values, str):
                trial.set_user_attr("error", values)
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, values)
        finished += len(batch)
    return _rows(study, spec, runner, point_of, key_of)


def _rows(study, spec, runner, point_of, key_of):
    from optuna.trial import TrialState

    rows, trials = {}, []
    for trial in study.get_trials(deepcopy=False):
        if set(trial.params) != set(spec["space"]):
            continue
        key = key_of(point_of(trial.params), spec, runner.ckpt_hash)
        trials.append((trial.number, trial.state.name, key))
        cached = runner.cached(key)
        if key not in rows and cached is not None and trial.state in (TrialState.COMPLETE,
                                                                      TrialState.FAIL):
            row = dict(cached)
            row["trial"] = trial.number
            if trial.state == TrialState.FAIL and row.get("status") == "ok":
                row.update(status="failed", error=trial.user_attrs.get("error"))
            rows[key] = row
    return list(rows.values()), trials
