"""The token that flows down the array, and the scanner's word and request layouts.

A token is what one row acts on in one cycle (docs/architecture.md, "Rows"):

- ``EVENT``: ``addr`` is the weight-bank address, ``neg`` the sign of the spike.
- ``FIRE``: ``addr`` is the bias-bank address, ``oaddr`` the spike-bank address the row writes
  (hidden layer), ``last`` marks the final time step.
- ``READOUT``: ``oaddr`` is the logit-memory base ``τ*R``; row ``r`` writes address
  ``oaddr + r``.
- ``SKIP``: spends a cycle and does nothing (a zero spike in dense mode).
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, enum

from .checks import positive_int

__all__ = ["TokenKind", "meta_layout", "request_layout", "token_layout", "word_layout"]


class TokenKind(enum.Enum, shape=3):
    """What a token asks of a row (the last three only of a transformer's rows, see
    :mod:`hw.transformer.row`)."""

    SKIP = 0
    EVENT = 1
    FIRE = 2
    READOUT = 3
    ATTN = 4  #: ``U += ±score`` by the sign of the lane's cached value spike
    RESID = 5  #: ``U += x``, the lane's residual
    RESADD = 6  #: the residual takes ``x + shift(U)`` (or ``shift(U)``); ``U = 0``


def token_layout(addr_bits: int, oaddr_bits: int) -> data.StructLayout:
    """The token: ``kind``, ``neg``, ``last``, ``addr`` (bank address), ``oaddr`` (output)."""
    return data.StructLayout({
        "kind": TokenKind,
        "neg": 1,
        "last": 1,
        "addr": unsigned(positive_int("addr_bits", addr_bits)),
        "oaddr": unsigned(positive_int("oaddr_bits", oaddr_bits)),
    })


def meta_layout(token: data.StructLayout, lanes: int, count_bits: int) -> data.StructLayout:
    """What travels with a scanner word: the token template (an EVENT's ``addr`` is the address
    of lane 0), the number of valid lanes, and the spike-counter index to count into."""
    return data.StructLayout({
        "token": token,
        "nlanes": range(positive_int("lanes", lanes) + 1),
        "count": 1,
        "count_index": unsigned(positive_int("count_bits", count_bits)),
    })


def word_layout(meta: data.StructLayout, lanes: int) -> data.StructLayout:
    """A scanner input word: ``meta`` and ``lanes`` 2-bit spike codes."""
    return data.StructLayout({"meta": meta, "data": data.ArrayLayout(unsigned(2), lanes)})


def request_layout(meta: data.StructLayout, sources: int, raddr_bits: int) -> data.StructLayout:
    """A word read request: ``meta``, which memory (``src``) and the address to read."""
    return data.StructLayout({
        "meta": meta,
        "src": range(positive_int("sources", sources)),
        "raddr": unsigned(positive_int("raddr_bits", raddr_bits)),
    })
