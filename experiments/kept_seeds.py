"""Accuracy kept under corruption, over five seeds: does the calibrated model keep more of its clean
accuracy than its baseline, or did seed 0 (the shipped checkpoints, the README's table) just happen
to?

For each data set x backbone and seed, the sweep of the calibrated model and its baseline (same
recipe and seed; every corruption, severities 1-5, test split, corruption seed 0) gives the accuracy
kept at severity >= 3 as a fraction of clean accuracy, averaged over modalities and corruptions
other than removal (:func:`experiments.robustness_report.kept_fraction`, the README's figure). Seed
0 is the shipped checkpoints' stored sweep; seeds 1-4 are stored in ``results/robustness_seeds/``,
written by

    precal robustness ROOT/<pair>_calon ROOT/<pair>_caloff --out results/robustness_seeds/seed<S>_<pair>.csv

for the checkpoints ``bash scripts/train_all.sh SEED ROOT`` trains (the evidence runs' recipe).

    python -m experiments.kept_seeds > results/robustness_seeds/kept.txt

After a change to the calibrator only the calibrated models are retrained, as
``VARIANTS=on bash scripts/run_evidence.sh`` does for the evidence runs: the baselines do not read
the calibrator, and their rows stay those of the baselines in the evidence store. Their new sweeps
replace the calibrated rows alone:

    precal robustness ROOT/seed<S>/<pair>_calon --out NEW.csv
    python -m experiments.kept_seeds replace-calibrated results/robustness_seeds/seed<S>_<pair>.csv NEW.csv
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List

import pandas as pd

from experiments.figures import mean_std
from experiments.robustness_report import kept_fraction, pairs
from precal.robustness.table import read_table, write_table

ROOT = Path(__file__).resolve().parents[1]
SEEDS_DIR = ROOT / "results" / "robustness_seeds"


def tables() -> Dict[str, Dict[int, pd.DataFrame]]:
    """Per pair name, per seed: its sweep table (seed 0 from the shipped checkpoint's folder)."""
    out: Dict[str, Dict[int, pd.DataFrame]] = {}
    for name, on, _ in pairs():
        out[name] = {0: read_table(on / "robustness.csv")}
        for path in sorted(SEEDS_DIR.glob(f"seed*_{name}.csv")):
            out[name][int(path.stem.split("_", 1)[0].removeprefix("seed"))] = read_table(path)
    return out


def rows() -> List[Dict]:
    found = []
    for name, by_seed in tables().items():
        for seed, table in sorted(by_seed.items()):
            names = table["checkpoint"].astype(str)
            on = next(n for n in names.unique() if n.endswith("_calon"))
            off = next(n for n in names.unique() if n.endswith("_caloff"))
            found.append({"pair": name, "seed": seed, "calibrated": kept_fraction(table, on),
                          "baseline": kept_fraction(table, off)})
    return found


def report(frame: pd.DataFrame) -> str:
    lines = ["| data set · backbone | seeds | kept, calibrated | kept, baseline | difference (points) | "
             "seeds where the calibrated model keeps more |", "|---|---|---|---|---|---|"]
    for name, g in frame.groupby("pair", sort=True):
        diff = list(g["calibrated"] - g["baseline"])
        more = int(sum(d > 0 for d in diff))
        lines.append(f"| {name} | {len(g)} | {mean_std(list(g['calibrated']))} | {mean_std(list(g['baseline']))} | "
                     f"{mean_std(diff, 100, 1)} | {more} of {len(g)} |")
    return "\n".join(lines)


def replace_calibrated(stored: Path, sweep: Path) -> None:
    """Rewrite ``stored`` (one seed's pair sweep) with its calibrated rows taken from ``sweep`` (a
    sweep of the retrained calibrated checkpoint alone) and its baseline rows kept, in the same order.
    Refused unless ``sweep`` holds exactly the calibrated checkpoint and the cells ``stored`` has."""
    old, new = read_table(stored), read_table(sweep)
    old_names, new_names = old["checkpoint"].astype(str), new["checkpoint"].astype(str)
    on = [n for n in old_names.unique() if n.endswith("_calon")]
    if list(new_names.unique()) != on:
        raise SystemExit(f"{sweep} must sweep exactly {on} (it holds {sorted(new_names.unique())})")
    if list(new.columns) != list(old.columns):
        raise SystemExit(f"{sweep}: its columns differ from {stored}'s")
    keys = ["modality", "corruption", "severity", "metric"]
    mine = old_names == on[0]
    if not old.loc[mine, keys].reset_index(drop=True).equals(new[keys].reset_index(drop=True)):
        raise SystemExit(f"{sweep} does not hold the cells of {stored} in the same order")
    merged = pd.concat([new, old[~mine]], ignore_index=True)
    write_table(merged, stored)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "replace-calibrated":
        replace_calibrated(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    frame = pd.DataFrame(rows())
    print("# python -m experiments.kept_seeds: accuracy kept at severity >= 3 (fraction of clean accuracy, mean over "
          "modalities and corruptions but removal), test split; mean ± std over seeds, paired by seed")
    print(report(frame))
    print()
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
