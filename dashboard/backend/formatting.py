"""Numbers as the pages show them.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple


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


def fmt_setting(value: object) -> str:
    """A training setting's value as a reader says it, not as Python prints it: ``{}`` and ``[]``
    are "none", a mapping is "skeleton: hip_center", booleans are on/off, floats drop trailing
    zeros."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt_setting(v)}" for k, v in value.items()) if value else "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt_setting(v) for v in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "none"
    return str(value)


def setting_name(key: str) -> str:
    """A setting's name in words (``swap_augment`` -> "swap augment")."""
    return key.replace("_", " ")


def points_text(delta: float) -> str:
    """A difference of rates in percentage points, "±0.0 pts" when it rounds to zero (never "-0.0")."""
    return "±0.0 pts" if round(100 * delta, 1) == 0 else f"{100 * delta:+.1f} pts"


def delta_style(delta: float) -> Tuple[str, str]:
    """``st.metric``'s delta_color and delta_arrow for a difference of rates: a difference that
    rounds to zero at one decimal in percentage points is neither a gain nor a loss."""
    if round(100 * delta, 1) == 0:
        return "off", "off"
    return "normal", "auto"
