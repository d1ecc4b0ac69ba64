"""Output folders that look finished only when they are: build in ``X.partial``, then rename."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

from .errors import BuildError, NotABuildError

__all__ = ["MARKER", "check_build_dir", "staged_output", "tool_folder"]

MARKER = "report.json"


@contextlib.contextmanager
def staged_output(out: Path, force: bool = False):
    """Yield a staging folder that becomes ``out`` on success and vanishes on failure."""
    out = Path(out)
    if out.exists() and not force:
        raise BuildError(
            f"{out} already exists; choose another --out or pass --force to replace it"
        )
    if out.exists() and not (out / MARKER).is_file():
        raise BuildError(f"{out} exists and is not a SpikeForge build; refusing to replace it")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)


def check_build_dir(path: Path) -> dict:
    """The report of a finished build folder, or a one-line error saying it is not one."""
    path = Path(path)
    report_path = path / MARKER
    if not path.is_dir():
        raise NotABuildError(f"{path}: no such folder; run `python -m rtl_gen build --out {path}`")
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        raise NotABuildError(
            f"{path} is not a SpikeForge build (no readable {MARKER}); run `rtl_gen build` first"
        ) from None
    for name in ("golden.npz", "model.onnx", "rtl/" + report.get("rtl", {}).get("top_file", "?")):
        if not (path / name).is_file():
            raise NotABuildError(f"{path} is an incomplete build: {name} is missing; rebuild it")
    return report


def tool_folder(build_dir: Path, flow: str, name: str, rtl_file: str) -> Path:
    """A fresh ``build_dir/flow/name`` holding ``rtl/rtl_file`` as ``top.v``: where a tool flow
    (synthesis, the ASIC flow) runs and leaves its logs; yowasp tools see only that folder."""
    work = Path(build_dir) / flow / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copyfile(Path(build_dir) / "rtl" / rtl_file, work / "top.v")
    return work
