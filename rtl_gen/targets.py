"""FPGA targets: their resources, their nextpnr flags, and a block-RAM fit estimate."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hw.bank import BRAM_MODES

from .errors import BuildError

__all__ = ["TARGETS", "Target", "get_target", "lutram_cost"]


@dataclass(frozen=True)
class Target:
    """One FPGA: family, nextpnr device flags and the resources the fit check uses;
    ``synth_args``: what yosys's ``synth_<family>`` needs to know of the device (the iCE40
    UP5K's own timing for ABC's delay-driven mapping, where the default is the HX's; and an
    enable shared by fewer than 8 flip-flops goes into their LUTs: the 8 cells of an iCE40
    logic block share one enable, and small enables split the packing. On the small design
    that took the three seeds from 48.3/49.3/51.7 to 51.4/52.3/53.4 MHz, same cells);
    ``pnr_args``: nextpnr's options beyond the device (on the iCE40, no clock enable is
    promoted to a global net: the global buffer and the route into it, about 6 ns, sat on
    the sequencer's and the scanner's handshake enables; on the small design that took the
    three seeds from 46.8/49.9/51.0 to 50.5/51.6/51.9 MHz, same netlist); ``lutram``: whether
    yosys can build a writable memory of LUT RAM instead (the ECP5's TRELLIS_DPR16X4)."""

    name: str
    family: str  # "ice40" or "ecp5"
    nextpnr_args: tuple[str, ...]
    luts: int
    brams: int
    dsps: int
    bram_configs: tuple[tuple[int, int], ...]  # (depth, width) of one block RAM
    synth_args: tuple[str, ...] = ()
    pnr_args: tuple[str, ...] = ()
    lutram: bool = False

    def brams_for(self, width: int, depth: int, *, writable: bool = False,
                  read_ports: int = 1) -> int:
        """Block RAMs one ``width`` x ``depth`` memory takes, in its best configuration: none
        for a ``writable`` one that yosys builds of LUT RAM instead, by its own costs, with
        a margin (:func:`lutram_cost`), so that a memory near the line counts as block RAM
        (the estimate errs towards "does not fit")."""
        if width <= 0 or depth <= 0:
            return 0
        brams = min(math.ceil(width / w) * math.ceil(depth / d) for d, w in self.bram_configs)
        if writable and self.lutram and (lutram_cost(width, depth, read_ports)
                                         < LUTRAM_MARGIN * BRAM_COST * brams):
            return 0
        return brams


#: yosys's costs for mapping a memory (``memory_libmap``, ``share/lattice``'s libraries): a
#: DP16KD 128, an ECP5 LUT RAM of 16 words of 4 bits 4, and half a unit per bit of each
#: multiplexer input that joins LUT RAMs in depth (and per write enable they decode).
BRAM_COST, LUTRAM_COST, LUTRAM_WORDS, LUTRAM_BITS = 128, 4, 16, 4
#: A writable memory counts as LUT RAM only where that costs at most this share of its block
#: RAMs: yosys also weighs what each needs emulated (a read enable, a collision), which this
#: estimate leaves out (a 92 x 16 spike bank is LUT RAM by 141 against 142; this estimate
#: counts it as block RAM).
LUTRAM_MARGIN = 0.9


def lutram_cost(width: int, depth: int, read_ports: int = 1) -> float:
    """What yosys counts for a ``width`` x ``depth`` memory of ECP5 LUT RAM: its cells (once
    per read port), the multiplexers between the cells in depth and the write decode."""
    pieces = math.ceil(depth / LUTRAM_WORDS)
    cells = pieces * math.ceil(width / LUTRAM_BITS)
    return read_ports * (LUTRAM_COST * cells + 0.5 * (pieces - 1) * width) + 0.5 * pieces


_ECP5_BRAM = tuple((words, width) for width, words in BRAM_MODES)
_ICE40_BRAM = ((2048, 2), (1024, 4), (512, 8), (256, 16))

TARGETS = {
    t.name: t
    for t in (
        Target("ice40-up5k", "ice40", ("--up5k", "--package", "sg48"), 5280, 30, 8, _ICE40_BRAM,
               ("-device", "u", "-dffe_min_ce_use", "8"), ("--no-promote-ce",)),
        Target("ecp5-25k", "ecp5", ("--25k", "--package", "CABGA381"), 24288, 56, 28, _ECP5_BRAM,
               lutram=True),
        Target("ecp5-45k", "ecp5", ("--45k", "--package", "CABGA381"), 43848, 108, 72, _ECP5_BRAM,
               lutram=True),
        Target("ecp5-85k", "ecp5", ("--85k", "--package", "CABGA381"), 83640, 208, 156, _ECP5_BRAM,
               lutram=True),
    )
}


def get_target(name: str) -> Target:
    """The target called ``name``, or a one-line error listing the known ones."""
    try:
        return TARGETS[name]
    except KeyError:
        raise BuildError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}") from None
