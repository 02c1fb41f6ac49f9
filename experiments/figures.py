"""How the experiment scripts write a figure over seeds: one helper, so every stored result reads alike."""

from __future__ import annotations

import statistics
from typing import Sequence


def mean_std(values: Sequence[float], scale: float = 1.0, digits: int = 3, signed: bool = False) -> str:
    """``mean ± std`` of ``values`` times ``scale`` (std over seeds, 0 for a single value); ``signed``
    writes the mean's sign (a difference)."""
    mean = statistics.mean(values) * scale
    std = (statistics.stdev(values) if len(values) > 1 else 0.0) * scale
    return f"{mean:{'+' if signed else ''}.{digits}f} ± {std:.{digits}f}"
