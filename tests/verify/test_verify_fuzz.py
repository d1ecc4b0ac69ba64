"""Property-based fuzzing: random models, simulated in RTL, equal the integer reference exactly.

Two RTL paths: the Amaranth simulator of ``hw.Accelerator`` for a broad sweep (no compile), and
the generated Verilog on Verilator through cocotb (``rtl_gen build`` + ``sim.runner``) for
whole builds, one compile per example. Profiles: see ``fuzzing.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzzing import build_dir, configs, profile, scratch
from hwsim import params_from_model, run_accelerator
from hypothesis import given, note

from contract import forward
from sim.runner import run_build


def reference_run(config):
    """Logits, next bytes and spike counts of every context, by contract.reference."""
    traces = [forward(config.model, config.ids[n : n + 1], trace=True)
              for n in range(len(config.ids))]
    return [(t.logits[0].tolist(), int(np.argmax(t.logits[0])), t.spike_counts().tolist())
            for t in traces]


def amaranth_run(config):
    """The same triples from the Amaranth simulation of the accelerator."""
    params = params_from_model(config.model, config.rows, config.cols, config.dense)
    return [(r.logits.tolist(), int(r.token), r.spike_counts.tolist())
            for r in run_accelerator(params, config.ids.tolist())]


@profile(quick=20, extended=300)
@given(config=configs())
def test_amaranth_accelerator_equals_reference(config):
    note(repr(config))
    expected = reference_run(config)
    assert all(any(logits) for logits, _, _ in expected), f"{config}: logits trivially zero"
    assert amaranth_run(config) == expected, repr(config)


@pytest.mark.slow
@profile(quick=1, extended=12)
@given(config=configs(max_context=4, max_embed=6, samples=12))
def test_verilator_build_equals_reference(config):
    """A whole build (ONNX -> rtl_gen -> Verilog) on Verilator: every golden sample matches
    and the hardware spike counters equal the reference's."""
    note(repr(config))
    expected = reference_run(config)
    assert all(any(logits) for logits, _, _ in expected), f"{config}: logits trivially zero"
    with scratch() as root:
        result = run_build(build_dir(config, root))
    assert result.matched == len(config.ids), repr(config)
    seen = [(s["token"], s["spike_counts"]) for s in result.samples]
    assert seen == [(token, np.ravel(counts).tolist()) for _, token, counts in expected], (
        repr(config)
    )
