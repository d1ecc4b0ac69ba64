"""Property-based fuzzing: random models, simulated in RTL, equal the integer reference exactly.

Two RTL paths: the Amaranth simulator of ``hw.Accelerator`` (the compiler's parameters of the
model, a window per start) for a broad sweep (no Verilog compile), and the generated Verilog on
Verilator through cocotb (``rtl_gen build`` + ``sim.runner``) for whole builds, one compile per
example, with random stalls on every stream (the backpressure check). Profiles: see
``fuzzing.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fuzzing import build_dir, configs, profile, scratch
from hwsim import compile_params, run_streams
from hypothesis import given, note
from hypothesis import strategies as st

from contract import forward
from sim.runner import run_build


def reference_run(config):
    """Logits, next bytes and spike counts of every context, by the contract (contract.forward)."""
    traces = [forward(config.model, config.ids[n : n + 1], trace=True)
              for n in range(len(config.ids))]
    return [(t.logits[0].tolist(), int(np.argmax(t.logits[0])), t.spike_counts().tolist())
            for t in traces]


def amaranth_run(config):
    """Logits, next bytes and the counters (a spiking layer each, summed over steps) from the
    Amaranth simulation of the accelerator, a window per start."""
    params = compile_params(config.model, config.rows, config.cols, config.dense)
    return [(p.logits.tolist(), int(p.token), p.spike_counts.tolist())
            for (p,) in run_streams(params, config.ids, window=config.model.context)]


@profile(quick=20, extended=300)
@given(config=configs())
def test_amaranth_accelerator_equals_reference(config):
    note(repr(config))
    expected = reference_run(config)
    assert all(any(logits) for logits, _, _ in expected), f"{config}: logits trivially zero"
    assert amaranth_run(config) == [(logits, token, np.sum(counts, axis=1)[1:].tolist())
                                    for logits, token, counts in expected], repr(config)


@pytest.mark.slow
@profile(quick=1, extended=12)
@given(config=configs(max_context=4, max_embed=6, samples=8), stall_seed=st.integers(0, 0xFFFF))
def test_verilator_build_with_stalls_equals_reference(config, stall_seed):
    """A whole build (ONNX -> rtl_gen build --stall-seed -> Verilog) on Verilator, with random
    stalls on every stream: each golden sample matches, the hardware spike counters equal the
    reference's, and no inference takes fewer cycles than without stalls (the Amaranth
    simulation of the same harness; a window's cycles run from its first byte's beat to the
    token's, so gaps between its bytes and on the token count, those on the logits, which
    leave after the token, do not): stalls change cycles, never results."""
    note(repr(config))
    expected = reference_run(config)
    assert all(any(logits) for logits, _, _ in expected), f"{config}: logits trivially zero"
    with scratch() as root:
        out = build_dir(config, root, stall_seed=stall_seed)
        assert json.loads((out / "report.json").read_text())["stall_seed"] == stall_seed
        result = run_build(out)
    assert result.matched == len(config.ids), repr(config)
    # the program's counters: every spiking layer's spikes over all steps (the embedding's
    # come from a ROM and are not counted)
    seen = [(s["token"], s["spike_counts"]) for s in result.samples]
    assert seen == [(token, np.sum(counts, axis=1)[1:].tolist())
                    for _, token, counts in expected], repr(config)
    params = compile_params(config.model, config.rows, config.cols, config.dense)
    calm = run_streams(params, config.ids, window=config.model.context)
    for n, (s, (c,)) in enumerate(zip(result.samples, calm, strict=True)):
        assert s["cycles"] >= c.cycles, f"{config} stall seed {stall_seed} sample {n}"
