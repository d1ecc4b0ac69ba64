"""cocotb testbench of a SpikeForge build: every golden sample through the RTL, exact equality.

The design under test is ``hw.InferenceHarness`` around the accelerator, inside
``sim/clocked_top.sv``, which generates the clock in the simulator (its ``ctx`` port is the
harness's ``context``). Python wakes once per inference: the driver loads a whole context and
pulses ``start``, the monitor waits for ``done`` and reads the logits, the next byte, the cycle
count and the spike counters at once.

A transformer build (``plan.json`` says ``"arch": "transformer"``) has a harness whose
"context" is one byte and a restart flag: the golden inputs are byte streams, and the driver
feeds them a byte at a time, checking the logits of every position (:class:`StreamTB`). With
``SPIKEFORGE_GENERATE`` (a JSON job of prompts, a token count and the reference's generation)
the testbench generates instead: it feeds each prompt, then every byte the hardware predicts,
and records the bytes and cycles (:class:`GenerateTB`).

Configured through the environment (``sim.runner`` sets it): ``SPIKEFORGE_GOLDEN`` (golden.npz),
``SPIKEFORGE_PLAN`` (plan.json), ``SPIKEFORGE_SAMPLES``, ``SPIKEFORGE_RESULTS`` (JSON written
here), ``SPIKEFORGE_GENERATE``.
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


RESTART = 1 << 8
"""The stream harness's flag: this byte starts a new stream (an empty key/value cache)."""


class StreamTB(TB):
    """A transformer's testbench: golden streams a byte at a time, every position checked."""

    def __init__(self, dut):
        super().__init__(dut)
        self.driver = Driver(dut, 1)

    async def position(self, byte: int, first: bool) -> Observation:
        await self.driver.send([int(byte) | (RESTART if first else 0)])
        return await self.monitor.receive()

    async def run(self) -> int:
        await self.reset()
        mismatches = 0
        length = self.inputs.shape[1]
        for stream in range(self.samples):
            for index in range(length):
                seen = await self.position(self.inputs[stream, index], index == 0)
                sample = stream * length + index
                if not self.checker.check(sample, self.outputs[stream, index], seen):
                    mismatches += 1
                    self.dut._log.error("stream %d position %d differs", stream, index)
                self.checker.results[-1].update(stream=stream, position=index)
        Path(os.environ["SPIKEFORGE_RESULTS"]).write_text(
            json.dumps({"samples": self.checker.results}) + "\n"
        )
        return mismatches


class GenerateTB(StreamTB):
    """Generation: each prompt, then every byte the hardware predicts, fed back."""

    async def run(self) -> int:
        job = json.loads(Path(os.environ["SPIKEFORGE_GENERATE"]).read_text())
        await self.reset()
        out, differing = [], 0
        for prompt, expected in zip(job["prompts"], job["expected"], strict=True):
            cycles, tokens = [], []
            for index, byte in enumerate(prompt):
                seen = await self.position(byte, index == 0)
                cycles.append(seen.cycles)
            for _ in range(job["tokens"]):
                tokens.append(seen.token)
                if len(tokens) == job["tokens"]:
                    break
                seen = await self.position(seen.token, False)
                cycles.append(seen.cycles)
            first = next((i for i, (a, b) in enumerate(zip(tokens, expected, strict=True))
                          if a != b), None)
            differing += first is not None
            out.append({"tokens": tokens, "first_difference": first, "cycles": cycles})
        Path(os.environ["SPIKEFORGE_RESULTS"]).write_text(json.dumps({"generations": out}) + "\n")
        return differing


@cocotb.test()
async def golden_samples(dut):
    """Every golden sample (or every generated byte): equal to the integer reference exactly."""
    plan = json.loads(Path(os.environ["SPIKEFORGE_PLAN"]).read_text())
    if plan.get("arch") == "transformer":
        tb = GenerateTB(dut) if os.environ.get("SPIKEFORGE_GENERATE") else StreamTB(dut)
    else:
        tb = TB(dut)
    mismatches = await tb.run()
    assert tb.samples > 0, "no golden samples to check"
    assert mismatches == 0, f"{mismatches} of {tb.samples} samples differ from the reference"
