"""The gate report's table of which modality a swap damps: counted per seed, from alpha ratios."""

from __future__ import annotations

import pandas as pd

from experiments.gate_report import which_table


def _rows(ratios):
    return pd.DataFrame([{"dataset": "d", "backbone": "b", "seed": seed, "swapped": swapped, "modality": m,
                          "ratio": r} for (seed, swapped, m), r in ratios.items()])


def test_the_swapped_modality_counts_when_it_is_damped_below_every_other():
    rows = _rows({(0, "a", "a"): 0.80, (0, "a", "b"): 0.95, (0, "a", "c"): 0.90,
                  (1, "a", "a"): 0.92, (1, "a", "b"): 0.91, (1, "a", "c"): 0.97})
    line = next(l for l in which_table(rows).splitlines() if l.startswith("| d | b | a |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == "0.86"  # mean of 0.80 and 0.92
    assert cells[4] == "0.93"  # the others: mean over seeds of (0.925, 0.94)
    assert cells[5] == "1 of 2"  # seed 1: 0.92 is not below b's 0.91
