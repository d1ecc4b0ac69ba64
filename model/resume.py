"""A run's training state, which ``python -m model.train --resume`` continues from.

The state lives beside the checkpoint, in ``<out>.state`` (not a ``.pt`` file, so that the
checkpoints of a folder stay the ``spikeforge-ckpt/1`` files everything downstream reads, and
a checkpoint's bytes do not depend on whether its run kept a state). Format
``spikeforge-train/1``, ``torch.save`` of::

    {"format": "spikeforge-train/1", "config": {...}, "options": {"steps", "batch", "lr",
     "seed", "segment"}, "step": N, "train_seconds": s, "processes": P,
     "model": state_dict, "optimizer": ..., "scheduler": ...,
     "rng": {"data": ..., "torch": ..., "python": ..., "numpy": ...}}

``step`` steps are done; ``model`` holds the module's own parameter names; ``rng["data"]`` is
the state of the generator that draws the batches (the position in the data). Everything is
plain data, loadable with ``torch.load(weights_only=True)``. The state does not depend on the
number of processes (every rank draws the same global batch), so a run may resume with
another; only ``processes`` records what wrote it.
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from .checkpoint import save_atomically
from .errors import CheckpointError, UsageError
from .spike import Neuron

__all__ = ["STATE_FORMAT", "check_same_run", "load_state", "restore_rng", "rng_state",
           "run_options", "save_state", "state_path"]

STATE_FORMAT = "spikeforge-train/1"
#: the options a resumed run must share with the run it continues
RUN_OPTIONS = ("steps", "batch", "lr", "seed", "segment")
#: config keys whose flag is not ``--`` and the key with dashes
_FLAGS = {"float_twin": "--float", "hidden": "--hidden/--layers", "layers": "--blocks",
          "classes": "--arch", "blocks": "the composition's blocks"}
#: config keys compared first: the flags whose change changes the defaults of others
_FIRST = {"arch": 0, "float_twin": 1, "neuron": 2}
#: values of keys a config dict leaves out (an MLP's arch, the plain neuron's options)
_DEFAULTS = {"arch": "mlp", **Neuron().as_dict()}


def state_path(out: Path) -> Path:
    """Where the run writing checkpoint ``out`` keeps its training state: ``<out>.state``."""
    out = Path(out)
    return out.with_name(out.name + ".state")


def run_options(options) -> dict:
    """The options of :data:`RUN_OPTIONS` from a :class:`model.train.TrainOptions`."""
    return {name: getattr(options, name) for name in RUN_OPTIONS}


def rng_state(data_rng: np.random.Generator) -> dict:
    """Every generator's state: the data generator's, torch's, Python's and NumPy's global."""
    numpy = np.random.get_state(legacy=False)
    numpy["state"]["key"] = numpy["state"]["key"].tolist()
    return {"data": data_rng.bit_generator.state, "torch": torch.get_rng_state(),
            "python": random.getstate(), "numpy": numpy}


def restore_rng(state: dict, data_rng: np.random.Generator) -> None:
    """Put every generator back as :func:`rng_state` found it."""
    data_rng.bit_generator.state = state["data"]
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = dict(state["numpy"])
    numpy["state"] = {**numpy["state"],
                      "key": np.asarray(numpy["state"]["key"], dtype=np.uint32)}
    np.random.set_state(numpy)


def save_state(path: Path, payload: dict) -> None:
    """Write a training state (the keys of the module docstring but ``format``) atomically."""
    save_atomically(Path(path), {"format": STATE_FORMAT, **payload})


def load_state(path: Path) -> dict:
    """Read the training state at ``path``; a :class:`CheckpointError` that says what to do when
    there is none or it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"--resume: no training state at {path}; a run keeps one with"
                              " --save-every N or --until N")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as exc:
        raise CheckpointError(f"--resume: {path} is corrupt or truncated"
                              f" ({type(exc).__name__}); start the run again") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"--resume: {path} is not a training state (format {found!r},"
                              f" expected {STATE_FORMAT!r})")
    return state


def _flag(key: str) -> str:
    return _FLAGS.get(key, "--" + key.replace("_", "-"))


def check_same_run(state: dict, config: dict, options, path: Path | str = "the state") -> None:
    """Refuse to resume ``state`` with another model ``config`` (a config dict) or other
    :data:`RUN_OPTIONS` than ``options``: a :class:`UsageError` naming the first flag that
    differs."""
    theirs = dict(state.get("config") or {})
    keys = sorted(set(theirs) | set(config), key=lambda k: (k not in _FIRST, _FIRST.get(k), k))
    for key in keys:
        if theirs.get(key) != config.get(key):
            raise UsageError(f"--resume: {path} was trained with {_flag(key)}"
                             f" {_shown(key, theirs.get(key))}, not"
                             f" {_shown(key, config.get(key))}; give the flags of the run it"
                             " continues")
    ours = run_options(options)
    recorded = dict(state.get("options") or {})
    for key in RUN_OPTIONS:
        if recorded.get(key) != ours[key]:
            raise UsageError(f"--resume: {path} was trained with {_flag(key)}"
                             f" {_shown(key, recorded.get(key))}, not {_shown(key, ours[key])};"
                             " give the flags of the run it continues")


def _shown(key: str, value) -> str:
    """A config value as its flag takes it (a key a config leaves out at its default)."""
    if value is None:
        return _DEFAULTS.get(key, "(default)")
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)
