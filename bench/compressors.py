"""The shipped models against plain compressors on the same held-out bytes.

``python -m bench.compressors [--ckpt PATH ...]``

zlib -9, bzip2 -9 and xz -9e compress the held-out split (the 40 standard-library files that
``model.data`` holds out, joined, as Python 3.11 ships them) and the same files one by one;
bits per byte is ``8 x compressed size / original size``. A model with attention is measured
here on the same bytes, every byte of the split (``model.metrics.heldout``: the integer
model's bits per byte, a float twin's float ones; a few minutes for the 16-byte transformer,
about 12 for the 64-byte one, on 2 cores); a window model (the MLP) lists the figure its
checkpoint recorded, on 32,768 seeded held-out positions. A model has to beat the whole-split
figures to be worth deploying as a byte predictor.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from pathlib import Path

from .common import ROOT, emit, parser, table

COMPRESSORS = {
    "zlib -9": lambda b: zlib.compress(b, 9),
    "bzip2 -9": lambda b: bz2.compress(b, 9),
    "xz -9e": lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME),
}
DEFAULT_CKPTS = ("spikelm-mlp", "spikelm-transformer", "spikelm-transformer-w64")


def heldout_files() -> list[bytes]:
    """The held-out split's files, in the corpus order."""
    from model.data import is_heldout, stdlib_files

    return [path.read_bytes() for rel, path in stdlib_files() if is_heldout(rel)]


def compressor_figures(files: list[bytes]) -> dict:
    """Bits per byte of each compressor on the joined split and file by file."""
    whole = b"".join(files)
    size = len(whole)
    return {name: {"whole_split": 8 * len(compress(whole)) / size,
                   "file_by_file": 8 * sum(len(compress(f)) for f in files) / size}
            for name, compress in COMPRESSORS.items()}


def model_figures(paths: list[Path]) -> dict:
    """Held-out bits per byte of each checkpoint and of its float twin beside it: measured on
    the whole split for a model with attention, as recorded for a window model."""
    from model.checkpoint import load_checkpoint
    from model.metrics import heldout

    figures = {}
    for path in paths:
        for kind, candidate in (("spiking", path),
                                ("float twin", path.with_name(f"{path.stem}-float.pt"))):
            if not candidate.exists():
                continue
            model, metrics = load_checkpoint(candidate)
            if model.streams:
                result = heldout(model)
                figure, samples = result["bits_per_byte"], result["samples"]
            else:
                figure, samples = metrics["heldout_bits_per_byte"], metrics.get("heldout_samples")
            figures[f"{path.stem} ({kind})"] = {"bits_per_byte": figure, "context": model.context,
                                               "samples": samples, "measured": model.streams}
    return figures


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--ckpt", type=Path, action="append",
                   help="a causal checkpoint to list (default: the shipped MLP and transformer)")
    args = p.parse_args(argv)
    paths = args.ckpt or [ROOT / "checkpoints" / f"{name}.pt" for name in DEFAULT_CKPTS]
    files = heldout_files()
    compressors = compressor_figures(files)
    models = model_figures(paths)
    rows = [[name, "whole split", f["whole_split"]] for name, f in compressors.items()]
    rows += [[name, "file by file", f["file_by_file"]] for name, f in compressors.items()]
    rows += [[name, f"{f['context']}-byte " + ("window, every byte (measured)" if f["measured"]
                                                else f"context, {f['samples']:,} positions"),
              f["bits_per_byte"]] for name, f in models.items()]
    size = sum(len(f) for f in files)
    emit(args, table(f"Held-out bits per byte: {len(files)} files, {size:,} bytes",
                     ["predictor", "on", "bits/byte"], rows),
         {"files": len(files), "bytes": size, "compressors": compressors, "models": models})


if __name__ == "__main__":
    main()
