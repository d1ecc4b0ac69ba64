"""The ONNX form of any graph: one recognisable node per op, runnable as it is.

Each op is a node of the ``spikeforge`` domain whose ONNX *model-local function* body is made
of standard ops, so onnxruntime gives the contract's integers while a front end matches the
nodes by domain and op type. Tensors between ops are ``int32 [N, T, L, width]`` (byte streams of
``L`` positions, ``T`` time steps); ``L`` is a dynamic dimension. The graph input is ``input``
(int64 ``[N, L]``) and its output ``output`` (int32 ``[N, L, 256]``, the logits of every
position; an encoder's ``[N, 1, C]``, a sequence's class logits); ``golden.npz`` feeds them as
they are.

| node (op of :mod:`contract.graph`) | inputs (constants are initializers) | output |
| --- | --- | --- |
| ``SpikeEmbed`` | ids, table ``[256, T, E]``, context ``[]`` | spikes |
| ``TokenEmbed`` | ids, table ``[256, d]`` | residual |
| ``SpikeAccumulate`` (``Accumulate``) | spikes, weight ``[n_in, n_out]`` | currents |
| ``TernaryIF`` (``Fire``) | current, bias, threshold, reset ``[T, n]``, leak, binary | spikes |
| ``SpikeAttention`` (``Attention``) | q, k, v, score bias ``[H, W]``, thresholds, resets | spikes |
| (elastic) | q, k, v, score bias ``[T, H, W]``, ``[T, W]`` constants, leak, binary | spikes |
| ``ResidualAdd`` | residual, spikes, weight ``[n_in, d]``, mult ``[]``, div ``[]`` | residual |
| (scaled) | residual, spikes, weight ``[n_in, d]``, scale ``[T, 1, 2, 3]`` | residual |
| ``SpikeReadout`` (``Readout``) | spikes, weight ``[n_in, C]``, bias, leak | logits |
| ``SpikePool`` (``Pool``) | logits ``[N, L, C]`` | logits ``[N, 1, C]`` (their sum) |

A fused :class:`~contract.graph.SpikingLinear` is written as its ``SpikeAccumulate`` and
``TernaryIF``. Weights are stored transposed so the function bodies are plain ``MatMul``.
``ResidualAdd`` adds ``floor((S W * mult + div // 2) / div)``: ``mult = 2^shift, div = 1`` for
``shift >= 0``, ``mult = 1, div = 2^-shift`` otherwise (the contract's ``shift_round``).
A neuron's constants have one row per time step (``[T]`` or ``[T, n]``, the same row
repeated when they do not change over time), and a leak (``[T - 1, 3, 2, 3]``; a readout's
``[T - 1, 1, 2, 3]``) is a table of terms ``(sign, mult, div)``, the term
``sign * floor((x * mult + div // 2) / div)`` (the identity: ``(1, 1, 1), (0, 1, 1)``), chosen by
the spike ``s`` (row ``s + 1``); ``binary`` is 1 when a neuron's spikes are never negative.
A graph whose attentions use the elastic neuron writes every ``SpikeAttention`` in the elastic
form (the function takes eight inputs), and one with a per-step residual scale every
``ResidualAdd`` in the scaled form (a shift is the one term ``(1, 2^shift, 1)`` or
``(1, 1, 2^-shift)`` every step); plain graphs keep the plain forms. A graph with a
bidirectional attention (an encoder) gives every ``SpikeAttention`` a last input ``causal``,
1 or 0 (where 0: every position reads every position, the score bias ``[(T,) H, 2W - 1]`` by
``i - j + W - 1``, the neuron's constants of ``L`` keys).
Model metadata carries ``logit_scale``, ``weight_bits`` and ``timesteps``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import graph as g
from .ops import LEAK_TERMS

__all__ = ["DOMAIN", "OPSET", "fire_nodes", "leak_table", "shift_factors", "shift_round_nodes",
           "to_onnx"]

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


def shift_factors(shift: int) -> tuple[int, int]:
    """``(mult, div)`` of a ``ResidualAdd`` for the contract's ``shift_round(·, shift)``."""
    return (1 << shift, 1) if shift >= 0 else (1, 1 << -shift)


def shift_round_nodes(x: str, mult: str, div: str, out: str, n: str = "") -> list:
    """``out = floor((x * mult + div // 2) / div)``: the contract's ``shift_round`` by the
    factors of :func:`shift_factors` (``Mod`` of the divisor's sign makes the division floor)."""
    return [
        helper.make_node("Mul", [x, mult], [f"{n}scaled"]),
        _const(f"{n}two", np.array(2, dtype=np.int32)),
        helper.make_node("Div", [div, f"{n}two"], [f"{n}half"]),
        helper.make_node("Add", [f"{n}scaled", f"{n}half"], [f"{n}num"]),
        helper.make_node("Mod", [f"{n}num", div], [f"{n}rem"], fmod=0),
        helper.make_node("Sub", [f"{n}num", f"{n}rem"], [f"{n}exact"]),
        helper.make_node("Div", [f"{n}exact", div], [out]),
    ]


def leak_table(leak, steps: int, codes: int, rows: int | None = None) -> np.ndarray:
    """A leak of the graph (``[T - 1, (codes,) J, 2]`` of ``(sign, e)``, or ``None``, the
    identity) as ``int32 [T - 1, codes, J, 3]`` terms ``(sign, mult, div)``; ``rows`` other
    than ``T - 1`` for a residual's per-step scale (``[T, J, 2]``)."""
    rows = max(0, steps - 1) if rows is None else rows
    table = np.zeros((rows, codes, LEAK_TERMS, 3), dtype=np.int32)
    table[..., 1:] = 1
    if leak is None:
        table[..., 0, 0] = 1
        return table
    terms = np.asarray(leak).reshape(table.shape[:-1] + (2,))
    table[..., 0] = terms[..., 0]
    e = terms[..., 1]
    table[..., 1] = np.where(e >= 0, 1 << np.maximum(e, 0), 1)
    table[..., 2] = np.where(e < 0, 1 << np.maximum(-e, 0), 1)
    return table


def leak_nodes(x: str, table: str, index: str | None, out: str, n: str) -> list:
    """``out = sum_j sign_j floor((x mult_j + div_j // 2) / div_j)``, the terms ``[J, 3]`` of
    ``table`` row ``index`` (per element of ``x``; ``None``: row 0 for all)."""
    nodes = [_const(f"{n}zero", np.array(0, dtype=np.int64)),
             _const(f"{n}one", np.array(1, dtype=np.int64)),
             _const(f"{n}two", np.array(2, dtype=np.int64))]
    nodes.append(helper.make_node("Gather", [table, index or f"{n}zero"], [f"{n}terms"], axis=0))
    parts = []
    for j in range(LEAK_TERMS):
        m = f"{n}j{j}_"
        nodes += [_const(f"{m}j", np.array(j, dtype=np.int64)),
                  helper.make_node("Gather", [f"{n}terms", f"{m}j"], [f"{m}t"], axis=-2)]
        for k, field in enumerate(("sign", "mult", "div")):
            index_name = (f"{n}zero", f"{n}one", f"{n}two")[k]
            nodes.append(helper.make_node("Gather", [f"{m}t", index_name], [f"{m}{field}"],
                                          axis=-1))
        nodes += [*shift_round_nodes(x, f"{m}mult", f"{m}div", f"{m}q", m),
                  helper.make_node("Mul", [f"{m}q", f"{m}sign"], [f"{m}v"])]
        parts.append(f"{m}v")
    nodes.append(helper.make_node("Add", parts, [out]))
    return nodes


def fire_nodes(timesteps: int, currents: str, bias: str, threshold: str, reset: str,
               spikes: str, prefix: str = "", per_step: bool = False, leak: str | None = None,
               binary: str | None = None) -> list[onnx.NodeProto]:
    """Integrate-and-fire over axis 1 of ``currents``, unrolled over ``timesteps``.

    ``bias``, ``threshold`` and ``reset`` broadcast against one step (scalars, per neuron, per
    channel or per position), or with ``per_step`` have one row per step; ``leak`` names a
    :func:`leak_table` and ``binary`` a 0/1 scalar; internal names start with ``prefix``.
    """
    n = prefix
    nodes = []
    if binary is not None:
        nodes += [_const(f"{n}one32", np.array(1, dtype=np.int32)),
                  helper.make_node("Sub", [f"{n}one32", binary], [f"{n}ternary"])]
    steps = []
    membrane = None
    for t in range(timesteps):
        nodes += [
            _const(f"{n}t{t}", np.array(t, dtype=np.int64)),
            helper.make_node("Gather", [currents, f"{n}t{t}"], [f"{n}a{t}"], axis=1),
        ]
        b, th, r = bias, threshold, reset
        if per_step:
            b, th, r = f"{n}b{t}", f"{n}th{t}", f"{n}r{t}"
            nodes += [helper.make_node("Gather", [src, f"{n}t{t}"], [dst], axis=0)
                      for src, dst in ((bias, b), (threshold, th), (reset, r))]
        nodes += [helper.make_node("Add", [f"{n}a{t}", b], [f"{n}ab{t}"]),
                  helper.make_node("Neg", [th], [f"{n}nth{t}"])]
        v = f"{n}ab{t}"
        if membrane is not None:
            nodes.append(helper.make_node("Add", [membrane, f"{n}ab{t}"], [f"{n}v{t}"]))
            v = f"{n}v{t}"
        ni = f"{n}ni{t}"
        nodes += [
            helper.make_node("GreaterOrEqual", [v, th], [f"{n}pos{t}"]),
            helper.make_node("LessOrEqual", [v, f"{n}nth{t}"], [f"{n}neg{t}"]),
            helper.make_node("Cast", [f"{n}pos{t}"], [f"{n}pi{t}"], to=TensorProto.INT32),
            helper.make_node("Cast", [f"{n}neg{t}"], [ni], to=TensorProto.INT32),
        ]
        if binary is not None:
            nodes.append(helper.make_node("Mul", [ni, f"{n}ternary"], [f"{n}nt{t}"]))
            ni = f"{n}nt{t}"
        nodes += [
            helper.make_node("Sub", [f"{n}pi{t}", ni], [f"{n}s{t}"]),
            helper.make_node("Mul", [f"{n}s{t}", r], [f"{n}rs{t}"]),
            helper.make_node("Sub", [v, f"{n}rs{t}"], [f"{n}u{t}"]),
            _const(f"{n}ax{t}", np.array([1], dtype=np.int64)),
            helper.make_node("Unsqueeze", [f"{n}s{t}", f"{n}ax{t}"], [f"{n}su{t}"]),
        ]
        membrane = f"{n}u{t}"
        if leak is not None and t + 1 < timesteps:
            m = f"{n}lk{t}_"
            nodes += [
                _const(f"{m}one32", np.array(1, dtype=np.int32)),
                helper.make_node("Add", [f"{n}s{t}", f"{m}one32"], [f"{m}s1"]),
                helper.make_node("Cast", [f"{m}s1"], [f"{m}code"], to=TensorProto.INT64),
                helper.make_node("Gather", [leak, f"{n}t{t}"], [f"{m}table"], axis=0),
                *leak_nodes(membrane, f"{m}table", f"{m}code", f"{n}ul{t}", m),
            ]
            membrane = f"{n}ul{t}"
        steps.append(f"{n}su{t}")
    nodes.append(helper.make_node("Concat", steps, [spikes], axis=1))
    return nodes


# ---------------------------------------------------------------- one function per op


def _spike_embed_function(timesteps: int) -> onnx.FunctionProto:
    """Windows of ``context`` bytes (zero bytes before the start), through the table."""
    nodes = [
        _const("zero", np.array(0, dtype=np.int64)),
        _const("one", np.array(1, dtype=np.int64)),
        _const("ax0", np.array([0], dtype=np.int64)),
        _const("ax1", np.array([1], dtype=np.int64)),
        helper.make_node("Cast", ["context"], ["k"], to=TensorProto.INT64),
        helper.make_node("Sub", ["k", "one"], ["before"]),
        helper.make_node("Shape", ["ids"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Gather", ["shape", "one"], ["length"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Unsqueeze", ["before", "ax0"], ["before1"]),
        helper.make_node("Concat", ["n1", "before1"], ["pad_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["pad_shape"], ["pad"],
                         value=numpy_helper.from_array(np.array([0], dtype=np.int64))),
        helper.make_node("Concat", ["pad", "ids"], ["padded"], axis=1),  # [N, L + k - 1]
        helper.make_node("Range", ["zero", "length", "one"], ["pos"]),
        helper.make_node("Range", ["zero", "k", "one"], ["offset"]),
        helper.make_node("Unsqueeze", ["pos", "ax1"], ["rows"]),
        helper.make_node("Unsqueeze", ["offset", "ax0"], ["cols"]),
        helper.make_node("Add", ["rows", "cols"], ["index"]),  # [L, k]
        helper.make_node("Gather", ["padded", "index"], ["windows"], axis=1),  # [N, L, k]
        helper.make_node("Gather", ["table", "windows"], ["g"], axis=0),  # [N, L, k, T, E]
        helper.make_node("Transpose", ["g"], ["tr"], perm=[0, 3, 1, 2, 4]),  # [N, T, L, k, E]
        _const("merge", np.array([0, 0, 0, -1], dtype=np.int64)),
        helper.make_node("Reshape", ["tr", "merge"], ["spikes"]),
    ]
    return _function("SpikeEmbed", ["ids", "table", "context"], ["spikes"], nodes)


def _token_embed_function(timesteps: int) -> onnx.FunctionProto:
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["g"], axis=0),  # [N, L, d]
        _const("axis", np.array([1], dtype=np.int64)),
        helper.make_node("Unsqueeze", ["g", "axis"], ["u"]),
        helper.make_node("Concat", ["u"] * timesteps, ["x"], axis=1),
    ]
    return _function("TokenEmbed", ["ids", "table"], ["x"], nodes)


def _accumulate_function(timesteps: int) -> onnx.FunctionProto:
    nodes = [helper.make_node("MatMul", ["spikes", "weight"], ["currents"])]
    return _function("SpikeAccumulate", ["spikes", "weight"], ["currents"], nodes)


def _fire_function(timesteps: int) -> onnx.FunctionProto:
    """Integrate-and-fire with per-step constants and a leak, unrolled over ``timesteps``."""
    nodes = fire_nodes(timesteps, "currents", "bias", "threshold", "reset", "spikes",
                       per_step=True, leak="leak", binary="binary")
    return _function("TernaryIF", ["currents", "bias", "threshold", "reset", "leak", "binary"],
                     ["spikes"], nodes)


def _attention_function(timesteps: int, elastic: bool = False,
                        bidirectional: bool = False) -> onnx.FunctionProto:
    """The windowed attention current and its neuron; heads, width and window are read from
    the shapes of the score bias and of ``q`` at run time. ``elastic``: the score bias
    ``[T, H, W]`` and the constants ``[T, W]`` have one row per step, and a leak and the binary
    flag follow them (the elastic neuron's form). ``bidirectional``: a last input ``causal``;
    where it is 0 every position reads every position, the score bias (``2W - 1`` columns) by
    ``i - j + W - 1`` and the neuron's constants of ``L`` keys (an encoder's attention)."""
    lead = 1 if elastic else 0  # axes of the score bias and constants before heads / counts
    nodes = [
        # [N, T, L, d] -> [N, T, H, L, dh]
        helper.make_node("Shape", ["score_bias"], ["bias_shape"]),
        helper.make_node("Shape", ["q"], ["shape"]),
        _const("zero64", np.array(0, dtype=np.int64)),
        _const("one64", np.array(1, dtype=np.int64)),
        _const("two", np.array(2, dtype=np.int64)),
        _const("three", np.array(3, dtype=np.int64)),
        _const("ax0", np.array([0], dtype=np.int64)),
        _const("ax1", np.array([1], dtype=np.int64)),
        *([_const("head_axis", np.array(1, dtype=np.int64)),
           _const("window_axis", np.array(2, dtype=np.int64))] if elastic else []),
        helper.make_node("Gather", ["bias_shape", "head_axis" if elastic else "zero64"],
                         ["heads"], axis=0),
        helper.make_node("Shape", ["threshold"], ["window_shape"]),
        helper.make_node("Gather", ["window_shape", "one64" if elastic else "zero64"],
                         ["window64"], axis=0),
        helper.make_node("Gather", ["shape", "three"], ["d_model"], axis=0),
        helper.make_node("Div", ["d_model", "heads"], ["dh"]),
        _const("lead", np.array([0, 0, 0], dtype=np.int64)),
        helper.make_node("Unsqueeze", ["heads", "ax0"], ["heads1"]),
        helper.make_node("Unsqueeze", ["dh", "ax0"], ["dh1"]),
        helper.make_node("Concat", ["lead", "heads1", "dh1"], ["split"], axis=0),
        _const("merge", np.array([0, 0, 0, -1], dtype=np.int64)),
        helper.make_node("Reshape", ["q", "split"], ["q5"]),
        helper.make_node("Reshape", ["k", "split"], ["k5"]),
        helper.make_node("Reshape", ["v", "split"], ["v5"]),
        helper.make_node("Transpose", ["q5"], ["qh"], perm=[0, 1, 3, 2, 4]),
        helper.make_node("Transpose", ["k5"], ["kt"], perm=[0, 1, 3, 4, 2]),
        helper.make_node("Transpose", ["v5"], ["vh"], perm=[0, 1, 3, 2, 4]),
        helper.make_node("MatMul", ["qh", "kt"], ["dots"]),  # [N, T, H, L, L]
        # distance i - j, the window mask and the key counts
        helper.make_node("Gather", ["shape", "two"], ["length"], axis=0),
        helper.make_node("Range", ["zero64", "length", "one64"], ["pos"]),
        helper.make_node("Unsqueeze", ["pos", "ax1"], ["rows"]),
        helper.make_node("Unsqueeze", ["pos", "ax0"], ["cols"]),
        helper.make_node("Sub", ["rows", "cols"], ["distance"]),
        helper.make_node("Sub", ["window64", "one64"], ["last64"]),
        helper.make_node("GreaterOrEqual", ["distance", "zero64"], ["later"]),
        helper.make_node("Less", ["distance", "window64"], ["near"]),
        helper.make_node("And", ["later", "near"], ["causal_mask" if bidirectional else "mask"]),
        helper.make_node("Max", ["distance", "zero64"], ["d_lo"]),
        helper.make_node("Min", ["d_lo", "last64"], ["d_clip" if bidirectional else "d_index"]),
        *(_bidirectional_nodes() if bidirectional else []),
        helper.make_node("Gather", ["score_bias", "d_index"], ["bias"],
                         axis=lead + 1),  # [(T,) H, L, L]
        helper.make_node("Add", ["dots", "bias"], ["scores"]),
        _const("zero32", np.array(0, dtype=np.int32)),
        helper.make_node("Max", ["scores", "zero32"], ["relu"]),
        helper.make_node("Where", ["mask", "relu", "zero32"], ["weights"]),
        helper.make_node("MatMul", ["weights", "vh"], ["ah"]),  # [N, T, H, L, dh]
        helper.make_node("Transpose", ["ah"], ["a5"], perm=[0, 1, 3, 2, 4]),
        helper.make_node("Reshape", ["a5", "merge"], ["current"]),
        # the attention neuron: constants of min(i + 1, W) keys (or L), per position [L, 1]
        helper.make_node("Min", ["pos", "last64"],
                         ["causal_count" if bidirectional else "count_index"]),
        *([helper.make_node("Sub", ["length", "one64"], ["all_but_one"]),
           helper.make_node("Mul", ["pos", "zero64"], ["pos_zero"]),
           helper.make_node("Add", ["pos_zero", "all_but_one"], ["full_count"]),
           helper.make_node("Where", ["is_causal", "causal_count", "full_count"],
                            ["count_index"])] if bidirectional else []),
        helper.make_node("Gather", ["threshold", "count_index"], ["thr_l"], axis=lead),
        helper.make_node("Gather", ["reset", "count_index"], ["rst_l"], axis=lead),
        *([_const("ax2", np.array([2], dtype=np.int64))] if elastic else []),
        helper.make_node("Unsqueeze", ["thr_l", "ax2" if elastic else "ax1"], ["thr"]),
        helper.make_node("Unsqueeze", ["rst_l", "ax2" if elastic else "ax1"], ["rst"]),
    ]  # constants [(T,) L, 1]
    inputs = ["q", "k", "v", "score_bias", "threshold", "reset"]
    if not elastic:
        nodes += fire_nodes(timesteps, "current", "zero32", "thr", "rst", "spikes",
                            prefix="if_")
    else:
        inputs += ["leak", "binary"]
        nodes += [_const("zeros_t", np.zeros((timesteps, 1, 1), dtype=np.int32)),
                  *fire_nodes(timesteps, "current", "zeros_t", "thr", "rst", "spikes",
                              prefix="if_", per_step=True, leak="leak", binary="binary")]
    return _function("SpikeAttention", [*inputs, *(["causal"] if bidirectional else [])],
                     ["spikes"], nodes)


def _bidirectional_nodes() -> list:
    """From ``causal`` (0 or 1): the mask (every key where 0) and the score bias column
    ``d_index`` (``i - j + W - 1`` where 0), for :func:`_attention_function`."""
    return [
        helper.make_node("Cast", ["causal"], ["is_causal"], to=TensorProto.BOOL),
        helper.make_node("Not", ["is_causal"], ["everywhere"]),
        helper.make_node("Or", ["causal_mask", "everywhere"], ["mask"]),
        helper.make_node("Add", ["distance", "last64"], ["d_signed"]),
        helper.make_node("Where", ["is_causal", "d_clip", "d_signed"], ["d_index"]),
    ]


def _residual_function(timesteps: int, elastic: bool = False) -> onnx.FunctionProto:
    """``x + shift_round(S W, shift)``; ``elastic``: ``x + leak(S_t W, scale[t])`` with a
    table of terms ``[T, 1, J, 3]`` (a residual's per-step scale)."""
    nodes = [helper.make_node("MatMul", ["spikes", "weight"], ["acc"])]
    if not elastic:
        nodes += [*shift_round_nodes("acc", "mult", "div", "delta"),
                  helper.make_node("Add", ["x", "delta"], ["out"])]
        return _function("ResidualAdd", ["x", "spikes", "weight", "mult", "div"], ["out"],
                         nodes)
    steps = []
    for t in range(timesteps):
        nodes += [_const(f"t{t}", np.array(t, dtype=np.int64)),
                  _const(f"ax{t}", np.array([1], dtype=np.int64)),
                  helper.make_node("Gather", ["acc", f"t{t}"], [f"acc{t}"], axis=1),
                  helper.make_node("Gather", ["scale", f"t{t}"], [f"table{t}"], axis=0),
                  *leak_nodes(f"acc{t}", f"table{t}", None, f"d{t}", f"sc{t}_"),
                  helper.make_node("Unsqueeze", [f"d{t}", f"ax{t}"], [f"du{t}"])]
        steps.append(f"du{t}")
    nodes += [helper.make_node("Concat", steps, ["delta"], axis=1),
              helper.make_node("Add", ["x", "delta"], ["out"])]
    return _function("ResidualAdd", ["x", "spikes", "weight", "scale"], ["out"], nodes)


def _readout_function(timesteps: int) -> onnx.FunctionProto:
    """``L_t = leak_t(L_{t-1}) + W S_t + B_t``, unrolled; the logits are ``L_{T-1}``."""
    nodes = [
        helper.make_node("MatMul", ["spikes", "weight"], ["per_step"]),
        _const("ax1", np.array([1], dtype=np.int64)),
        helper.make_node("Unsqueeze", ["bias", "ax1"], ["bias3"]),  # [T, 1, 256]
        helper.make_node("Add", ["per_step", "bias3"], ["biased"]),
    ]
    total = None
    for t in range(timesteps):
        nodes += [_const(f"t{t}", np.array(t, dtype=np.int64)),
                  helper.make_node("Gather", ["biased", f"t{t}"], [f"p{t}"], axis=1)]
        if total is None:
            total = f"p{t}"
            continue
        nodes += [helper.make_node("Gather", ["leak", f"t{t - 1}"], [f"table{t}"], axis=0),
                  *leak_nodes(total, f"table{t}", None, f"kept{t}", f"lk{t}_"),
                  helper.make_node("Add", [f"kept{t}", f"p{t}"], [f"sum{t}"])]
        total = f"sum{t}"
    nodes.append(helper.make_node("Identity", [total], ["logits"]))
    return _function("SpikeReadout", ["spikes", "weight", "bias", "leak"], ["logits"], nodes)


def _pool_function(timesteps: int) -> onnx.FunctionProto:
    """The sum of every position's logits (axis 1 of ``[N, L, C]``)."""
    nodes = [_const("ax1", np.array([1], dtype=np.int64)),
             helper.make_node("ReduceSum", ["logits", "ax1"], ["pooled"], keepdims=1)]
    return _function("SpikePool", ["logits"], ["pooled"], nodes)


FUNCTIONS = {
    "SpikeEmbed": _spike_embed_function,
    "TokenEmbed": _token_embed_function,
    "SpikeAccumulate": _accumulate_function,
    "TernaryIF": _fire_function,
    "SpikeAttention": _attention_function,
    "ResidualAdd": _residual_function,
    "SpikeReadout": _readout_function,
    "SpikePool": _pool_function,
}


class _Writer:
    """Collects nodes and initializers; one method per op."""

    def __init__(self, timesteps: int, elastic: dict[str, bool], bidirectional: bool = False):
        self.timesteps = timesteps
        self.elastic = elastic
        self.bidirectional = bidirectional
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.int32), name))
        return name

    def node(self, op_type: str, name: str, inputs: list[str], output: str) -> None:
        self.nodes.append(helper.make_node(op_type, inputs, [output], domain=DOMAIN, name=name))

    def steps(self, arr: np.ndarray, ndim: int = 2) -> np.ndarray:
        """A constant with one row per time step (``ndim`` dimensions with it)."""
        return arr if arr.ndim == ndim else np.broadcast_to(arr, (self.timesteps, *arr.shape))

    def neuron(self, op, current: str, name: str) -> None:
        args = [self.const(f"{name}_{k}", self.steps(getattr(op, k)))
                for k in ("bias", "threshold", "reset")]
        args += [self.const(f"{name}_leak", leak_table(op.leak, self.timesteps, 3)),
                 self.const(f"{name}_binary", int(op.binary))]
        self.node("TernaryIF", name, [current, *args], op.output)

    def write(self, op: g.Op) -> None:
        n = op.name
        if isinstance(op, g.SpikeEmbed):
            self.node("SpikeEmbed", n, [*op.inputs, self.const(f"{n}_table", op.table),
                                         self.const(f"{n}_context", op.context)], op.output)
        elif isinstance(op, g.TokenEmbed):
            self.node("TokenEmbed", n, [*op.inputs, self.const(f"{n}_table", op.table)],
                      op.output)
        elif isinstance(op, g.Accumulate):
            self.node("SpikeAccumulate", n, [*op.inputs, self.const(f"{n}_w", op.weight.T)],
                      op.output)
        elif isinstance(op, g.Fire):
            self.neuron(op, op.inputs[0], n)
        elif isinstance(op, g.SpikingLinear):
            acc, _, fire = n.partition("+")  # FuseLinear names it "accumulate+fire"
            fire = fire or f"{n}_fire"
            self.node("SpikeAccumulate", acc, [*op.inputs, self.const(f"{acc}_w", op.weight.T)],
                      f"{acc}_currents")
            self.neuron(op, f"{acc}_currents", fire)
        elif isinstance(op, g.Attention):
            if self.elastic["SpikeAttention"]:
                args = [self.const(f"{n}_score_bias", self.steps(op.score_bias, 3)),
                        *(self.const(f"{n}_{k}", self.steps(getattr(op, k)))
                          for k in ("threshold", "reset")),
                        self.const(f"{n}_leak", leak_table(op.leak, self.timesteps, 3)),
                        self.const(f"{n}_binary", int(op.binary))]
            else:
                args = [self.const(f"{n}_{k}", getattr(op, k))
                        for k in ("score_bias", "threshold", "reset")]
            if self.bidirectional:
                args.append(self.const(f"{n}_causal", int(op.causal)))
            self.node("SpikeAttention", n, [*op.inputs, *args], op.output)
        elif isinstance(op, g.ResidualAdd):
            args = [self.const(f"{n}_w", op.weight.T)]
            if self.elastic["ResidualAdd"]:
                scale = op.scale
                if scale is None:
                    scale = np.broadcast_to([[1, op.shift], [0, 0]], (self.timesteps, 2, 2))
                args.append(self.const(f"{n}_scale", leak_table(scale, self.timesteps, 1,
                                                                rows=self.timesteps)))
            else:
                mult, div = shift_factors(op.shift)
                args += [self.const(f"{n}_mult", mult), self.const(f"{n}_div", div)]
            self.node("ResidualAdd", n, [*op.inputs, *args], op.output)
        elif isinstance(op, g.Readout):
            self.node("SpikeReadout", n, [*op.inputs, self.const(f"{n}_w", op.weight.T),
                                           self.const(f"{n}_b", self.steps(op.bias)),
                                           self.const(f"{n}_leak",
                                                      leak_table(op.leak, self.timesteps, 1))],
                      op.output)
        elif isinstance(op, g.Pool):
            self.node("SpikePool", n, list(op.inputs), op.output)
        else:
            raise TypeError(f"the ONNX writer has no form for {type(op).__name__}")


def to_onnx(model, name: str = "spikelm") -> onnx.ModelProto:
    """The ONNX model of a :class:`contract.graph.Graph` (or of anything with a ``graph()``,
    such as an ``IntModel`` or an ``IntTransformer``)."""
    graph = model if isinstance(model, g.Graph) else model.graph()
    elastic = {"SpikeAttention": any(op.elastic for op in graph.of_type(g.Attention)),
               "ResidualAdd": any(op.scale is not None for op in graph.of_type(g.ResidualAdd))}
    bidirectional = not all(op.causal for op in graph.of_type(g.Attention))
    writer = _Writer(graph.timesteps, elastic, bidirectional)
    for op in graph.ops:
        writer.write(op)
    onnx_graph = helper.make_graph(
        writer.nodes, name,
        [helper.make_tensor_value_info(graph.input, TensorProto.INT64, ["N", "L"])],
        [helper.make_tensor_value_info(graph.output, TensorProto.INT32,
                                       ["N", "L" if not graph.of_type(g.Pool) else 1,
                                        graph.outputs])],
        initializer=writer.inits,
    )
    used = sorted({node.op_type for node in writer.nodes})
    onnx_model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, 1)],
        functions=[_attention_function(graph.timesteps, elastic[op_type], bidirectional)
                   if op_type == "SpikeAttention"
                   else FUNCTIONS[op_type](graph.timesteps, elastic[op_type]) if op_type in elastic
                   else FUNCTIONS[op_type](graph.timesteps) for op_type in used],
        producer_name="spikeforge", ir_version=9,
    )
    meta = {
        "logit_scale": repr(float(graph.logit_scale)),
        "weight_bits": str(graph.weight_bits),
        "timesteps": str(graph.timesteps),
        "context": str(graph.context),
    }
    if graph.causal_window is not None:
        meta["window"] = str(graph.causal_window)
    if not graph.causal:
        meta["classes"] = str(graph.outputs)
    helper.set_model_props(onnx_model, meta)
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model
