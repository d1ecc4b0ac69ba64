"""``rtl_gen build --weights``: the fit decision, the external memory image, the report's
``memory`` section."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from contract.graph import run
from contract.onnx_io import to_onnx
from contract.random_model import random_graph, random_model
from hw.layout import external_weight_image
from rtl_gen.errors import TargetFitError
from rtl_gen.frontend import load_graph
from rtl_gen.memory import memory_section, weight_rows
from rtl_gen.passes import default_pipeline, run_pipeline
from rtl_gen.plan_program import plan_program
from rtl_gen.targets import get_target


def _fused(model):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        onnx.save(to_onnx(model), path)
        return run_pipeline(load_graph(path), default_pipeline())


def test_auto_keeps_weights_on_chip_while_they_fit():
    """``auto`` is on chip when the target's block RAM holds every memory, off chip when only
    the weight banks overflow it; ``onchip`` then refuses with a one-line hint, ``offchip``
    always drops the weight banks from the block-RAM count and adds the weight fetch's row
    cache (the widest layer's inputs, a row each) and its tags."""
    graph = _fused(random_graph(3, width=8, window=3, timesteps=2, blocks=((True, 16),)))
    target = get_target("ecp5-85k")
    on = plan_program(graph, 2, 2, target, weights="auto")
    assert not on.params.weights_offchip
    off = plan_program(graph, 2, 2, target, weights="offchip")
    assert off.params.weights_offchip
    weight_brams = next(m.brams for m in on.memories if m.name == "weight banks")
    cache = {m.name: m for m in off.memories if m.name.startswith("weight")}
    assert set(cache) == {"weight row cache", "weight cache tags"}
    assert cache["weight row cache"].depth == 16  # the feed-forward's 16 inputs (not EMBED's)
    assert weight_brams > 0 and off.brams == on.brams - weight_brams + sum(
        m.brams for m in cache.values())
    small = dataclasses.replace(target, brams=on.brams - 1)
    assert plan_program(graph, 2, 2, small, weights="auto").params.weights_offchip
    with pytest.raises(TargetFitError, match="--weights offchip"):
        plan_program(graph, 2, 2, small, weights="onchip")
    with pytest.raises(TargetFitError, match="even with the weights off chip"):
        plan_program(graph, 2, 2, dataclasses.replace(target, brams=off.brams - 1),
                     weights="auto")


def test_memory_section_counts_rows_from_the_spikes():
    """Bytes per token are weight rows x row bytes, read once per token (the row cache): at
    most as many rows as one per step, and fewer when an input fires in several steps."""
    graph = _fused(random_graph(5, width=4, window=3, timesteps=3, blocks=((True, 3),)))
    params = plan_program(graph, 2, 2, get_target("ecp5-85k"), weights="offchip").params
    ids = np.random.default_rng(5).integers(0, 256, size=(3, 6))
    tensors = run(graph, ids).tensors
    event, once = weight_rows(params, tensors, ids)
    section = memory_section(params, tensors, ids, streams=True, mode="offchip", latency=4,
                             interval=2)
    assert section["weights"] == "offchip"
    row = params.weight_row_bytes
    assert section["bytes_per_token"] == round(float(once.mean()) * row, 1)
    assert section["bytes_per_token_without_cache"] == round(float(event.mean()) * row, 1)
    assert (once <= event).all() and once.sum() < event.sum()
    assert section["bandwidth_bound_cycles_per_token"] == round(
        float(once.mean()) * params.rows * 2, 1)


def test_offchip_build_writes_the_external_image(tmp_path):
    """``build --weights offchip``: no weight-bank files, the external image a bus word a line,
    plan.json and report.json say so, and the synthesis top has the AXI4 port on its pins."""
    path = tmp_path / "m.onnx"
    onnx.save(to_onnx(random_model(0, hidden=(5,))), path)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "rtl_gen", "build", "--onnx", str(path),
                           "--out", str(out), "--rows", "2", "--cols", "3", "--samples", "8",
                           "--weights", "offchip", "--memory-latency", "5"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "weights off chip" in proc.stdout
    assert not list((out / "mem").glob("weights_row*.hex"))
    plan = json.loads((out / "plan.json").read_text())
    assert plan["weights"] == "offchip"
    graph = _fused(random_model(0, hidden=(5,)))
    params = plan_program(graph, 2, 3, get_target("ecp5-85k"), weights="offchip").params
    words = [int(line, 16) for line in (out / "mem" / "weights_external.hex").read_text().split()]
    assert words == external_weight_image(params) and any(words)
    memory = json.loads((out / "report.json").read_text())["memory"]
    assert memory["weights"] == "offchip" and memory["model"]["latency_cycles"] == 5
    assert memory["bytes_per_token"] > 0 and memory["measured_cycles_per_token"] is None
    synth = (out / "rtl" / "spikeforge_synth.v").read_text()
    assert "weight_bus__araddr" in synth and "weight_bus__rdata" in synth
