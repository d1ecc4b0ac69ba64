"""The ONNX front end, the passes and the IR interpreter, against the integer reference."""

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from contract import forward
from contract.graph import Readout, SpikeEmbed, SpikingLinear
from contract.onnx_io import to_onnx
from contract.random_model import random_model
from rtl_gen.errors import FrontendError, UnsupportedOpError
from rtl_gen.frontend import load_graph
from rtl_gen.interpret import interpret
from rtl_gen.passes import FuseLinear, ScaleThresholds, run_pipeline


def save(model, path):
    onnx.save(model, path)
    return path


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    hidden=st.lists(st.sampled_from([1, 2, 3, 5, 7, 13]), min_size=1, max_size=3),
    timesteps=st.integers(1, 8),
    bits=st.sampled_from([2, 4, 8]),
)
def test_frontend_and_fusion_keep_the_reference_integers(
    tmp_path_factory, seed, hidden, timesteps, bits
):
    model = random_model(seed, hidden=tuple(hidden), timesteps=timesteps, weight_bits=bits)
    path = save(to_onnx(model), tmp_path_factory.mktemp("m") / "m.onnx")
    ids = np.random.default_rng(seed).integers(0, 256, size=(32, model.context))
    graph = load_graph(path)
    fused = run_pipeline(graph, [FuseLinear()], check_ids=ids)
    assert [type(n) for n in fused.ops] == [SpikeEmbed, *[SpikingLinear] * len(hidden), Readout]
    assert np.array_equal(interpret(fused, ids).logits[:, -1], forward(model, ids))


def test_threshold_knob_matches_the_contract(tmp_path):
    model = random_model(5, hidden=(7, 5))
    ids = np.random.default_rng(0).integers(0, 256, size=(64, model.context))
    graph = run_pipeline(
        load_graph(save(to_onnx(model), tmp_path / "m.onnx")),
        [FuseLinear(), ScaleThresholds("3/2")],
        check_ids=ids,
    )
    expected = model.with_threshold_scale("1.5")
    assert np.array_equal(interpret(graph, ids).logits[:, -1], forward(expected, ids))
    fewer = interpret(graph, ids).firing_rates()[1:]
    more = interpret(load_graph(tmp_path / "m.onnx"), ids).firing_rates()[1:]
    assert sum(fewer) < sum(more)


def test_not_onnx(tmp_path):
    path = tmp_path / "x.onnx"
    path.write_bytes(b"this is not a protobuf")
    with pytest.raises(FrontendError, match="not a valid ONNX model"):
        load_graph(path)


def test_truncated_onnx(tmp_path):
    data = to_onnx(random_model(0)).SerializeToString()
    path = tmp_path / "t.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FrontendError):
        load_graph(path)


def test_unsupported_op_names_op_and_node(tmp_path):
    model = to_onnx(random_model(0))
    model.graph.node.insert(1, helper.make_node("Relu", ["s0"], ["r"], name="sneaky_relu"))
    path = save(model, tmp_path / "u.onnx")
    with pytest.raises(UnsupportedOpError, match=r"Relu.*sneaky_relu"):
        load_graph(path)


def test_an_input_that_is_not_a_stream_is_refused(tmp_path):
    model = to_onnx(random_model(0))
    model.graph.input[0].type.tensor_type.shape.dim.add().dim_value = 3
    with pytest.raises(FrontendError, match=r"byte streams \[N, L\]"):
        load_graph(save(model, tmp_path / "d.onnx"))


def test_float_weights_are_refused(tmp_path):
    model = to_onnx(random_model(0))
    init = next(t for t in model.graph.initializer if t.name == "accumulate0_w")
    arr = onnx.numpy_helper.to_array(init).astype(np.float32)
    arr[0, 0] = np.nan
    init.CopyFrom(onnx.numpy_helper.from_array(arr, "accumulate0_w"))
    with pytest.raises(FrontendError, match="integers"):
        load_graph(save(model, tmp_path / "f.onnx"))


def test_the_golden_form_follows_the_accelerator():
    """A graph of a SpikeEmbed without attention is checked as windows at their last position
    (its positions depend on their window alone), with one threshold per layer or per neuron;
    one with attention, or on a byte embedding, at every position of whole streams."""
    from dataclasses import replace

    from contract.graph import Fire
    from contract.random_model import random_graph
    from rtl_gen.machines import checks_streams

    graph = random_graph(2, embed="spike", hidden=(5,))
    assert not checks_streams(graph)
    per_neuron = graph.replace_ops(
        replace(op, threshold=np.broadcast_to(op.threshold, op.bias.shape),
                reset=np.broadcast_to(op.reset, op.bias.shape)) if isinstance(op, Fire) else op
        for op in graph.ops)
    assert not checks_streams(per_neuron)
    assert checks_streams(random_graph(2, embed="spike", hidden=(4,), spike_attention=True))
    assert checks_streams(random_graph(2))
