"""Export a spiking checkpoint for rtl_gen: the ONNX integer model and real held-out inputs.

``python -m model.export --ckpt PATH --out DIR [--samples N] [--seed S]`` writes

* ``DIR/model.onnx``: ``contract.onnx_io.to_onnx`` of the checkpoint's integer graph
  (``SpikingNet.to_graph()``, any composition of blocks);
* ``DIR/heldout.npz``: ``input`` (int64 ``[N, k]``, held-out contexts) and ``target``
  (int64 ``[N]``, the byte that followed each), from :func:`model.data.heldout_samples`.
  For a graph with attention (a transformer) the samples are byte *streams*: ``input``
  and ``target`` are int64 ``[N, L]`` (``--stream-length``, default three windows), each
  stream read from an empty key/value window, so the logits of every position are checked.
  For an encoder (a graph that pools, :mod:`model.tasks`) ``input`` is int64 ``[N, L]``
  held-out snippets of ``L`` bytes (its window) and ``target`` int64 ``[N]`` their package.

``python -m model.export --heldout-only --context K --out DIR`` writes ``heldout.npz`` alone,
for ``rtl_gen build --onnx`` (an ONNX file comes with no text to check it on).

rtl_gen may not import ``model``, so it runs this as a subprocess. Both files are built in
memory first and renamed into place, so a failure leaves no partial output.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx

from contract.graph import Graph
from contract.onnx_io import to_onnx
from contract.zoo import IntModel, IntTransformer

from . import data, tasks
from .checkpoint import load_checkpoint
from .cli import ArgumentParser, non_negative_int, positive_int, run
from .errors import UsageError

__all__ = ["DEFAULT_SAMPLES", "export", "export_heldout", "export_heldout_streams", "main"]

logger = logging.getLogger(__name__)

DEFAULT_SAMPLES = 256
DEFAULT_STREAMS = 8
STREAM_WINDOWS = 3


def _write_atomic(path: Path, payload: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _heldout_npz(samples: int, context: int, seed: int) -> bytes:
    inputs, targets = data.heldout_samples(samples, context, seed=seed)
    buffer = io.BytesIO()
    np.savez(buffer, input=inputs.astype(np.int64), target=targets.astype(np.int64))
    return buffer.getvalue()


def _heldout_streams_npz(streams: int, length: int, context: int, seed: int) -> bytes:
    corpus = data.load_corpus(context)
    ids, targets, _ = data.sample_segments(np.random.default_rng(seed), corpus, streams, length,
                                           split="heldout")
    buffer = io.BytesIO()
    np.savez(buffer, input=ids.astype(np.int64), target=targets.astype(np.int64))
    return buffer.getvalue()


def _heldout_snippets_npz(samples: int, length: int, seed: int) -> bytes:
    inputs, labels = tasks.heldout_snippets(samples, length, seed=seed)
    buffer = io.BytesIO()
    np.savez(buffer, input=inputs, target=labels)
    return buffer.getvalue()


def export_heldout(out: Path, samples: int, context: int, seed: int = 0) -> Path:
    """Write ``heldout.npz`` (held-out contexts of ``context`` bytes) into ``out``."""
    payload = _heldout_npz(samples, context, seed)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "heldout.npz", payload)
    return out / "heldout.npz"


def export_heldout_streams(out: Path, streams: int, length: int, context: int,
                           seed: int = 0) -> Path:
    """Write ``heldout.npz`` (held-out byte streams for a transformer of window ``context``)."""
    payload = _heldout_streams_npz(streams, length, context, seed)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "heldout.npz", payload)
    return out / "heldout.npz"


def export(int_model: Graph | IntModel | IntTransformer, out: Path, samples: int, seed: int = 0,
           stream_length: int | None = None) -> tuple[Path, Path]:
    """Write ``model.onnx`` and ``heldout.npz`` of an integer graph (or of an ``IntModel`` or
    ``IntTransformer``) into ``out`` (for a graph with attention, ``samples`` streams of
    ``stream_length`` bytes)."""
    graph = int_model if isinstance(int_model, Graph) else int_model.graph()
    window = graph.causal_window
    if not graph.causal:  # an encoder: whole snippets of its window, one label each
        npz_bytes = _heldout_snippets_npz(samples, window or graph.context, seed)
    elif window is not None:  # attention carries state across positions: check whole streams
        length = stream_length or STREAM_WINDOWS * window
        npz_bytes = _heldout_streams_npz(samples, length, window, seed)
    else:
        npz_bytes = _heldout_npz(samples, graph.context, seed)
    onnx_bytes = to_onnx(graph).SerializeToString()
    out.mkdir(parents=True, exist_ok=True)
    onnx_path, npz_path = out / "model.onnx", out / "heldout.npz"
    _write_atomic(onnx_path, onnx_bytes)
    _write_atomic(npz_path, npz_bytes)
    onnx.load(str(onnx_path))  # read back: a truncated write would fail here, not in rtl_gen
    logger.info("wrote %s and %s (%d held-out samples, seed %d)", onnx_path, npz_path,
                samples, seed)
    return onnx_path, npz_path


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m model.export``."""
    parser = ArgumentParser(prog="python -m model.export", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, help="spiking checkpoint (.pt)")
    parser.add_argument("--heldout-only", action="store_true",
                        help="write heldout.npz only (needs --context, no --ckpt)")
    parser.add_argument("--context", type=positive_int, help="context bytes, with --heldout-only")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--samples", type=positive_int, default=None,
                        help=f"held-out samples in heldout.npz (default {DEFAULT_SAMPLES};"
                             f" a transformer: streams, default {DEFAULT_STREAMS})")
    parser.add_argument("--streams", action="store_true",
                        help="with --heldout-only: byte streams for a transformer of window"
                             " --context")
    parser.add_argument("--stream-length", type=positive_int, default=None,
                        help=f"transformer: bytes per held-out stream (default"
                             f" {STREAM_WINDOWS} windows)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the held-out sample choice")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; give a directory")
    if args.heldout_only:
        if args.ckpt is not None or args.context is None:
            raise UsageError("--heldout-only takes --context K and no --ckpt")
        try:
            if args.streams or args.stream_length is not None:
                npz_path = export_heldout_streams(
                    args.out, args.samples or DEFAULT_STREAMS,
                    args.stream_length or STREAM_WINDOWS * args.context, args.context, args.seed)
            else:
                npz_path = export_heldout(args.out, args.samples or DEFAULT_SAMPLES,
                                          args.context, args.seed)
        except ValueError as exc:
            raise UsageError(f"{exc}; lower --samples") from exc
        print(f"wrote {npz_path}")
        return 0
    if args.ckpt is None:
        raise UsageError("--ckpt is required (or --heldout-only --context K)")
    model, _ = load_checkpoint(args.ckpt, kind="spiking")
    graph = model.to_graph()
    streams = graph.causal_window is not None and graph.causal
    if args.stream_length is not None and not streams:
        raise UsageError("--stream-length is for a causal model with attention (a transformer)"
                         " only")
    samples = args.samples or (DEFAULT_STREAMS if streams else DEFAULT_SAMPLES)
    try:
        onnx_path, npz_path = export(graph, args.out, samples, args.seed, args.stream_length)
    except ValueError as exc:
        raise UsageError(f"{exc}; lower --samples") from exc
    print(f"wrote {onnx_path} and {npz_path}")
    return 0


if __name__ == "__main__":
    run("python -m model.export", main)
