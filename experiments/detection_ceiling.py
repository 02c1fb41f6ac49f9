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
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd
import torch

from precal.data.dataset import MultimodalDataset
from experiments.unseen_defaults import BACKBONES, fit_detector
from precal.data.storage import TRUTH_CODES, MultimodalData, build_ragged
from precal.data.synthetic import BENCHMARK_SETS, drown, fresh_draw, generate
from precal.gate_truth import SCORED, truth_cells
from precal.inference import Predictions, predict
from precal.metrics import auroc
from precal.training import TrainConfig, train
from precal.training.config import parse_settings

TARGET = 0.95
FRESH_SAMPLES = 10_000


def features(preds: Predictions) -> np.ndarray:
    """Every modality's encoder summary side by side, with a column saying whether it is present."""
    parts = [np.concatenate([preds.summaries_before[m], preds.present[:, [i]].astype(np.float32)], axis=1)
             for i, m in enumerate(preds.modalities)]
    return np.concatenate(parts, axis=1)


def scorable(preds: Predictions, data: MultimodalData, modality_index: int) -> np.ndarray:
    """Rows where one modality is clean, present and compared with a peer: the gate's negatives."""
    return truth_cells(preds, data, modality_index, "noise")[1]


def swapped_examples(fit: Predictions, fit_data: MultimodalData, x: np.ndarray, modality_index: int,
                     rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Every sample of ``fit`` whose modality is clean as it is (label 0), and the same samples with
    that modality's summary taken from another such sample of another class (label 1). The encoders
    see each modality alone, so this is the summary a swap at the input gives; it lets the detector
    see as many swaps as there are samples. The negatives are those the gate is scored against
    (peers corrupted or absent included). ``x``: ``features(fit)``."""
    rows = np.flatnonzero(scorable(fit, fit_data, modality_index))
    labels = fit.labels[rows]
    donors = np.array([rng.choice(rows[labels != y]) for y in labels])
    start = sum(fit.summaries_before[m].shape[1] + 1 for m in fit.modalities[:modality_index])
    width = fit.summaries_before[fit.modalities[modality_index]].shape[1] + 1
    swapped = x[rows].copy()
    swapped[:, start:start + width] = x[donors, start:start + width]
    return np.concatenate([x[rows], swapped]), np.r_[np.zeros(len(rows)), np.ones(len(rows))]


def noisy_examples(fit: Predictions, fit_data: MultimodalData, x: np.ndarray, modality_index: int, run,
                   snr_db: float, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """The same samples as :func:`swapped_examples`, as they are (0) and with that modality drowned in
    noise at the input exactly as the generator does (:func:`precal.data.synthetic.drown`) and encoded
    again (1): as many noisy examples as clean ones, instead of the few hundred the truth marks.
    ``x``: ``features(fit)``."""
    m = fit.modalities[modality_index]
    rows = fit.indices[scorable(fit, fit_data, modality_index)]
    chosen = set(int(i) for i in rows)
    sequences = [None if not fit_data.is_present(m, i) else
                 drown(fit_data.sequence(m, i), snr_db, rng) if i in chosen else fit_data.sequence(m, i)
                 for i in range(len(fit_data))]
    step_shape = fit_data.schema.modality(m).step_shape
    noisy = replace(fit_data, modalities={**fit_data.modalities, m: build_ragged(sequences, step_shape, np.float32)})
    drowned = run(noisy)
    position = {int(i): r for r, i in enumerate(drowned.indices)}
    x_clean = x[scorable(fit, fit_data, modality_index)]
    x_noisy = features(drowned)[[position[int(i)] for i in rows]]
    return np.concatenate([x_clean, x_noisy]), np.r_[np.zeros(len(rows)), np.ones(len(rows))]


def ceiling(x: np.ndarray, y: np.ndarray, read: Predictions, read_data: MultimodalData, x_read: np.ndarray,
            modality_index: int, corruption: str, seed: int) -> float:
    """AUROC of an MLP fitted on (x, y) (balanced: :func:`swapped_examples`, :func:`noisy_examples`),
    read on ``read``'s truth exactly as the gate is: that corruption of the modality against its
    clean rows. ``x_read``: ``features(read)``."""
    hit, clean = truth_cells(read, read_data, modality_index, corruption)
    score = fit_detector(x, y, seed)(x_read)
    return auroc(score[hit], score[clean])


def rows_for(set_name: str, backbone: str, seed: int, overrides: Dict[str, object]) -> List[Dict[str, object]]:
    """One trained model's rows: per modality and corruption, gate, support cue and ceiling."""
    spec = replace(BENCHMARK_SETS[set_name], seed=seed)
    data = generate(spec)
    cfg = TrainConfig(**{**overrides, "data": f"<synthetic {set_name}>", "backbone": backbone, "seed": seed,
                         "threads": 1})
    result = train(cfg, progress=False, data=data)

    def run(d: MultimodalData) -> Predictions:
        return predict(result.model, MultimodalDataset(d, d.split("test"), result.preprocessor,
                                                       result.model.modalities).full_batch())

    read_data, fit_data = fresh_draw(spec, FRESH_SAMPLES, draw=1), fresh_draw(spec, FRESH_SAMPLES, draw=2)
    read, fit = run(read_data), run(fit_data)
    x_read, x_fit = features(read), features(fit)

    def examples(i: int, corruption: str):
        rng = np.random.default_rng([seed, i])
        if corruption == "swap":
            return swapped_examples(fit, fit_data, x_fit, i, rng)
        return noisy_examples(fit, fit_data, x_fit, i, run, spec.noise_snr_db, rng)

    all_clean = np.ones(len(read.labels), dtype=bool)
    for m in read.modalities:
        all_clean &= np.asarray(read_data.truth[m])[read.indices] == TRUTH_CODES.index("clean")
    rows = []
    for i, m in enumerate(read.modalities):
        for corruption in SCORED:
            hit, clean = truth_cells(read, read_data, i, corruption)
            if not hit.any() or not clean.any():
                continue
            rows.append({"set": set_name, "backbone": backbone, "seed": seed, "modality": m,
                         "corruption": corruption, "n_corrupted": int(hit.sum()),
                         "gate": auroc(1 - read.alpha[hit, i], 1 - read.alpha[clean, i]),
                         "gate_all_clean": auroc(1 - read.alpha[hit, i], 1 - read.alpha[clean & all_clean, i]),
                         "support": auroc(-read.support[hit, i], -read.support[clean, i]),
                         "ceiling": ceiling(*examples(i, corruption), read, read_data, x_read, i, corruption, seed)})
    return rows


def report(frame: pd.DataFrame) -> str:
    """Per set and corruption, mean over the runs: the worst modality's gate, the ceiling of that same
    cell, and the lowest ceiling of any modality (what bounds a worst-modality target); then each
    run's worst cell; then how many cells the ceiling itself leaves below the target."""
    lines = ["# AUROC against the truth on 10,000 fresh samples. gate: the worst modality's; its ceiling: the "
             "detector's on that same cell; lowest ceiling: of any modality (the most a worst-modality figure can "
             "reach); mean over the runs", ""]
    keys = ["set", "corruption", "backbone", "seed"]
    worst = frame.loc[frame.groupby(keys)["gate"].idxmin()].set_index(keys)
    table = pd.DataFrame({"gate": worst["gate"], "gate_all_clean": worst["gate_all_clean"],
                          "its ceiling": worst["ceiling"],
                          "lowest ceiling": frame.groupby(keys)["ceiling"].min()})
    lines.append(table.groupby(["set", "corruption"]).mean().round(3).to_string())
    lines.append("")
    run_keys = ["set", "backbone", "seed"]
    cell = frame.loc[frame.groupby(run_keys)["gate"].idxmin()].set_index(run_keys)
    lines.append("worst cell of each run (over modalities and corruptions): its gate and its ceiling")
    lines.append(cell[["modality", "corruption", "gate", "ceiling"]].round(3).to_string())
    lines.append("")
    beaten = frame[frame["gate"] > frame["ceiling"]]
    lines.append(f"cells where the gate beats the detector (its figure is then no ceiling): {len(beaten)} of {len(frame)}")
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
    try:
        overrides = parse_settings(args.overrides)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    torch.set_num_threads(1)
    rows: List[Dict[str, object]] = []
    for seed in args.seeds:
        for set_name in args.sets:
            for backbone in args.backbones:
                new = rows_for(set_name, backbone, seed, overrides)
                print(pd.DataFrame(new).round(3).to_string(index=False), flush=True)
                rows.extend(new)
                if args.out:
                    pd.DataFrame(rows).to_csv(args.out, index=False)
    print(report(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
