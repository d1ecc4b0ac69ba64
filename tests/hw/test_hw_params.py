"""AcceleratorParams: derived numbers, validation, and the memory images of hw.layout."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hwsim import compile_params

from contract.random_model import random_model
from hw import AcceleratorParams, LayerKind, layout

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_contract_transformer import random_transformer  # noqa: E402


def _chain(rows=3, cols=2, dense=False, seed=1):
    model = random_model(seed, context=2, embed_dim=3, hidden=(7, 5), timesteps=3,
                         weight_bits=4)
    return compile_params(model, rows, cols, dense)


def _transformer(rows=2, cols=4, blocks=1):
    return compile_params(random_transformer(seed=5, context=4, d=8, heads=2, ffn=12,
                                             blocks=blocks), rows, cols)


def test_derived_numbers_of_a_chain():
    p = _chain()
    assert [layer.kind for layer in p.layers] == [LayerKind.LINEAR] * 2 + [LayerKind.READOUT]
    assert p.layers[0].table and not p.layers[1].table
    assert p.pes == 6 and p.lanes == 3 and p.embed_dim == 3
    assert [layer.n_in for layer in p.layers] == [6, 7, 5]
    assert p.tiles == (2, 1, 43)
    assert p.weight_bases == (0, 12, 19) and p.weight_depth == 12 + 7 + 43 * 5
    assert p.const_bases == (0, 2, 3) and p.const_depth == 46
    assert p.table_row_bits == 2 and p.table_depth == 1024
    assert p.spike_depth == 2 * 3 + 1 * 3  # two spike tensors, T steps of their tiles
    assert p.logit_depth == 43 * 3
    assert p.spiking_layers == (0, 1) and not p.attentions and not p.has_residual


def test_a_transformer_places_its_caches():
    p = _transformer(blocks=2)
    kinds = [layer.kind for layer in p.layers]
    assert kinds.count(LayerKind.ATTENTION) == 2 and kinds[0] == LayerKind.EMBED
    caches = [r for r in p.regions.values() if r.slots > 1]
    assert len(caches) == 4 and sum(r.v_bank for r in caches) == 2
    assert p.spike_depth >= 2 * 4 * p.timesteps


def test_validation_names_the_parameter():
    p = _chain()
    with pytest.raises(TypeError, match="rows"):
        replace(p, rows=2.0)
    with pytest.raises(ValueError, match="cols"):
        replace(p, cols=0)
    with pytest.raises(TypeError, match="dense"):
        replace(p, dense="yes")
    with pytest.raises(ValueError, match=r"spike_table must be \[256, 3, E\]"):
        replace(p, spike_table=p.spike_table[:, :2])
    with pytest.raises(ValueError, match="reads 2 bytes of 2 spikes, not 6 inputs"):
        replace(p, spike_table=p.spike_table[:, :, :2])
    with pytest.raises(ValueError, match="end with its one READOUT"):
        replace(p, layers=p.layers[:-1])
    with pytest.raises(ValueError, match="raise weight_bits"):
        replace(p, weight_bits=2)
    with pytest.raises(ValueError, match="raise bias_bits"):
        replace(p, bias_bits=1)
    with pytest.raises(ValueError, match="needs an EMBED layer or a spike table"):
        replace(p, spike_table=None, layers=(replace(p.layers[0], table=False), *p.layers[1:]))
    t = _transformer()
    with pytest.raises(ValueError, match="whole heads of 4 channels"):
        replace(t, cols=3)
    with pytest.raises(ValueError, match="needs an EMBED layer or a spike table"):
        replace(t, layers=t.layers[1:])
    assert isinstance(t, AcceleratorParams)


@pytest.mark.parametrize("shape", [(3, 2), (2, 3), (1, 1), (4, 5)])
def test_weight_and_constant_images_hold_every_parameter(shape):
    rows, cols = shape
    p = _chain(rows, cols)
    weights, consts = layout.weight_bank_images(p), layout.const_bank_images(p)
    assert len(weights) == len(consts) == rows
    assert all(len(b) == p.weight_depth for b in weights)
    assert all(len(b) == p.const_depth for b in consts)
    bb, kb = p.bias_bits, p.const_bits
    for index, layer in enumerate(p.layers):
        for tile in range(p.tiles[index]):
            for r in range(rows):
                lanes = layout.unpack(consts[r][layout.const_address(p, index, tile)], cols,
                                      layout.const_lane_bits(p), signed=False)
                for c in range(cols):
                    j = tile * p.pes + r * cols + c
                    bias = lanes[c] & ((1 << bb) - 1)
                    bias -= (bias >> (bb - 1)) << bb
                    assert bias == (layer.bias[j] if j < layer.n_out else 0)
                    if layer.threshold is not None and j < layer.n_out:
                        assert lanes[c] >> bb & ((1 << kb) - 1) == layer.threshold[j]
                        assert lanes[c] >> (bb + kb) == layer.reset[j]
                for i in range(layer.n_in):
                    word = weights[r][layout.weight_address(p, index, tile, i)]
                    w = layout.unpack(word, cols, p.weight_bits)
                    for c in range(cols):
                        j = tile * p.pes + r * cols + c
                        assert w[c] == (layer.weight[j, i] if j < layer.n_out else 0)


def test_spike_table_image():
    p = _chain()
    image = layout.spike_table_image(p)
    assert len(image) == p.table_depth
    for token in (0, 17, 255):
        for t in range(p.timesteps):
            codes = layout.unpack(image[token << p.table_row_bits | t], p.embed_dim, 2,
                                  signed=False)
            assert [layout.decode_spike(c) for c in codes] == list(p.spike_table[token, t])
    assert np.count_nonzero(p.spike_table) > 0
