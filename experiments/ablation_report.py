"""Augmentation ablation: do the gates respond to corruption because of swap augmentation?

Sweeps every given checkpoint (the shipped recipe and the "no swap augmentation" recipe of
``scripts/train_ablation.sh``, calibrated and baseline, several seeds) with the robustness sweep,
folds each table into the store ``results/ablation`` as the run ``<run>`` (``sweeps.csv``, see
``experiments/results_store.py``; a stored sweep is reused), and writes the README section
``ablation`` from every stored sweep: per data set, backbone, recipe and calibration, mean ± std
over seeds of

- clean test accuracy and the fraction of it kept under single-modality corruption at severity >= 3
  (Gaussian noise, occlusion or temporal masking, and swaps; severities 1, 3, 5);
- swap-detection AUROC of the support cue and of 1 - alpha (calibrated models);
- how far the corrupted modality's alpha moves from severity 0 to 5 (mean over corruptions).

    python -m experiments.ablation_report [CHECKPOINT_DIR ...]
    python -m experiments.ablation_report --store results/ablation/avletters_validation_selection
"""

from __future__ import annotations

import argparse
import tempfile
from fnmatch import fnmatch
from pathlib import Path
from typing import Dict

import numpy as np
import pandas as pd

from experiments import results_store
from experiments.readme_section import replace_section
from experiments.robustness_report import kept_fraction
from precal.checkpoint import load_checkpoint
from precal.robustness.sweep import run_sweep
from precal.robustness.table import write_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
ABLATION = "ablation"
"""The store of the sweeps, under a results folder (this one, or a test's)."""
STORE = RESULTS / ABLATION
RUN_NAMES = "*_seed*"
"""<dataset>_<backbone>_cal<on|off>_<recipe>_seed<N>: what a swept checkpoint is called."""
CORRUPTIONS = ("gaussian_noise", "occlusion", "temporal_mask", "swap")
"""A cheaper sweep than the full one (many checkpoints): noise for every modality, one structural
corruption per kind (occlusion for frames, temporal masking for series) and the known conflict."""
SEVERITIES = (1, 3, 5)


def run_name(path: Path) -> str:
    """<dataset>_<backbone>_cal<on|off>_<recipe>_seed<N>, from the checkpoint's own config."""
    ckpt = load_checkpoint(path)
    training = ckpt.training
    recipe = "swap" if float(training.get("swap_augment", 0.0)) > 0 else "noswap"
    cal = "on" if ckpt.config.calibration else "off"
    return f"{ckpt.schema.name}_{ckpt.config.backbone}_cal{cal}_{recipe}_seed{training['seed']}"


def sweep(paths: list[Path]) -> None:
    """Sweep the checkpoints whose run the store has no sweep of, folding each sweep in as it ends."""
    stored = {run.name for run in results_store.load(STORE) if run.sweep is not None}
    for path in paths:
        name = run_name(path)
        if name in stored:
            continue
        table = run_sweep([path], None, "test", seed=0, corruptions=CORRUPTIONS, severities=SEVERITIES)
        table["checkpoint"] = name
        with tempfile.TemporaryDirectory() as tmp:
            write_table(table, Path(tmp) / name / "sweep.csv")
            results_store.compact(STORE, add=[Path(tmp) / name])
        stored.add(name)
        print(f"swept {path} -> {STORE} ({name})")


def alpha_shift(table: pd.DataFrame) -> float:
    """Mean over corrupted modalities and corruptions (presence kept) of alpha(sev 5) - alpha(sev 0)."""
    t = table[table["corruption"] != "remove_absent"]
    shifts = []
    for (mod, _), g in t.groupby(["modality", "corruption"]):
        by_sev = g.set_index("severity")[f"alpha_{mod}"]
        shifts.append(by_sev.loc[by_sev.index.max()] - by_sev.loc[0])
    return float(np.mean(shifts))


def per_run(store: Path = STORE) -> pd.DataFrame:
    """One row per swept run of a store: clean accuracy, kept fraction, swap detection, alpha shift."""
    rows = []
    for run in results_store.load(store):
        if run.sweep is None or not fnmatch(run.name, RUN_NAMES):
            continue
        table = run.sweep
        dataset, backbone, cal, recipe, seed = run.name.rsplit("_", 4)
        swap = table[(table["corruption"] == "swap") & (table["severity"] > 0)]
        rows.append({
            "dataset": dataset, "backbone": backbone, "calibration": cal.removeprefix("cal"),
            "recipe": "with swap augmentation" if recipe == "swap" else "without swap augmentation",
            "seed": int(seed.removeprefix("seed")),
            "clean": float(table[table["severity"] == 0]["value"].iloc[0]),
            "kept": kept_fraction(table, run.name),
            "auroc_support": float(swap["auroc_support"].mean()),
            "auroc_alpha": float(swap["auroc_alpha"].mean()),
            "alpha_shift": alpha_shift(table),
        })
    return pd.DataFrame(rows)


def fmt(values: pd.Series, digits: int = 3) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def section(runs: pd.DataFrame) -> str:
    lines = ["Generated by `python -m experiments.ablation_report` from `results/ablation/sweeps.csv` (robustness "
             "sweeps of the test split with Gaussian noise, occlusion / temporal masking and swaps at severities 1, "
             "3, 5, seed 0 corruptions; checkpoints trained by `scripts/train_all.sh` and `scripts/train_ablation.sh`). "
             "Mean ± std over seeds.", "",
             "| data set | backbone | recipe | calibration | seeds | clean accuracy | kept at severity ≥ 3 "
             "| swap AUROC, support | swap AUROC, 1 − alpha | alpha shift, severity 0 → 5 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    keys = ["dataset", "backbone", "recipe", "calibration"]
    for key, g in runs.sort_values(keys).groupby(keys, sort=False):
        calibrated = key[3] == "on"
        lines.append("| " + " | ".join(key) + f" | {g['seed'].nunique()} | {fmt(g['clean'])} | {fmt(g['kept'])} | "
                     + (f"{fmt(g['auroc_support'])} | {fmt(g['auroc_alpha'])} | {fmt(g['alpha_shift'])} |"
                        if calibrated else "– | – | – |"))
    return "\n".join(lines)


def sections(results: Path = RESULTS) -> Dict[str, str]:
    """Every section this generator writes, by name, from the store under ``results``."""
    return {"ablation": section(per_run(results / ABLATION))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", type=Path, help="checkpoint folders to sweep (if not stored)")
    parser.add_argument("--store", type=Path,
                        help="only print the table of an earlier store (e.g. results/ablation/"
                             "avletters_validation_selection, AVLetters' recipe before train+val)")
    args = parser.parse_args()
    if args.store is not None:
        print(section(per_run(args.store)))
        return
    sweep(list(args.checkpoints))
    runs = per_run()
    if runs.empty:
        raise SystemExit(f"no stored sweeps in {STORE}; pass checkpoint folders to sweep")
    runs.to_csv(STORE / "summary.csv", index=False)
    text = section(runs)
    replace_section("ablation", text)
    print(text)


if __name__ == "__main__":
    main()
