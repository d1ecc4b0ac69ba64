"""Random compositions on the layer-program accelerator, in the Amaranth simulator, exactly.

Compositions of a residual embedding with blocks with and without attention or feed-forward,
several attentions, spiking heads, and of a spike embedding of the last bytes (an MLP, or
attention over its spikes), on arrays that divide nothing: every position of every
stream, the logits, the next byte and the spike count of every spiking op equal the contract's
executor. A program without attention is built without the score unit and value caches.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hwsim import check_against_executor, check_sequences, compile_params, run_streams
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.graph import Attention, ResidualAdd, run
from contract.random_model import random_graph
from hw import Accelerator, AcceleratorParams, LayerKind
from hw import params as hw_params
from hw.score import bias_rom_image
from hw.token import token_layout

#: ``pytest --fuzz-extended`` (tests/conftest.py): 100 compositions a test instead of 4
EXTENDED = os.environ.get("SPIKEFORGE_FUZZ") == "extended"
FUZZ = settings(max_examples=100 if EXTENDED else 4, deadline=None, derandomize=not EXTENDED,
                print_blob=True, suppress_health_check=[HealthCheck.too_slow])


def check(graph, rows: int, cols: int, streams):
    """The compiler's parameters of ``graph``, checked against the executor on ``streams``."""
    params = compile_params(graph, rows, cols)
    check_against_executor(graph, params, streams)
    return params


@pytest.mark.parametrize("kwargs, rows, cols", [
    ({"blocks": ((False, 5),), "head": (3,)}, 2, 3),            # no attention at all
    ({"blocks": ((True, 0), (True, 7)), "heads": 1}, 1, 5),      # two attentions, one w/o FFN
    ({"blocks": ((True, 3),), "width": 6, "heads": 3}, 3, 2),    # d = P, 3 heads
    ({"blocks": ((False, 0),), "head": (2, 5)}, 1, 3),           # norm and head only
    ({"embed": "spike", "context": 3, "width": 5, "hidden": (7, 4)}, 2, 2),   # an MLP, E > C
    ({"embed": "spike", "context": 2, "width": 3, "hidden": (4,), "spike_attention": True,
      "heads": 2}, 1, 4),                                                    # attention on spikes
    ({"embed": "spike", "context": 2, "width": 3, "hidden": (5, 4), "elastic": True,
      "timesteps": 3}, 2, 2),                                  # leaks, per-step constants
    ({"blocks": ((True, 3),), "elastic": True, "timesteps": 3}, 2, 2),  # elastic norms
], ids=["no-attention", "two-attentions", "three-heads", "head-only", "mlp", "spike-attention",
        "elastic-mlp", "elastic-norms"])
def test_compositions_match_the_executor(kwargs, rows, cols):
    graph = random_graph(7, **{"width": 4, "window": 3, "timesteps": 2, **kwargs})
    streams = np.random.default_rng(7).integers(0, 256, size=(2, 5))
    params = check(graph, rows, cols, streams)
    leaky = any(getattr(op, "leak", None) is not None for op in graph.ops)
    assert params.leaky == leaky
    assert ("leak" in token_layout(params).members) == leaky  # the unit only when used
    if not any(layer.kind == LayerKind.ATTENTION for layer in params.layers):
        names = _submodule_names(Accelerator(params))
        assert "score" not in names and not any(n.endswith(".values") for n in names)


@pytest.mark.parametrize("seed, kwargs, rows, cols", [
    (6, {"blocks": ((True, 3),)}, 2, 2),                     # per-step bias, constants, leak
    (22, {"blocks": ((True, 3),)}, 1, 2),                    # and binary attention spikes
    (2, {"blocks": ((True, 0), (True, 5)), "heads": 1}, 2, 3),  # two elastic attentions
], ids=["bias-constants-leak-scale", "binary", "two-attentions"])
def test_elastic_attention_and_residual_scales_match_the_executor(seed, kwargs, rows, cols):
    """Attentions with the elastic neuron (a per-step score bias, per-step thresholds by key
    count, a leak, binary spikes) and residual adds with a per-step scale: the score unit reads
    its bias ROM by step, the FIRE its constants by step and key count, the RESADD its terms."""
    graph = random_graph(seed, **{"width": 4, "window": 3, "timesteps": 3, "elastic": True,
                                  **kwargs})
    attentions = graph.of_type(Attention)
    assert any(op.score_bias.ndim == 3 for op in attentions)
    assert any(op.per_step and op.leak is not None for op in attentions)
    assert any(op.scale is not None for op in graph.of_type(ResidualAdd))
    streams = np.random.default_rng(seed).integers(0, 256, size=(2, 5))
    params = check(graph, rows, cols, streams)
    assert params.score_per_step and params.scaled and params.leaky
    assert {"scale", "leak"} <= set(token_layout(params).members)


def test_a_plain_transformer_has_no_elastic_units():
    """The per-step score bias rows, the RESADD scale sets and the leak exist only in programs
    that use them: a plain program keeps its bias ROM, token and shift mux."""
    graph = random_graph(7, width=4, window=3, timesteps=3, blocks=((True, 3),))
    params = compile_params(graph, 2, 2)
    assert not (params.score_per_step or params.scaled or params.leaky)
    assert set(token_layout(params).members).isdisjoint({"scale", "leak"})
    assert len(bias_rom_image(params)) == params.model_tiles * params.window


def _submodule_names(component) -> set[str]:
    """Names of every submodule of the elaborated design (``row0.values``, ``score``, ...)."""
    from amaranth.hdl import Fragment

    names = set()

    def walk(fragment, prefix):
        for sub, name, _ in fragment.subfragments:
            full = f"{prefix}{name}" if name else prefix
            names.add(full)
            walk(sub, f"{full}.")

    walk(Fragment.get(component, None), "")
    return names


@FUZZ
@given(seed=st.integers(0, 2**16), heads=st.integers(1, 3), dh=st.sampled_from([1, 2, 3]),
       window=st.integers(1, 5), timesteps=st.integers(1, 3),
       blocks=st.lists(st.tuples(st.booleans(), st.sampled_from([0, 1, 3, 5])),
                       min_size=1, max_size=2),
       head=st.lists(st.sampled_from([1, 2, 5]), max_size=1),
       bits=st.sampled_from([2, 4, 8]), shape=st.sampled_from([(1, 3), (2, 3), (3, 1)]),
       elastic=st.booleans())
def test_random_compositions_match_the_executor(seed, heads, dh, window, timesteps, blocks,
                                                head, bits, shape, elastic):
    width = heads * dh
    rows, cols = shape
    if width > rows * cols and (rows * cols) % dh:
        rows, cols = 1, dh  # an array that holds whole heads
    graph = random_graph(seed, width=width, heads=heads, window=window, timesteps=timesteps,
                         weight_bits=bits, blocks=tuple(blocks), head=tuple(head),
                         elastic=elastic)
    streams = np.random.default_rng(seed).integers(0, 256, size=(1, window + 2))
    check(graph, rows, cols, streams)


@FUZZ
@given(seed=st.integers(0, 2**16), context=st.integers(1, 4), width=st.sampled_from([1, 2, 3, 5]),
       hidden=st.lists(st.sampled_from([1, 3, 5, 7]), min_size=1, max_size=2),
       attention=st.booleans(), heads=st.integers(1, 2), timesteps=st.integers(1, 3),
       bits=st.sampled_from([2, 4, 8]), shape=st.sampled_from([(1, 2), (2, 2), (1, 3)]),
       elastic=st.booleans())
def test_random_spike_compositions_match_the_executor(seed, context, width, hidden, attention,
                                                      heads, timesteps, bits, shape, elastic):
    """A SpikeEmbed's windows read from the spike table by the first layer, words of any
    width against the array's (E below, equal to or above C), with or without attention."""
    hidden = list(hidden)
    if attention:
        hidden[-1] = heads * 2
    rows, cols = shape
    if attention and heads * 2 > rows * cols and (rows * cols) % 2:
        rows, cols = 1, 2
    graph = random_graph(seed, embed="spike", context=context, width=width,
                         hidden=tuple(hidden), spike_attention=attention, heads=heads,
                         window=3, timesteps=timesteps, weight_bits=bits, elastic=elastic)
    streams = np.random.default_rng(seed).integers(0, 256, size=(1, context + 3))
    check(graph, rows, cols, streams)


@pytest.mark.parametrize("seed, kwargs, rows, cols, length, stall", [
    (7, {"blocks": ((True, 3),)}, 2, 2, 4, None),                       # the simplest encoder
    (1, {"width": 6, "heads": 3, "window": 5, "timesteps": 3}, 2, 2, 5, None),  # 2 tiles
    (2, {"blocks": ((True, 0),), "head": (3,), "window": 6}, 1, 2, 4, None),  # L < W, a head
    (1, {"blocks": ((True, 5),), "elastic": True, "timesteps": 3}, 2, 2, 4, None),  # elastic
    (2, {"width": 8, "blocks": ((False, 3), (True, 3)), "window": 3}, 2, 2, 3, 5),  # stalls
], ids=["encoder", "two-tiles", "shorter-than-window", "elastic", "stalls"])
def test_encoders_match_the_executor(seed, kwargs, rows, cols, length, stall):
    """An encoder (a bidirectional attention, its readout pooled over the sequence): each
    sequence goes twice through the harness, first its keys and values, then its queries;
    the pooled logits, the class and the spike counts of both passes equal the executor's."""
    graph = random_graph(seed, **{"classes": 5, "width": 4, "window": 4, "timesteps": 2,
                                  "blocks": ((True, 4),), **kwargs})
    ids = np.random.default_rng(seed).integers(0, 256, size=(2, length))
    params = compile_params(graph, rows, cols)
    assert params.bidirectional and params.outputs == 5
    check_sequences(graph, params, ids, stall_seed=stall)


@FUZZ
@given(seed=st.integers(0, 2**16), heads=st.integers(1, 2), dh=st.sampled_from([1, 2, 3]),
       window=st.integers(1, 5), timesteps=st.integers(1, 3), ffn=st.sampled_from([0, 3]),
       classes=st.integers(2, 9), bits=st.sampled_from([2, 4, 8]),
       shape=st.sampled_from([(1, 3), (2, 2), (3, 1)]), elastic=st.booleans())
def test_random_encoders_match_the_executor(seed, heads, dh, window, timesteps, ffn, classes,
                                            bits, shape, elastic):
    width = heads * dh
    rows, cols = shape
    if width > rows * cols and (rows * cols) % dh:
        rows, cols = 1, dh
    graph = random_graph(seed, width=width, heads=heads, window=window, timesteps=timesteps,
                         weight_bits=bits, blocks=((True, ffn),), classes=classes,
                         elastic=elastic)
    ids = np.random.default_rng(seed).integers(0, 256, size=(1, window))
    trace = run(graph, ids)
    if np.count_nonzero(trace.logits) <= trace.logits.size // 2:
        return  # too small to say anything (a class or two, all silent)
    check_sequences(graph, compile_params(graph, rows, cols), ids)


def test_an_encoder_has_a_bias_per_signed_distance_and_its_classes():
    graph = random_graph(7, width=4, window=3, timesteps=2, blocks=((True, 3),))
    params = compile_params(graph, 2, 2)
    assert not params.bidirectional and params.distances == params.window
    assert params.outputs == 256
    encoder = compile_params(random_graph(7, width=4, window=3, timesteps=2,
                                          blocks=((True, 3),), classes=3), 2, 2)
    assert encoder.distances == 2 * encoder.window - 1 and encoder.outputs == 3


def scan_cycles(params, spikes) -> list[int]:
    """Cycles the scanner spends on one inference of a chain, per layer (docs/architecture.md,
    "Cycles"): per tile and step ``Σ max(1, nnz)`` over the input words (their lanes in dense
    mode; a spike-table word is a context byte's ``E`` spikes, any other ``C``) plus a FIRE,
    plus a READOUT per readout tile. ``spikes``: ``[T, n]`` per layer's input."""
    per_layer = []
    for layer, tiles, s in zip(params.layers, params.tiles, spikes, strict=True):
        lanes = params.embed_dim if layer.table else params.cols
        per_tile = layer.kind == LayerKind.READOUT
        for t in range(params.timesteps):
            for start in range(0, s.shape[1], lanes):
                word = s[t, start:start + lanes]
                per_tile += word.size if params.dense else max(1, int(np.count_nonzero(word)))
            per_tile += 1
        per_layer.append(tiles * per_tile)
    return per_layer


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
@pytest.mark.parametrize("kwargs, rows, cols", [
    ({"context": 3, "width": 5, "hidden": (7, 4)}, 2, 2),   # E > C: one 5-lane word a byte
    ({"context": 2, "width": 3, "hidden": (6,)}, 1, 4),     # E < C
])
def test_windows_of_a_chain_are_exact_with_the_scan_and_a_fixed_overhead(kwargs, rows, cols,
                                                                          dense):
    """A program without attention takes a window as ``k - 1`` held bytes and the last: the
    logits and spike counts of its last position equal the executor's, and every cycle
    beyond the scan is a fixed cost, ``k + layers * (R + 10) + 2 ceil(log2 C) + 1`` (the
    bytes, each layer's pipeline fill and drain, the next token: the arg-max taken as the
    logits are written is ready one cycle after the program but for two cycles per tree level
    over the ``C`` lanes, a compare and a select; the logits leave after the token). The
    cycle profile places it: each layer's run and drain cycles are its scan and ``R + 10``,
    the rest the bytes and the token."""
    graph = random_graph(11, embed="spike", timesteps=2, **kwargs)
    k = graph.context
    params = compile_params(graph, rows, cols, dense=dense)
    windows = np.random.default_rng(3).integers(0, 256, size=(3, k))
    trace = run(graph, windows)
    seen = run_streams(params, windows, window=k)
    token = 2 * (cols - 1).bit_length() + 1
    overhead = k + len(params.layers) * (rows + 10) + token
    for n, (position,) in enumerate(seen):
        assert np.array_equal(position.logits, trace.logits[n, -1]), f"window {n}"
        assert position.token == int(np.argmax(trace.logits[n, -1]))
        assert position.spike_counts.tolist() == [int(np.count_nonzero(s[n, :, -1]))
                                                  for s in trace.spikes[1:]]
        scan = scan_cycles(params, [s[n, :, -1] for s in trace.spikes])
        assert position.cycles == sum(scan) + overhead, f"window {n}"
        profile = position.layer_cycles
        assert profile.sum(axis=1).tolist() == [x + rows + 10 for x in scan], f"window {n}"
        assert position.cycles - profile.sum() == k + token, f"window {n}"



def _overlaps(params) -> list[tuple[str, bool]]:
    """Each layer's kind and whether the next layer starts without the drain."""
    return [(layer.kind.name, flag)
            for layer, flag in zip(params.layers, params.overlaps, strict=True)]


def test_a_layer_starts_at_once_when_it_reads_nothing_still_in_the_pipeline(monkeypatch):
    """K starts behind Q and V behind K (they read the norm's spikes, not each other's), a
    norm behind the residual add before it when its first residual read comes at least
    ``READ_AFTER_WRITE`` cycles after the add's write; every other layer waits for the drain.
    The positions, tokens and spike counts (each FIRE's spikes counted for its own layer) are
    the executor's, in fewer cycles than with a drain after every layer (where the tokens do
    not carry their layer)."""
    graph = random_graph(7, width=4, window=3, timesteps=3, blocks=((True, 3),))
    params = compile_params(graph, 2, 2)
    assert _overlaps(params) == [
        ("EMBED", True), ("NORM", False), ("LINEAR", True), ("LINEAR", True), ("LINEAR", False),
        ("ATTENTION", False), ("RESIDUAL", True), ("NORM", False), ("LINEAR", False),
        ("RESIDUAL", True), ("NORM", False), ("READOUT", False)]
    assert "layer" in token_layout(params).members
    streams = np.random.default_rng(7).integers(0, 256, size=(1, 5))
    overlapped = check_against_executor(graph, params, streams)
    monkeypatch.setattr(AcceleratorParams, "overlaps",
                        property(lambda self: (False,) * len(self.layers)))
    params = compile_params(graph, 2, 2)
    assert "layer" not in token_layout(params).members
    drained = check_against_executor(graph, params, streams)
    for fast, slow in zip(overlapped[0], drained[0], strict=True):
        assert fast.cycles < slow.cycles
        assert fast.layer_cycles[:, 1].sum() < slow.layer_cycles[:, 1].sum()


def test_a_residual_read_too_soon_after_its_write_is_caught(monkeypatch):
    """With two steps, a norm's first residual read would come 4 cycles (at the least) after
    the residual add's write: the norm waits for the drain. Were the rows' read-after-write
    distance 1, the norm would start at once and read residuals not yet written: the logits
    differ from the executor's (so the distance is what keeps the overlap exact)."""
    graph = random_graph(0, width=4, window=3, timesteps=2, blocks=((True, 3),))
    params = compile_params(graph, 2, 2)
    assert not any(flag for kind, flag in _overlaps(params) if kind in ("EMBED", "RESIDUAL"))
    monkeypatch.setattr(hw_params, "READ_AFTER_WRITE", 1)
    params = compile_params(graph, 2, 2)
    assert all(flag for kind, flag in _overlaps(params) if kind in ("EMBED", "RESIDUAL"))
    streams = np.random.default_rng(0).integers(0, 256, size=(1, 4))
    seen = run_streams(params, streams)
    trace = run(graph, streams)
    assert not all(np.array_equal(position.logits, trace.logits[0, i])
                   for i, position in enumerate(seen[0]))
