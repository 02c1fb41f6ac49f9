"""Design choices on UTD-MHAD without touching its test subjects: an inner cross-subject fold.

The official validation split (trial 4 of the training subjects) saturates at 100% and cannot see
whether a choice transfers to *new subjects*, which is what the test split measures. This inner
fold holds out one training subject instead: fit on subjects 1, 3, 5 (trials 1-3, trial 4 for
model selection), score on subject 7. Subjects 2, 4, 6, 8 are never read.

    python scripts/inner_fold.py split OUT_DIR     # the data set with the inner fold's splits
    python scripts/inner_fold.py report            # results/inner_fold/*/ -> README section "inner"

``scripts/inner_fold.sh`` trains the variants and stores their metrics in results/inner_fold/.
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
FIT_SUBJECTS, HELD_OUT_SUBJECT, SELECTION_TRIAL = (1, 3, 5), 7, 4

VARIANTS = {  # name -> what it is (the arguments are in scripts/inner_fold.sh)
    "inertial": "inertial alone",
    "skeleton_camera": "skeleton alone, camera coordinates",
    "skeleton_hip": "skeleton alone, hip-centred",
    "depth_frames": "depth alone, per-frame trunk",
    "depth_motion": "depth alone, motion-energy trunk",
    "fused_previous_off": "fused baseline, earlier inputs (per-frame depth, camera skeleton)",
    "fused_off": "fused baseline (shipped recipe)",
    "fused_on": "fused calibrated (shipped recipe)",
    "fused_on_aux0": "fused calibrated, no cue objective (--aux-weight 0)",
    "fused_on_nocuegrad": "fused calibrated, cues on detached features (--cue-gradient off)",
    "fused_off_noswap": "fused baseline, no swap augmentation",
    "fused_on_noswap": "fused calibrated, no swap augmentation",
}


def write_split(out: Path) -> None:
    header = json.loads((SOURCE / "dataset.json").read_text())
    ids = np.load(SOURCE / "data.npz")["sample_ids"]
    subject = np.array([int(s.split("_")[1][1:]) for s in ids])
    trial = np.array([int(s.split("_")[2][1:]) for s in ids])
    fit = np.isin(subject, FIT_SUBJECTS)
    header["splits"] = {
        "train": np.flatnonzero(fit & (trial != SELECTION_TRIAL)).tolist(),
        "val": np.flatnonzero(fit & (trial == SELECTION_TRIAL)).tolist(),
        "test": np.flatnonzero(subject == HELD_OUT_SUBJECT).tolist(),
    }
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SOURCE / "data.npz", out / "data.npz")
    (out / "dataset.json").write_text(json.dumps(header, indent=1) + "\n")
    print(f"wrote {out}: " + ", ".join(f"{k}={len(v)}" for k, v in header["splits"].items()))


def report() -> None:
    rows = []
    for path in sorted(STORE.glob("*_seed*/metrics.json")):
        name, seed = path.parent.name.rsplit("_seed", 1)
        rows.append({"variant": name, "seed": int(seed), "accuracy": json.loads(path.read_text())["test"]["accuracy"]})
    if not rows:
        raise SystemExit(f"no results in {STORE}; run scripts/inner_fold.sh first")
    runs = pd.DataFrame(rows)
    g = runs.groupby("variant")["accuracy"]
    table = pd.DataFrame({"mean": g.mean(), "std": g.std().fillna(0.0), "seeds": g.size()})
    lines = [f"Held-out training subject {HELD_OUT_SUBJECT}, fitted on subjects "
             f"{', '.join(map(str, FIT_SUBJECTS))} ({len(runs)} runs; `bash scripts/inner_fold.sh`):", "",
             "| variant | accuracy on subject 7 (%) | seeds |", "|---|---|---|"]
    for name, what in VARIANTS.items():
        if name in table.index:
            r = table.loc[name]
            lines.append(f"| {what} | {100 * r['mean']:.1f} ± {100 * r['std']:.1f} | {int(r['seeds'])} |")
    section = "\n".join(lines)
    replace_section("inner", section)
    print(section)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "split" and len(sys.argv) == 3:
        write_split(Path(sys.argv[2]))
    elif sys.argv[1:] == ["report"]:
        report()
    else:
        raise SystemExit(__doc__)
