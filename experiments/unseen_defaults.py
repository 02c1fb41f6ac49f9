"""Swap detection with ``precal train``'s defaults on data sets no benchmark or recipe uses, beside
what the model's own summaries allow.

The gate issue's target: with the defaults of ``precal train``, the AUROC of 1 - alpha for a modality
swapped in from a sample of another class is >= 0.9 for every modality of a data set the project
has not seen. This script makes such data sets with the synthetic generator, in shapes no benchmark
set, recipe or test uses, fixed before any result was seen (clean: no corruption built into the data,
as in a real data set), trains on each with the defaults (only ``--backbone`` varies), and measures
exactly as ``precal robustness CK --corruptions swap --severities 1`` does.

Where a modality misses 0.9, the question is whether the calibrator or the data limits it. Beside
each gate figure stand two measures of the modality itself, from the same trained model:

* ``probe``: test accuracy of a linear probe on the modality's encoder summary (what the comparison
  starts from), fitted on the training split;
* ``ceiling``: AUROC of a swap detector *trained on the swap itself*: an MLP on the concatenated
  encoder summaries of all modalities, fitted on training samples with and without the modality
  swapped in from another class, read on the test split the same way. It knows what a swap looks
  like, which the calibrator never does; a gate near it has little left to gain from this model.

    python -m experiments.unseen_defaults --seeds 100 --evidence learned --out results/gates/unseen_defaults_s100.csv
    python -m experiments.unseen_defaults --report results/gates/unseen_defaults_s*.csv
    python -m experiments.unseen_defaults --seeds 100 --evidence absolute --out results/gates/unseen_absolute_s100.csv
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from precal.checkpoint import load_checkpoint
from precal.data.synthetic import SyntheticSpec, generate
from precal.evaluation import dataset_for
from precal.inference import Predictions, predict
from precal.metrics import auroc
from precal.training.config import EVIDENCE_MODES
from precal.robustness.sweep import sweep_checkpoint
from precal.training import TrainConfig, train

TARGET = 0.9
SETS: Dict[str, SyntheticSpec] = {
    "vector2_series_tokens": SyntheticSpec(kinds=("vector", "vector", "time_series", "token_sequence"),
                                           samples=1500, classes=8, corrupt_fraction=0.0),
    "vector8": SyntheticSpec(kinds=("vector",) * 8, samples=2000, classes=10, corrupt_fraction=0.0),
    "frames_tokens": SyntheticSpec(kinds=("frame_sequence", "token_sequence"), samples=1500, classes=6,
                                   corrupt_fraction=0.0),
    "series2_vector": SyntheticSpec(kinds=("time_series", "time_series", "vector"), samples=1500, classes=6,
                                    corrupt_fraction=0.0),
}
"""Shapes no benchmark set uses (the benchmark: mixed3, vector6, tokens2), chosen before any result."""
BACKBONES = ("sequence", "conv", "late", "score")


def swap_pairs(summaries: Dict[str, np.ndarray], labels: np.ndarray, target: str, names: Sequence[str],
               rng: np.random.Generator):
    """Every sample as is (0) and with ``target``'s summary taken from a sample of another class (1),
    all modalities' summaries side by side."""
    donors = np.array([rng.choice(np.flatnonzero(labels != y)) for y in labels])
    clean = np.concatenate([summaries[m] for m in names], axis=1)
    swapped = np.concatenate([summaries[m][donors] if m == target else summaries[m] for m in names], axis=1)
    return np.concatenate([clean, swapped]), np.r_[np.zeros(len(labels)), np.ones(len(labels))]


def fit_detector(x: np.ndarray, y: np.ndarray, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """A corruption detector trained on the corruption itself (the experiments' "ceiling"): an MLP on
    standardised features, fitted on (x, y); returns its score (probability of corrupted) for new rows."""
    scale = StandardScaler().fit(x)
    detector = MLPClassifier((128, 64), max_iter=500, early_stopping=True, random_state=seed)
    detector.fit(scale.transform(x), y)
    return lambda rows: detector.predict_proba(scale.transform(rows))[:, 1]


def modality_measures(train_preds: Predictions, test_preds: Predictions, seed: int) -> Dict[str, Dict[str, float]]:
    """Per modality: the linear probe's test accuracy and the trained swap detector's AUROC."""
    names = list(test_preds.modalities)
    out: Dict[str, Dict[str, float]] = {}
    for m in names:
        probe = LogisticRegression(max_iter=3000).fit(train_preds.summaries_before[m], train_preds.labels)
        x_tr, y_tr = swap_pairs(train_preds.summaries_before, train_preds.labels, m, names,
                                np.random.default_rng(seed))
        x_te, y_te = swap_pairs(test_preds.summaries_before, test_preds.labels, m, names,
                                np.random.default_rng(seed + 1))
        score = fit_detector(x_tr, y_tr, seed)(x_te)
        out[m] = {"probe": float(probe.score(test_preds.summaries_before[m], test_preds.labels)),
                  "ceiling": auroc(score[y_te == 1], score[y_te == 0])}
    return out


def rows_for(set_name: str, backbone: str, seed: int, evidence: Optional[str] = None,
             typicality: Optional[bool] = None) -> List[Dict[str, object]]:
    """One run's rows; ``evidence`` and ``typicality``: the settings that may differ from the defaults
    (None: the default)."""
    spec = replace(SETS[set_name], seed=seed, name=set_name)
    data = generate(spec)
    chosen = {} if typicality is None else {"typicality": typicality}
    cfg = TrainConfig(data=f"<synthetic {set_name}>", backbone=backbone, seed=seed, threads=1, evidence=evidence,
                      **chosen)
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, out=Path(tmp) / "ck", progress=False, data=data)
        ckpt = load_checkpoint(Path(tmp) / "ck")
        table = sweep_checkpoint(ckpt, data, "test", seed=0, severities=(1,), corruptions=["swap"])
        preds = {split: predict(ckpt.model, dataset_for(ckpt, data, split).full_batch()) for split in ("train", "test")}
    measures = modality_measures(preds["train"], preds["test"], seed)
    clean = table[table["severity"] == 0]
    accuracy = float(clean["value"].iloc[0])
    rows = []
    for r in table[table["severity"] == 1].itertuples():
        rows.append({"set": set_name, "backbone": backbone, "seed": seed, "evidence": ckpt.config.evidence,
                     "typicality": ckpt.config.typicality,
                     "modality": r.modality,
                     "accuracy": accuracy, "gate": float(r.auroc_alpha), "support": float(r.auroc_support),
                     "conflict": float(r.auroc_conflict), **measures[r.modality]})
    return rows


def report(frame: pd.DataFrame) -> str:
    lines = [f"# {len(frame)} modality x run rows: {frame['set'].nunique()} sets, backbones "
             f"{', '.join(sorted(frame['backbone'].unique()))}, seeds {', '.join(map(str, sorted(frame['seed'].unique())))}",
             "# gate: AUROC of 1 - alpha, swap at severity 1 (precal robustness); ceiling: a detector trained on the "
             "swap, on the same model's encoder summaries; probe: linear probe accuracy of the modality's summary",
             "# settings: " + "; ".join(f"{c} {', '.join(map(str, sorted(frame[c].unique())))}"
                                        for c in ("evidence", "typicality") if c in frame), ""]
    per = frame.groupby(["set", "modality", "backbone"])[["gate", "support", "ceiling", "probe", "accuracy"]].mean()
    with pd.option_context("display.width", 200):
        lines.append(per.round(3).to_string())
    below = frame[frame["gate"] < TARGET]
    lines += ["", f"gate >= {TARGET}: {int((frame['gate'] >= TARGET).sum())} of {len(frame)} modality x run rows; "
              f"per backbone: " + ", ".join(f"{b} {int((g['gate'] >= TARGET).sum())}/{len(g)}"
                                            for b, g in frame.groupby("backbone"))]
    if len(below):
        lines.append(f"below {TARGET}: {len(below)} rows, {int((below['ceiling'] < TARGET).sum())} of them where the "
                     f"trained detector also stays below {TARGET} (modalities: "
                     f"{', '.join(sorted((below['set'] + '/' + below['modality']).unique()))})")
        lines.append(f"gate / ceiling on those rows: mean {below['gate'].mean():.3f} / {below['ceiling'].mean():.3f}")
    lines.append(f"all rows: gate mean {frame['gate'].mean():.3f}, min {frame['gate'].min():.3f}; ceiling mean "
                 f"{frame['ceiling'].mean():.3f}")
    return "\n".join(lines)


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[100])
    parser.add_argument("--evidence", choices=EVIDENCE_MODES,
                        help="the calibrator's evidence mode instead of the default (to see what centring costs)")
    parser.add_argument("--typicality", action=argparse.BooleanOptionalAction, default=None,
                        help="the calibrator reads (or not) each summary's atypicality, whatever the default")
    parser.add_argument("--out", type=Path, help="write the rows as CSV")
    parser.add_argument("--report", nargs="+", type=Path, metavar="CSV", help="only summarise stored rows")
    args = parser.parse_args(argv)
    if args.report:
        print(f"# python -m experiments.unseen_defaults --report {' '.join(map(str, args.report))}")
        print(report(pd.concat([pd.read_csv(p) for p in args.report], ignore_index=True)))
        return
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        for set_name in args.sets:
            for backbone in args.backbones:
                new = rows_for(set_name, backbone, seed, args.evidence, args.typicality)
                rows += new
                print(" ".join(f"{r['modality']}:{r['gate']:.3f}/{r['ceiling']:.3f}" for r in new),
                      f"<- {set_name} {backbone} seed {seed}", flush=True)
    print(report(stored_rows(rows, args.out)))


def stored_rows(rows: List[Dict[str, object]], out: Optional[Path]) -> pd.DataFrame:
    """The rows as a table, written to ``out`` as CSV (4 decimals) when given."""
    frame = pd.DataFrame(rows)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False, float_format="%.4f")
    return frame


if __name__ == "__main__":
    main()
