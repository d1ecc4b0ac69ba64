"""Random compositions of spiking ops through the front half of the compiler, exactly.

For every composition: onnxruntime on its ONNX form, the front end's IR, the IR after the pass
pipeline and the contract's executor give the same integers at every position; computing the
last position alone gives that position's logits. The hardware back ends are fuzzed on the
graphs they map in test_verify_fuzz.py and tests/hw.
"""

from __future__ import annotations

import numpy as np
import onnx
from fuzzing import compositions, profile
from hypothesis import given

from contract.graph import run
from contract.onnx_io import to_onnx
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
    assert np.count_nonzero(expected.logits) > expected.logits.size // 2, composition
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
