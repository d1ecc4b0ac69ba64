"""Simulation: cocotb testbenches on Verilator (or Icarus) that check the RTL bit for bit."""

from .runner import SimResult, run_build

__all__ = ["SimResult", "run_build"]
