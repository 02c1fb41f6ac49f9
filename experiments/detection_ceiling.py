"""How far the gate benchmark's gates are from what their model's summaries allow at all.

The synthetic benchmark (``benchmarks/gates.py``) scores 1 - alpha against the truth and sets 0.95 as
the target for the worst modality of every set. Whether a set allows it is a property of the data and
of the encoders as much as of the calibrator: a modality whose encoder summary carries little of the
class cannot be told apart from the same modality of another class, whatever compares it. This script
measures that bound beside the gate, on the same trained models:

* ``gate``: AUROC of 1 - alpha for the corrupted modality against the clean ones, on 10,000 fresh
  samples of the set's world (``fresh_draw`` number 1, as the benchmark scores);
* ``gate_all_clean``: the same against only the samples whose every modality is clean: the gap to
  ``gate`` is what a peer's corruption costs this modality's clean gate (a comparison damps both
  sides of a disagreement);
* ``support``: the same for the support cue (what the comparison sees);
* ``ceiling``: AUROC of a detector *trained on the corruption itself*: an MLP on the concatenated
  encoder summaries of all modalities (and which are present), fitted on 10,000 other fresh samples
  (``fresh_draw`` number 2) to tell that modality corrupted in that way from clean (noise: the
  samples the truth marks; swap: every clean sample, as it is and with that modality's summary
  taken from a sample of another class), read on the same samples as the gate. It knows what the corruption looks like and sees every modality at once,
  which the calibrator never does; a gate near it has little left to gain from this model's
  encoders, and a ceiling below the target means the target is out of reach for them.

The models are trained exactly as the benchmark's runs (``precal train``'s defaults, ``--set`` adds
settings such as ``typicality=true``).

    python -m experiments.detection_ceiling --seeds 0 --set typicality=true --out results/gates/detection_ceiling.csv
    python -m experiments.detection_ceiling --report results/gates/detection_ceiling.csv
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import numpy as np
import pandas as pd
import torch
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from precal.data.dataset import MultimodalDataset
from precal.data.storage import TRUTH_CODES, MultimodalData
from precal.data.synthetic import BENCHMARK_SETS, fresh_draw, generate
from precal.inference import Predictions, predict
from precal.metrics import auroc
from precal.training import TrainConfig, train
from precal.training.config import parse_settings

TARGET = 0.95
SCORED = ("noise", "swap")
FRESH_SAMPLES = 10_000
BACKBONES = ("sequence", "conv", "late", "score")


def features(preds: Predictions) -> np.ndarray:
    """Every modality's encoder summary side by side, with a column saying whether it is present."""
    parts = [np.concatenate([preds.summaries_before[m], preds.present[:, [i]].astype(np.float32)], axis=1)
             for i, m in enumerate(preds.modalities)]
    return np.concatenate(parts, axis=1)


def cells(preds: Predictions, data: MultimodalData, modality_index: int, corruption: str):
    """(corrupted rows, clean rows) of one modality, as :func:`precal.gate_truth.truth_table` takes them."""
    m = preds.modalities[modality_index]
    codes = np.asarray(data.truth[m])[preds.indices]
    present = preds.present[:, modality_index] & preds.has_context[:, modality_index]
    return (codes == TRUTH_CODES.index(corruption)) & present, (codes == TRUTH_CODES.index("clean")) & present


def swapped_examples(fit: Predictions, fit_data: MultimodalData, modality_index: int,
                     rng: np.random.Generator):
    """Every fully clean sample of ``fit`` as it is (label 0) and with one modality's summary taken from
    a clean sample of another class (label 1). The encoders see each modality alone, so this is the
    summary a swap at the input gives; it lets the detector see as many swaps as there are samples
    (a comparison is hard to learn from the few hundred the truth holds)."""
    clean_rows = np.ones(len(fit.labels), dtype=bool)
    for i, m in enumerate(fit.modalities):
        clean_rows &= (np.asarray(fit_data.truth[m])[fit.indices] == TRUTH_CODES.index("clean")) & fit.present[:, i]
    rows = np.flatnonzero(clean_rows)
    labels = fit.labels[rows]
    donors = np.array([rng.choice(rows[labels != y]) for y in labels])
    x = features(fit)[rows]
    swapped = x.copy()
    width = fit.summaries_before[fit.modalities[modality_index]].shape[1] + 1
    start = sum(fit.summaries_before[m].shape[1] + 1 for m in fit.modalities[:modality_index])
    swapped[:, start:start + width] = features(fit)[donors, start:start + width]
    return np.concatenate([x, swapped]), np.r_[np.zeros(len(rows)), np.ones(len(rows))]


def ceiling(fit: Predictions, fit_data: MultimodalData, read: Predictions, read_data: MultimodalData,
            modality_index: int, corruption: str, seed: int) -> float:
    """AUROC of an MLP fitted on ``fit`` to tell ``corruption`` of one modality from clean, read on
    ``read``'s truth. Swaps are made from ``fit``'s clean samples (:func:`swapped_examples`); noise is
    learned from the corrupted samples the truth marks (noise is added to the input, before the encoder)."""
    if corruption == "swap":
        x, y = swapped_examples(fit, fit_data, modality_index, np.random.default_rng(seed))
    else:
        hit, clean = cells(fit, fit_data, modality_index, corruption)
        keep = hit | clean
        x, y = features(fit)[keep], hit[keep].astype(int)
    scale = StandardScaler().fit(x)
    detector = MLPClassifier((128, 64), max_iter=500, early_stopping=True, random_state=seed)
    detector.fit(scale.transform(x), y)
    hit, clean = cells(read, read_data, modality_index, corruption)
    score = detector.predict_proba(scale.transform(features(read)))[:, 1]
    return auroc(score[hit], score[clean])


def rows_for(set_name: str, backbone: str, seed: int, overrides: Dict[str, object]) -> List[Dict[str, object]]:
    """One trained model's rows: per modality and corruption, gate, support cue and ceiling."""
    spec = replace(BENCHMARK_SETS[set_name], seed=seed)
    data = generate(spec)
    cfg = TrainConfig(data=f"<synthetic {set_name}>", backbone=backbone, seed=seed, threads=1, **overrides)
    result = train(cfg, progress=False, data=data)

    def run(d: MultimodalData) -> Predictions:
        return predict(result.model, MultimodalDataset(d, d.split("test"), result.preprocessor,
                                                       result.model.modalities).full_batch())

    read_data, fit_data = fresh_draw(spec, FRESH_SAMPLES, draw=1), fresh_draw(spec, FRESH_SAMPLES, draw=2)
    read, fit = run(read_data), run(fit_data)
    all_clean = np.ones(len(read.labels), dtype=bool)
    for m in read.modalities:
        all_clean &= np.asarray(read_data.truth[m])[read.indices] == TRUTH_CODES.index("clean")
    rows = []
    for i, m in enumerate(read.modalities):
        for corruption in SCORED:
            hit, clean = cells(read, read_data, i, corruption)
            if not hit.any() or not clean.any():
                continue
            rows.append({"set": set_name, "backbone": backbone, "seed": seed, "modality": m,
                         "corruption": corruption, "n_corrupted": int(hit.sum()),
                         "gate": auroc(1 - read.alpha[hit, i], 1 - read.alpha[clean, i]),
                         "gate_all_clean": auroc(1 - read.alpha[hit, i], 1 - read.alpha[clean & all_clean, i]),
                         "support": auroc(-read.support[hit, i], -read.support[clean, i]),
                         "ceiling": ceiling(fit, fit_data, read, read_data, i, corruption, seed)})
    return rows


def report(frame: pd.DataFrame) -> str:
    """Per set and corruption: gate, cue and ceiling, worst modality of each run averaged over runs;
    then how many (run, modality, corruption) cells the ceiling itself leaves below the target."""
    lines = ["# gate, support cue and ceiling: AUROC against the truth on 10,000 fresh samples; worst modality "
             "of each run, mean over the runs", ""]
    worst = frame.groupby(["set", "corruption", "backbone", "seed"])[["gate", "gate_all_clean", "support",
                                                                       "ceiling"]].min()
    lines.append(worst.groupby(["set", "corruption"]).mean().round(3).to_string())
    lines.append("")
    per_run = frame.groupby(["set", "backbone", "seed"])[["gate", "ceiling"]].min()
    lines.append("worst (modality, corruption) of each run, gate against ceiling:")
    lines.append(per_run.round(3).to_string())
    lines.append("")
    below = frame[frame["ceiling"] < TARGET]
    lines.append(f"cells whose ceiling is below {TARGET}: {len(below)} of {len(frame)}"
                 + (" (" + ", ".join(sorted({f'{r.set}/{r.modality}/{r.corruption}' for r in below.itertuples()}))
                    + ")" if len(below) else ""))
    reachable = frame[frame["ceiling"] >= TARGET]
    lines.append(f"where the ceiling reaches {TARGET}: gate >= {TARGET} in {int((reachable['gate'] >= TARGET).sum())} "
                 f"of {len(reachable)} cells; gate / ceiling {np.mean(reachable['gate'] / reachable['ceiling']):.3f} "
                 f"(mean), over every cell {np.mean(frame['gate'] / frame['ceiling']):.3f}")
    return "\n".join(lines)


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(BENCHMARK_SETS), choices=list(BENCHMARK_SETS))
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--report", nargs="+", type=Path, help="summarise stored tables instead of training")
    args = parser.parse_args(argv)
    if args.report:
        print(report(pd.concat([pd.read_csv(p) for p in args.report], ignore_index=True)))
        return
    torch.set_num_threads(1)
    rows: List[Dict[str, object]] = []
    for seed in args.seeds:
        for set_name in args.sets:
            for backbone in args.backbones:
                new = rows_for(set_name, backbone, seed, parse_settings(args.overrides))
                print(pd.DataFrame(new).round(3).to_string(index=False), flush=True)
                rows.extend(new)
                if args.out:
                    pd.DataFrame(rows).to_csv(args.out, index=False)
    print(report(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
