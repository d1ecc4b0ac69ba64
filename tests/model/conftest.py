"""Shared fixtures: a tiny model trained for a few steps, and real held-out contexts."""

from __future__ import annotations

import numpy as np
import pytest

from model import data
from model.checkpoint import save_checkpoint
from model.train import TrainOptions, train
from model.zoo import LMConfig

TINY_CONFIG = LMConfig(context=4, embed=8, hidden=(48, 32), timesteps=3)


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory):
    """``(model, checkpoint path)`` of a tiny spiking model trained for 40 steps (seed 0)."""
    options = TrainOptions(steps=40, batch=64, seed=0, log_every=1000, eval_every=10**9,
                           eval_samples=1024)
    model, metrics = train(TINY_CONFIG, options)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, metrics)
    return model, path


@pytest.fixture(scope="session")
def tiny_float(tmp_path_factory):
    """Checkpoint path of the tiny model's float twin (20 steps)."""
    config = LMConfig(**{**TINY_CONFIG.to_dict(), "float_twin": True})
    model, metrics = train(config, TrainOptions(steps=20, batch=64, seed=0, log_every=1000,
                                                eval_every=10**9, eval_samples=1024))
    path = tmp_path_factory.mktemp("ckpt") / "tiny-float.pt"
    save_checkpoint(path, model, metrics)
    return path


@pytest.fixture(scope="session")
def heldout_tiny() -> tuple[np.ndarray, np.ndarray]:
    """2048 real held-out contexts for the tiny model's context length (seed 1)."""
    return data.heldout_samples(2048, TINY_CONFIG.context, seed=1)
