"""Does the corrupted modality's gate fall as the corruption removes more of it? Variant against
variant, on the inner folds' stored sweeps (no test split).

The issue's second gate target: the alpha of a corrupted modality falls monotonically with severity
for every corruption that removes information. The inner-fold runs with ``SWEEP=1`` store, per
held-out unit, the mean alpha of every modality at the clean level and at severities 3-5 of each
corruption (``results/inner_fold*/sweeps.csv``). For each variant named, over the (unit, seed)
runs both variants have, this prints: the share of (run, modality, corruption) curves whose alpha
never rises from one level to the next (clean, 3, 4, 5; a rise is more than 1e-4), and the corrupted
modality's alpha at severity 5 as a fraction of its clean alpha (mean over the curves).

    python -m experiments.severity_falls results/inner_fold conv_on_monotone_capped conv_on_monotone_capped_typ
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import List

import numpy as np
import pandas as pd

from experiments.gate_report import INFORMATION_REMOVING
from experiments.monotone_rises import RISE

LEVELS = (0, 3, 4, 5)


def curves(sweeps: pd.DataFrame, variant: str) -> pd.DataFrame:
    """One row per (run, modality, corruption) of ``variant``: its alpha at each level."""
    rows = []
    runs = sweeps[sweeps["run"].str.fullmatch(re.escape(variant) + r"_held\d+_seed\d+")]
    for (run, modality, corruption), g in runs.groupby(["run", "modality", "corruption"]):
        if corruption not in INFORMATION_REMOVING or f"alpha_{modality}" not in g:
            continue
        by_level = g.drop_duplicates("severity").set_index("severity")[f"alpha_{modality}"]
        if not all(level in by_level.index for level in LEVELS):
            continue
        alpha = [float(by_level[level]) for level in LEVELS]
        rows.append({"unit": run[len(variant) + 1:], "modality": modality, "corruption": corruption,
                     "monotone": all(b <= a + RISE for a, b in zip(alpha, alpha[1:])),
                     "kept_at_5": alpha[-1] / alpha[0] if alpha[0] > 0 else np.nan})
    return pd.DataFrame(rows)


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="an inner-fold store folder holding sweeps.csv")
    parser.add_argument("variants", nargs="+")
    args = parser.parse_args(argv)
    sweeps = pd.read_csv(args.store / "sweeps.csv")
    tables = {v: curves(sweeps, v) for v in args.variants}
    shared = set.intersection(*(set(t["unit"]) for t in tables.values())) if tables else set()
    print(f"# python -m experiments.severity_falls {args.store} {' '.join(args.variants)}")
    print(f"# {len(shared)} (unit, seed) runs that every variant has; corruptions that remove information")
    for v, t in tables.items():
        t = t[t["unit"].isin(shared)]
        if not len(t):
            print(f"{v}: no curves")
            continue
        per = t.groupby("corruption").agg(monotone=("monotone", "mean"), kept_at_5=("kept_at_5", "mean"))
        print(f"\n{v}: {len(t)} curves; alpha never rises in {t['monotone'].mean():.0%} of them; "
              f"alpha at severity 5 is {t['kept_at_5'].mean():.2f} of clean (mean)")
        print(per.round(2).to_string())


if __name__ == "__main__":
    main()
