# amaranth: UnusedElaboratable=no
"""Hostile inputs beyond tests/rtl_gen: each gets one line on stderr, a non-zero exit, no
traceback, and no output folder that could pass for a finished build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from test_rtl_gen_cli import assert_one_line_error, run

from contract import ContractError, forward
from contract.onnx_io import to_onnx
from contract.random_model import random_model
from rtl_gen.frontend import load_graph
from rtl_gen.interpret import interpret

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "spikelm-mlp.pt"


def assert_nothing_built(out: Path):
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def onnx_bytes() -> bytes:
    return to_onnx(random_model(0, hidden=(5,))).SerializeToString()


def onnx_with_weight(tmp_path: Path, value: float) -> Path:
    model = to_onnx(random_model(0, hidden=(5,)))
    init = next(t for t in model.graph.initializer if t.name == "accumulate0_w")
    arr = onnx.numpy_helper.to_array(init).astype(np.float32)
    arr[0, 0] = value
    init.CopyFrom(onnx.numpy_helper.from_array(arr, "accumulate0_w"))
    path = tmp_path / f"w_{value}.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    "content, fragment",
    [(lambda: onnx_bytes()[: len(onnx_bytes()) // 2], "not a valid ONNX model"),
     (lambda: b"", "not a valid ONNX model")],
    ids=["truncated", "empty"],
)
def test_broken_onnx_names_the_users_file(tmp_path, content, fragment):
    path = tmp_path / "broken.onnx"
    path.write_bytes(content())
    out = tmp_path / "out"
    code, _, err = run("build", "--onnx", path, "--out", out)
    assert_one_line_error(code, err, str(path), fragment)
    assert ".partial" not in err
    assert_nothing_built(out)


def test_empty_checkpoint(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    out = tmp_path / "out"
    code, _, err = run("build", "--ckpt", path, "--out", out)
    assert_one_line_error(code, err, "empty.pt", "corrupt or truncated")
    assert_nothing_built(out)


def test_an_input_that_is_not_a_byte_stream_through_the_cli(tmp_path):
    model = to_onnx(random_model(0))
    model.graph.input[0].type.tensor_type.shape.dim.add().dim_value = 4
    onnx.save(model, tmp_path / "d.onnx")
    out = tmp_path / "out"
    code, _, err = run("build", "--onnx", tmp_path / "d.onnx", "--out", out)
    assert_one_line_error(code, err, "byte streams [N, L]")
    assert_nothing_built(out)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_onnx_weights(tmp_path, value):
    out = tmp_path / "out"
    code, _, err = run("build", "--onnx", onnx_with_weight(tmp_path, value), "--out", out)
    assert_one_line_error(code, err, "accumulate0", "must hold integers")
    assert_nothing_built(out)


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_checkpoint_weights(tmp_path, value):
    checkpoint = torch.load(SHIPPED, weights_only=False)
    state = {k: v.clone() for k, v in checkpoint["state_dict"].items()}
    state["layers.0.linear.weight"][0, 0] = value
    path = tmp_path / "bad.pt"
    torch.save({**checkpoint, "state_dict": state}, path)
    out = tmp_path / "out"
    code, _, err = run("build", "--ckpt", path, "--out", out)
    assert_one_line_error(code, err, "layers.0.linear.weight", "NaN or inf")
    assert_nothing_built(out)


def test_ckpt_and_onnx_together(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_bytes())
    out = tmp_path / "out"
    code, _, err = run("build", "--ckpt", SHIPPED, "--onnx", path, "--out", out)
    assert code == 2
    assert_one_line_error(code, err, "--onnx", "not allowed with", "--ckpt")
    assert_nothing_built(out)


@pytest.mark.parametrize("bad", [256, -1], ids=["256", "-1"])
def test_golden_ids_out_of_range(tmp_path, bad):
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_bytes())
    np.savez(tmp_path / "in.npz", input=np.array([[1, 2, bad]]))
    out = tmp_path / "out"
    code, _, err = run("build", "--onnx", path, "--inputs", tmp_path / "in.npz", "--out", out)
    assert_one_line_error(code, err, "byte values 0..255")
    assert_nothing_built(out)


@pytest.mark.parametrize("bad", [256, -1, 1000], ids=["256", "-1", "1000"])
def test_reference_and_interpreter_refuse_ids_out_of_range(tmp_path, bad):
    """Not an index error, and never a silent wrap (-1 would read the table's last row)."""
    model = random_model(0, hidden=(5,))
    path = tmp_path / "m.onnx"
    path.write_bytes(to_onnx(model).SerializeToString())
    ids = np.array([[1, 2, bad]])
    with pytest.raises(ContractError, match="0..255"):
        forward(model, ids)
    with pytest.raises(ContractError, match="0..255"):
        interpret(load_graph(path), ids)


def test_hardware_token_ports_are_bytes():
    """At the hardware interface an id is 8 bits wide: 256 and above cannot be expressed, so
    the behaviour is defined by construction (the port takes the low 8 bits of what a
    testbench drives; the testbench drives golden ids, which the build checked)."""
    from hw import Accelerator, InferenceHarness
    from rtl_gen.passes import FuseLinear
    from rtl_gen.plan_program import program_params

    graph = FuseLinear().run(random_model(0, context=3, hidden=(5,)).graph())
    params = program_params(graph, 2, 3)[0]
    # a byte, the restart, hold and prefill flags; a window harness: 3 bytes and the restart
    assert Accelerator(params).tokens.payload.shape().width == 8 + 3
    assert InferenceHarness(params, window=3).context.shape().width == 8 * 3 + 1


@pytest.mark.parametrize(
    "args, fragment",
    [(["--samples", "0"], "--samples"), (["--simulator", "modelsim"], "--simulator")],
)
def test_invalid_sim_flags(tmp_path, args, fragment):
    code, _, err = run("sim", tmp_path, *args)
    assert code == 2
    assert_one_line_error(code, err, fragment)
