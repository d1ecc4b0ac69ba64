"""Data-parallel training under torchrun and runs in parts (--until, --resume).

What holds: a resumed run ends on the same weights, bit for bit, as the run straight through
(one process, or two); two processes end on the weights of one process on the same global
batch up to float rounding (the sums run in another order), checked after a few steps of a
tiny MLP. Over many steps of an attention model that rounding can flip a spike (a ReLU score
that is exactly 0 in one order and 1e-17 in the other), so longer runs agree only in their
figures.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint
from model.errors import UsageError
from model.parallel import Ranks, unused_parameters
from model.resume import load_state, state_path
from model.spike import ternary_quantize
from model.train import TrainOptions, build_model, train
from model.train import main as train_main
from model.zoo import LMConfig, TransformerConfig

REPO = Path(__file__).resolve().parents[2]
SEED = 0
TINY = ["--hidden", "16", "--layers", "1", "--embed", "4", "--context", "3", "--batch", "16",
        "--steps", "6", "--seed", str(SEED)]
#: a calibrated per-step neuron on streams: every statistic a resumed run must restore
SPIKELM = TransformerConfig(context=4, d_model=8, heads=2, ffn=8, layers=1, timesteps=2,
                            neuron="spikelm")


def run_train(*args, processes: int = 1) -> subprocess.CompletedProcess:
    """``python -m model.train`` (under ``torchrun`` for more than one process)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "model.train"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node", str(processes), "-m", "model.train"]
    else:
        args = (*args, "--threads", "1")
    return subprocess.run([*launcher, *map(str, args)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_the_ranks_shares_are_disjoint_and_make_the_batch():
    batch = torch.arange(16 * 3).reshape(16, 3)
    shares = [Ranks(rank, 2).shard(batch) for rank in range(2)]
    assert torch.equal(torch.cat(shares), batch)
    assert not set(shares[0][:, 0].tolist()) & set(shares[1][:, 0].tolist())
    assert Ranks().shard(batch) is batch


def test_the_lsq_gradient_of_two_shares_is_that_of_the_batch():
    gen = torch.Generator().manual_seed(SEED)
    u = torch.randn(8, 5, generator=gen, dtype=torch.float64)
    weight = torch.randn(8, 5, generator=gen, dtype=torch.float64)

    def alpha_grad(part: slice, shards: int) -> torch.Tensor:
        alpha = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
        out = ternary_quantize(u[part], alpha, shards=shards)
        ((out * weight[part]).sum() / u[part].shape[0]).backward()  # a mean over the share
        return alpha.grad

    whole = alpha_grad(slice(None), 1)
    mean = (alpha_grad(slice(0, 4), 2) + alpha_grad(slice(4, 8), 2)) / 2  # what DDP averages
    assert whole != 0
    assert torch.allclose(mean, whole, rtol=1e-12, atol=0)


def test_unused_parameters_are_found_for_ddp():
    torch.manual_seed(SEED)
    model = build_model(SPIKELM)
    ids = torch.randint(0, 256, (2, 8), generator=torch.Generator().manual_seed(SEED))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert unused_parameters(model, ids) == ["blocks.2.tau"]  # ReLU attention reads no tau
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    mlp = build_model(LMConfig(context=3, embed=4, hidden=(16,), timesteps=2))
    assert unused_parameters(mlp, ids[:, :3]) == []


@pytest.mark.parametrize("config", [LMConfig(context=3, embed=4, hidden=(16,), timesteps=3),
                                    SPIKELM], ids=["mlp", "spikelm-transformer"])
def test_a_run_in_parts_ends_on_the_weights_of_one_run(tmp_path, config):
    options = TrainOptions(steps=6, batch=8, seed=SEED, log_every=1000, eval_every=10**9,
                           eval_samples=256)
    straight, metrics = train(config, options)
    state = tmp_path / "m.pt.state"
    _, stopped = train(config, options, state=state, until=4)
    assert stopped is None
    saved = load_state(state)
    assert saved["step"] == 4 and saved["processes"] == 1
    resumed, resumed_metrics = train(config, options, state=state, resume=saved)
    assert resumed_metrics["resumed_at"] == 4
    assert load_state(state)["step"] == 6
    for name, tensor in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), (name, SEED)
    assert resumed_metrics["heldout_bits_per_byte"] == metrics["heldout_bits_per_byte"]


def test_resume_refuses_a_missing_state_in_one_line(tmp_path):
    proc = run_train("--out", tmp_path / "m.pt", *TINY, "--resume")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "no training state" in lines[0] and "--save-every" in lines[0], lines[0]


def test_resume_refuses_other_flags_and_nothing_is_overwritten(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert train_main(["--out", str(out), *TINY, "--until", "2"]) == 0
    assert "--resume" in capsys.readouterr().out
    assert not out.exists() and state_path(out).is_file()
    kept = state_path(out).read_bytes()
    for flags, named in ((["--hidden", "8"], "--hidden"), (["--lr", "0.01"], "--lr"),
                         (["--neuron", "spikelm"], "--neuron"), (["--steps", "7"], "--steps"),
                         (["--arch", "transformer"], "--arch")):
        with pytest.raises(UsageError, match=f"trained with {named}"):
            train_main(["--out", str(out), *TINY, *flags, "--resume"])
    with pytest.raises(UsageError, match="--force"):  # a new run would overwrite the state
        train_main(["--out", str(out), *TINY, "--until", "3"])
    with pytest.raises(UsageError, match="at step 2 already"):
        train_main(["--out", str(out), *TINY, "--until", "2", "--resume"])
    assert state_path(out).read_bytes() == kept


@pytest.mark.slow
def test_two_processes_train_the_batch_of_one(tmp_path):
    """torchrun, 2 gloo processes: a valid checkpoint, the weights of one process up to float
    rounding, and the same weights, bit for bit, when the run stops and resumes."""
    one, two, parts = tmp_path / "one.pt", tmp_path / "two.pt", tmp_path / "parts.pt"
    proc = run_train("--out", two, *TINY, "--save-every", "3", processes=2)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("bits/byte held-out") == 1  # rank 0 alone reports and writes
    model, metrics = load_checkpoint(two, kind="spiking")
    assert metrics["processes"] == 2 and math.isfinite(metrics["heldout_bits_per_byte"])
    assert load_state(state_path(two))["processes"] == 2
    proc = run_train("--out", one, *TINY)
    assert proc.returncode == 0, proc.stderr
    a, b = weights(one), weights(two)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=0, atol=1e-6), (name, SEED)
    proc = run_train("--out", parts, *TINY, "--until", "4", processes=2)
    assert proc.returncode == 0, proc.stderr
    proc = run_train("--out", parts, *TINY, "--resume", processes=2)
    assert proc.returncode == 0, proc.stderr
    c = weights(parts)
    for name in b:
        assert torch.equal(c[name], b[name]), (name, SEED)
