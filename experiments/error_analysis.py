"""Which UTD-MHAD test samples the evidence runs get wrong, and which stream alone gets them right.

The evidence table says how many errors each model makes; this says *where*: per test subject, the
(subject, action) pairs that recur over seeds, and for those how often each single-stream model
and each fused model is right. It is the analysis behind "which stream does the fused model
follow when one misleads on a new subject" in the README.

    python -m experiments.error_analysis store CHECKPOINT RUN_DIR   # RUN_DIR/test_predictions.csv
    python -m experiments.error_analysis report                      # results/runs -> its page's section

``scripts/run_evidence.sh`` stores the predictions of every run it keeps (weights are not kept, so
they cannot be recomputed later) in the run's folder, which it folds into the store ``results/runs``
(``predictions.csv``, see ``experiments/results_store.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Optional

import pandas as pd

from experiments import results_store
from experiments.readme_section import replace_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
RUNS = "runs"
"""The store of the evidence runs, under a results folder (this one, or a test's)."""
SECTION = "utd_errors"
PREDICTIONS = "test_predictions.csv"
DATASET = "utd-mhad"
RECURRING = 4
"""How many recurring (subject, action) errors the report follows across models."""
FOCUS = ("inertial+skeleton+depth", "sequence", "on")
"""The fused model whose errors are ranked (the calibrated sequence model)."""


def store(checkpoint: Path, run_dir: Path) -> Path:
    """Predict the test split with a checkpoint and write sample id, true and predicted class."""
    import numpy as np

    from precal.checkpoint import load_checkpoint
    from precal.data.storage import load_dataset
    from precal.evaluation import dataset_for, resolve_data_dir
    from precal.inference import predict

    ckpt = load_checkpoint(checkpoint)
    data = load_dataset(resolve_data_dir(ckpt))
    dataset = dataset_for(ckpt, data, "test")
    preds = predict(ckpt.model, dataset.full_batch())
    names = data.schema.class_names
    table = pd.DataFrame({"sample_id": data.sample_ids[dataset.indices],
                          "true": [names[int(i)] for i in np.asarray(preds.labels)],
                          "predicted": [names[int(i)] for i in np.asarray(preds.logits).argmax(axis=1)]})
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / PREDICTIONS
    table.to_csv(out, index=False)
    return out


def model_of(config: dict) -> tuple:
    """(modalities, backbone, calibration) of a run; "–" for a single modality (no calibrator peer),
    "self" for the self-gate control (a calibrator too, but not the one the errors are ranked for)."""
    model = config["model"]
    if len(model["modalities"]) == 1:
        cal = "–"
    elif not model["calibration"]:
        cal = "off"
    else:
        cal = "self" if model.get("gate") == "self" else "on"
    return "+".join(model["modalities"]), model["backbone"], cal


def load_predictions(runs: Path) -> pd.DataFrame:
    """Every test prediction of the UTD-MHAD runs of the store ``runs``, with the run's model and seed."""
    frames = []
    for run in results_store.load(runs):
        if run.predictions is None or run.config["schema"]["name"] != DATASET:
            continue
        table = run.predictions
        table["model"] = [model_of(run.config)] * len(table)
        table["seed"] = run.config["training"]["seed"]
        frames.append(table)
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out["subject"] = out["sample_id"].str.split("_").str[1].str.lstrip("s").astype(int)
    out["right"] = out["true"] == out["predicted"]
    return out


def label(model: tuple) -> str:
    modalities, backbone, cal = model
    if cal == "–":
        return f"{modalities} alone"
    return f"{backbone} {({'on': 'calibrated', 'self': 'self-gated'}).get(cal, 'baseline')}"


def section(runs: Path) -> str:
    """The section, from the store ``runs``: the focus model's recurring errors and how every model
    does on them."""
    preds = load_predictions(runs)
    if preds.empty:
        raise SystemExit(f"no test predictions of {DATASET} runs in {runs}; run scripts/run_evidence.sh")
    focus = preds[preds["model"] == FOCUS]
    wrong = focus[~focus["right"]]
    seeds = focus["seed"].nunique()
    per_subject = wrong.groupby("subject").size().sort_values(ascending=False)
    pairs = (wrong.groupby(["subject", "true", "predicted"]).size().sort_values(ascending=False)
             .head(RECURRING))
    models = sorted(preds["model"].unique(), key=lambda m: (m[2] != "–", m))
    lines = [f"Errors of the calibrated sequence model over its {seeds} seeds: {len(wrong)} of {len(focus)} "
             "test predictions; by subject " + ", ".join(f"{s}: {n}" for s, n in per_subject.items()) + ".", "",
             "| subject | action | read as (calibrated sequence) | " + " | ".join(label(m) for m in models) + " |",
             "|---|---|---|" + "---|" * len(models)]
    for (subject, true, predicted), _ in pairs.items():
        cells = []
        for m in models:
            rows = preds[(preds["model"] == m) & (preds["subject"] == subject) & (preds["true"] == true)]
            cells.append(f"{int(rows['right'].sum())} of {len(rows)}")
        n = len(wrong[(wrong["subject"] == subject) & (wrong["true"] == true) & (wrong["predicted"] == predicted)])
        total = len(focus[(focus["subject"] == subject) & (focus["true"] == true)])
        lines.append(f"| {subject} | {true} | {predicted} ({n} of {total}) | " + " | ".join(cells) + " |")
    lines += ["", "Each model cell: right predictions of that subject's trials of the action, over its seeds "
              "(`python -m experiments.error_analysis report`, from `results/runs/predictions.csv`)."]
    return "\n".join(lines)


def sections(results: Path = RESULTS) -> Dict[str, str]:
    """Every section this generator writes, by name, from the stores under ``results``."""
    return {SECTION: section(results / RUNS)}


def report(runs: Optional[Path] = None, page: Optional[Path] = None) -> str:
    """Write the section from the store ``runs`` (default: the evidence runs) into ``page`` (default:
    the page that holds it) and return it."""
    text = section(runs if runs is not None else RESULTS / RUNS)
    replace_section(SECTION, text, page)
    return text


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "store":
        print(f"wrote {store(Path(sys.argv[2]), Path(sys.argv[3]))}")
    elif len(sys.argv) == 2 and sys.argv[1] == "report":
        print(report())
    else:
        raise SystemExit(__doc__)
