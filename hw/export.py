"""Reproducible Verilog from any component of this library."""

from __future__ import annotations

from amaranth.back import verilog as _verilog
from amaranth.lib import wiring

__all__ = ["verilog"]


def verilog(component: wiring.Component, name: str = "top") -> str:
    """Verilog text of ``component`` as module ``name``, without source locations, so that
    two conversions of the same parameters are byte-identical."""
    if not isinstance(component, wiring.Component):
        raise TypeError(f"component must be a wiring.Component, not {component!r}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Verilog identifier, not {name!r}")
    return _verilog.convert(component, name=name, emit_src=False)
