"""The ONNX form of an integer transformer: one recognisable node per op, runnable as it is.

As for the MLP (:mod:`contract.onnx_io`), every op is a node of the ``spikeforge`` domain with a
model-local function body of standard ops, so onnxruntime gives the contract's integers while
the generator's front end matches nodes by op type. Tensors between ops are ``int32
[N, T, L, width]`` (streams of ``L`` bytes, ``T`` time steps); ``L`` is a dynamic dimension.

| node | inputs | output |
| --- | --- | --- |
| ``TokenEmbed`` | ids ``int64 [N, L]``, table ``[256, d]`` | residual ``[N, T, L, d]`` |
| ``TernaryIF`` | currents, bias, threshold, reset (scalars or per channel ``[n]``) | spikes |
| ``SpikeAccumulate`` | spikes, weight ``[n_in, n_out]`` | currents |
| ``SpikeAttention`` | q, k, v, score bias ``[H, W]``, threshold, reset ``[W]`` | spikes |
| ``ResidualAdd`` | residual, spikes, weight ``[n_in, d]``, mult ``[]``, div ``[]`` | residual |
| ``SpikeReadout`` | spikes, weight ``[d, 256]``, bias ``[256]`` | logits ``[N, L, 256]`` |

A normalising neuron is a ``TernaryIF`` whose current is the residual itself. ``ResidualAdd``
adds ``floor((S W * mult + div // 2) / div)``: ``mult = 2^shift, div = 1`` for ``shift >= 0``,
``mult = 1, div = 2^-shift`` otherwise (the contract's ``shift_round``). ``SpikeAttention``
computes the windowed attention current of :func:`contract.transformer.attention_current` and
runs the attention neuron with the constants of each position's key count. Metadata carries
``arch=transformer``, ``context`` (the window), ``heads``, ``timesteps``, ``weight_bits``,
``logit_scale``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from .intmodel import VOCAB
from .onnx_io import (
    DOMAIN,
    OPSET,
    _accumulate_function,
    _const,
    _fire_function,
    _function,
    _i32,
    _readout_function,
    fire_nodes,
)
from .transformer import IntNorm, IntOutProj, IntTransformer

__all__ = ["shift_factors", "transformer_to_onnx"]


def shift_factors(shift: int) -> tuple[int, int]:
    """``(mult, div)`` of a ``ResidualAdd`` for the contract's ``shift_round(·, shift)``."""
    return (1 << shift, 1) if shift >= 0 else (1, 1 << -shift)


def _embed_function(timesteps: int) -> onnx.FunctionProto:
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["g"], axis=0),  # [N, L, d]
        _const("axis", np.array([1], dtype=np.int64)),
        helper.make_node("Unsqueeze", ["g", "axis"], ["u"]),
        helper.make_node("Concat", ["u"] * timesteps, ["x"], axis=1),
    ]
    return _function("TokenEmbed", ["ids", "table"], ["x"], nodes)


def _residual_function() -> onnx.FunctionProto:
    nodes = [
        helper.make_node("MatMul", ["spikes", "weight"], ["acc"]),
        helper.make_node("Mul", ["acc", "mult"], ["scaled"]),
        _const("two", np.array(2, dtype=np.int32)),
        helper.make_node("Div", ["div", "two"], ["half"]),
        helper.make_node("Add", ["scaled", "half"], ["num"]),
        helper.make_node("Mod", ["num", "div"], ["rem"], fmod=0),  # in [0, div): floor division
        helper.make_node("Sub", ["num", "rem"], ["exact"]),
        helper.make_node("Div", ["exact", "div"], ["delta"]),
        helper.make_node("Add", ["x", "delta"], ["out"]),
    ]
    return _function("ResidualAdd", ["x", "spikes", "weight", "mult", "div"], ["out"], nodes)


def _attention_function(timesteps: int, heads: int, d_model: int,
                        window: int) -> onnx.FunctionProto:
    dh = d_model // heads
    split = np.array([0, 0, 0, heads, dh], dtype=np.int64)
    nodes = [
        _const("split", split),
        _const("merge", np.array([0, 0, 0, d_model], dtype=np.int64)),
        # [N, T, L, d] -> [N, T, H, L, dh]
        helper.make_node("Reshape", ["q", "split"], ["q5"]),
        helper.make_node("Reshape", ["k", "split"], ["k5"]),
        helper.make_node("Reshape", ["v", "split"], ["v5"]),
        helper.make_node("Transpose", ["q5"], ["qh"], perm=[0, 1, 3, 2, 4]),
        helper.make_node("Transpose", ["k5"], ["kt"], perm=[0, 1, 3, 4, 2]),
        helper.make_node("Transpose", ["v5"], ["vh"], perm=[0, 1, 3, 2, 4]),
        helper.make_node("MatMul", ["qh", "kt"], ["dots"]),  # [N, T, H, L, L]
        # distance i - j, the window mask and the key counts
        helper.make_node("Shape", ["q"], ["shape"]),
        _const("two", np.array(2, dtype=np.int64)),
        helper.make_node("Gather", ["shape", "two"], ["length"], axis=0),
        _const("zero64", np.array(0, dtype=np.int64)),
        _const("one64", np.array(1, dtype=np.int64)),
        helper.make_node("Range", ["zero64", "length", "one64"], ["pos"]),
        _const("ax0", np.array([0], dtype=np.int64)),
        _const("ax1", np.array([1], dtype=np.int64)),
        helper.make_node("Unsqueeze", ["pos", "ax1"], ["rows"]),
        helper.make_node("Unsqueeze", ["pos", "ax0"], ["cols"]),
        helper.make_node("Sub", ["rows", "cols"], ["distance"]),
        _const("last64", np.array(window - 1, dtype=np.int64)),
        _const("window64", np.array(window, dtype=np.int64)),
        helper.make_node("GreaterOrEqual", ["distance", "zero64"], ["causal"]),
        helper.make_node("Less", ["distance", "window64"], ["near"]),
        helper.make_node("And", ["causal", "near"], ["mask"]),
        helper.make_node("Max", ["distance", "zero64"], ["d_lo"]),
        helper.make_node("Min", ["d_lo", "last64"], ["d_clip"]),
        helper.make_node("Gather", ["score_bias", "d_clip"], ["bias"], axis=1),  # [H, L, L]
        helper.make_node("Add", ["dots", "bias"], ["scores"]),
        _const("zero32", np.array(0, dtype=np.int32)),
        helper.make_node("Max", ["scores", "zero32"], ["relu"]),
        helper.make_node("Where", ["mask", "relu", "zero32"], ["weights"]),
        helper.make_node("MatMul", ["weights", "vh"], ["ah"]),  # [N, T, H, L, dh]
        helper.make_node("Transpose", ["ah"], ["a5"], perm=[0, 1, 3, 2, 4]),
        helper.make_node("Reshape", ["a5", "merge"], ["current"]),
        # the attention neuron: constants of min(i + 1, W) keys, per position [L, 1]
        helper.make_node("Min", ["pos", "last64"], ["count_index"]),
        helper.make_node("Gather", ["threshold", "count_index"], ["thr_l"], axis=0),
        helper.make_node("Gather", ["reset", "count_index"], ["rst_l"], axis=0),
        helper.make_node("Unsqueeze", ["thr_l", "ax1"], ["thr"]),
        helper.make_node("Unsqueeze", ["rst_l", "ax1"], ["rst"]),
        *fire_nodes(timesteps, "current", "zero32", "thr", "rst", "spikes", prefix="if_"),
    ]
    return _function("SpikeAttention", ["q", "k", "v", "score_bias", "threshold", "reset"],
                     ["spikes"], nodes)


class _GraphWriter:
    """Collects nodes and initializers with unique names."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value) -> str:
        self.inits.append(_i32(name, value))
        return name

    def node(self, op: str, inputs: list[str], output: str, name: str) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], domain=DOMAIN, name=name))
        return output

    def norm(self, x: str, norm: IntNorm, name: str) -> str:
        args = [self.const(f"{name}_{k}", getattr(norm, k)) for k in ("bias", "threshold", "reset")]
        return self.node("TernaryIF", [x, *args], f"{name}_s", name)

    def linear(self, s: str, layer, name: str) -> str:
        w = self.const(f"{name}_w", layer.weight.T)
        acc = self.node("SpikeAccumulate", [s, w], f"{name}_a", f"{name}_acc")
        args = [self.const(f"{name}_bias", layer.bias),
                self.const(f"{name}_threshold", layer.threshold),
                self.const(f"{name}_reset", layer.reset)]
        return self.node("TernaryIF", [acc, *args], f"{name}_s", f"{name}_fire")

    def residual(self, x: str, s: str, proj: IntOutProj, name: str) -> str:
        mult, div = shift_factors(proj.shift)
        args = [self.const(f"{name}_w", proj.weight.T), self.const(f"{name}_mult", mult),
                self.const(f"{name}_div", div)]
        return self.node("ResidualAdd", [x, s, *args], f"{name}_x", name)


def transformer_to_onnx(model: IntTransformer, name: str = "spikelm_transformer"
                        ) -> onnx.ModelProto:
    """The ONNX model of ``model``: input ``input`` (int64 ``[N, L]``, byte streams), output
    ``output`` (int32 ``[N, L, 256]``, the logits of every position)."""
    g = _GraphWriter()
    x = g.node("TokenEmbed", ["input", g.const("tok_embed", model.tok_embed)], "x0", "embed")
    for i, block in enumerate(model.blocks):
        b = f"b{i}"
        s = g.norm(x, block.norm1, f"{b}_norm1")
        q, k, v = (g.linear(s, getattr(block, c), f"{b}_{c}") for c in ("q", "k", "v"))
        args = [g.const(f"{b}_score_bias", block.score_bias),
                g.const(f"{b}_attn_threshold", block.attn_threshold),
                g.const(f"{b}_attn_reset", block.attn_reset)]
        o = g.node("SpikeAttention", [q, k, v, *args], f"{b}_attn_s", f"{b}_attn")
        x = g.residual(x, o, block.out, f"{b}_out")
        h = g.linear(g.norm(x, block.norm2, f"{b}_norm2"), block.ff1, f"{b}_ff1")
        x = g.residual(x, h, block.ff2, f"{b}_ff2")
    s = g.norm(x, model.norm_f, "norm_f")
    g.node("SpikeReadout", [s, g.const("w_out", model.readout.weight.T),
                            g.const("b_out", model.readout.bias)], "output", "readout")
    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.INT64, ["N", "L"])],
        [helper.make_tensor_value_info("output", TensorProto.INT32, ["N", "L", VOCAB])],
        initializer=g.inits,
    )
    steps = model.timesteps
    functions = [
        _embed_function(steps), _fire_function(steps), _accumulate_function(),
        _attention_function(steps, model.heads, model.d_model, model.context),
        _residual_function(), _readout_function(steps),
    ]
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, 1)],
        functions=functions, producer_name="spikeforge", ir_version=9,
    )
    helper.set_model_props(onnx_model, {
        "arch": "transformer",
        "logit_scale": repr(float(model.logit_scale)),
        "weight_bits": str(model.weight_bits),
        "timesteps": str(steps),
        "context": str(model.context),
        "heads": str(model.heads),
        "d_model": str(model.d_model),
    })
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model
