"""cocotb testbench of a SpikeForge build: every golden sample through the RTL, exact equality.

The design under test is ``hw.InferenceHarness`` around the accelerator, inside
``sim/clocked_top.sv``, which generates the clock in the simulator (its ``ctx`` port is the
harness's ``context``). Python wakes once per inference: the driver loads a whole context and
pulses ``start``, the monitor waits for ``done`` and reads the logits, the next byte, the cycle
count and the spike counters at once.

Configured through the environment (``sim.runner`` sets it): ``SPIKEFORGE_GOLDEN`` (golden.npz),
``SPIKEFORGE_PLAN`` (plan.json), ``SPIKEFORGE_SAMPLES``, ``SPIKEFORGE_RESULTS`` (JSON written
here).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge


def unpack_signed(value: int, width: int, count: int) -> np.ndarray:
    """``count`` two's complement fields of ``width`` bits, field 0 in the low bits."""
    mask = (1 << width) - 1
    out = np.empty(count, dtype=np.int64)
    for index in range(count):
        field = (value >> (index * width)) & mask
        out[index] = field - (1 << width) if field >> (width - 1) else field
    return out


def unpack_unsigned(value: int, width: int, count: int) -> np.ndarray:
    mask = (1 << width) - 1
    return np.array([(value >> (i * width)) & mask for i in range(count)], dtype=np.int64)


@dataclass
class Observation:
    """What the monitor saw for one inference."""

    logits: np.ndarray
    token: int
    cycles: int
    spike_counts: np.ndarray


class Driver:
    """Loads one context into the harness and starts an inference."""

    def __init__(self, dut, context: int):
        self.dut = dut
        self.context = context

    async def send(self, ids) -> None:
        await FallingEdge(self.dut.clk)
        word = 0
        for position, byte in enumerate(ids):
            word |= int(byte) << (8 * position)
        self.dut.ctx.value = word
        self.dut.start.value = 1
        await FallingEdge(self.dut.clk)
        self.dut.start.value = 0


class Monitor:
    """Waits for ``done`` and reads every result port at once."""

    def __init__(self, dut, plan: dict):
        self.dut = dut
        self.logit_width = plan["widths"]["membrane"]
        self.counters = plan["spike_counters"]
        self.counter_width = plan["spike_counter_width"]

    async def receive(self) -> Observation:
        await RisingEdge(self.dut.done)
        await ReadOnly()
        dut = self.dut
        return Observation(
            logits=unpack_signed(dut.logits_flat.value.to_unsigned(), self.logit_width, 256),
            token=int(dut.token.value.to_unsigned()),
            cycles=int(dut.cycles.value.to_unsigned()),
            spike_counts=unpack_unsigned(
                dut.spike_counts.value.to_unsigned(), self.counter_width, self.counters
            ),
        )


class Checker:
    """Compares an observation with the golden reference, exactly."""

    def __init__(self):
        self.results = []

    def check(self, index: int, expected: np.ndarray, seen: Observation) -> bool:
        expected_token = int(np.argmax(expected))
        match = bool(np.array_equal(expected, seen.logits)) and seen.token == expected_token
        self.results.append(
            {
                "sample": index,
                "match": match,
                "cycles": seen.cycles,
                "token": seen.token,
                "expected_token": expected_token,
                "spike_counts": seen.spike_counts.tolist(),
                "logit_differences": int(np.count_nonzero(expected != seen.logits)),
            }
        )
        return match


class TB:
    """The testbench: driver, monitor, golden outputs and checker of one build."""

    def __init__(self, dut):
        self.dut = dut
        self.plan = json.loads(Path(os.environ["SPIKEFORGE_PLAN"]).read_text())
        with np.load(os.environ["SPIKEFORGE_GOLDEN"]) as golden:
            self.inputs = golden["input"]
            self.outputs = golden["output"].astype(np.int64)
        samples = int(os.environ.get("SPIKEFORGE_SAMPLES", len(self.inputs)))
        self.samples = min(samples, len(self.inputs))
        self.driver = Driver(dut, self.plan["context"])
        self.monitor = Monitor(dut, self.plan)
        self.checker = Checker()

    async def reset(self) -> None:
        self.dut.rst.value = 1
        self.dut.start.value = 0
        self.dut.ctx.value = 0
        for _ in range(3):
            await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def run(self) -> int:
        await self.reset()
        mismatches = 0
        for index in range(self.samples):
            await self.driver.send(self.inputs[index])
            seen = await self.monitor.receive()
            if not self.checker.check(index, self.outputs[index], seen):
                mismatches += 1
                self.dut._log.error("sample %d differs from the reference", index)
        Path(os.environ["SPIKEFORGE_RESULTS"]).write_text(
            json.dumps({"samples": self.checker.results}) + "\n"
        )
        return mismatches


@cocotb.test()
async def golden_samples(dut):
    """Every golden sample: logits and next byte equal the integer reference exactly."""
    tb = TB(dut)
    mismatches = await tb.run()
    assert tb.samples > 0, "no golden samples to check"
    assert mismatches == 0, f"{mismatches} of {tb.samples} samples differ from the reference"
