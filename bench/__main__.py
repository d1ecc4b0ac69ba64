"""Every benchmark, one after the other: ``python -m bench [--only NAMES] [--out DIR]``.

Each prints its tables; their figures go to ``DIR/<name>.json`` (default ``build/bench``) and the
threshold sweep's plot to ``DIR/threshold_sweep.png``. The whole suite takes about an hour on
two cores, most of it synthesis (``area``, ``toolspeed``) and the neuron ablation's six
trainings (``neurons``).
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from .common import WORK

#: In running order: ``energy`` reads the build that ``cycles`` leaves.
BENCHMARKS = ("cycles", "energy", "threshold_sweep", "simspeed", "area", "toolspeed", "neurons",
              "window", "compressors", "fmax")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(BENCHMARKS),
                   help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    p.add_argument("--out", type=Path, default=WORK, help=f"figures folder (default {WORK})")
    args = p.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown or not chosen:
        p.error(f"--only takes names from {', '.join(BENCHMARKS)}, not {', '.join(unknown)!r}")
    for name in chosen:
        start = time.perf_counter()
        print(f"## bench.{name}\n", flush=True)
        extra = []
        if name == "threshold_sweep":
            extra = ["--png", str(args.out / "threshold_sweep.png")]
        module = importlib.import_module(f"bench.{name}")
        module.main(["--json", str(args.out / f"{name}.json"), *extra])
        print(f"(bench.{name}: {time.perf_counter() - start:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
