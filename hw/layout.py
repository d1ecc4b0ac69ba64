"""Memory images and address arithmetic of docs/architecture.md, computed in one place.

Every image is a list of Python ints, one per memory row; lane ``c`` of a row occupies bits
``[c*w, (c+1)*w)`` in two's complement. The bases and depths come from
:class:`hw.params.AcceleratorParams`; the gateware reads these images and never recomputes them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .params import VOCAB, AcceleratorParams

__all__ = [
    "SPIKE_CODES",
    "bias_address",
    "bias_bank_images",
    "decode_spike",
    "input_word",
    "logit_address",
    "neuron_at",
    "pack",
    "spike_address",
    "spike_table_image",
    "table_address",
    "unpack",
    "weight_address",
    "weight_bank_images",
]

SPIKE_CODES = {0: 0b00, 1: 0b01, -1: 0b11}
"""Spike code: bit 0 is non-zero, bit 1 is negative."""


def decode_spike(code: int) -> int:
    """The spike {-1, 0, +1} of a 2-bit code."""
    return 0 if not code & 1 else (-1 if code & 2 else 1)


def pack(values: Iterable[int], width: int) -> int:
    """Lanes ``values`` packed into one word, lane ``c`` at bits ``[c*width, (c+1)*width)``."""
    mask = (1 << width) - 1
    word = 0
    for lane, value in enumerate(values):
        word |= (int(value) & mask) << (lane * width)
    return word


def unpack(word: int, lanes: int, width: int, signed: bool = True) -> list[int]:
    """The inverse of :func:`pack`."""
    mask = (1 << width) - 1
    out = []
    for lane in range(lanes):
        value = (word >> (lane * width)) & mask
        if signed and value >> (width - 1):
            value -= 1 << width
        out.append(value)
    return out


def neuron_at(params: AcceleratorParams, tile: int, row: int, col: int) -> int:
    """Output neuron ``j = τ*P + r*C + c`` held by PE ``(r, c)`` in tile ``τ``."""
    return tile * params.pes + row * params.cols + col


def weight_address(params: AcceleratorParams, layer: int, tile: int, index: int) -> int:
    """Weight-bank address of input ``index`` of tile ``tile`` of layer ``layer``."""
    return params.weight_bases[layer] + tile * params.n_ins[layer] + index


def bias_address(params: AcceleratorParams, layer: int, tile: int) -> int:
    """Bias-bank address of tile ``tile`` of layer ``layer``."""
    return params.bias_bases[layer] + tile


def table_address(params: AcceleratorParams, token: int, step: int) -> int:
    """Spike-table address of byte ``token`` at step ``step``: ``id*T + t``."""
    return token * params.timesteps + step


def spike_address(params: AcceleratorParams, layer: int, step: int, tile: int) -> int:
    """Spike-bank address where hidden layer ``layer`` writes tile ``tile`` at step ``step``."""
    return step * params.tiles[layer] + tile


def input_word(params: AcceleratorParams, layer: int, step: int, word: int) -> tuple[int, int]:
    """``(bank, address)`` of input word ``word`` of layer ``layer > 0`` at step ``step``."""
    if layer < 1:
        raise ValueError(f"layer 0 reads the spike table, not a spike bank (layer {layer})")
    return word % params.rows, spike_address(params, layer - 1, step, word // params.rows)


def logit_address(params: AcceleratorParams, j: int) -> tuple[int, int]:
    """``(address, lane)`` of logit ``j`` in the logit memory: ``τ*R + r``, lane ``c``."""
    return j // params.cols, j % params.cols


def weight_bank_images(params: AcceleratorParams) -> list[list[int]]:
    """The ``R`` weight banks, each ``weight_depth`` rows of ``C`` lanes of ``Wb`` bits."""
    r_, c_, p_ = params.rows, params.cols, params.pes
    banks = np.zeros((r_, params.weight_depth, c_), dtype=np.int64)
    for layer, (params_l, tiles) in enumerate(zip(params.all_layers, params.tiles, strict=True)):
        weight = np.zeros((tiles * p_, params_l.n_in), dtype=np.int64)
        weight[: params_l.n_out] = params_l.weight
        for tile in range(tiles):
            block = weight[tile * p_ : (tile + 1) * p_].reshape(r_, c_, params_l.n_in)
            base = weight_address(params, layer, tile, 0)
            banks[:, base : base + params_l.n_in, :] = block.transpose(0, 2, 1)
    return [[pack(row, params.weight_bits) for row in bank] for bank in banks]


def bias_bank_images(params: AcceleratorParams) -> list[list[int]]:
    """The ``R`` bias banks, each ``bias_depth`` rows of ``C`` lanes of ``Bb`` bits."""
    r_, c_, p_ = params.rows, params.cols, params.pes
    banks = np.zeros((r_, params.bias_depth, c_), dtype=np.int64)
    for layer, (params_l, tiles) in enumerate(zip(params.all_layers, params.tiles, strict=True)):
        bias = np.zeros(tiles * p_, dtype=np.int64)
        bias[: params_l.n_out] = params_l.bias
        for tile in range(tiles):
            banks[:, bias_address(params, layer, tile), :] = bias[
                tile * p_ : (tile + 1) * p_
            ].reshape(r_, c_)
    return [[pack(row, params.bias_bits) for row in bank] for bank in banks]


def spike_table_image(params: AcceleratorParams) -> list[int]:
    """The spike table: ``256*T`` rows of ``E`` 2-bit spike codes, row ``id*T + t``."""
    image = []
    for token in range(VOCAB):
        for step in range(params.timesteps):
            codes = [SPIKE_CODES[int(s)] for s in params.spike_table[token, step]]
            image.append(pack(codes, 2))
    return image
