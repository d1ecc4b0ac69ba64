"""Random compositions of spiking ops through the front half of the compiler, exactly.

For every composition: onnxruntime on its ONNX form, the front end's IR, the IR after the pass
pipeline and the contract's executor give the same integers at every position; computing the
last position alone gives that position's logits. The layer-program accelerator runs random
compositions in the Amaranth simulator (tests/hw/test_hw_program.py) and, here, two whole
builds on Verilator; chains (the MLP's shape) are fuzzed in test_verify_fuzz.py.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from fuzzing import compositions, profile
from hypothesis import assume, given
from test_verify_rtl import rtl_gen

from contract.graph import run
from contract.onnx_io import to_onnx
from contract.random_model import random_graph
from contract.ranges import analyse
from rtl_gen.build import run_onnx
from rtl_gen.frontend import load_graph
from rtl_gen.interpret import interpret
from rtl_gen.passes import default_pipeline, run_pipeline


@profile(quick=25, extended=250)
@given(composition=compositions())
def test_a_composition_is_the_same_integers_everywhere(tmp_path_factory, composition):
    graph = composition.graph()
    ids = composition.ids
    expected = run(graph, ids)
    assume(all(expected.firing_rates()))  # inputs too few to make every population spike
    assert np.count_nonzero(expected.logits) >= expected.logits.size // 2, composition
    rates = expected.firing_rates()
    assert 0.0 < np.mean(rates) < 1.0, composition  # spikes that carry information
    path = tmp_path_factory.mktemp("c") / "m.onnx"
    onnx.save(to_onnx(graph), path)
    assert np.array_equal(run_onnx(path, ids), expected.logits), composition
    lowered = load_graph(path)
    assert [type(op) for op in lowered.ops] == [type(op) for op in graph.ops]
    assert np.array_equal(interpret(lowered, ids).logits, expected.logits), composition
    fused = run_pipeline(lowered, default_pipeline(), check_ids=ids)
    assert np.array_equal(interpret(fused, ids).logits, expected.logits), composition
    last = run(fused, ids, last_only=True)
    assert np.array_equal(last.logits[:, -1], expected.logits[:, -1]), composition


@profile(quick=25, extended=250)
@given(composition=compositions())
def test_no_composition_exceeds_its_range_analysis(composition):
    """Every register a run meets (membranes with leaks and per-step constants included)
    stays within :func:`contract.ranges.analyse`'s bounds."""
    graph = composition.graph()
    ranges = analyse(graph)
    for name, value in run(graph, composition.ids).peaks.items():
        assert value <= getattr(ranges, name), (name, composition)


@pytest.mark.slow
@pytest.mark.parametrize("kwargs, rows, cols", [
    ({"blocks": ((False, 5),), "head": (3,), "width": 6}, 2, 2),
    ({"blocks": ((True, 0), (True, 5)), "head": (4,), "width": 6, "heads": 3}, 2, 2),
    ({"embed": "spike", "context": 2, "width": 3, "hidden": (4,), "spike_attention": True,
      "heads": 2}, 2, 2),
    ({"blocks": ((False, 5),), "head": (3,), "width": 6, "elastic": True, "timesteps": 3},
     2, 2),
    ({"embed": "spike", "context": 2, "width": 3, "hidden": (4,), "spike_attention": True,
      "heads": 2, "elastic": True, "timesteps": 3}, 2, 2),
], ids=["no-attention", "two-attentions-and-a-head", "attention-over-a-spike-embedding",
        "elastic-norms-and-head", "elastic-linears-and-attention"])
def test_whole_builds_on_verilator(tmp_path, kwargs, rows, cols):
    """rtl_gen build and sim of compositions the shipped models are not: every position of
    every stream bit-exact on Verilator."""
    graph = random_graph(3, **{"window": 3, "timesteps": 2, **kwargs})
    onnx.save(to_onnx(graph), tmp_path / "m.onnx")
    ids = np.random.default_rng(3).integers(0, 256, size=(2, 7))
    np.savez(tmp_path / "inputs.npz", input=ids)
    out = tmp_path / "build"
    code, stdout, stderr = rtl_gen("build", "--onnx", tmp_path / "m.onnx", "--inputs",
                                   tmp_path / "inputs.npz", "--out", out, "--rows", rows,
                                   "--cols", cols)
    assert code == 0, stdout + stderr
    with np.load(out / "golden.npz") as golden:
        assert np.array_equal(golden["output"], run(graph, ids).logits)
    code, stdout, stderr = rtl_gen("sim", out)
    assert code == 0, stdout + stderr
    assert "14/14" in stdout, stdout
