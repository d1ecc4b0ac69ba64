"""Fixtures of the hw tests. The converter from a contract.IntModel to AcceleratorParams is
``hwsim.params_from_model`` (re-exported here), so that test modules import it by a unique
module name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from hwsim import params_from_model, run_accelerator, tamper  # noqa: E402

__all__ = ["params_from_model", "run_accelerator", "tamper"]


@pytest.fixture
def to_params():
    """The converter ``(model, rows, cols, dense=False) -> AcceleratorParams``."""
    return params_from_model
