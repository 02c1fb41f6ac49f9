"""How much of the class a noise-corrupted modality still carries, and what that means for the gates.

The synthetic benchmark marks a modality drowned in noise (default -10 dB) as corrupted, and scores
1 - alpha against that truth. But a gate made from *agreement with the other modalities* can only
damp a noisy modality whose content no longer agrees; a modality whose encoder still recovers the
class through the noise (averaging over many time steps does that) agrees, and damping it would
throw information away. This script measures both sides on one trained model per data set:

* a linear probe per modality, fitted on the clean training samples' encoder summaries, read on
  the clean, noise-corrupted and swapped test samples: how often each still shows the right class;
* the AUROC of 1 - alpha against clean samples, for the noise-corrupted samples the probe still
  reads right and for those it reads wrong, beside the swaps.

    python -m experiments.noise_information > results/gates/noise_information.txt

Several noise levels (``--snr``) show how detection follows the information the noise removes.
Larger data sets than the benchmark's (``--samples``) keep the per-cell counts usable.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Dict, List

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression

from precal.data.dataset import MultimodalDataset
from precal.data.storage import TRUTH_CODES
from precal.data.synthetic import BENCHMARK_SETS, generate
from precal.inference import Predictions, predict
from precal.metrics import auroc
from precal.training import TrainConfig, train

SETS = BENCHMARK_SETS  # its sample count is set per run (--samples)
CLEAN, NOISE, SWAP = (TRUTH_CODES.index(c) for c in ("clean", "noise", "swap"))


def _predictions(result, data, split: str) -> Predictions:
    ds = MultimodalDataset(data, data.split(split), result.preprocessor, result.model.modalities)
    return predict(result.model, ds.full_batch())


def rows_for(set_name: str, snr_db: float, samples: int, backbone: str, seed: int) -> List[Dict[str, object]]:
    spec = replace(SETS[set_name], samples=samples, noise_snr_db=snr_db, seed=seed)
    data = generate(spec)
    result = train(TrainConfig(data=f"<synthetic {set_name}>", backbone=backbone, seed=seed, threads=1),
                   progress=False, data=data)
    tr, te = _predictions(result, data, "train"), _predictions(result, data, "test")
    rows = []
    for i, m in enumerate(te.modalities):
        codes_tr = np.asarray(data.truth[m])[tr.indices]
        codes_te = np.asarray(data.truth[m])[te.indices]
        fit = tr.present[:, i] & (codes_tr == CLEAN)
        probe = LogisticRegression(max_iter=3000).fit(tr.summaries_before[m][fit], tr.labels[fit])
        right = probe.predict(te.summaries_before[m]) == te.labels
        scored = te.present[:, i] & te.has_context[:, i]
        clean = scored & (codes_te == CLEAN)
        gate = 1 - te.alpha[:, i]
        cells = {"noise, probe right": scored & (codes_te == NOISE) & right,
                 "noise, probe wrong": scored & (codes_te == NOISE) & ~right,
                 "noise, all": scored & (codes_te == NOISE),
                 "swap": scored & (codes_te == SWAP)}
        row: Dict[str, object] = {"set": set_name, "snr_db": snr_db, "modality": m,
                                  "probe clean": float(right[clean].mean()),
                                  "probe noise": float(right[cells["noise, all"]].mean()),
                                  "probe swap": float(right[cells["swap"]].mean())}
        for name, hit in cells.items():
            row[f"n {name}"] = int(hit.sum())
            row[f"AUROC {name}"] = auroc(gate[hit], gate[clean]) if hit.sum() >= 3 else float("nan")
        rows.append(row)
    return rows


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=["mixed3", "tokens2"], choices=list(SETS))
    parser.add_argument("--snr", nargs="+", type=float, default=[-10.0, -20.0], help="noise levels, dB")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--backbone", default="late")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [r for s in args.sets for snr in args.snr for r in rows_for(s, snr, args.samples, args.backbone, args.seed)]
    frame = pd.DataFrame(rows)
    print(f"# {args.backbone} backbone, precal train's defaults, seed {args.seed}, {args.samples} samples per set "
          f"(test split: 20%)")
    print("# probe: share of test samples whose modality alone (linear probe on its encoder summary, fitted on clean "
          "training samples) shows the right class; AUROC: 1 - alpha of that group against clean samples")
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(frame.round(3).to_string(index=False))
    for snr, group in frame.groupby("snr_db", sort=False):
        print(f"\nSNR {snr:+.0f} dB: noisy modalities the probe still reads right {group['probe noise'].mean():.0%} "
              f"(clean {group['probe clean'].mean():.0%}); AUROC of 1 - alpha: noise, probe right "
              f"{group['AUROC noise, probe right'].mean():.3f}; noise, probe wrong "
              f"{group['AUROC noise, probe wrong'].mean():.3f}; all noise {group['AUROC noise, all'].mean():.3f}; "
              f"swaps {group['AUROC swap'].mean():.3f} (mean over modalities)")


if __name__ == "__main__":
    main()
