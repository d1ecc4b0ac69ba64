"""Bits per byte of the integer model (via ``logit_scale``) and of a float twin; an
encoder's accuracy."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from contract.graph import Graph, run

from . import data, tasks

__all__ = ["FINAL_EVAL_SAMPLES", "FINAL_EVAL_SNIPPETS", "EvalResult", "accuracy_float",
           "accuracy_int", "evaluate_float", "evaluate_int", "heldout", "heldout_inputs"]

#: held-out positions a window model (no attention) is scored on by default
FINAL_EVAL_SAMPLES = 32768
#: held-out snippets an encoder is scored on by default

FINAL_EVAL_SNIPPETS = 2048

_CHUNK = 4096
#: stream bytes a chunk of the evaluation holds (streams of more than 16 bytes are evaluated
#: fewer at a time, so that memory stays flat in the window)
_CHUNK_BYTES = _CHUNK * 16


def _chunk(inputs: np.ndarray, limit: int = _CHUNK) -> int:
    """Streams per chunk: ``limit``, fewer for long streams."""
    return max(1, min(limit, _CHUNK_BYTES // max(1, inputs.shape[-1])))


class EvalResult(dict):
    """``{"bits_per_byte": float, "rates": [float, ...], "samples": int}``."""


def _bits(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Summed cross-entropy in bits of float64 ``logits`` against ``targets``."""
    return float(F.cross_entropy(logits, targets, reduction="sum")) / math.log(2)


def _stream_mask(scored, inputs):
    if scored is None:
        return None
    scored = np.asarray(scored, dtype=bool)
    if scored.shape != inputs.shape:
        raise ValueError(f"scored {scored.shape} must have the shape of the streams"
                         f" {inputs.shape}")
    return scored


@torch.no_grad()
def evaluate_int(int_model, inputs: np.ndarray, targets: np.ndarray,
                 scored: np.ndarray | None = None) -> EvalResult:
    """Bits/byte of the integer logits times ``logit_scale``, and the firing rates.

    ``int_model`` is a :class:`contract.graph.Graph` (or anything with ``graph()``: an
    ``IntModel``, an ``IntTransformer``), run by ``contract.graph.run`` on streams ``inputs``;
    the logits are those of each stream's last position. Rates are the fraction of non-zero
    spikes of every spiking population in graph order (the embedding first): at the last
    position for a graph without attention, over every position for one with it.

    With ``scored`` (bool, the shape of ``inputs``; :func:`model.data.heldout_streams`) every
    position is a prediction: ``targets[N, L]`` holds the byte after each, and the positions
    where ``scored`` is set are the ones counted, in bits and in the rates.
    """
    graph = int_model if isinstance(int_model, Graph) else int_model.graph()
    scored = _stream_mask(scored, inputs)
    windows = graph.causal_window is None and scored is None
    total, nonzero, sizes = 0.0, None, None
    chunk = _chunk(inputs)
    for start in range(0, inputs.shape[0], chunk):
        part = slice(start, start + chunk)
        trace = run(graph, inputs[part], last_only=windows)
        if scored is None:
            logits = torch.from_numpy(trace.logits[:, -1]).double() * graph.logit_scale
            total += _bits(logits, torch.from_numpy(targets[part]).long())
            spikes = trace.spikes
        else:
            mask = scored[part]
            logits = torch.from_numpy(trace.logits[mask]).double() * graph.logit_scale
            total += _bits(logits, torch.from_numpy(targets[part][mask]).long())
            spikes = [s.transpose(0, 2, 1, 3)[mask] for s in trace.spikes]
        counts = [int(np.count_nonzero(s)) for s in spikes]
        nonzero = counts if nonzero is None else [a + b for a, b in zip(nonzero, counts,
                                                                           strict=True)]
        chunk_sizes = [int(s.size) for s in spikes]
        sizes = chunk_sizes if sizes is None else [a + b for a, b in zip(sizes, chunk_sizes,
                                                                          strict=True)]
    n = max(1, inputs.shape[0] if scored is None else int(scored.sum()))
    rates = [c / max(1, s) for c, s in zip(nonzero or [], sizes or [], strict=True)]
    return EvalResult(bits_per_byte=total / n, rates=rates, samples=n)


@torch.no_grad()
def evaluate_float(model, inputs: np.ndarray, targets: np.ndarray,
                   scored: np.ndarray | None = None) -> EvalResult:
    """Bits/byte of the float forward pass (the twin, or a spiking model before rounding);
    ``scored`` as in :func:`evaluate_int` (the rates are then those of whole streams)."""
    model.eval()
    scored = _stream_mask(scored, inputs)
    total, rate_sums, chunks = 0.0, None, 0
    chunk = _chunk(inputs)
    for start in range(0, inputs.shape[0], chunk):
        part = slice(start, start + chunk)
        ids = torch.from_numpy(inputs[part]).long()
        if scored is None:
            logits, rates = model(ids)
            total += _bits(logits.double(), torch.from_numpy(targets[part]).long())
        else:
            logits, rates = model.forward_all(ids)
            mask = torch.from_numpy(scored[part])
            total += _bits(logits[mask].double(), torch.from_numpy(targets[part]).long()[mask])
        values = [float(r) * ids.shape[0] for r in rates]
        rate_sums = values if rate_sums is None else [a + b for a, b in zip(rate_sums, values,
                                                                             strict=True)]
        chunks += ids.shape[0]
    n = max(1, inputs.shape[0] if scored is None else int(scored.sum()))
    rates = [r / max(1, chunks) for r in rate_sums or []]
    return EvalResult(bits_per_byte=total / n, rates=rates, samples=n)


def _rates(traces_spikes) -> tuple[list[int], list[int]]:
    return ([int(np.count_nonzero(s)) for s in traces_spikes],
            [int(s.size) for s in traces_spikes])


def _accuracy(predicted: np.ndarray, labels: np.ndarray, rates: list[float]) -> EvalResult:
    from .tasks import majority_baseline

    labels = np.asarray(labels)
    return EvalResult(accuracy=float((predicted == labels).mean()) if labels.size else 0.0,
                      majority=majority_baseline(labels)[1], rates=rates,
                      samples=int(labels.size))


@torch.no_grad()
def accuracy_int(graph: Graph, inputs: np.ndarray, labels: np.ndarray) -> EvalResult:
    """An encoder's accuracy: the arg-max of the integer class logits of each sequence
    ``inputs[N, L]`` against ``labels[N]``, the majority-class baseline of those labels, and
    the firing rates of every spiking population over every position."""
    predicted, nonzero, sizes = [], None, None
    chunk = _chunk(inputs, _CHUNK // 16)
    for start in range(0, inputs.shape[0], chunk):
        trace = run(graph, inputs[start : start + chunk])
        predicted.append(np.argmax(trace.logits[:, -1], axis=-1))
        counts, populations = _rates(trace.spikes)
        nonzero = counts if nonzero is None else [a + b for a, b in zip(nonzero, counts,
                                                                           strict=True)]
        sizes = populations if sizes is None else [a + b for a, b in zip(sizes, populations,
                                                                          strict=True)]
    rates = [c / max(1, s) for c, s in zip(nonzero or [], sizes or [], strict=True)]
    return _accuracy(np.concatenate(predicted), labels, rates)


@torch.no_grad()
def accuracy_float(model, inputs: np.ndarray, labels: np.ndarray) -> EvalResult:
    """An encoder's accuracy by its float forward pass (a twin, or before integer rounding)."""
    model.eval()
    predicted, rate_sums = [], None
    chunk = _chunk(inputs, _CHUNK // 16)
    for start in range(0, inputs.shape[0], chunk):
        ids = torch.from_numpy(inputs[start : start + chunk]).long()
        logits, rates = model(ids)
        predicted.append(logits.argmax(dim=-1).numpy())
        values = [float(r) * ids.shape[0] for r in rates]
        rate_sums = values if rate_sums is None else [a + b for a, b in zip(rate_sums, values,
                                                                             strict=True)]
    rates = [r / max(1, inputs.shape[0]) for r in rate_sums or []]
    return _accuracy(np.concatenate(predicted), labels, rates)


def heldout_inputs(model, samples: int | None = None, seed: int = 0,
                   text: bytes | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """What :func:`heldout` scores ``model`` on: ``(inputs, targets, keywords)``, the keywords
    those of :func:`evaluate_int` / :func:`evaluate_float` (``scored`` for streams).

    ``samples=None``: a model with attention reads every byte of the held-out split (or of
    ``text``) by streams (:func:`model.data.heldout_streams`), a window model
    :data:`FINAL_EVAL_SAMPLES` seeded positions, an encoder :data:`FINAL_EVAL_SNIPPETS`
    held-out snippets; a number takes about that many positions (snippets) instead.
    """
    if model.classes is not None:
        inputs, labels = tasks.heldout_snippets(samples or FINAL_EVAL_SNIPPETS, model.context,
                                                seed=seed)
        return inputs, labels, {}
    if model.streams:
        chunks = None if samples is None else -(-samples // data.STREAM_SPAN)
        if text is None:
            streams = data.heldout_streams(model.context, model.stream_warmup,
                                           data.STREAM_SPAN, chunks, seed=seed)
        else:
            streams = data.streams_from_bytes(text, model.context, model.stream_warmup,
                                              data.STREAM_SPAN, chunks, seed=seed)
        inputs, targets, scored = streams
        return inputs, targets, {"scored": scored}
    samples = samples or FINAL_EVAL_SAMPLES
    if text is None:
        return (*data.heldout_samples(samples, model.context, seed=seed), {})
    return (*data.samples_from_bytes(text, samples, model.context, seed=seed), {})


def heldout(model, samples: int | None = None, graph: Graph | None = None) -> EvalResult:
    """The held-out figure of ``model`` (a :class:`model.net.SpikingNet` on the CPU): bits per
    byte (an encoder: accuracy) of its integer model, or of its float forward where it has
    none (a twin), on :func:`heldout_inputs` (``samples``: see there). ``graph``: score this
    integer graph of the model (a compiled one, thresholds scaled, say) instead of
    ``model.to_graph()``.
    """
    inputs, targets, scored = heldout_inputs(model, samples)
    if model.classes is not None:
        score_float, score_int = accuracy_float, accuracy_int
    else:
        score_float, score_int = evaluate_float, evaluate_int
    if graph is not None or model.integer_exportable:
        return score_int(graph or model.to_graph(), inputs, targets, **scored)
    return score_float(model, inputs, targets, **scored)
