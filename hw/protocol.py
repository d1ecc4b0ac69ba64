"""The board's UART protocol: the bytes both ends agree on (docs/boards.md).

Plain Python, no Amaranth: :class:`hw.bridge.UartBridge` builds its replies from these
constants and the host (``rtl_gen.host``) encodes its commands and decodes the replies with
these functions, so the two ends cannot drift apart.

Host to board, one command byte and its arguments:

- ``HELLO`` (``'H'``): the board answers :data:`HELLO_REPLY_BYTES` bytes, ``'S' 'F'``, the
  protocol version, the build's identity (32 bits, little endian), the window (bytes per
  inference), the number of spike counters and a flags byte (bit 0: the build is checked on
  streams, a byte per inference with the key/value caches carried).
- ``INFER`` (``'I'``), a flags byte (bit 0: restart the stream), then ``window`` bytes, the
  oldest first: the board runs one inference and answers ``'R'``, the next byte, the cycles of
  the inference (32 bits, little endian) and every spike counter (24 bits, little endian).
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
    "MAGIC",
    "RESULT",
    "VERSION",
    "Hello",
    "ProtocolError",
    "Result",
    "decode_hello",
    "decode_result",
    "encode_hello",
    "encode_infer",
    "hello_reply",
    "result_bytes",
]

HELLO = ord("H")
INFER = ord("I")
RESULT = ord("R")
ERROR = ord("?")
MAGIC = b"SF"
VERSION = 1
COUNTER_BYTES = 3
"""Bytes of a spike counter on the wire (the accelerator's counters are 24 bits)."""
CYCLE_BYTES = 4
HELLO_REPLY_BYTES = len(MAGIC) + 1 + 4 + 3
FLAG_STREAMS = 1
FLAG_RESTART = 1


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


@dataclass(frozen=True)
class Result:
    """One inference on the board."""

    token: int
    cycles: int
    spike_counts: tuple[int, ...]


def _check_byte(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise ProtocolError(f"{name} must be a byte (0..255), not {value!r}")
    return value


def encode_hello() -> bytes:
    return bytes([HELLO])


def encode_infer(window: bytes | list[int], restart: bool) -> bytes:
    """The INFER command for one window of bytes (the oldest first)."""
    data = [_check_byte("a window byte", b) for b in window]
    if not data:
        raise ProtocolError("an inference needs at least one byte")
    return bytes([INFER, FLAG_RESTART if restart else 0, *data])


def hello_reply(build_id: int, window: int, counters: int, streams: bool) -> bytes:
    """The board's answer to HELLO (the bridge's constant bytes)."""
    if not 0 <= build_id < 1 << 32:
        raise ProtocolError(f"a build identity is 32 bits, not {build_id!r}")
    return (MAGIC + bytes([VERSION]) + build_id.to_bytes(4, "little")
            + bytes([_check_byte("window", window), _check_byte("counters", counters),
                     FLAG_STREAMS if streams else 0]))


def decode_hello(data: bytes) -> Hello:
    """A HELLO reply, or a one-line error saying what came instead."""
    data = bytes(data)
    if len(data) != HELLO_REPLY_BYTES or data[:2] != MAGIC:
        raise ProtocolError("not a SpikeForge board: its answer to HELLO was"
                            f" {data.hex() or 'nothing'} (expected {HELLO_REPLY_BYTES} bytes"
                            f" starting {MAGIC.hex()});"
                            " check the port, the baud rate and the bitstream")
    if data[2] != VERSION:
        raise ProtocolError(f"the board speaks protocol version {data[2]}, this host"
                            f" {VERSION}; rebuild the bitstream with this SpikeForge")
    return Hello(version=data[2], build_id=int.from_bytes(data[3:7], "little"), window=data[7],
                 counters=data[8], streams=bool(data[9] & FLAG_STREAMS))


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
