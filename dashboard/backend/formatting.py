"""Numbers as the pages show them.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence


def fmt_shape(shape: Sequence[int]) -> str:
    return " × ".join(str(int(s)) for s in shape)


def fmt_count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} M"
    if n >= 1_000:
        return f"{n / 1e3:.1f} k"
    return str(n)


def finite_or_none(x: float) -> Optional[float]:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def fmt_pct(x: Optional[float]) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"
