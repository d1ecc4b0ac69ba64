"""cocotb testbench of a board: the host's own session (``rtl_gen.host.session``) talks to the
simulated board top (``sim/board_top.sv`` around ``hw.bridge.UartBridge``) through its UART
lines, bit by bit.

The session is blocking host code; it runs in a thread (``cocotb.task.bridge``) and its
:class:`SimLink` drives ``rx`` and reads ``tx`` through ``cocotb.task.resume``. A monitor task
decodes every frame on ``tx`` (sampled in the middle of each bit) into a queue; ``read`` waits
on that queue, up to :data:`SILENCE_NS` of simulated time per byte, as a serial port's timeout.

Configured through the environment (``rtl_gen.host`` sets it): ``SPIKEFORGE_BOARD_JOB`` (the
session's JSON job, with the simulation's UART ``divisor``) and ``SPIKEFORGE_RESULTS``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.queue import Queue
from cocotb.task import bridge, resume
from cocotb.triggers import FallingEdge, SimTimeoutError, Timer, with_timeout

from rtl_gen.host import session

PERIOD_NS = 10
"""The clock period of sim/board_top.sv."""
SILENCE_NS = 50_000_000
"""Simulated time a read waits for each byte before it gives up (5 million cycles)."""


class SimLink:
    """A :class:`rtl_gen.host.Link` onto the simulated UART lines."""

    def __init__(self, dut, divisor: int):
        self.dut = dut
        self.bit_ns = divisor * PERIOD_NS
        self.received: Queue[int] = Queue()
        self.framing_errors = 0

    async def monitor(self) -> None:
        """Every frame on ``tx`` into :attr:`received`."""
        while True:
            await FallingEdge(self.dut.tx)
            await Timer(self.bit_ns * 3 // 2, unit="ns")
            value = 0
            for bit in range(8):
                value |= int(self.dut.tx.value) << bit
                await Timer(self.bit_ns, unit="ns")
            if int(self.dut.tx.value) != 1:
                self.framing_errors += 1
                continue
            self.received.put_nowait(value)

    async def _write(self, data: bytes) -> None:
        for byte in data:
            for bit in (0, *((byte >> i) & 1 for i in range(8)), 1):
                self.dut.rx.value = bit
                await Timer(self.bit_ns, unit="ns")

    async def _read(self, count: int) -> bytes:
        out = bytearray()
        try:
            for _ in range(count):
                out.append(await with_timeout(self.received.get(), SILENCE_NS, "ns"))
        except SimTimeoutError:
            pass
        return bytes(out)

    def write(self, data: bytes) -> None:
        resume(self._write)(data)

    def read(self, count: int) -> bytes:
        return resume(self._read)(count)


@cocotb.test()
async def host_session(dut):
    """The host's session, HELLO and every generation, over the simulated UART."""
    job = json.loads(Path(os.environ["SPIKEFORGE_BOARD_JOB"]).read_text())
    results = Path(os.environ["SPIKEFORGE_RESULTS"])
    link = SimLink(dut, job["divisor"])
    dut.rx.value = 1
    dut.rst.value = 1
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    cocotb.start_soon(link.monitor())
    try:
        generations = await bridge(session)(link, job)
    except Exception as exc:  # the host's error is the verdict, written for the CLI
        results.write_text(json.dumps({"error": str(exc)}) + "\n")
        raise
    results.write_text(json.dumps({"generations": generations,
                                   "framing_errors": link.framing_errors}) + "\n")
    assert link.framing_errors == 0, "frames with a low stop bit on tx"
