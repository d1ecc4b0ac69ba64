"""The token that flows down the array, and the scanner's word and request layouts.

A token is what one row acts on in one cycle (docs/architecture.md, "The row"; the kinds are
:class:`TokenKind`'s, what each does is :class:`hw.row.ArrayRow`'s).
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, enum

from .checks import positive_int
from .params import AcceleratorParams, LayerKind, address_bits

__all__ = ["TokenKind", "layer_flags", "meta_layout", "request_layout", "token_layout",
           "word_layout"]


class TokenKind(enum.Enum, shape=3):
    """What a token asks of a row."""

    SKIP = 0
    EVENT = 1
    FIRE = 2
    READOUT = 3
    ATTN = 4  #: ``U += ±score`` by the sign of the lane's cached value spike
    RESID = 5  #: ``U += x``, the lane's residual
    RESADD = 6  #: the residual takes ``x + shift(U)`` (or ``shift(U)``); ``U = 0``


def token_layout(p: AcceleratorParams) -> data.StructLayout:
    """The token: ``kind``, ``neg`` (an EVENT's sign), ``last`` (a FIRE of the last step),
    ``init`` (a RESADD that starts the residual), ``addr`` (weight, constant, residual or V-bank
    address), ``oaddr`` (spike bank, V bank or logit memory), an ATTN's per-head scores and,
    in a program whose neurons leak, a FIRE's ``leak`` (its index in
    :attr:`AcceleratorParams.leak_sets`) and, in a program whose residual adds scale per step,
    a RESADD's ``scale`` (its index in :attr:`AcceleratorParams.scale_sets`); and, in a program
    in which a layer may start while the previous one's tokens are still in the pipeline
    (:attr:`AcceleratorParams.overlapping`), ``layer``, the index of the layer that sent it, from
    which a row decodes what the token means in that layer (:func:`layer_flags`)."""
    fields = {
        "kind": TokenKind,
        "neg": 1,
        "last": 1,
        "init": 1,
        "addr": unsigned(p.addr_bits),
        "oaddr": unsigned(p.oaddr_bits),
        "scores": data.ArrayLayout(unsigned(p.score_bits), p.heads_per_tile),
    }
    if p.leaky:
        fields["leak"] = unsigned(address_bits(len(p.leak_sets)))
    if p.scaled:
        fields["scale"] = unsigned(address_bits(len(p.scale_sets)))
    if p.overlapping:
        fields["layer"] = range(len(p.layers))
    return data.StructLayout(fields)


def layer_flags(p: AcceleratorParams) -> tuple[data.Const, ...]:
    """Per layer, what a row reads of its tokens' layer: ``readout`` (a FIRE adds the bias and
    spikes nothing), ``binary`` (no ``-1`` spikes), ``dest_v`` (a FIRE writes the V bank) and
    ``shift_sel`` (a RESADD's shift, its index in :attr:`AcceleratorParams.shifts`)."""
    layout = data.StructLayout({"readout": 1, "binary": 1, "dest_v": 1,
                                "shift_sel": range(len(p.shifts))})
    regions = p.regions
    return tuple(layout.const({
        "readout": int(layer.kind == LayerKind.READOUT),
        "binary": int(layer.binary),
        "dest_v": int(layer.dest is not None and regions[layer.dest].v_bank),
        "shift_sel": p.shifts.index(layer.shift) if layer.kind == LayerKind.RESIDUAL else 0,
    }) for layer in p.layers)


def meta_layout(token: data.StructLayout, lanes: int) -> data.StructLayout:
    """What travels with a scanner word: the token template (an EVENT's ``addr`` is the address
    of lane 0) and its valid lanes, as a mask (the first ``n`` bits set)."""
    return data.StructLayout({
        "token": token,
        "lane_mask": unsigned(positive_int("lanes", lanes)),
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
