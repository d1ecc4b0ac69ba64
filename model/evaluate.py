"""Bits per byte of a spiking checkpoint (its integer model) and of its float twin.

``python -m model.evaluate --ckpt PATH [--text FILE] [--float-ckpt PATH] [--samples N]
[--seed S]`` prints::

    spiking: X.XXX bits/byte
    float twin: Y.YYY bits/byte
    spiking before integer rounding: Z.ZZZ bits/byte
    firing rates: embed 0.xxx, layer1 0.xxx, ...

The spiking figure uses the integer model's logits times ``logit_scale`` (the contract's
datapath); the "before integer rounding" line is the float forward pass of the same
checkpoint, so the difference is what rounding ``B`` and ``R`` costs. The twin is
``<stem>-float.pt`` beside the checkpoint unless ``--float-ckpt`` names one. Without ``--text``
the figures are on ``--samples`` seeded held-out positions (default 32768); with it on
``--samples`` positions of that file (all of them if the file is shorter). A model with
attention reads streams (:func:`model.data.heldout_streams`): by default every byte of the
held-out split (or of ``--text``), the same bytes the compressors of ``bench.compressors``
are measured on, at a cost linear in the split; ``--samples N`` scores about N of them.

An encoder (``--arch encoder``: which standard-library package a snippet comes from,
:mod:`model.tasks`) is scored on ``--samples`` seeded held-out snippets (default 2048)::

    spiking accuracy: X.XXX
    float twin accuracy: Y.YYY
    spiking before integer rounding accuracy: Z.ZZZ
    majority class (tkinter) accuracy: W.WWW
"""

from __future__ import annotations

import logging
from pathlib import Path

from contract.ranges import analyse, signed_bits
from contract.zoo import IntModel, IntTransformer

from . import tasks
from .checkpoint import load_checkpoint
from .cli import ArgumentParser, non_negative_int, positive_int, run
from .errors import CheckpointError, UsageError
from .lift import int_model_of
from .metrics import (
    FINAL_EVAL_SAMPLES,
    FINAL_EVAL_SNIPPETS,
    accuracy_float,
    accuracy_int,
    evaluate_float,
    evaluate_int,
    heldout_inputs,
)

__all__ = ["DEFAULT_SAMPLES", "main", "twin_path"]

logger = logging.getLogger(__name__)

DEFAULT_SAMPLES = FINAL_EVAL_SAMPLES
DEFAULT_SNIPPETS = FINAL_EVAL_SNIPPETS


def twin_path(ckpt: Path) -> Path:
    """Where the float twin of ``ckpt`` is looked for: ``<stem>-float.pt`` beside it."""
    return ckpt.with_name(f"{ckpt.stem}-float.pt")


def _text(args) -> bytes:
    try:
        text = args.text.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read --text {args.text}: {exc.strerror}") from exc
    if not text:
        raise UsageError(f"--text {args.text} is empty; give a file with some text")
    return text


def _samples(args, model):
    """What the model is scored on: :func:`model.metrics.heldout_inputs` of the flags."""
    text = None if args.text is None else _text(args)
    try:
        return heldout_inputs(model, args.samples, args.seed, text)
    except ValueError as exc:
        raise UsageError(f"{exc}; lower --samples") from exc


def _print_transformer(int_model: IntTransformer, spiking: dict) -> None:
    names = [f"b{i}.{p}" for i in range(len(int_model.blocks))
             for p in ("norm1", "q", "k", "v", "attn", "norm2", "ff1")] + ["norm_f"]
    rates = ", ".join(f"{n} {r:.3f}" for n, r in zip(names, spiking["rates"], strict=True))
    print(f"firing rates: {rates}")
    ranges = analyse(int_model.graph())
    shifts = ", ".join(f"b{i} out<<{b.out.shift} ff2<<{b.ff2.shift}"
                       for i, b in enumerate(int_model.blocks))
    print(f"integer model: {shifts}, residual {signed_bits(ranges.residual)} bits, membrane"
          f" {signed_bits(ranges.membrane)} bits, logit {signed_bits(ranges.logit)} bits,"
          f" logit_scale={int_model.logit_scale:.6g}, samples={spiking['samples']}")


def _evaluate_encoder(args, model, twin) -> int:
    if args.text is not None:
        raise UsageError("an encoder is scored on held-out snippets of its package task; drop"
                         " --text")
    if twin is not None and twin.classes != model.classes:
        raise CheckpointError(f"the float twin has {twin.classes} classes but the spiking model"
                              f" {model.classes}; pass the matching --float-ckpt")
    inputs, labels, _ = _samples(args, model)
    graph = model.to_graph()
    spiking = accuracy_int(graph, inputs, labels)
    print(f"spiking accuracy: {spiking['accuracy']:.3f}")
    if twin is not None:
        print(f"float twin accuracy: {accuracy_float(twin, inputs, labels)['accuracy']:.3f}")
    else:
        print(f"float twin accuracy: none (no {twin_path(args.ckpt)}; pass --float-ckpt)")
    before = accuracy_float(model, inputs, labels)
    print(f"spiking before integer rounding accuracy: {before['accuracy']:.3f}")
    majority, share = tasks.majority_baseline(labels)
    print(f"majority class ({tasks.PACKAGES[majority]}) accuracy: {share:.3f}")
    rates = ", ".join(f"{n} {r:.3f}" for n, r in zip(graph.population_names, spiking["rates"],
                                                       strict=True))
    print(f"firing rates: {rates}")
    ranges = analyse(graph)
    print(f"integer model: {len(graph.ops)} ops, {model.classes} classes, snippets of"
          f" {model.context} bytes, membrane {signed_bits(ranges.membrane)} bits, logit"
          f" {signed_bits(ranges.logit)} bits, samples={spiking['samples']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m model.evaluate``."""
    parser = ArgumentParser(prog="python -m model.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, type=Path, help="spiking checkpoint (.pt)")
    parser.add_argument("--float-ckpt", type=Path, default=None,
                        help="float twin checkpoint (default: <stem>-float.pt beside --ckpt)")
    parser.add_argument("--text", type=Path, default=None,
                        help="evaluate on this file instead of the held-out split")
    parser.add_argument("--samples", type=positive_int, default=None,
                        help=f"held-out positions (default {DEFAULT_SAMPLES}; a model with"
                             " attention: every byte; an encoder: snippets, default"
                             f" {DEFAULT_SNIPPETS})")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    args = parser.parse_args(argv)

    model, _ = load_checkpoint(args.ckpt, kind="spiking")
    twin_file = args.float_ckpt or twin_path(args.ckpt)
    twin = None
    if args.float_ckpt is not None or twin_file.exists():
        twin, _ = load_checkpoint(twin_file, kind="float")
        if twin.context != model.context:
            raise CheckpointError(
                f"float twin {twin_file} has context {twin.context} but the spiking"
                f" model has {model.context}; pass the matching --float-ckpt"
            )
    if model.classes is not None:
        return _evaluate_encoder(args, model, twin)
    inputs, targets, scored = _samples(args, model)
    graph = model.to_graph()
    spiking = evaluate_int(graph, inputs, targets, **scored)
    before = evaluate_float(model, inputs, targets, **scored)
    print(f"spiking: {spiking['bits_per_byte']:.3f} bits/byte")
    if twin is not None:
        twin_bits = evaluate_float(twin, inputs, targets, **scored)["bits_per_byte"]
        print(f"float twin: {twin_bits:.3f} bits/byte")
    else:
        print(f"float twin: none (no {twin_file}; pass --float-ckpt)")
    print(f"spiking before integer rounding: {before['bits_per_byte']:.3f} bits/byte")
    int_model = int_model_of(graph)
    if isinstance(int_model, IntTransformer):
        _print_transformer(int_model, spiking)
        return 0
    if not isinstance(int_model, IntModel):
        rates = ", ".join(f"{n} {r:.3f}" for n, r in zip(graph.population_names,
                                                           spiking["rates"], strict=True))
        print(f"firing rates: {rates}")
        print(f"integer model: {len(graph.ops)} ops, logit_scale={graph.logit_scale:.6g},"
              f" samples={spiking['samples']}")
        return 0
    names = ["embed"] + [f"layer{i + 1}" for i in range(len(int_model.layers))]
    rates = ", ".join(f"{n} {r:.3f}" for n, r in zip(names, spiking["rates"], strict=True))
    print(f"firing rates: {rates}")
    layers = ", ".join(f"layer{i + 1} R={layer.reset} theta={layer.threshold}"
                       for i, layer in enumerate(int_model.layers))
    print(f"integer model: {layers}, logit_scale={int_model.logit_scale:.6g},"
          f" samples={spiking['samples']}")
    return 0


if __name__ == "__main__":
    run("python -m model.evaluate", main)
