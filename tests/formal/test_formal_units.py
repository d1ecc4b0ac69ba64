"""Formal proofs (SymbiYosys, k-induction): the PE and the neuron lane equal their specs for all
inputs and states, and their registers never wrap given the contract's bounds. Each proof is
also run against a broken spec or without the bound, and must then fail."""

from __future__ import annotations

import logging

import pytest
from formal import NeuronSpec, PESpec, prove, sby_missing

from contract.ranges import signed_bits

pytestmark = pytest.mark.skipif(sby_missing() is not None, reason=str(sby_missing()))

log = logging.getLogger(__name__)

#: (weight bits, contract bound): the bound sets the membrane width, as contract.ranges does;
#: 255 puts the bound exactly at the register's maximum.
PE_CASES = [(2, 255), (4, 255), (8, 1000)]


def _depth(spec) -> int:
    return spec.latency + 3


@pytest.mark.parametrize("bits, bound", PE_CASES, ids=[f"w{b}-bound{n}" for b, n in PE_CASES])
def test_pe_equals_exact_integer_and_never_wraps(tmp_path, bits, bound):
    spec = PESpec(operand_bits=bits, membrane_bits=signed_bits(bound), bound=bound)
    result = prove(spec, tmp_path, depth=_depth(spec))
    log.info("PE w%d bound %d: %s in %.1f s", bits, bound, result.passed, result.seconds)
    assert result.passed, result.log[-3000:]


@pytest.mark.parametrize("bias_bits, bound", [(2, 255), (5, 255), (9, 4000)])
def test_neuron_lane_equals_contract_and_never_wraps(tmp_path, bias_bits, bound):
    spec = NeuronSpec(bias_bits=bias_bits, membrane_bits=signed_bits(bound), bound=bound)
    result = prove(spec, tmp_path, depth=_depth(spec))
    assert result.passed, result.log[-3000:]


@pytest.mark.parametrize(
    "spec",
    [
        PESpec(4, 9, bound=255, mutant="sub-adds"),
        PESpec(4, 9, bound=None),
        NeuronSpec(4, 9, bound=255, mutant="strict"),
        NeuronSpec(9, 9, bound=None),
    ],
    ids=["pe-broken-spec", "pe-without-bound", "neuron-broken-spec", "neuron-without-bound"],
)
def test_the_proof_can_fail(tmp_path, spec):
    """A wrong spec is refuted; so is the no-wrap claim without the contract's bound."""
    result = prove(spec, tmp_path, depth=_depth(spec))
    assert not result.passed, result.log[-3000:]
    assert "DONE (FAIL" in result.log
