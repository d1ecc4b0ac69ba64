# amaranth: UnusedElaboratable=no
"""The building blocks alone: PE, neuron lane, scanner, the score unit's popcount and the output
streamer's arg-max against tiny Python models."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Const, Module, signed, unsigned
from amaranth.lib import data, stream
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.ops import fire
from hw import NeuronLane, PEOp, ProcessingElement, Scanner, TokenKind
from hw.layout import pack
from hw.params import address_bits
from hw.scanner import at_most, lowest
from hw.score import popcount
from hw.streamer import OutputStreamer, logit_memory


def _wrap(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# -- processing element ---------------------------------------------------------------------

OPERAND_BITS, MEMBRANE_BITS = 4, 9
_op = st.tuples(
    st.sampled_from(list(PEOp)),
    st.integers(-(1 << (OPERAND_BITS - 1)), (1 << (OPERAND_BITS - 1)) - 1),
    st.booleans(),
    st.integers(-(1 << (MEMBRANE_BITS - 1)), (1 << (MEMBRANE_BITS - 1)) - 1),
    st.booleans(),
)


def _pe_model(ops):
    """``carry`` with the inverted operand is a subtraction: ``~w + 1 == -w``; ``take`` wins
    over ``op``."""
    u, seen = 0, []
    for op, operand, carry, load, take in ops:
        seen.append(u)
        if take:
            u = load
        elif op is PEOp.ADD:
            u = _wrap(u + operand + carry, MEMBRANE_BITS)
        elif op is PEOp.LOAD:
            u = load
        elif op is PEOp.CLEAR:
            u = 0
    seen.append(u)
    return seen


@settings(max_examples=40, deadline=None)
@given(st.lists(_op, min_size=1, max_size=60))
def test_pe_random_ops_match_model(ops):
    dut = ProcessingElement(operand_bits=OPERAND_BITS, membrane_bits=MEMBRANE_BITS)
    seen = []

    async def bench(ctx):
        for op, operand, carry, load, take in ops:
            seen.append(ctx.get(dut.membrane))
            ctx.set(dut.op, op)
            ctx.set(dut.operand, operand)
            ctx.set(dut.carry, carry)
            ctx.set(dut.load, load)
            ctx.set(dut.take, take)
            await ctx.tick()
        seen.append(ctx.get(dut.membrane))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == _pe_model(ops)


def test_pe_subtracts_with_the_inverted_operand_and_a_carry():
    dut = ProcessingElement(operand_bits=OPERAND_BITS, membrane_bits=MEMBRANE_BITS)
    seen = []

    async def bench(ctx):
        for w in (5, -3, 7, -8):
            ctx.set(dut.op, PEOp.ADD)
            ctx.set(dut.operand, ~w)
            ctx.set(dut.carry, 1)
            await ctx.tick()
            seen.append(ctx.get(dut.membrane))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [-5, -2, -9, -1]


def test_pe_validates_widths():
    with pytest.raises(TypeError, match="operand_bits"):
        ProcessingElement(operand_bits="4", membrane_bits=8)
    with pytest.raises(ValueError, match="membrane_bits"):
        ProcessingElement(operand_bits=1, membrane_bits=1)
    with pytest.raises(ValueError, match="must not exceed"):
        ProcessingElement(operand_bits=9, membrane_bits=8)
    pe = ProcessingElement(operand_bits=4, membrane_bits=8)
    assert (pe.operand_bits, pe.membrane_bits, pe.latency) == (4, 8, 1)


# -- neuron lane ------------------------------------------------------------------------------


def _run_lane(currents, bias, threshold, reset, readout=False, bits=10):
    """Drive a lane through ``T`` FIRE steps per neuron, the testbench playing the PE as the
    row drives it (``U + b``, a clear when ``last``, the lane's ``value`` when it fires): before
    step ``t`` the membrane has taken the step's accumulated input ``A[t]``. The bias and the
    constants go in ``prepare_latency`` cycles before the FIRE's membrane."""
    dut = NeuronLane(bias_bits=6, membrane_bits=bits)
    n, steps = currents.shape
    spikes = np.zeros((n, steps), dtype=np.int64)
    values = np.zeros((n, steps), dtype=np.int64)

    async def bench(ctx):
        ctx.set(dut.threshold, threshold)
        ctx.set(dut.reset, reset)
        ctx.set(dut.readout, int(readout))
        for j in range(n):
            u = 0
            ctx.set(dut.bias, int(bias[j]))
            await ctx.tick().repeat(dut.prepare_latency)
            for t in range(steps):
                membrane = u + int(currents[j, t])
                ctx.set(dut.membrane, membrane)
                code = ctx.get(dut.spike)
                spikes[j, t] = 0 if not code & 1 else (-1 if code & 2 else 1)
                assert ctx.get(dut.fired) == code & 1
                if t == steps - 1 and not readout:
                    u = 0
                elif ctx.get(dut.fired):
                    u = ctx.get(dut.value)
                else:
                    u = membrane + int(bias[j])
                values[j, t] = u

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return spikes, values


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_neuron_lane_fires_like_the_reference(seed):
    rng = np.random.default_rng(seed)
    threshold = int(rng.integers(1, 8))
    reset = 2 * threshold - int(rng.integers(1, 3))
    currents = rng.integers(-12, 13, size=(40, 5))
    bias = rng.integers(-4, 5, size=40)
    spikes, values = _run_lane(currents, bias, threshold, max(1, reset))
    expected = fire(currents.T[None], bias, threshold, max(1, reset))[0].T
    assert np.array_equal(spikes, expected), f"seed {seed}"
    assert np.all(values[:, -1] == 0), "last must clear the membrane"
    assert np.count_nonzero(spikes) > 0 and np.count_nonzero(spikes == 0) > 0


def test_neuron_lane_readout_adds_the_bias_and_never_fires():
    rng = np.random.default_rng(7)
    currents = rng.integers(-30, 31, size=(20, 3))
    bias = rng.integers(-20, 21, size=20)
    spikes, values = _run_lane(currents, bias, threshold=1, reset=1, readout=True)
    assert not spikes.any()
    assert np.array_equal(values[:, -1], currents.sum(axis=1) + 3 * bias)


def test_neuron_lane_validates_widths():
    with pytest.raises(ValueError, match="bias_bits"):
        NeuronLane(bias_bits=9, membrane_bits=8)
    with pytest.raises(TypeError, match="membrane_bits"):
        NeuronLane(bias_bits=2, membrane_bits=8.0)


# -- scanner ------------------------------------------------------------------------------------

LANES = 5


def _random_words(rng, n, fire_every=4):
    words = []
    for index in range(n):
        if index % fire_every == fire_every - 1:
            words.append({"kind": TokenKind.FIRE, "addr": int(rng.integers(0, 256)),
                          "last": int(rng.integers(0, 2))})
            continue
        density = rng.choice([0.0, 0.3, 1.0])
        codes = [int(rng.choice([1, 3])) if rng.random() < density else 0 for _ in range(LANES)]
        words.append({
            "kind": TokenKind.EVENT,
            "addr": int(rng.integers(0, 200)),
            "codes": codes,
            "nlanes": int(rng.integers(1, LANES + 1)),
        })
    return words


def _expected(words, dense):
    tokens, costs = [], []
    for word in words:
        if word["kind"] is not TokenKind.EVENT:
            tokens.append((word["kind"], word["addr"], 0, word["last"]))
            costs.append(1)
            continue
        lanes = [i for i in range(word["nlanes"]) if dense or word["codes"][i] & 1]
        for i in lanes:
            code = word["codes"][i]
            kind = TokenKind.EVENT if code & 1 else TokenKind.SKIP
            tokens.append((kind, word["addr"] + i, code >> 1, 0))
        costs.append(max(1, len(lanes)))
    return tokens, costs


def _run_scanner(words, dense, readout_gap=1):
    token = data.StructLayout({"kind": TokenKind, "neg": 1, "last": 1, "addr": unsigned(8),
                               "oaddr": unsigned(4)})
    dut = Scanner(LANES, token, dense=dense, readout_gap=readout_gap)
    tokens, handshakes = [], []
    token_cycles = []

    def load(ctx, word):
        meta = dut.words.payload.meta
        ctx.set(meta.token.kind, word["kind"])
        ctx.set(meta.token.addr, word["addr"])
        ctx.set(meta.token.last, word.get("last", 0))
        ctx.set(meta.lane_mask, (1 << word.get("nlanes", 0)) - 1)
        ctx.set(dut.words.payload.data.as_value(), pack(word.get("codes", [0] * LANES), 2))

    async def bench(ctx):
        pending = list(words)
        load(ctx, pending[0])
        ctx.set(dut.words.valid, 1)
        cycle = 0
        idle = 0
        async for _, _, w_valid, w_ready, t_valid, kind, addr, neg, last in \
                ctx.tick().sample(dut.words.valid, dut.words.ready, dut.tokens.valid,
                                  dut.tokens.payload.kind, dut.tokens.payload.addr,
                                  dut.tokens.payload.neg, dut.tokens.payload.last):
            cycle += 1
            if t_valid:
                tokens.append((kind, addr, neg, last))
                token_cycles.append((cycle, kind))
            if w_valid and w_ready:
                handshakes.append(cycle)
                pending.pop(0)
                if pending:
                    load(ctx, pending[0])
                else:
                    ctx.set(dut.words.valid, 0)
            if not pending and not ctx.get(dut.busy):
                idle += 1
                if idle > 3:
                    break

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return tokens, handshakes, token_cycles


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
@pytest.mark.parametrize("seed", [0, 1])
def test_scanner_emits_events_in_order_without_bubbles(seed, dense):
    words = _random_words(np.random.default_rng(seed), 60)
    tokens, handshakes, _ = _run_scanner(words, dense)
    want_tokens, costs = _expected(words, dense)
    assert tokens == want_tokens, f"seed {seed}"
    assert np.diff(handshakes).tolist() == costs[:-1], f"seed {seed}"


def test_scanner_spaces_readouts():
    gap = 4
    words = [
        {"kind": TokenKind.READOUT, "addr": 0},
        {"kind": TokenKind.FIRE, "addr": 1},
        {"kind": TokenKind.READOUT, "addr": 2},
        {"kind": TokenKind.READOUT, "addr": 3},
    ]
    tokens, _, token_cycles = _run_scanner(words, dense=False, readout_gap=gap)
    assert [t[1] for t in tokens] == [0, 1, 2, 3]
    readouts = [c for c, kind in token_cycles if kind is TokenKind.READOUT]
    assert np.diff(readouts).tolist() == [gap, gap]


def test_popcount_tree():
    values = {}

    async def bench(ctx):
        for bits in (0, 1, 0b1011, (1 << 13) - 1, 0b1000000000001):
            values[bits] = ctx.get(popcount(Const(bits, 13)))

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()
    assert values == {b: bin(b).count("1") for b in values}


# -- output streamer ------------------------------------------------------------------------

def _run_streamer(cols: int, outputs: int, seed: int, inferences: int = 4):
    """Inferences of random logits (a narrow range: many ties) written a row at a time with
    random gaps, then the token and the logits taken with random back-pressure: per
    inference ``(token, logits)`` as the streamer sent them, and the logits written."""
    rng = np.random.default_rng(seed)
    depth = -(-outputs // cols)
    dut = OutputStreamer(cols=cols, logit_bits=5, logit_depth=depth, outputs=outputs)
    m = Module()
    m.submodules.streamer = dut
    writes = stream.Signature(data.StructLayout({
        "addr": unsigned(address_bits(depth)),
        "data": data.ArrayLayout(signed(5), cols)})).create()
    logit_memory(m, dut, writes)
    written = [rng.integers(-4, 4, size=depth * cols) for _ in range(inferences)]
    seen = []

    async def bench(ctx):
        for logits in written:
            while ctx.get(dut.busy):
                await ctx.tick()
            for row in range(depth):
                for _ in range(int(rng.integers(0, 3))):
                    await ctx.tick()
                ctx.set(writes.valid, 1)
                ctx.set(writes.payload.addr, row)
                for lane in range(cols):  # lanes past the last output hold junk
                    ctx.set(writes.payload.data[lane], int(logits[row * cols + lane]))
                await ctx.tick()
                ctx.set(writes.valid, 0)
            ctx.set(dut.start, 1)
            sent = []
            while len(sent) <= outputs:
                ready = bool(rng.integers(0, 2))
                stream_ = dut.next_token if not sent else dut.logits
                ctx.set(stream_.ready, ready)
                await ctx.delay(1e-8)  # let the combinational handshake settle
                took = ready and ctx.get(stream_.valid)
                value = ctx.get(stream_.payload)
                await ctx.tick()
                ctx.set(stream_.ready, 0)
                if took:
                    sent.append(int(value))
                    ctx.set(dut.start, 0)
            seen.append((sent[0], sent[1:]))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen, [w[:outputs] for w in written]


@pytest.mark.parametrize("cols, outputs", [(1, 5), (2, 7), (3, 8), (8, 20)])
@pytest.mark.parametrize("seed", [0, 1])
def test_streamer_sends_the_first_largest_logit_then_the_logits(cols, outputs, seed):
    seen, written = _run_streamer(cols, outputs, seed)
    for n, ((token, logits), want) in enumerate(zip(seen, written, strict=True)):
        assert token == int(np.argmax(want)), f"inference {n}: {want.tolist()}"
        assert logits == want.tolist(), f"inference {n}"


@pytest.mark.parametrize("n", [1, 2, 3])
def test_at_most_n_bits_set(n):
    bits = 6
    values = {}

    async def bench(ctx):
        for mask in range(1 << bits):
            values[mask] = ctx.get(at_most(Const(mask, bits), n))

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()
    assert values == {mask: int(bin(mask).count("1") <= n) for mask in range(1 << bits)}


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8])
def test_lowest_set_bit(bits):
    values = {}

    async def bench(ctx):
        for mask in range(1 << bits):
            values[mask] = ctx.get(lowest(Const(mask, bits)))

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()
    assert values == {mask: (mask & -mask).bit_length() - 1 if mask else 0
                      for mask in range(1 << bits)}
