"""Design choices on UTD-MHAD without touching its test subjects: inner cross-subject folds.

The official validation split (trial 4 of the training subjects) saturates at 100% and cannot see
whether a choice transfers to *new subjects*, which is what the test split measures. An inner fold
holds out one training subject instead: fit on the other three (trials 1-3, trial 4 for model
selection), score on the held-out one. Subject 7 is the first fold; subjects 1, 3 and 5 give the
other three (leave-one-training-subject-out). Subjects 2, 4, 6, 8 are never read.

    python scripts/inner_fold.py split OUT_DIR [HELD_OUT]  # the data set with one fold's splits
    python scripts/inner_fold.py report                    # results/inner_fold/*/ -> README "inner"

``scripts/inner_fold.sh`` trains the variants and stores their metrics in
results/inner_fold/<variant>_held<S>_seed<N>/.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from readme_section import replace_section

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "sample_data" / "utd_mhad"
STORE = ROOT / "results" / "inner_fold"
TRAINING_SUBJECTS, FIRST_HELD_OUT, SELECTION_TRIAL = (1, 3, 5, 7), 7, 4

VARIANTS = {  # name -> what it is (the arguments are in scripts/inner_fold.sh)
    "inertial": "inertial alone",
    "skeleton_camera": "skeleton alone, camera coordinates",
    "skeleton_hip": "skeleton alone, hip-centred",
    "depth_frames": "depth alone, per-frame trunk",
    "depth_motion": "depth alone, motion-energy trunk",
    "fused_previous_off": "fused baseline, earlier inputs (per-frame depth, camera skeleton)",
    "fused_off": "fused baseline (shipped inputs and augmentation, 40 epochs)",
    "fused_on": "fused calibrated (shipped inputs and augmentation, 40 epochs)",
    "fused_on_aux0": "fused calibrated, no cue objective (--aux-weight 0)",
    "fused_on_nocuegrad": "fused calibrated, cues on detached features (--cue-gradient off)",
    "fused_off_noswap": "fused baseline, no swap augmentation",
    "fused_on_noswap": "fused calibrated, no swap augmentation",
    "fused_off_ep60": "fused baseline, 60 epochs instead of 40",
    "fused_on_ep60": "fused calibrated, 60 epochs instead of 40",
    "fused_off_ep60_noswap": "fused baseline, 60 epochs, no swap augmentation",
    "fused_on_ep60_noswap": "fused calibrated, 60 epochs, no swap augmentation",
    "fused_off_ep80": "fused baseline, 80 epochs",
    "fused_on_ep80": "fused calibrated, 80 epochs",
    "fused_off_ep60_unimodal": "fused baseline, 60 epochs, per-encoder loss (--unimodal-loss 0.5)",
    "fused_on_ep60_unimodal": "fused calibrated, 60 epochs, per-encoder loss (--unimodal-loss 0.5)",
    "fused_off_ep60_rot15": "fused baseline, 60 epochs, inertial and skeleton rotated up to 15°",
    "fused_on_ep60_rot15": "fused calibrated, 60 epochs, inertial and skeleton rotated up to 15°",
    "fused_off_ep60_rot30": "fused baseline, 60 epochs, inertial and skeleton rotated up to 30°",
    "fused_on_ep60_rot30": "fused calibrated, 60 epochs, inertial and skeleton rotated up to 30°",
    "fused_off_ep60_avg20": "fused baseline, 60 epochs, weights averaged over the last 20 (--average-epochs 20)",
    "fused_on_ep60_avg20": "fused calibrated, 60 epochs, weights averaged over the last 20 (--average-epochs 20)",
    "fused_off_ep60_drop03": "fused baseline, 60 epochs, dropout 0.3 instead of 0.1",
    "fused_on_ep60_drop03": "fused calibrated, 60 epochs, dropout 0.3 instead of 0.1",
    "fused_off_ep60_late": "fused baseline, 60 epochs, late (concatenation) backbone instead of sequence",
    "fused_on_ep60_late": "fused calibrated, 60 epochs, late (concatenation) backbone instead of sequence",
}


def write_split(out: Path, held_out: int = FIRST_HELD_OUT) -> None:
    if held_out not in TRAINING_SUBJECTS:
        raise SystemExit(f"held-out subject must be a training subject ({TRAINING_SUBJECTS}), got {held_out}")
    header = json.loads((SOURCE / "dataset.json").read_text())
    ids = np.load(SOURCE / "data.npz")["sample_ids"]
    subject = np.array([int(s.split("_")[1][1:]) for s in ids])
    trial = np.array([int(s.split("_")[2][1:]) for s in ids])
    fit = np.isin(subject, [t for t in TRAINING_SUBJECTS if t != held_out])
    header["splits"] = {
        "train": np.flatnonzero(fit & (trial != SELECTION_TRIAL)).tolist(),
        "val": np.flatnonzero(fit & (trial == SELECTION_TRIAL)).tolist(),
        "test": np.flatnonzero(subject == held_out).tolist(),
    }
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SOURCE / "data.npz", out / "data.npz")
    (out / "dataset.json").write_text(json.dumps(header, indent=1) + "\n")
    print(f"wrote {out}: " + ", ".join(f"{k}={len(v)}" for k, v in header["splits"].items()))


def load_results() -> pd.DataFrame:
    rows = []
    for path in sorted(STORE.glob("*_held*_seed*/metrics.json")):
        name, rest = path.parent.name.rsplit("_held", 1)
        held, seed = rest.split("_seed")
        rows.append({"variant": name, "held_out": int(held), "seed": int(seed),
                     "accuracy": json.loads(path.read_text())["test"]["accuracy"]})
    return pd.DataFrame(rows)


def reference_of(variant: str) -> str | None:
    """The run a fused variant changes one thing of: the same model at the same budget (40 or 60 epochs)."""
    for model in ("fused_off", "fused_on"):
        if variant.startswith(model + "_"):
            reference = model + ("_ep60" if variant.startswith(model + "_ep60_") else "")
            return reference if reference != variant else None
    return None


def paired_difference(runs: pd.DataFrame, variant: str, reference: str) -> str:
    """Variant minus reference over the (subject, seed) pairs both were run on, in points."""
    table = runs.pivot_table(index=["held_out", "seed"], columns="variant", values="accuracy")
    if variant not in table or reference not in table:
        return "–"
    diff = 100 * (table[variant] - table[reference]).dropna()
    if diff.empty:
        return "–"
    spread = f" ± {diff.std():.1f}" if len(diff) > 1 else ""
    return f"{diff.mean():+.1f}{spread} ({len(diff)})"


def report() -> None:
    runs = load_results()
    if runs.empty:
        raise SystemExit(f"no results in {STORE}; run scripts/inner_fold.sh first")
    folds = sorted(runs["held_out"].unique())
    per_fold = runs.groupby(["variant", "held_out"])["accuracy"].agg(["mean", "std", "size"])
    lines = [f"Accuracy (%) on the held-out training subject, each fitted on the other three "
             f"({len(runs)} runs; `bash scripts/inner_fold.sh`). A cell is mean ± std over its seeds; the last "
             "column but one averages the subjects a variant was run on. The last column is the variant minus "
             "the same model without the change (40- or 60-epoch run), in points, over the (subject, seed) pairs "
             "both have: mean ± std (pairs).", "",
             "| variant | " + " | ".join(f"subject {f}" for f in folds) + " | mean over subjects | paired change |",
             "|---|" + "---|" * (len(folds) + 2)]
    for name, what in VARIANTS.items():
        if name not in per_fold.index.get_level_values(0):
            continue
        cells, means = [], []
        for f in folds:
            if (name, f) not in per_fold.index:
                cells.append("–")
                continue
            r = per_fold.loc[(name, f)]
            spread = f" ± {100 * r['std']:.1f}" if r["size"] > 1 else ""
            cells.append(f"{100 * r['mean']:.1f}{spread} ({int(r['size'])})")
            means.append(r["mean"])
        reference = reference_of(name)
        change = paired_difference(runs, name, reference) if reference else "–"
        lines.append(f"| {what} | " + " | ".join(cells) + f" | {100 * np.mean(means):.1f} ({len(means)}) | {change} |")
    section = "\n".join(lines)
    replace_section("inner", section)
    print(section)


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "split":
        write_split(Path(sys.argv[2]), *(int(a) for a in sys.argv[3:]))
    elif sys.argv[1:] == ["report"]:
        report()
    else:
        raise SystemExit(__doc__)
