"""Checkpoints: a plain dict saved with ``torch.save`` and validated on load.

Format ``spikeforge-ckpt/1``::

    {"format": "spikeforge-ckpt/1", "kind": "spiking" | "float", "config": {...},
     "state_dict": {...}, "metrics": {...}}

``config`` rebuilds the model (:func:`model.zoo.config_from_dict`): a zoo configuration (an
MLP's carries no ``arch``, a transformer's ``"arch": "transformer"``) or a composition of
blocks (``"arch": "composed"``, :class:`model.net.NetConfig`: the block specs and the shared
settings). A zoo model's parameters keep the names of the checkpoints it was first shipped in
(the configuration's ``key_map``).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from .errors import CheckpointError, ModelConfigError
from .net import SpikingNet
from .zoo import build_model, config_from_dict

__all__ = ["FORMAT", "load_checkpoint", "rename_keys", "save_atomically", "save_checkpoint"]

logger = logging.getLogger(__name__)

FORMAT = "spikeforge-ckpt/1"


def _plain(metrics: dict) -> dict:
    """``metrics`` as plain JSON types (``torch.load(weights_only=True)`` refuses NumPy)."""
    return json.loads(json.dumps(metrics, default=float))


def rename_keys(state: dict, pairs: list[tuple[str, str]]) -> dict:
    """``state`` with every key under prefix ``old`` moved under ``new``, for the first
    ``(old, new)`` of ``pairs`` that matches (a prefix ending in ``.``, or the whole key)."""
    out = {}
    for key, value in state.items():
        for old, new in pairs:
            if key == old or (old.endswith(".") and key.startswith(old)):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def save_checkpoint(path: Path, model: SpikingNet, metrics: dict | None = None,
                    force: bool = False) -> None:
    """Write ``model`` (any :class:`~model.net.SpikingNet`) and its ``metrics`` to ``path``
    atomically (a temporary file renamed into place); :func:`load_checkpoint` rebuilds it."""
    path = Path(path)
    if path.exists() and not force:
        raise CheckpointError(f"{path} already exists; pass --force to overwrite it")
    config = model.config
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "kind": "float" if config.float_twin else "spiking",
        "config": config.to_dict(),
        "state_dict": rename_keys(state, [(new, old) for old, new in config.key_map()]),
        "metrics": _plain(metrics or {}),
    }
    save_atomically(path, payload)
    logger.info("saved %s checkpoint to %s", payload["kind"], path)


def save_atomically(path: Path, payload: dict) -> None:
    """``torch.save`` of ``payload`` to a temporary file beside ``path``, renamed into place,
    so that ``path`` is never half written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, kind: str | None = None) -> tuple[SpikingNet, dict]:
    """Load and validate a checkpoint; returns ``(model in eval mode, metrics)``.

    ``kind`` (``"spiking"`` or ``"float"``), when given, is required of the checkpoint.
    Every failure is a :class:`CheckpointError` that says what to change.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the path of a .pt file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({first}); retrain or re-copy it"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path} is not a SpikeForge checkpoint (format {found!r}, expected {FORMAT!r})"
        )
    found_kind = payload.get("kind")
    if found_kind not in ("spiking", "float"):
        raise CheckpointError(f"{path} has unknown kind {found_kind!r}")
    if kind is not None and found_kind != kind:
        hint = ("train one without --float" if kind == "spiking" else "train one with --float")
        raise CheckpointError(f"{path} is a {found_kind} checkpoint but a {kind} one is needed;"
                              f" {hint}")
    try:
        config = config_from_dict(dict(payload.get("config") or {}))
        if config.float_twin != (found_kind == "float"):
            raise CheckpointError(f"{path} says kind {found_kind!r} but its config disagrees")
        model = build_model(config)
    except (ModelConfigError, TypeError) as exc:
        raise CheckpointError(f"{path} has an invalid config: {exc}") from exc
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} has no state_dict")
    try:
        model.load_state_dict(rename_keys(state, config.key_map()), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path} does not match its config ({first})") from exc
    for name, tensor in state.items():  # named as in the file
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: parameter {name!r} holds NaN or inf; retrain the"
                                  " model")
    model.eval()
    metrics = payload.get("metrics")
    return model, dict(metrics) if isinstance(metrics, dict) else {}
