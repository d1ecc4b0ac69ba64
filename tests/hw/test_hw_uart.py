# amaranth: UnusedElaboratable=no
"""The board's UART, its protocol and the UART bridge, in the Amaranth simulator: bytes round
trip, the protocol's encoding, and the host's own session (rtl_gen.host) talking to a bridge
around a random model's accelerator, checked against the integer reference."""

from __future__ import annotations

import dataclasses
import random
from collections import deque

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator
from hwsim import compile_params  # noqa: E402  (tests/hw/conftest.py)

from contract.graph import generate as reference_generate
from contract.random_model import random_model
from hw import protocol
from hw.bridge import UartBridge
from hw.uart import UartRx, UartTx
from rtl_gen.errors import BuildError
from rtl_gen.host import BoardClient, check_generations, session

SEED = 0


def loopback(divisor: int, payload: bytes, gaps: list[int]) -> bytes:
    """``payload`` through a UartTx into a UartRx, ``gaps[i]`` idle cycles before byte ``i``."""
    m = Module()
    m.submodules.tx = tx = UartTx(divisor)
    m.submodules.rx = rx = UartRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    sim = Simulator(m)
    sim.add_clock(1e-6)
    got = []

    async def bench(ctx):
        ctx.set(rx.data.ready, 1)
        for byte, gap in zip(payload, gaps, strict=True):
            if gap:
                await ctx.tick().repeat(gap)
            ctx.set(tx.data.payload, byte)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
            ctx.set(tx.data.valid, 0)
        await ctx.tick().repeat(12 * divisor)

    async def monitor(ctx):
        async for _, _, valid, data in ctx.tick().sample(rx.data.valid, rx.data.payload):
            if valid:
                got.append(data)

    sim.add_testbench(bench)
    sim.add_process(monitor)
    sim.run()
    return bytes(got)


@pytest.mark.parametrize("divisor", [4, 7, 104])
def test_uart_round_trip(divisor):
    rng = random.Random(SEED + divisor)
    count = 6 if divisor > 50 else 40
    payload = bytes(rng.randrange(256) for _ in range(count))
    gaps = [rng.choice([0, 0, 1, 3 * divisor]) for _ in payload]
    assert loopback(divisor, payload, gaps) == payload, f"seed {SEED + divisor}"


def test_uart_receiver_ignores_a_glitch():
    """A low pulse shorter than half a bit is not a start bit."""
    divisor = 8
    m = Module()
    m.submodules.rx = rx = UartRx(divisor)
    sim = Simulator(m)
    sim.add_clock(1e-6)
    seen = []

    async def bench(ctx):
        ctx.set(rx.data.ready, 1)
        await ctx.tick().repeat(5)
        ctx.set(rx.rx, 0)
        await ctx.tick().repeat(2)
        ctx.set(rx.rx, 1)
        for _ in range(20 * divisor):
            await ctx.tick()
            seen.append(ctx.get(rx.data.valid))

    sim.add_testbench(bench)
    sim.run()
    assert not any(seen)


@pytest.mark.parametrize("bad", [0, 3, -1])
def test_uart_divisor_is_checked(bad):
    with pytest.raises((ValueError, TypeError), match="divisor"):
        UartTx(bad)


def test_protocol_round_trip():
    reply = protocol.hello_reply(0xDEADBEEF, 4, 2, streams=False, outputs=256, logit_bits=16)
    assert len(reply) == protocol.HELLO_REPLY_BYTES
    assert protocol.decode_hello(reply) == protocol.Hello(protocol.VERSION, 0xDEADBEEF, 4, 2,
                                                          False, 256, 16)
    assert protocol.decode_hello(protocol.hello_reply(7, 1, 9, True, 3, 9)).streams
    assert protocol.encode_infer(b"def ", restart=True) == b"I\x01def "
    assert protocol.encode_infer([0, 255], restart=False) == b"I\x00\x00\xff"
    assert protocol.encode_infer(b"a", restart=True, logits=True) == b"I\x03a"
    result = bytes([protocol.RESULT, 115]) + (10046).to_bytes(4, "little") + bytes(
        [63, 0, 0, 1, 2, 3])
    assert protocol.decode_result(result, 2) == protocol.Result(115, 10046, (63, 0x030201))
    # 9-bit logits take two bytes each, two's complement, little endian
    assert protocol.logit_bytes(9) == 2 and protocol.logit_bytes(8) == 1
    assert protocol.decode_logits(b"\xff\xff\x00\x01\x02\x00", 3, 9) == (-1, 256, 2)


@pytest.mark.parametrize("data", [b"", b"XX" + bytes(11), b"S"])
def test_protocol_rejects_a_wrong_hello(data):
    with pytest.raises(protocol.ProtocolError, match="not a SpikeForge board"):
        protocol.decode_hello(data)


def test_protocol_rejects_another_version():
    reply = bytearray(protocol.hello_reply(1, 1, 1, False, 256, 16))
    reply[2] = protocol.VERSION + 1
    with pytest.raises(protocol.ProtocolError, match="version"):
        protocol.decode_hello(bytes(reply))
    # a version-1 board's reply is 3 bytes shorter: still named by its version
    old = protocol.MAGIC + bytes([1]) + bytes(7)
    with pytest.raises(protocol.ProtocolError, match="protocol version 1, this host 2"):
        protocol.decode_hello(old)
    with pytest.raises(protocol.ProtocolError, match="a HELLO reply of 12 bytes"):
        protocol.decode_hello(bytes(protocol.hello_reply(1, 1, 1, False, 256, 16))[:-1])


@pytest.mark.parametrize("call", [
    lambda: protocol.encode_infer(b"", True),
    lambda: protocol.encode_infer([256], True),
    lambda: protocol.decode_result(b"R\x00", 1),
    lambda: protocol.decode_logits(b"\x00" * 5, 3, 9),
    lambda: protocol.hello_reply(1 << 32, 1, 1, False, 256, 16),
    lambda: protocol.hello_reply(1, 1, 1, False, 0, 16),
])
def test_protocol_rejects_bad_values(call):
    with pytest.raises(protocol.ProtocolError):
        call()


class AmaranthLink:
    """A host :class:`rtl_gen.host.Link` onto a bridge in the Amaranth simulator: ``write``
    queues bytes that a process sends on ``rx``, ``read`` runs the simulation until the
    monitor of ``tx`` has decoded enough bytes (or a cycle limit passes)."""

    CHUNK = 2_000

    def __init__(self, bridge: UartBridge, limit: int = 400_000):
        self.pending, self.received = deque(), deque()
        self.limit = limit
        self.time = 0
        div = bridge.divisor
        self.sim = sim = Simulator(bridge)
        sim.add_clock(1e-6)

        async def driver(ctx):
            while True:
                if not self.pending:
                    await ctx.tick()
                    continue
                byte = self.pending.popleft()
                for bit in (0, *((byte >> i) & 1 for i in range(8)), 1):
                    ctx.set(bridge.rx, bit)
                    await ctx.tick().repeat(div)

        async def monitor(ctx):
            while True:
                await ctx.tick()
                if ctx.get(bridge.tx):
                    continue
                await ctx.tick().repeat(div + div // 2)
                value = 0
                for bit in range(8):
                    value |= ctx.get(bridge.tx) << bit
                    await ctx.tick().repeat(div)
                assert ctx.get(bridge.tx) == 1, "framing error on tx"
                self.received.append(value)

        sim.add_testbench(driver, background=True)
        sim.add_testbench(monitor, background=True)

    def write(self, data: bytes) -> None:
        self.pending.extend(data)

    def read(self, count: int) -> bytes:
        start = self.time
        while len(self.received) < count and self.time - start < self.limit:
            self.time += self.CHUNK
            self.sim.run_until(self.time * 1e-6)
        return bytes(self.received.popleft() for _ in range(min(count, len(self.received))))


def _model():
    return random_model(3, context=3, embed_dim=4, hidden=(6,), timesteps=2)


def _job(graph, params, prompts, tokens, build_id):
    streams = [[0] * graph.context + list(p) for p in prompts]
    expected = [reference_generate(graph, s, tokens) for s in streams]
    job = {"build_id": build_id, "window": params.context, "counters":
           len(params.spiking_layers), "streams": False, "prompts": streams, "tokens": tokens}
    return job, streams, expected


def _bridge(params, build_id):
    return UartBridge(params, window=params.context, build_id=build_id, streams=False,
                      divisor=4)


def test_bridge_answers_hello_and_unknown_commands():
    params = compile_params(_model(), 1, 2)
    bridge = _bridge(params, 0x1234ABCD)
    link = AmaranthLink(bridge)
    link.write(protocol.encode_hello())
    hello = protocol.decode_hello(link.read(protocol.HELLO_REPLY_BYTES))
    assert hello == protocol.Hello(protocol.VERSION, 0x1234ABCD, 3, 1, False, 256,
                                   params.membrane_bits)
    link.write(b"Z")
    assert link.read(1) == bytes([protocol.ERROR])
    link.write(protocol.encode_hello())  # still in step after the error
    assert link.read(protocol.HELLO_REPLY_BYTES) == bridge.hello


def test_host_session_on_the_bridge_equals_the_reference():
    """The host's session (HELLO, then a generation a window per INFER) against the bridge:
    every byte and every spike counter equal to the contract's, the counters not all zero."""
    model = _model()
    graph = model.graph()
    params = compile_params(model, 1, 2)
    job, streams, expected = _job(graph, params, [b"ab", b"x"], 4, 77)
    generations = session(AmaranthLink(_bridge(params, 77)), job)
    check = check_generations(graph, streams, expected, generations, params.context)
    assert check == {"matched": 2, "counters_matched": 8, "logits_matched": 0, "inferences": 8,
                     "first_difference": None}, (generations, expected)
    counts = [c for g in generations for i in g["inferences"] for c in i["spike_counts"]]
    assert any(counts)
    assert all(i["cycles"] > 0 for g in generations for i in g["inferences"])


def test_logits_over_the_uart_equal_the_reference():
    """INFER with the logits flag: every inference's 256 logits follow its result, equal to
    the contract's; a wrong logit is caught; the next INFER without the flag drains them."""
    model = _model()
    graph = model.graph()
    params = compile_params(model, 1, 2)
    job, streams, expected = _job(graph, params, [b"ab"], 2, 5)
    link = AmaranthLink(_bridge(params, 5), limit=2_000_000)
    generations = session(link, {**job, "logits": True})
    check = check_generations(graph, streams, expected, generations, params.context)
    assert check == {"matched": 1, "counters_matched": 2, "logits_matched": 2, "inferences": 2,
                     "first_difference": None}, (generations, expected)
    logits = generations[0]["inferences"][0]["logits"]
    assert len(logits) == 256 and len(set(logits)) > 1
    assert any(v < 0 for v in logits)  # the sign survives the wire
    generations[0]["inferences"][1]["logits"][7] += 1
    check = check_generations(graph, streams, expected, generations, params.context)
    assert check["logits_matched"] == 1 and check["first_difference"] == 0
    # without the flag the logits are drained inside: only the result comes back
    client = BoardClient(link)
    client.hello()
    again = client.infer(streams[0][-params.context:], False)
    assert again.logits is None and again.token == generations[0]["tokens"][0]
    link.limit = 20_000  # cycles: two logits' worth of UART time
    assert link.read(1) == b""


def test_bridge_refuses_a_divisor_too_fast_to_drain_the_logits():
    """A logit a cycle must be drained before the next INFER's flags byte can arrive."""
    params = compile_params(_model(), 1, 2)
    with pytest.raises(ValueError, match="too fast for 256 logits"):
        UartBridge(params, window=params.context, build_id=1, streams=False, divisor=2)


def test_host_refuses_another_build():
    params = compile_params(_model(), 1, 2)
    job, _, _ = _job(_model().graph(), params, [b"a"], 2, 77)
    with pytest.raises(BuildError, match="not this build's 0000004e"):
        session(AmaranthLink(_bridge(params, 77)), {**job, "build_id": 78})


def test_a_corrupted_weight_fails_the_check():
    """One first-layer weight changed in the hardware: the session's bytes or spike counters
    must differ from the reference's."""
    model = _model()
    graph = model.graph()
    params = compile_params(model, 1, 2)
    layer = params.layers[0]
    weight = np.array(layer.weight, copy=True)
    index = np.unravel_index(np.argmax(np.abs(weight)), weight.shape)
    weight[index] = -weight[index]
    layers = (dataclasses.replace(layer, weight=weight), *params.layers[1:])
    corrupted = dataclasses.replace(params, layers=layers)
    job, streams, expected = _job(graph, params, [b"ab", b"x"], 4, 5)
    generations = session(AmaranthLink(_bridge(corrupted, 5)), job)
    check = check_generations(graph, streams, expected, generations, params.context)
    assert check["first_difference"] is not None
    assert check["counters_matched"] < check["inferences"] or check["matched"] < 2


def test_bridge_refuses_what_it_cannot_serve():
    params = compile_params(_model(), 1, 2)
    with pytest.raises(ValueError, match="window"):
        UartBridge(params, window=2, build_id=0, streams=False, divisor=4)
    with pytest.raises(ValueError, match="build_id"):
        UartBridge(params, window=3, build_id=1 << 32, streams=False, divisor=4)
    assert isinstance(_bridge(params, 0).signature, wiring.Signature)
