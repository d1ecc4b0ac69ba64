"""What every benchmark shares: the command line, tables, JSON, and the flow's commands."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CKPT = ROOT / "checkpoints" / "spikelm-mlp.pt"
WORK = ROOT / "build" / "bench"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--work", type=Path, default=WORK, help=f"scratch folder (default {WORK})")
    return p


def table(title: str, columns: list[str], rows: list[list]) -> str:
    """A Markdown table: what the scripts print and BENCHMARKS.md pastes."""

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    lines = [f"### {title}", "", "| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def emit(args, text: str, figures: dict) -> None:
    """Print the tables; write the same figures as JSON when asked."""
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


def run(*command, check: bool = True) -> tuple[float, str]:
    """Run a command; return its wall time and output, or stop the benchmark with its error."""
    start = time.perf_counter()
    proc = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                          check=False, cwd=ROOT)
    seconds = time.perf_counter() - start
    if check and proc.returncode != 0:
        sys.exit(f"benchmark step failed: {' '.join(map(str, command))}\n"
                 f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return seconds, proc.stdout + proc.stderr


def rtl_gen(*args) -> float:
    """``python -m rtl_gen ARGS``; return its wall time."""
    return run(sys.executable, "-m", "rtl_gen", *args)[0]


def report(build_dir: Path) -> dict:
    return json.loads((Path(build_dir) / "report.json").read_text())
