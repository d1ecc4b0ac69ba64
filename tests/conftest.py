"""Options of the whole test suite: ``--fuzz-extended`` selects the long fuzzing profile."""

from __future__ import annotations

import os

FUZZ_ENV = "SPIKEFORGE_FUZZ"


def pytest_addoption(parser):
    parser.addoption(
        "--fuzz-extended",
        action="store_true",
        default=False,
        help="run the extended fuzzing profile (hundreds of configurations; minutes)",
    )


def pytest_configure(config):
    # Read by tests/verify/fuzzing.py when the test modules are imported (after this hook).
    if config.getoption("--fuzz-extended"):
        os.environ[FUZZ_ENV] = "extended"
