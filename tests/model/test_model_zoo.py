"""The zoo: the shipped checkpoints, now compositions of blocks, give exactly their old integers."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from contract.graph import run
from model.checkpoint import load_checkpoint, save_checkpoint
from model.train import build_parser
from model.zoo import (
    ZOO,
    EncoderConfig,
    LMConfig,
    TransformerConfig,
    build_model,
    config_from_dict,
)

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
SEED = 1234

#: sha256 of every op (type, fields, arrays) of ``to_int_model().graph()`` and of the integer
#: logits of :func:`contract.graph.run` on ``SEED``'s 16 random streams of 40 bytes, recorded
#: with the special classes (model/lm.py, model/transformer.py) before the blocks replaced them;
#: the window-64 transformer's when it shipped (4 December 2026, trained on a GPU)
RECORDED = {
    "spikelm-mlp": "352d580849fbb4f3d86147a39c7de4a382105b0196e958c279ec4c374a1bf3c0",
    "spikelm-mlp-small": "f8a6b0ea0899da4bc851fe5f96b024f3c2338e77d7f8bf6f25898883d962a5c7",
    "spikelm-transformer": "5831fdb92d851627a1e8ba8670ba6b7cfb09124afdbfda33bb7482fdb9a110bf",
    "spikelm-transformer-w64": "bc05f2c0271d147e81a13cc55d95c2d800d290d56a579935e2b81fac159b684d",
}


def graph_digest(graph, ids) -> str:
    """sha256 of the ops of ``graph`` (names, wiring, constants) and of its logits on ``ids``."""
    h = hashlib.sha256()
    for op in graph.ops:
        h.update(type(op).__name__.encode())
        for f in dataclasses.fields(op):
            value = getattr(op, f.name)
            if (f.name, value) in (("leak", None), ("binary", False), ("scale", None),
                                   ("causal", True)):
                continue  # fields added after the recording, at the values they had then
            if isinstance(value, np.ndarray):
                h.update(f"{f.name}{value.shape}".encode())
                h.update(np.ascontiguousarray(value, dtype=np.int64).tobytes())
            else:
                h.update(f"{f.name}={value!r}".encode())
    h.update(np.ascontiguousarray(run(graph, ids).logits, dtype=np.int64).tobytes())
    return h.hexdigest()


def same_ops(a, b, names: bool = True) -> bool:
    """Op for op: types, constants (and with ``names`` op and tensor names) equal."""
    if len(a.ops) != len(b.ops):
        return False
    for x, y in zip(a.ops, b.ops, strict=True):
        if type(x) is not type(y):
            return False
        for f in dataclasses.fields(x):
            if not names and f.name in ("name", "inputs", "output"):
                continue
            u, v = getattr(x, f.name), getattr(y, f.name)
            if isinstance(u, np.ndarray):
                if u.shape != v.shape or not np.array_equal(u, v):
                    return False
            elif u != v:
                return False
    return True


@pytest.fixture(scope="module", params=sorted(RECORDED))
def shipped(request):
    path = CHECKPOINTS / f"{request.param}.pt"
    if not path.exists():
        pytest.fail(f"shipped checkpoint {path} is missing")
    model, _ = load_checkpoint(path, kind="spiking")
    return request.param, path, model


def test_shipped_integers_are_exactly_the_recorded_ones(shipped):
    name, _, model = shipped
    ids = np.random.default_rng(SEED).integers(0, 256, size=(16, 40))
    graph = model.to_graph()
    assert graph_digest(graph, ids) == RECORDED[name]
    assert np.count_nonzero(run(graph, ids).logits) > 0.9 * 16 * 40 * 256


def test_to_graph_is_the_int_model_graph_and_the_blocks_emission(shipped):
    _, _, model = shipped
    graph = model.to_graph()
    assert same_ops(graph, model.to_int_model().graph())
    emitted = model.emit_graph()
    assert same_ops(emitted, graph, names=False)
    assert emitted.logit_scale == graph.logit_scale
    ids = np.random.default_rng(SEED + 1).integers(0, 256, size=(8, 2 * model.context))
    assert np.array_equal(run(emitted, ids).logits, run(graph, ids).logits)


def test_a_saved_zoo_model_keeps_the_checkpoint_format(shipped, tmp_path):
    _, path, model = shipped
    save_checkpoint(tmp_path / "again.pt", model, {})
    before = torch.load(path, weights_only=True)
    after = torch.load(tmp_path / "again.pt", weights_only=True)
    assert after["config"] == before["config"] and after["kind"] == before["kind"]
    assert set(after["state_dict"]) == set(before["state_dict"])
    for key, tensor in before["state_dict"].items():
        assert torch.equal(after["state_dict"][key], tensor), key
    reloaded, _ = load_checkpoint(tmp_path / "again.pt", kind="spiking")
    assert reloaded.config == model.config


@pytest.mark.parametrize("name", ["spikelm-mlp-small-float", "spikelm-transformer-float",
                                  "spikelm-transformer-w64-float"])
def test_float_twins_load_as_zoo_models(name):
    twin, _ = load_checkpoint(CHECKPOINTS / f"{name}.pt", kind="float")
    assert twin.config.float_twin and not twin.integer_exportable
    ids = torch.from_numpy(np.random.default_rng(SEED).integers(0, 256, (4, twin.context)))
    logits, rates = twin(ids)
    assert logits.shape == (4, 256) and torch.isfinite(logits).all() and rates == []


def test_zoo_names_are_the_train_cli_archs():
    arch = next(a for a in build_parser()._actions if a.dest == "arch")
    assert tuple(arch.choices) == tuple(ZOO) == ("mlp", "transformer", "encoder")


def test_config_dicts_round_trip():
    for config in (LMConfig(hidden=(8, 4)), TransformerConfig(d_model=8, ffn=8),
                   EncoderConfig(d_model=8, ffn=8, classes=3)):
        assert config_from_dict(config.to_dict()) == config
    model = build_model(TransformerConfig(d_model=8, ffn=8, layers=2))
    assert len(model.blocks) == 1 + 6 * 2 + 2 and model.streams and model.context == 16
