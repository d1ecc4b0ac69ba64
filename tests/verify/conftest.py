"""The verification tests reuse the hw tests' simulation helpers (tests/hw/hwsim.py) and the
CLI tests' helpers (tests/rtl_gen/test_rtl_gen_cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parents[1]), str(_HERE.parent / "hw"),
              str(_HERE.parent / "rtl_gen"), str(_HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
