"""Memory images and address arithmetic of the accelerator (docs/architecture.md), in one
place.

Every image is a list of Python ints, one per memory row; lane ``c`` of a row occupies bits
``[c*w, (c+1)*w)`` in two's complement (:func:`pack`). The bases and depths come from
:class:`hw.params.AcceleratorParams`; the gateware reads these images and never recomputes them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .params import VOCAB, AcceleratorParams, LayerKind

__all__ = [
    "SPIKE_CODES",
    "const_address",
    "const_bank_images",
    "const_lane_bits",
    "decode_spike",
    "external_weight_image",
    "pack",
    "residual_address",
    "spike_table_image",
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


def weight_address(p: AcceleratorParams, layer: int, tile: int, index: int) -> int:
    """Weight-bank address of input ``index`` of tile ``tile`` of layer ``layer``."""
    return p.weight_bases[layer] + tile * p.layers[layer].n_in + index


def const_address(p: AcceleratorParams, layer: int, tile: int, count: int = 1,
                  step: int = 0) -> int:
    """Constant-bank address of a tile (ATTENTION: for a position that sees ``count`` keys;
    per-step constants: at step ``step``, a block of ``W`` key counts for an ATTENTION)."""
    attention = p.layers[layer].kind == LayerKind.ATTENTION
    offset = (count - 1) * p.tiles[layer] if attention else 0
    if p.layers[layer].per_step:
        offset += step * p.tiles[layer] * (p.window if attention else 1)
    return p.const_bases[layer] + offset + tile


def residual_address(p: AcceleratorParams, step: int, tile: int) -> int:
    """Residual-bank address of the channels of tile ``tile`` at step ``step``."""
    return step * p.model_tiles + tile


def const_lane_bits(p: AcceleratorParams) -> int:
    """Bits of one lane of a constant bank: bias, threshold, reset."""
    return p.bias_bits + 2 * p.const_bits


def _per_neuron(p: AcceleratorParams, values: np.ndarray, n: int, fill: int) -> np.ndarray:
    out = np.full(p.tiles_of(n) * p.pes, fill, dtype=np.int64)
    out[:n] = values
    return out


def weight_bank_images(p: AcceleratorParams) -> list[list[int]]:
    """The ``R`` weight banks: lane ``c`` of row ``r`` holds output ``τ P + r C + c``."""
    banks = np.zeros((p.rows, p.weight_depth, p.cols), dtype=np.int64)
    for index, (layer, tiles) in enumerate(zip(p.layers, p.tiles, strict=True)):
        if layer.weight is None:
            continue
        weight = np.zeros((tiles * p.pes, layer.n_in), dtype=np.int64)
        weight[: layer.n_out] = layer.weight
        for tile in range(tiles):
            block = weight[tile * p.pes : (tile + 1) * p.pes].reshape(p.rows, p.cols, layer.n_in)
            base = weight_address(p, index, tile, 0)
            banks[:, base : base + layer.n_in, :] = block.transpose(0, 2, 1)
    return [[pack(row, p.weight_bits) for row in bank] for bank in banks]


def external_weight_image(p: AcceleratorParams) -> list[int]:
    """The external weight memory (weights off chip), one word per AXI4 beat of
    :attr:`AcceleratorParams.bus_data_bits`: weight row ``a`` (the bank address of
    :func:`weight_address`) is the burst at byte address ``a * weight_row_bytes``, its beat ``r``
    the word of weight bank ``r`` at ``a`` (lanes packed as in the bank, the rest zero)."""
    banks = weight_bank_images(p)
    return [banks[r][a] for a in range(p.weight_depth) for r in range(p.rows)]


def const_bank_images(p: AcceleratorParams) -> list[list[int]]:
    """The ``R`` constant banks: per lane ``bias | threshold << Bb | reset << (Bb + Kb)``."""
    bb, kb = p.bias_bits, p.const_bits
    entries = np.zeros((p.rows, p.const_depth, p.cols), dtype=object)
    for index, (layer, tiles) in enumerate(zip(p.layers, p.tiles, strict=True)):
        if not p.const_entries(layer):
            continue
        if layer.kind == LayerKind.ATTENTION:
            steps = p.timesteps if layer.per_step else 1
            threshold, reset = (np.broadcast_to(v, (steps, p.window))
                                for v in (layer.threshold, layer.reset))
            groups = [(count, step, np.zeros(layer.n_out, dtype=np.int64),
                       np.full(layer.n_out, threshold[step, count - 1]),
                       np.full(layer.n_out, reset[step, count - 1]))
                      for step in range(steps) for count in range(1, p.window + 1)]
        else:
            ones = np.ones(layer.n_out, dtype=np.int64)
            groups = []
            for step in range(p.timesteps if layer.per_step else 1):
                bias, threshold, reset = layer.constants_at(step)
                groups.append((1, step, bias, ones if threshold is None else threshold,
                               ones if reset is None else reset))
        for count, step, bias, threshold, reset in groups:
            lanes = [_per_neuron(p, v, layer.n_out, fill) for v, fill in
                     ((bias, 0), (threshold, 1), (reset, 1))]
            for tile in range(tiles):
                addr = const_address(p, index, tile, count, step)
                for r in range(p.rows):
                    for c in range(p.cols):
                        j = tile * p.pes + r * p.cols + c
                        b, th, rs = (int(v[j]) for v in lanes)
                        entries[r, addr, c] = (b & ((1 << bb) - 1)) | th << bb | rs << (bb + kb)
    width = const_lane_bits(p)
    return [[pack(row, width) for row in bank] for bank in entries]


def spike_table_image(p: AcceleratorParams) -> list[int]:
    """The spike table ROM: row ``b << table_row_bits | t``, lane ``e``: the spike code
    (``0b01`` +1, ``0b11`` -1) of ``table[b, t, e]``."""
    if p.spike_table is None:
        return []
    codes = np.where(p.spike_table > 0, SPIKE_CODES[1],
                     np.where(p.spike_table < 0, SPIKE_CODES[-1], SPIKE_CODES[0]))
    image = [0] * p.table_depth
    for b in range(VOCAB):
        for t in range(p.timesteps):
            image[b << p.table_row_bits | t] = pack(codes[b, t], 2)
    return image
