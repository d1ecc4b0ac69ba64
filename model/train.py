"""Train a model (a zoo architecture or your own composition of blocks) on the CPU or a GPU.

``python -m model.train --out PATH [--arch mlp|transformer] [--steps N] [--seed S]
[--hidden H] [--layers N] [--timesteps T] [--weight-bits B] [--context K] [--embed E]
[--float] [--device cpu|cuda] [--force] [--save-every N] [--until STEP] [--resume]`` trains
a zoo model (:mod:`model.zoo`); from Python, :func:`train_model` trains any
:class:`model.net.SpikingNet`::

    metrics = train_model(net, steps=300, seed=0)

Adam with a linear warm-up and cosine decay, cross-entropy plus the firing-rate regulariser.
A model without attention trains on batches of random ``(context, next byte)`` pairs, a model
with attention on byte streams, scored at every position, and an encoder (``--arch
encoder``, a model whose readout has classes) on snippets of the package task
(:mod:`model.tasks`), one label per snippet. Everything random is seeded from ``--seed``. At
the end the held-out bits/byte (an encoder: the held-out accuracy) are measured, the integer
model's for a spiking model, and returned as the metrics the checkpoint stores.

``torchrun --nproc_per_node N -m model.train ...`` trains data-parallel (:mod:`model.parallel`:
every rank a share of the same global ``--batch``); ``--save-every N`` and ``--until STEP``
keep the training state in ``<out>.state`` and ``--resume`` continues from it
(:mod:`model.resume`).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import data, tasks
from .checkpoint import save_checkpoint
from .cli import ArgumentParser, non_negative_int, positive_int, run
from .errors import CheckpointError, UsageError
from .metrics import FINAL_EVAL_SAMPLES, FINAL_EVAL_SNIPPETS, heldout
from .net import SpikingNet
from .parallel import Ranks, process_group, unused_parameters
from .resume import (
    check_same_run,
    load_state,
    restore_rng,
    rng_state,
    run_options,
    save_state,
    state_path,
)
from .spike import AMPLITUDES, FIRINGS, NEURONS, SPIKES, Neuron
from .zoo import ZOO, EncoderConfig, LMConfig, TransformerConfig, build_model

__all__ = ["DEFAULT_STEPS", "TrainOptions", "build_model", "main", "recipe", "train",
           "train_model"]

logger = logging.getLogger(__name__)

DEFAULT_STEPS = 20000
DEFAULT_BATCH = 256
DEFAULT_LR = 3e-3
DEFAULT_SEGMENT_WINDOWS = 4
PROGRESS_EVAL_SAMPLES = 4096


class TrainOptions:
    """Optimisation settings that are not part of the architecture.

    ``eval_samples`` is what the final held-out figure is measured on: ``None`` (the default)
    is the whole held-out split for a model with attention (streams,
    :func:`model.data.heldout_streams`), 32768 seeded positions for a window model and 2048
    snippets for an encoder; a number takes that many positions (snippets) instead.
    """

    def __init__(self, steps: int = DEFAULT_STEPS, batch: int = DEFAULT_BATCH,
                 lr: float = DEFAULT_LR, seed: int = 0, log_every: int = 500,
                 eval_every: int = 2500, eval_samples: int | None = None,
                 segment: int | None = None):
        self.steps = steps
        self.segment = segment
        self.batch = batch
        self.lr = lr
        self.seed = seed
        self.log_every = log_every
        self.eval_every = eval_every
        self.eval_samples = eval_samples

    def as_dict(self) -> dict:
        """Plain-Python form for the checkpoint's metrics."""
        return dict(vars(self))


def _seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def _lr_factor(step: int, steps: int) -> float:
    warmup = min(500, max(1, steps // 20))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))


def segment_length(model: SpikingNet, options: TrainOptions) -> int:
    """Bytes per training stream of a model with attention: ``--segment``, by default 4
    windows."""
    return options.segment or DEFAULT_SEGMENT_WINDOWS * model.context


def _batch(model: SpikingNet, rng, corpus, options: TrainOptions, device=None):
    """A batch as tensors ``(ids, targets, valid)`` on ``device``; ``valid`` is None for
    windows and for an encoder's snippets (``targets``: one label per snippet)."""
    if model.classes is not None:
        ids, labels = tasks.sample_snippets(rng, options.batch, model.context)
        arrays = (ids, labels, None)
    elif model.streams:
        length = segment_length(model, options)
        arrays = data.sample_segments(rng, corpus, options.batch, length)
    else:
        arrays = (*data.sample_batch(rng, corpus, options.batch), None)
    return tuple(None if a is None else torch.from_numpy(a).to(device) for a in arrays)


def _loss_terms(model, x: torch.Tensor, y: torch.Tensor, valid: torch.Tensor | None,
                targets: torch.Tensor | None = None):
    """Cross-entropy and rates; streams are scored on every real target. ``targets``, when
    given, divides the summed cross-entropy of streams instead of the real targets of ``x``
    (data-parallel: the batch's real targets over the number of ranks)."""
    if model.streams and model.classes is None:
        logits, rates = model.forward_all(x)
        flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                               reduction="none")
        mask = valid.reshape(-1).to(flat.dtype)
        if targets is None:
            targets = mask.sum().clamp(min=1.0)
        return (flat * mask).sum() / targets, rates
    logits, rates = model(x)
    return F.cross_entropy(logits, y), rates


class _Objective(torch.nn.Module):
    """The training loss of ``net`` as a module's forward, the call that
    ``DistributedDataParallel`` synchronises the gradients of."""

    def __init__(self, net: SpikingNet):
        super().__init__()
        self.net = net

    def forward(self, x, y, valid, targets=None):
        return _loss_terms(self.net, x, y, valid, targets)


def _step_loss(objective, model: SpikingNet, ranks: Ranks, batch):
    """``(loss to back-propagate, the batch's loss, its cross-entropy, its rates)`` of a step.

    Data-parallel, each rank scores its share; the cross-entropy and the rates are then
    averaged over the ranks, and the rate penalty is that of the averaged rates, with the
    gradient of this rank's share (``DistributedDataParallel`` averages the shares'
    gradients), so the step is the single-process step on the whole batch.
    """
    x, y, valid = batch
    if not ranks.parallel:
        ce, rates = objective(x, y, valid)
        loss = ce + model.rate_penalty(rates)
        return loss, loss, ce, rates
    targets = None
    if valid is not None and model.classes is None:
        targets = valid.to(torch.float32).sum().clamp(min=1.0) / ranks.world
    ce, rates = objective(ranks.shard(x), ranks.shard(y), ranks.shard(valid), targets)
    mean = ranks.average(torch.stack([ce.detach(), *(r.detach() for r in rates)]))
    rates = [m + (r - r.detach()) for m, r in zip(mean[1:], rates, strict=True)]
    penalty = model.rate_penalty(rates)
    return ce + penalty, mean[0] + penalty.detach(), mean[0], rates


def _heldout(model: SpikingNet, samples: int | None) -> dict:
    """:func:`model.metrics.heldout` on the CPU (a copy of a model that trains on another
    device), leaving ``model`` in train mode."""
    if next(model.parameters()).device.type != "cpu":
        result = heldout(copy.deepcopy(model).cpu(), samples)
    else:
        result = heldout(model, samples)
    model.train()
    return dict(result)


def train(config, options: TrainOptions, **run) -> tuple[SpikingNet, dict | None]:
    """Train a model of ``config`` (a zoo configuration or a :class:`~model.net.NetConfig`)
    from scratch, its initial weights seeded by ``options.seed``; returns it (eval mode) and
    its metrics (``None`` where :func:`train_model` returns none). ``run``: the keyword
    arguments of :func:`train_model` (``state``, ``save_every``, ``until``, ``resume``)."""
    _seed_everything(options.seed)
    model = build_model(config)
    return model, train_model(model, options, **run)


def train_model(model: SpikingNet, options: TrainOptions | None = None, *,
                state: Path | None = None, save_every: int = 0, until: int | None = None,
                resume: dict | None = None, device: str | torch.device = "cpu",
                **settings) -> dict | None:
    """Train ``model`` in place (calibration, then ``steps`` Adam steps); returns the metrics
    (held-out bits/byte, firing rates, ...) and leaves the model in eval mode.

    ``settings`` are those of :class:`TrainOptions` (``steps``, ``batch``, ``lr``, ``seed``,
    ``log_every``, ``eval_every``, ``eval_samples``, ``segment``), or pass ``options``. The
    seed seeds the batches and Python's, NumPy's and torch's generators; the initial weights
    are those the model was built with (seed torch before building it to reproduce them).

    A run in parts: with ``state`` (a path, :mod:`model.resume`) the training state is written
    there every ``save_every`` steps (0: never) and when the run stops; ``until`` stops it
    after that step (the schedule still spans ``steps``), and ``resume`` (a state from
    :func:`model.resume.load_state`) continues one where it stopped, to the same weights as one
    run straight through. In a started process group (``torchrun``, :mod:`model.parallel`)
    every rank trains its share of each batch; only rank 0 logs, evaluates and writes the
    state. Returns ``None`` on the other ranks and when the run stops before ``steps``.

    ``device`` (``"cuda"``, say) is where the steps run; the batches are drawn on the CPU as
    always, so a run gives the same batches on every device, and the model is back on the CPU
    when it returns.
    """
    if options is None:
        options = TrainOptions(**settings)
    elif settings:
        raise TypeError("pass options or keyword settings, not both")
    if not isinstance(model, SpikingNet):
        raise UsageError(f"train_model trains a model.net.SpikingNet, not a"
                         f" {type(model).__name__}")
    last = options.steps if until is None else min(until, options.steps)
    ranks = Ranks.current()
    ranks.check_batch(options.batch)
    rng = _seed_everything(options.seed)
    corpus = None if model.classes is not None else data.load_corpus(model.context)
    device = torch.device(device)
    model.to(device)
    first_x, _, _ = _batch(model, rng, corpus, options, device)
    if resume is None:
        model.calibrate(first_x)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(step, options.steps)
    )
    done, earlier_seconds = 0, 0.0
    if resume is not None:
        check_same_run(resume, model.config.to_dict(), options, state or "the state")
        done, earlier_seconds = int(resume["step"]), float(resume["train_seconds"])
        if done >= last:
            raise UsageError(f"--resume: the run is at step {done} already, nothing to do up to"
                             f" step {last}")
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        restore_rng(resume["rng"], rng)
        logger.info("resuming at step %d of %d", done, options.steps)
    objective = _Objective(model)
    if ranks.parallel:
        objective = ranks.wrap(objective, unused=bool(unused_parameters(model, first_x)))
    model.train()
    model.ranks = ranks if ranks.parallel else None
    start = time.monotonic()
    window_ce, window_rates, window_n = 0.0, None, 0
    try:
        for step in range(done + 1, last + 1):
            loss, total, ce, rates = _step_loss(objective, model, ranks,
                                                _batch(model, rng, corpus, options, device))
            if not torch.isfinite(total):
                raise UsageError(
                    f"training diverged at step {step} (loss {total.item()}); lower the"
                    " learning rate or change the seed"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            window_ce += ce.item()
            values = [r.item() for r in rates]
            window_rates = values if window_rates is None else [
                a + b for a, b in zip(window_rates, values, strict=True)
            ]
            window_n += 1
            if step % options.log_every == 0 or step == options.steps:
                rate_text = " ".join(f"{r / window_n:.3f}" for r in window_rates or [])
                logger.info(
                    "step %d/%d loss %.4f train %.3f %s rates [%s] lr %.2e %.0fs",
                    step, options.steps, window_ce / window_n,
                    window_ce / window_n / math.log(2),
                    "bits/byte" if model.classes is None else "bits/snippet", rate_text,
                    scheduler.get_last_lr()[0], time.monotonic() - start,
                )
                window_ce, window_rates, window_n = 0.0, None, 0
            if ranks.main and step % options.eval_every == 0 and step != options.steps:
                result = _heldout(model, PROGRESS_EVAL_SAMPLES)
                logger.info(
                    "step %d held-out %s (%s) rates [%s]", step, _figure(result),
                    "integer" if model.integer_exportable else "float",
                    " ".join(f"{r:.3f}" for r in result["rates"]),
                )
            if state is not None and ranks.main and (
                    step == last or (save_every and step % save_every == 0)):
                save_state(state, {
                    "config": model.config.to_dict(), "options": run_options(options),
                    "step": step, "train_seconds": earlier_seconds + time.monotonic() - start,
                    "processes": ranks.world, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_state(rng),
                })
                logger.info("step %d: training state saved to %s", step, state)
    finally:
        model.ranks = None
    wall = earlier_seconds + time.monotonic() - start
    model.cpu()
    model.eval()
    if last < options.steps or not ranks.main:
        return None
    result = _heldout(model, options.eval_samples)
    model.eval()
    metrics = {
        **({"heldout_accuracy": result["accuracy"], "majority_baseline": result["majority"]}
           if model.classes is not None else {"heldout_bits_per_byte": result["bits_per_byte"]}),
        "heldout_samples": result["samples"],
        "firing_rates": result["rates"],
        "train_seconds": wall,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "options": options.as_dict(),
    }
    if os.environ.get(data.STDLIB_ENV):
        metrics["corpus"] = str(data.stdlib_root())
    if device.type != "cpu":
        metrics["device"] = (torch.cuda.get_device_name(device) if device.type == "cuda"
                             else device.type)
    if ranks.parallel:
        metrics["processes"] = ranks.world
    if resume is not None:
        metrics["resumed_at"] = done
    return metrics


def _figure(result: dict) -> str:
    if "accuracy" in result:
        return f"accuracy {result['accuracy']:.3f}"
    return f"{result['bits_per_byte']:.3f} bits/byte"


def build_parser() -> ArgumentParser:
    """The command-line interface of ``python -m model.train``."""
    defaults = LMConfig()
    xdefaults = TransformerConfig()
    parser = ArgumentParser(prog="python -m model.train", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="checkpoint path to write")
    parser.add_argument("--arch", choices=tuple(ZOO), default="mlp",
                        help="zoo architecture: spiking MLP (default), spiking transformer, or"
                             " bidirectional spiking encoder (classifies which stdlib package a"
                             " snippet comes from, model.tasks)")
    parser.add_argument("--steps", type=positive_int, default=DEFAULT_STEPS)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--hidden", type=positive_int, default=defaults.hidden[0],
                        help="width of every hidden layer")
    parser.add_argument("--layers", type=positive_int, default=len(defaults.hidden),
                        help="number of hidden layers")
    parser.add_argument("--timesteps", type=positive_int, default=defaults.timesteps)
    parser.add_argument("--weight-bits", type=int, default=defaults.weight_bits,
                        help="weight bits: 8, 4 or 2 (ternary)")
    parser.add_argument("--context", type=positive_int, default=None,
                        help=f"context bytes (default {defaults.context}; transformer"
                             f" {xdefaults.context}; encoder: snippet bytes,"
                             f" {EncoderConfig().context})")
    parser.add_argument("--embed", type=positive_int, default=defaults.embed)
    parser.add_argument("--rate-target", type=float, default=None,
                        help="target fraction of non-zero spikes per layer (default"
                             f" {defaults.rate_target}; transformer {xdefaults.rate_target})")
    parser.add_argument("--rate-lambda", type=float, default=None,
                        help="weight of the firing-rate regulariser, 0 disables it (default"
                             f" {defaults.rate_lambda}; transformer {xdefaults.rate_lambda})")
    parser.add_argument("--d-model", type=positive_int, default=xdefaults.d_model,
                        help="transformer: residual width")
    parser.add_argument("--heads", type=positive_int, default=xdefaults.heads,
                        help="transformer: attention heads")
    parser.add_argument("--ffn", type=positive_int, default=xdefaults.ffn,
                        help="transformer: feed-forward width")
    parser.add_argument("--blocks", type=positive_int, default=xdefaults.layers,
                        help="transformer: number of blocks")
    parser.add_argument("--norm", choices=("affine", "layernorm"), default=xdefaults.norm,
                        help="transformer: per-channel affine folded into thresholds, or"
                             " LayerNorm (float; no integer form)")
    parser.add_argument("--attention", choices=("relu", "softmax"), default=xdefaults.attention,
                        help="transformer: ReLU scores / position count, or softmax (float; no"
                             " integer form)")
    parser.add_argument("--batch", type=positive_int, default=None,
                        help=f"samples per step (default {DEFAULT_BATCH}; transformer: streams"
                             f" per step, default {DEFAULT_BATCH // DEFAULT_SEGMENT_WINDOWS})")
    parser.add_argument("--segment", type=positive_int, default=None,
                        help="transformer: bytes per training stream (default"
                             f" {DEFAULT_SEGMENT_WINDOWS} x --context)")
    parser.add_argument("--neuron", choices=NEURONS, default="if",
                        help="SpikeForge's integrate-and-fire neuron (default) or SpikeLM's"
                             " (leaky, hard reset on +1; docs/neurons.md)")
    parser.add_argument("--amplitude", choices=AMPLITUDES, default=None,
                        help="one spike amplitude for all time steps or one per step (default:"
                             " shared for --neuron if, per-step for spikelm)")
    parser.add_argument("--firing", choices=FIRINGS, default=None,
                        help="learned amplitudes held by the rate regulariser, or amplitudes"
                             " calibrated to 2 mean|u| of each step's membrane (default:"
                             " regularizer for --neuron if, calibrated for spikelm)")
    parser.add_argument("--spikes", choices=SPIKES, default="ternary",
                        help="ternary {-1, 0, 1} (default) or binary {0, 1} spikes")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--float", dest="float_twin", action="store_true",
                        help="train the float twin (float activations, float weights)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--eval-samples", type=positive_int, default=None, metavar="N",
                        help="measure the final held-out figure on N seeded positions (an"
                             " encoder: snippets) instead of the default: the whole held-out"
                             f" split for a transformer, {FINAL_EVAL_SAMPLES} positions for an"
                             f" MLP, {FINAL_EVAL_SNIPPETS} snippets for an encoder")
    parser.add_argument("--device", default="cpu",
                        help="where the steps run: cpu (default) or cuda (cuda:N); the"
                             " held-out measurement and the checkpoint are on the CPU")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing --out (and its training state)")
    parser.add_argument("--save-every", type=non_negative_int, default=0, metavar="N",
                        help="write the training state to <out>.state every N steps and at the"
                             " end, for --resume (default 0: only with --until or --resume)")
    parser.add_argument("--until", type=positive_int, default=None, metavar="STEP",
                        help="stop after this step, writing the training state (the schedule"
                             " still spans --steps); --resume continues the run")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run of --out from <out>.state (the same flags,"
                             " --steps included)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m model.train``."""
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.force:
        raise CheckpointError(f"{args.out} already exists; pass --force to overwrite it")
    if args.out.exists() and args.out.is_dir():
        raise UsageError(f"--out {args.out} is a directory; give a file path such as model.pt")
    config, options = recipe(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    batch = options.batch
    run = _run_in_parts(args, config, options)
    with process_group() as ranks:
        if not ranks.main:
            logging.getLogger().setLevel(logging.WARNING)
        ranks.check_batch(batch)
        logger.info("training %s model %s for %d steps (seed %d)",
                    "float" if config.float_twin else "spiking", config.to_dict(), args.steps,
                    args.seed)
        model, metrics = train(config, options, device=device, **run)
        if not ranks.main:
            return 0
        if metrics is None:
            print(f"stopped after step {args.until} of {args.steps}: the training state is in"
                  f" {run['state']}; continue with the same command and --resume")
            return 0
        save_checkpoint(args.out, model, metrics, force=args.force)
    figure = (f"accuracy {metrics['heldout_accuracy']:.3f} held-out (majority class"
              f" {metrics['majority_baseline']:.3f})" if "heldout_accuracy" in metrics
              else f"{metrics['heldout_bits_per_byte']:.3f} bits/byte held-out")
    print(f"{'float twin' if config.float_twin else 'spiking'}: {figure},"
          f" rates {' '.join(f'{r:.3f}' for r in metrics['firing_rates'])},"
          f" {metrics['train_seconds']:.0f}s -> {args.out}")
    return 0


def recipe(args) -> tuple:
    """The model configuration and the :class:`TrainOptions` that the parsed arguments of
    :func:`build_parser` name (``rtl_gen explore`` trains its training knobs through this);
    refuses a configuration that cannot build."""
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive number, not {args.lr}")
    neuron = Neuron(args.neuron, args.amplitude, args.firing, args.spikes).as_dict()
    if args.arch in ("transformer", "encoder"):
        kind = ZOO[args.arch]
        extra = {"classes": len(tasks.PACKAGES)} if args.arch == "encoder" else {}
        config = kind(
            context=args.context or kind().context, d_model=args.d_model,
            heads=args.heads, layers=args.blocks, ffn=args.ffn, timesteps=args.timesteps,
            weight_bits=args.weight_bits, float_twin=args.float_twin, norm=args.norm,
            attention=args.attention,
            rate_target=_given(args.rate_target, kind().rate_target),
            rate_lambda=_given(args.rate_lambda, kind().rate_lambda), **neuron, **extra,
        )
    else:
        config = _mlp_config(args, neuron)
    if args.arch != "transformer" and args.segment is not None:
        raise UsageError("--segment is for --arch transformer only")
    batch = args.batch or (DEFAULT_BATCH // DEFAULT_SEGMENT_WINDOWS
                           if args.arch in ("transformer", "encoder") else DEFAULT_BATCH)
    options = TrainOptions(steps=args.steps, batch=batch, lr=args.lr, seed=args.seed,
                           segment=args.segment, eval_samples=args.eval_samples)
    build_model(config)  # a configuration that cannot build is refused before anything runs
    return config, options


def _run_in_parts(args, config, options: TrainOptions) -> dict:
    """The keyword arguments of :func:`train_model` for ``--save-every``, ``--until`` and
    ``--resume``; refuses a state that is missing, of another run, or would be overwritten."""
    state = state_path(args.out)
    if args.until is not None and args.until > args.steps:
        raise UsageError(f"--until {args.until} is past --steps {args.steps}")
    if args.resume:
        resume = load_state(state)
        check_same_run(resume, config.to_dict(), options, state)
        if args.until is not None and args.until <= resume["step"]:
            raise UsageError(f"--until {args.until}: the run in {state} is at step"
                             f" {resume['step']} already")
        if resume["step"] >= args.steps:
            raise UsageError(f"--resume: the run in {state} has done all its {args.steps}"
                             " steps; nothing to resume")
        return {"state": state, "save_every": args.save_every, "until": args.until,
                "resume": resume}
    if not (args.save_every or args.until):
        return {}
    if state.exists() and not args.force:
        raise CheckpointError(f"{state} holds the training state of an earlier run; pass"
                              " --resume to continue it or --force to start again")
    return {"state": state, "save_every": args.save_every, "until": args.until}


def _mlp_config(args, neuron: dict) -> LMConfig:
    return LMConfig(
        context=args.context or LMConfig().context,
        embed=args.embed,
        hidden=(args.hidden,) * args.layers,
        timesteps=args.timesteps,
        weight_bits=args.weight_bits,
        float_twin=args.float_twin,
        rate_target=_given(args.rate_target, LMConfig().rate_target),
        rate_lambda=_given(args.rate_lambda, LMConfig().rate_lambda),
        **neuron,
    )


def _device(name: str) -> torch.device:
    """``--device``, refused where torch cannot run on it."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r} is not a device; give cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: this torch build sees no CUDA GPU; leave --device"
                         " out to train on the CPU")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name}: give cpu or cuda")
    return device


def _given(value, default):
    return default if value is None else value


if __name__ == "__main__":
    run("python -m model.train", main)
