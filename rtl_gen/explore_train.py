"""Training knobs of the co-design explorer: a spec's ``[train]`` recipe, each distinct training
configuration trained once by :mod:`model.train` (a Dask task), cached by its hash.

A recipe is the flags of ``python -m model.train`` as TOML keys (``weight_bits`` for
``--weight-bits``)::

    [train]
    arch = "mlp"          # or "transformer"
    steps = 40            # the step budget
    batch = 64
    seed = 0              # the training seed (the knob ``seed`` is nextpnr's)
    hidden = 64           # a training knob fixed for every point
    eval_samples = 512    # the held-out positions the training's own figure is measured on

    [knobs]
    weight_bits = [2, 4]  # training knobs listed under [knobs] are searched
    timesteps = [2, 4]

The training knobs are ``weight_bits``, ``timesteps``, ``neuron`` (``if`` or ``spikelm``),
``context`` (the window), ``hidden`` (an MLP's width) and ``d_model`` (a transformer's). The
recipe is turned into a model configuration by :func:`model.train.recipe`, the same code as
``python -m model.train``, and trained by :func:`model.train.train`. The checkpoint lands in
``DIR/models/<key>/model.pt`` beside ``train.json`` (its held-out figure and seconds, or the
one-line error), the key a hash of the recipe, so a configuration is trained once however many
hardware points use it and however often the explorer runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
from pathlib import Path

from .errors import BuildError, SpikeForgeError

__all__ = ["RECIPE", "TRAIN_KNOBS", "check_recipe", "recipe_key", "recipe_of",
           "run_trained_point", "train_recipe"]

#: training knob -> the type of its values (a knob when listed under [knobs])
TRAIN_KNOBS = {"weight_bits": int, "timesteps": int, "neuron": str, "context": int,
               "hidden": int, "d_model": int}
#: every key a [train] table takes -> the type of its value
RECIPE = {"arch": str, "steps": int, "batch": int, "seed": int, "lr": float, "layers": int,
          "embed": int, "heads": int, "ffn": int, "blocks": int, "eval_samples": int,
          **TRAIN_KNOBS}

#: the recipe keys that the other architecture's model would ignore
_OTHER_ARCH = {"mlp": {"d_model", "heads", "ffn", "blocks"},
               "transformer": {"hidden", "layers", "embed"}}


def _fail(message: str):
    raise BuildError(message)


def _typed(value, kind) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind) and not isinstance(value, bool)


def check_recipe(table, knobs: dict) -> dict:
    """The ``[train]`` table checked (keys and types; the training knobs that ``knobs`` lists
    may not also be fixed in it); returns it as a plain dict."""
    if not isinstance(table, dict):
        _fail("[train] must be a table of model.train settings (steps = 40, batch = 64, ...)")
    for name, value in table.items():
        if name not in RECIPE:
            _fail(f"[train] has unknown key {name!r}; use {', '.join(RECIPE)}")
        if not _typed(value, RECIPE[name]):
            _fail(f"[train] {name} takes a {RECIPE[name].__name__}, not {value!r}")
        if name in knobs:
            _fail(f"{name} is both fixed in [train] and a knob; keep it in one of the two")
    arch = table.get("arch", "mlp")
    if arch not in ("mlp", "transformer"):
        _fail(f"[train] arch is \"mlp\" or \"transformer\", not {arch!r}")
    other = _OTHER_ARCH[arch] & (set(table) | set(knobs))
    if other:
        _fail(f"{', '.join(sorted(other))} is not a setting of arch = \"{arch}\"; drop it or"
              " change arch")
    if "steps" not in table:
        _fail("[train] has no step budget; add steps = N (tens of steps for a smoke test)")
    return dict(table)


def recipe_of(point: dict, base: dict) -> dict:
    """The training recipe of ``point``: ``base`` with the point's training knobs."""
    return {**base, **{k: point[k] for k in TRAIN_KNOBS if k in point}}


def recipe_key(recipe: dict) -> str:
    """The cache key of a recipe: a hash of its settings."""
    text = json.dumps({"recipe": recipe}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _parse(recipe: dict, out: Path):
    """``(config, options)`` of ``recipe`` by :mod:`model.train`'s own parser and
    :func:`model.train.recipe`; a refused recipe is a one-line :class:`BuildError`."""
    from model.errors import ModelConfigError, UsageError
    from model.train import build_parser
    from model.train import recipe as configure

    argv = ["--out", str(out)]
    for name, value in recipe.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    text = " ".join(f"{k}={v}" for k, v in recipe.items())
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = build_parser().parse_args(argv)
        return configure(args)
    except SystemExit:
        reason = stderr.getvalue().strip().splitlines()[-1].removeprefix(
            "python -m model.train: error: ")
        _fail(f"the training recipe {text} is refused: {reason}; fix [train] or the knobs")
    except (ModelConfigError, UsageError) as exc:
        _fail(f"the training recipe {text} is refused: {exc}; fix [train] or the knobs")


def validate(base: dict, knobs: dict) -> None:
    """Refuse, before anything runs, a recipe that :mod:`model.train` would refuse: the base
    with each training knob's values in turn."""
    recipes = [base] + [{**base, name: v} for name, values in knobs.items()
                        if name in TRAIN_KNOBS for v in values]
    for recipe in recipes:
        _parse(recipe, Path("model.pt"))


def train_recipe(recipe: dict, folder: str) -> dict:
    """Train ``recipe`` into ``folder/model.pt`` (a Dask task; one torch thread). Returns and
    writes ``folder/train.json``: ``checkpoint``, ``train_seconds``, the training's held-out
    figure, or ``error`` (never raises for a recipe that fails)."""
    import torch

    from model.checkpoint import save_checkpoint
    from model.train import train

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / "model.pt"
    start = time.monotonic()
    result: dict = {"recipe": recipe}
    try:
        config, options = _parse(recipe, ckpt)
        torch.set_num_threads(1)
        model, metrics = train(config, options)
        save_checkpoint(ckpt, model, metrics, force=True)
        result.update(status="ok", checkpoint=str(ckpt),
                      train_bits_per_byte=metrics.get("heldout_bits_per_byte"))
    except SpikeForgeError as exc:
        result.update(status="failed", error=str(exc).splitlines()[0])
    except Exception as exc:  # noqa: BLE001 - a recipe's failure is data, never fatal
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
    result["train_seconds"] = round(time.monotonic() - start, 1)
    tmp = folder / "train.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, sort_keys=True))
    tmp.replace(folder / "train.json")
    return result


def cached_training(folder: Path) -> dict | None:
    """The result of a recipe trained earlier in ``folder``, or None."""
    path = Path(folder) / "train.json"
    return json.loads(path.read_text()) if path.exists() else None


def run_trained_point(trained: dict, point: dict, stages, samples: int, folder: str,
                      eval_samples: int) -> dict:
    """:func:`rtl_gen.explore.run_point` on the checkpoint that ``trained`` (the result of
    :func:`train_recipe`) made, its training seconds in the row; a point whose training failed
    is a failed row with the training's error."""
    from .explore import run_point, write_row

    if trained.get("status") != "ok":
        row = {**point, "status": "failed", "seconds": 0.0,
               "error": f"training failed: {trained.get('error')}"}
        write_row(Path(folder), row)
        return row
    return run_point(point, stages, samples, trained["checkpoint"], folder, eval_samples,
                     extra={"train_seconds": trained["train_seconds"]})
