"""The transformer's ONNX form, front end, IR interpreter and passes, against the contract."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from contract import zoo
from contract.graph import Attention, Fire, GraphError, ResidualAdd
from contract.onnx_io import shift_factors, to_onnx
from rtl_gen.build import run_onnx
from rtl_gen.errors import FrontendError, UnsupportedOpError
from rtl_gen.frontend import load_graph
from rtl_gen.interpret import interpret
from rtl_gen.passes import default_pipeline, run_pipeline
from rtl_gen.plan_program import program_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_contract_transformer import random_transformer  # noqa: E402

SEED = 11


def _streams(length, n=6, seed=SEED):
    return np.random.default_rng(seed).integers(0, 256, size=(n, length))


@pytest.fixture(params=[(0, 1), (1, 2)], ids=["one-block", "two-blocks"])
def model_file(request, tmp_path):
    seed, blocks = request.param
    model = random_transformer(seed=seed, blocks=blocks)
    path = tmp_path / "m.onnx"
    onnx.save(to_onnx(model), path)
    return model, path


@pytest.mark.parametrize("length", [1, 5, 6, 7, 19])
def test_onnxruntime_gives_the_contract(model_file, length):
    model, path = model_file
    ids = _streams(length)
    expected = zoo.forward_streams(model, ids, all_positions=True)
    assert np.array_equal(run_onnx(path, ids), expected)
    assert np.count_nonzero(expected) > expected.size // 2


def test_front_end_and_passes_keep_every_integer(model_file):
    model, path = model_file
    ids = _streams(3 * model.context)
    graph = load_graph(path)
    assert graph.causal_window == model.context
    expected = zoo.forward_streams(model, ids, all_positions=True)
    assert np.array_equal(interpret(graph, ids).logits, expected)
    fused = run_pipeline(graph, default_pipeline(), check_ids=ids)
    kinds = [type(op).__name__ for op in fused.ops]
    assert kinds.count("SpikingLinear") == 4 * len(model.blocks)
    assert "Accumulate" not in kinds
    assert np.array_equal(interpret(fused, ids).logits, expected)
    trace = interpret(fused, ids)
    assert len(trace.spikes) == len(model.graph().population_names)
    assert all(0.01 < r < 0.99 for r in trace.firing_rates())


def test_shift_factors_cover_both_directions():
    assert shift_factors(3) == (8, 1) and shift_factors(0) == (1, 1)
    assert shift_factors(-2) == (1, 4)


def test_the_plan_refuses_an_unfused_graph_naming_the_node(model_file):
    _, path = model_file
    with pytest.raises(FrontendError, match=r"node b0_q_acc: .*must be fused"):
        program_params(load_graph(path), 2, 4)


def test_the_plan_refuses_a_readout_of_the_spike_table_naming_the_node():
    """The spike table is read by a spiking linear layer only (it is no spike tensor)."""
    from contract.random_model import random_graph

    graph = random_graph(1, embed="spike", hidden=())
    with pytest.raises(FrontendError, match="node readout reads the SpikeEmbed's spikes"):
        program_params(graph, 2, 4)


def _save(model, tmp_path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(to_onnx(model), path)
    return path


def test_type_errors_name_the_node(tmp_path):
    model = random_transformer(seed=4)
    graph = load_graph(_save(model, tmp_path))
    ops = list(graph.ops)
    attn = next(i for i, op in enumerate(ops) if isinstance(op, Attention))
    res = next(i for i, op in enumerate(ops) if isinstance(op, ResidualAdd))
    # a residual add whose residual input is the attention's spikes
    ops[res] = ResidualAdd(ops[res].name, (ops[attn].output, ops[attn].output), ops[res].output,
                           weight=ops[res].weight, shift=ops[res].shift)
    with pytest.raises(GraphError, match=f"node {ops[res].name} needs residual"):
        graph.replace_ops(ops)
    ops = list(graph.ops)
    fire = next(i for i, op in enumerate(ops) if isinstance(op, Fire))
    ops[fire], ops[fire + 1] = ops[fire + 1], ops[fire]
    with pytest.raises(GraphError, match="before it is computed"):
        graph.replace_ops(ops)


def test_unsupported_op_lists_the_transformer_ops(tmp_path):
    proto = to_onnx(random_transformer(seed=5))
    node = next(n for n in proto.graph.node if n.op_type == "ResidualAdd")
    node.op_type = "LayerNorm"
    proto.functions.append(helper.make_function(
        "spikeforge", "LayerNorm", ["x", "s", "w", "m", "d"], ["out"],
        [helper.make_node("Identity", ["x"], ["out"])], [helper.make_opsetid("", 17)]))
    path = tmp_path / "bad.onnx"
    onnx.save(proto, path)
    with pytest.raises(UnsupportedOpError,
                       match="LayerNorm.*TokenEmbed, SpikeAccumulate, TernaryIF"):
        load_graph(path)
