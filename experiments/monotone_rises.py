"""Are the gates' rises with severity real? The curves of the gate report's monotonicity table
(``docs/results/gates.md``, "does the gate fall as a modality loses information?") where the mean
alpha of the corrupted modality rises from one severity to the next, measured again per sample.

The stored sweep keeps one mean per severity, from one seed of the corruption. For each rising step
this recomputes every test sample's alpha at both severities, with the sweep's own engine and seed
(the means reproduce the stored ones), and with four more corruption seeds:

* the paired rise (mean over samples of alpha at the higher severity minus the lower) and its
  standard error over samples: whether another test set of the same size would likely show it;
* in how many of the five seeds the mean rises at all: whether it belongs to the model or to which
  frames or elements one seed happened to hit.

    python -m experiments.monotone_rises > results/gates/monotone_rises.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import numpy as np
import pandas as pd

from experiments.gate_report import INFORMATION_REMOVING
from experiments.robustness_report import pairs
from precal.checkpoint import Checkpoint, load_checkpoint
from precal.data.storage import load_dataset
from precal.evaluation import dataset_for, resolve_data_dir
from precal.robustness.engine import corrupted_features, encode_split, fuse_split

RISE = 1e-4
"""A step counts as a rise above this (the report's own rule)."""
SEEDS = (0, 1, 2, 3, 4)


def rising_steps(root_pairs=None) -> Iterator[Tuple[str, Path, str, str, int, float, float]]:
    """(name, calibrated folder, modality, corruption, lower severity, stored alpha there, stored
    alpha one level up) for every step of the stored sweeps where the mean alpha rises."""
    for name, on, _ in root_pairs or pairs():
        table = pd.read_csv(on / "robustness.csv")
        t = table[(table["checkpoint"] == on.name) & table["corruption"].isin(INFORMATION_REMOVING)]
        for (mod, corr), g in t.groupby(["modality", "corruption"], sort=False):
            g = g.sort_values("severity")
            severities, curve = g["severity"].to_numpy(), g[f"alpha_{mod}"].to_numpy()
            for k in np.nonzero(np.diff(curve) > RISE)[0]:
                yield name, on, mod, corr, int(severities[k]), float(curve[k]), float(curve[k + 1])


def per_sample_alpha(ckpt: Checkpoint, batch, clean_enc, modality: str, corruption: str, severity: int,
                     seed: int) -> np.ndarray:
    """Each sample's alpha of ``modality`` with it corrupted at ``severity`` (NaN where absent)."""
    if severity == 0:
        out = fuse_split(ckpt.model, clean_enc)
    else:
        enc, _ = corrupted_features(ckpt.model, batch, clean_enc, modality, corruption, severity, seed)
        out = fuse_split(ckpt.model, enc)
    i = list(out.modalities).index(modality)
    return np.where(out.present[:, i], out.alpha[:, i], np.nan)


def measure(split: str = "test") -> pd.DataFrame:
    rows: List[Dict] = []
    loaded: Dict[Path, tuple] = {}
    for name, on, mod, corr, low, stored_low, stored_high in rising_steps():
        if on not in loaded:
            ckpt = load_checkpoint(on)
            batch = dataset_for(ckpt, load_dataset(resolve_data_dir(ckpt, None)), split).full_batch()
            ckpt.model.eval()
            loaded[on] = (ckpt, batch, encode_split(ckpt.model, batch))
        ckpt, batch, clean_enc = loaded[on]
        for seed in SEEDS:
            a = per_sample_alpha(ckpt, batch, clean_enc, mod, corr, low, seed)
            b = per_sample_alpha(ckpt, batch, clean_enc, mod, corr, low + 1, seed)
            both = ~np.isnan(a) & ~np.isnan(b)
            d = b[both] - a[both]
            rows.append({"checkpoint": name, "modality": mod, "corruption": corr, "step": f"{low}→{low + 1}",
                         "seed": seed, "n": int(both.sum()), "alpha_low": float(np.nanmean(a)),
                         "alpha_high": float(np.nanmean(b)), "stored_low": stored_low, "stored_high": stored_high,
                         "rise": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d)))})
    return pd.DataFrame(rows)


def report(frame: pd.DataFrame) -> str:
    lines = ["| checkpoint | modality | corruption | step | stored means (seed 0) | recomputed (seed 0) | "
             "paired rise, seed 0 (± s.e.) | rise / s.e. | seeds where the mean rises |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (name, mod, corr, step), g in frame.groupby(["checkpoint", "modality", "corruption", "step"], sort=False):
        first = g[g["seed"] == 0].iloc[0]
        rising = int((g["rise"] > RISE).sum())
        lines.append(f"| {name} | {mod} | {corr} | {step} | {first.stored_low:.4f} → {first.stored_high:.4f} | "
                     f"{first.alpha_low:.4f} → {first.alpha_high:.4f} | {first.rise:+.4f} ± {first.se:.4f} | "
                     f"{first.rise / first.se:.1f} | {rising} of {len(g)} (rises: "
                     f"{', '.join(f'{r:+.4f}' for r in g['rise'])}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    frame = measure(args.split)
    print("# python -m experiments.monotone_rises (shipped calibrated checkpoints, stored sweeps' rising steps)")
    print(report(frame))


if __name__ == "__main__":
    main()
