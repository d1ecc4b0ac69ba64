"""The board's UART protocol: the bytes both ends agree on (docs/boards.md).

Plain Python, no Amaranth: :class:`hw.bridge.UartBridge` builds its replies from these
constants and the host (``rtl_gen.host``) encodes its commands and decodes the replies with
these functions, so the two ends cannot drift apart.

Host to board, one command byte and its arguments:

- ``HELLO`` (``'H'``): the board answers :data:`HELLO_REPLY_BYTES` bytes, ``'S' 'F'``, the
  protocol version, the build's identity (32 bits, little endian), the window (bytes per
  inference), the number of spike counters, a flags byte (bit 0: the build is checked on
  streams, a byte per inference with the key/value caches carried), the logits per inference
  (16 bits, little endian) and the logits' width in bits.
- ``INFER`` (``'I'``), a flags byte (bit 0: restart the stream; bit 1: send the logits), then
  ``window`` bytes, the oldest first: the board runs one inference and answers ``'R'``, the
  next byte, the cycles of the inference (32 bits, little endian) and every spike counter
  (24 bits, little endian); then, when asked, every logit in index order, each in
  :func:`logit_bytes` bytes (two's complement, little endian). The next byte is out before
  the logits are, as on the accelerator's own ports.
- Any other command byte: the board answers ``'?'`` and waits for the next command.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COUNTER_BYTES",
    "ERROR",
    "HELLO",
    "HELLO_REPLY_BYTES",
    "INFER",
    "LOGITS",
    "MAGIC",
    "RESULT",
    "VERSION",
    "Hello",
    "ProtocolError",
    "Result",
    "decode_hello",
    "decode_logits",
    "decode_result",
    "encode_hello",
    "encode_infer",
    "hello_reply",
    "logit_bytes",
    "result_bytes",
]

HELLO = ord("H")
INFER = ord("I")
RESULT = ord("R")
ERROR = ord("?")
MAGIC = b"SF"
VERSION = 2
"""1: no logits on the wire; 2: INFER's flag bit 1 asks for them, HELLO says their shape."""
COUNTER_BYTES = 3
"""Bytes of a spike counter on the wire (the accelerator's counters are 24 bits)."""
CYCLE_BYTES = 4
HELLO_REPLY_BYTES = len(MAGIC) + 1 + 4 + 3 + 3
FLAG_STREAMS = 1
FLAG_RESTART = 1
LOGITS = 2
"""INFER's flag: send the inference's logits after its result."""


class ProtocolError(ValueError):
    """Bytes that are not what the protocol says: a wrong board, bitstream or baud rate."""


@dataclass(frozen=True)
class Hello:
    """What a board says it is."""

    version: int
    build_id: int
    window: int
    counters: int
    streams: bool
    outputs: int
    """Logits per inference."""
    logit_bits: int


@dataclass(frozen=True)
class Result:
    """One inference on the board (``logits``: when they were asked for)."""

    token: int
    cycles: int
    spike_counts: tuple[int, ...]
    logits: tuple[int, ...] | None = None


def _check_byte(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise ProtocolError(f"{name} must be a byte (0..255), not {value!r}")
    return value


def encode_hello() -> bytes:
    return bytes([HELLO])


def encode_infer(window: bytes | list[int], restart: bool, logits: bool = False) -> bytes:
    """The INFER command for one window of bytes (the oldest first)."""
    data = [_check_byte("a window byte", b) for b in window]
    if not data:
        raise ProtocolError("an inference needs at least one byte")
    return bytes([INFER, (FLAG_RESTART if restart else 0) | (LOGITS if logits else 0), *data])


def hello_reply(build_id: int, window: int, counters: int, streams: bool, outputs: int,
                logit_bits: int) -> bytes:
    """The board's answer to HELLO (the bridge's constant bytes)."""
    if not 0 <= build_id < 1 << 32:
        raise ProtocolError(f"a build identity is 32 bits, not {build_id!r}")
    if not 0 < outputs < 1 << 16:
        raise ProtocolError(f"logits per inference are 1..65535, not {outputs!r}")
    return (MAGIC + bytes([VERSION]) + build_id.to_bytes(4, "little")
            + bytes([_check_byte("window", window), _check_byte("counters", counters),
                     FLAG_STREAMS if streams else 0]) + outputs.to_bytes(2, "little")
            + bytes([_check_byte("logit bits", logit_bits)]))


def logit_bytes(bits: int) -> int:
    """Bytes of one logit of ``bits`` bits on the wire."""
    return (bits + 7) // 8


def decode_hello(data: bytes) -> Hello:
    """A HELLO reply, or a one-line error saying what came instead (a board of another
    protocol version is named as such, whatever the length of its reply)."""
    data = bytes(data)
    if data[:2] != MAGIC or len(data) < 3:
        raise ProtocolError("not a SpikeForge board: its answer to HELLO was"
                            f" {data.hex() or 'nothing'} (expected {HELLO_REPLY_BYTES} bytes"
                            f" starting {MAGIC.hex()});"
                            " check the port, the baud rate and the bitstream")
    if data[2] != VERSION:
        raise ProtocolError(f"the board speaks protocol version {data[2]}, this host"
                            f" {VERSION}; rebuild the bitstream with this SpikeForge")
    if len(data) != HELLO_REPLY_BYTES:
        raise ProtocolError(f"a HELLO reply of {len(data)} bytes, not {HELLO_REPLY_BYTES}"
                            f" ({data.hex()}); check the baud rate")
    return Hello(version=data[2], build_id=int.from_bytes(data[3:7], "little"), window=data[7],
                 counters=data[8], streams=bool(data[9] & FLAG_STREAMS),
                 outputs=int.from_bytes(data[10:12], "little"), logit_bits=data[12])


def result_bytes(counters: int) -> int:
    """Length of an INFER reply with ``counters`` spike counters."""
    return 2 + CYCLE_BYTES + COUNTER_BYTES * counters


def decode_result(data: bytes, counters: int) -> Result:
    """An INFER reply, or a one-line error."""
    data = bytes(data)
    if len(data) != result_bytes(counters) or data[0] != RESULT:
        raise ProtocolError(f"expected a result of {result_bytes(counters)} bytes starting"
                            f" {RESULT:02x}, got {data.hex() or 'nothing'}")
    base = 2 + CYCLE_BYTES
    counts = tuple(int.from_bytes(data[base + COUNTER_BYTES * i:base + COUNTER_BYTES * (i + 1)],
                                  "little") for i in range(counters))
    return Result(token=data[1], cycles=int.from_bytes(data[2:base], "little"),
                  spike_counts=counts)


def decode_logits(data: bytes, outputs: int, bits: int) -> tuple[int, ...]:
    """The ``outputs`` logits after an INFER's result, or a one-line error."""
    data, size = bytes(data), logit_bytes(bits)
    if len(data) != outputs * size:
        raise ProtocolError(f"expected {outputs} logits of {size} bytes, got {len(data)} bytes")
    return tuple(int.from_bytes(data[i * size:(i + 1) * size], "little", signed=True)
                 for i in range(outputs))
