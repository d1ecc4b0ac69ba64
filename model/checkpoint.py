"""Checkpoints: a plain dict saved with ``torch.save`` and validated on load.

Format ``spikeforge-ckpt/1`` (a transformer's config carries ``"arch": "transformer"``)::

    {"format": "spikeforge-ckpt/1", "kind": "spiking" | "float", "config": {...},
     "state_dict": {...}, "metrics": {...}}
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
from .lm import LMConfig, SpikingLM
from .transformer import SpikingTransformer, TransformerConfig

__all__ = ["FORMAT", "load_checkpoint", "save_checkpoint"]

logger = logging.getLogger(__name__)

FORMAT = "spikeforge-ckpt/1"


def _plain(metrics: dict) -> dict:
    """``metrics`` as plain JSON types (``torch.load(weights_only=True)`` refuses NumPy)."""
    return json.loads(json.dumps(metrics, default=float))


def save_checkpoint(path: Path, model: SpikingLM | SpikingTransformer, metrics: dict,
                    force: bool = False) -> None:
    """Write ``model`` to ``path`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    if path.exists() and not force:
        raise CheckpointError(f"{path} already exists; pass --force to overwrite it")
    payload = {
        "format": FORMAT,
        "kind": "float" if model.config.float_twin else "spiking",
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "metrics": _plain(metrics),
    }
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
    logger.info("saved %s checkpoint to %s", payload["kind"], path)


def load_checkpoint(path: Path, kind: str | None = None) -> tuple[SpikingLM | SpikingTransformer,
                                                                  dict]:
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
        raw = dict(payload.get("config") or {})
        config_cls = TransformerConfig if raw.get("arch") == "transformer" else LMConfig
        config = config_cls.from_dict(raw)
    except (ModelConfigError, TypeError) as exc:
        raise CheckpointError(f"{path} has an invalid config: {exc}") from exc
    if config.float_twin != (found_kind == "float"):
        raise CheckpointError(f"{path} says kind {found_kind!r} but its config disagrees")
    model = SpikingTransformer(config) if isinstance(config, TransformerConfig) else SpikingLM(
        config)
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} has no state_dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path} does not match its config ({first})") from exc
    model.check_finite()
    model.eval()
    metrics = payload.get("metrics")
    return model, dict(metrics) if isinstance(metrics, dict) else {}
