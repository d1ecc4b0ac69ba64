"""The ONNX form of an integer model: one recognisable node per spiking op.

Each spiking op is a node of the ``spikeforge`` domain whose ONNX *model-local function* body is
made of standard ops, so onnxruntime runs the graph as it is while a front end matches the
nodes by domain and op type:

| node | inputs | output |
| --- | --- | --- |
| ``SpikeEmbed`` | ids ``int64 [N, k]``, table ``int32 [256, T, E]`` | ``int32 [N, T, k*E]`` |
| ``SpikeAccumulate`` | spikes ``[N, T, n_in]``, weight ``[n_in, n_out]`` | ``[N, T, n_out]`` |
| ``TernaryIF`` | currents, bias ``[n_out]``, threshold ``[]``, reset ``[]`` | spikes |
| ``SpikeReadout`` | spikes, weight ``[n_in, 256]``, bias ``[256]`` | logits ``int32 [N, 256]`` |

Weights are stored transposed (``[n_in, n_out]``) so the function bodies are plain ``MatMul``.
The graph input is ``input`` and its output ``output``; ``golden.npz`` feeds them as they are.
Model metadata carries ``logit_scale``, ``weight_bits`` and ``timesteps``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .intmodel import VOCAB, IntModel

__all__ = ["DOMAIN", "OPSET", "fire_nodes", "to_onnx"]

DOMAIN = "spikeforge"
OPSET = 17


def _const(name: str, value) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name)
    )


def _function(name: str, inputs, outputs, nodes) -> onnx.FunctionProto:
    return helper.make_function(
        DOMAIN, name, inputs, outputs, nodes, [helper.make_opsetid("", OPSET)]
    )


def _embed_function() -> onnx.FunctionProto:
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["g"], axis=0),  # [N, k, T, E]
        helper.make_node("Transpose", ["g"], ["tr"], perm=[0, 2, 1, 3]),  # [N, T, k, E]
        _const("shape", np.array([0, 0, -1], dtype=np.int64)),
        helper.make_node("Reshape", ["tr", "shape"], ["spikes"]),
    ]
    return _function("SpikeEmbed", ["ids", "table"], ["spikes"], nodes)


def _accumulate_function() -> onnx.FunctionProto:
    nodes = [helper.make_node("MatMul", ["spikes", "weight"], ["currents"])]
    return _function("SpikeAccumulate", ["spikes", "weight"], ["currents"], nodes)


def fire_nodes(timesteps: int, currents: str, bias: str, threshold: str, reset: str,
               spikes: str, prefix: str = "") -> list[onnx.NodeProto]:
    """Ternary integrate-and-fire over axis 1 of ``currents``, unrolled over ``timesteps``.

    ``bias``, ``threshold`` and ``reset`` broadcast against one step (scalars, per neuron, per
    channel or per position); internal names start with ``prefix``.
    """
    n = prefix
    nodes = [helper.make_node("Neg", [threshold], [f"{n}neg_threshold"])]
    steps = []
    membrane = None
    for t in range(timesteps):
        nodes += [
            _const(f"{n}t{t}", np.array(t, dtype=np.int64)),
            helper.make_node("Gather", [currents, f"{n}t{t}"], [f"{n}a{t}"], axis=1),
            helper.make_node("Add", [f"{n}a{t}", bias], [f"{n}ab{t}"]),
        ]
        v = f"{n}ab{t}"
        if membrane is not None:
            nodes.append(helper.make_node("Add", [membrane, f"{n}ab{t}"], [f"{n}v{t}"]))
            v = f"{n}v{t}"
        nodes += [
            helper.make_node("GreaterOrEqual", [v, threshold], [f"{n}pos{t}"]),
            helper.make_node("LessOrEqual", [v, f"{n}neg_threshold"], [f"{n}neg{t}"]),
            helper.make_node("Cast", [f"{n}pos{t}"], [f"{n}pi{t}"], to=TensorProto.INT32),
            helper.make_node("Cast", [f"{n}neg{t}"], [f"{n}ni{t}"], to=TensorProto.INT32),
            helper.make_node("Sub", [f"{n}pi{t}", f"{n}ni{t}"], [f"{n}s{t}"]),
            helper.make_node("Mul", [f"{n}s{t}", reset], [f"{n}rs{t}"]),
            helper.make_node("Sub", [v, f"{n}rs{t}"], [f"{n}u{t}"]),
            _const(f"{n}ax{t}", np.array([1], dtype=np.int64)),
            helper.make_node("Unsqueeze", [f"{n}s{t}", f"{n}ax{t}"], [f"{n}su{t}"]),
        ]
        membrane = f"{n}u{t}"
        steps.append(f"{n}su{t}")
    nodes.append(helper.make_node("Concat", steps, [spikes], axis=1))
    return nodes


def _fire_function(timesteps: int) -> onnx.FunctionProto:
    """Ternary integrate-and-fire, unrolled over the model's ``timesteps``."""
    nodes = fire_nodes(timesteps, "currents", "bias", "threshold", "reset", "spikes")
    return _function("TernaryIF", ["currents", "bias", "threshold", "reset"], ["spikes"], nodes)


def _readout_function(timesteps: int) -> onnx.FunctionProto:
    nodes = [
        helper.make_node("MatMul", ["spikes", "weight"], ["per_step"]),
        _const("axes", np.array([1], dtype=np.int64)),
        helper.make_node("ReduceSum", ["per_step", "axes"], ["summed"], keepdims=0),
        _const("steps", np.array(timesteps, dtype=np.int32)),
        helper.make_node("Mul", ["bias", "steps"], ["bias_total"]),
        helper.make_node("Add", ["summed", "bias_total"], ["logits"]),
    ]
    return _function("SpikeReadout", ["spikes", "weight", "bias"], ["logits"], nodes)


def _i32(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.int32), name)


def to_onnx(model: IntModel, name: str = "spikelm") -> onnx.ModelProto:
    """The ONNX model of ``model``: input ``input`` (int64 ``[N, k]``), output ``output``."""
    inits = [_i32("spike_table", model.spike_table)]
    nodes = [
        helper.make_node(
            "SpikeEmbed", ["input", "spike_table"], ["s0"], domain=DOMAIN, name="embed"
        )
    ]
    spikes = "s0"
    for index, layer in enumerate(model.layers):
        inits += [
            _i32(f"w{index}", layer.weight.T),
            _i32(f"b{index}", layer.bias),
            _i32(f"theta{index}", layer.threshold),
            _i32(f"reset{index}", layer.reset),
        ]
        nodes += [
            helper.make_node(
                "SpikeAccumulate",
                [spikes, f"w{index}"],
                [f"a{index}"],
                domain=DOMAIN,
                name=f"accumulate{index}",
            ),
            helper.make_node(
                "TernaryIF",
                [f"a{index}", f"b{index}", f"theta{index}", f"reset{index}"],
                [f"s{index + 1}"],
                domain=DOMAIN,
                name=f"fire{index}",
            ),
        ]
        spikes = f"s{index + 1}"
    inits += [_i32("w_out", model.readout.weight.T), _i32("b_out", model.readout.bias)]
    nodes.append(
        helper.make_node(
            "SpikeReadout", [spikes, "w_out", "b_out"], ["output"], domain=DOMAIN, name="readout"
        )
    )
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.INT64, ["N", model.context])],
        [helper.make_tensor_value_info("output", TensorProto.INT32, ["N", VOCAB])],
        initializer=inits,
    )
    functions = [
        _embed_function(),
        _accumulate_function(),
        _fire_function(model.timesteps),
        _readout_function(model.timesteps),
    ]
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, 1)],
        functions=functions,
        producer_name="spikeforge",
        ir_version=9,
    )
    meta = {
        "logit_scale": repr(float(model.logit_scale)),
        "weight_bits": str(model.weight_bits),
        "timesteps": str(model.timesteps),
        "embed_dim": str(model.embed_dim),
        "context": str(model.context),
    }
    helper.set_model_props(onnx_model, meta)
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model
