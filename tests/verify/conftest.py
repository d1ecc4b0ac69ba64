"""The verification tests reuse the hw tests' simulation helpers (tests/hw/hwsim.py)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parents[1]), str(_HERE.parent / "hw"), str(_HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
