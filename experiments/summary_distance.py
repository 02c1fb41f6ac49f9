"""Can a modality's own summary tell noise that the comparison cues miss? (why the atypicality cue)

Trains ``precal train``'s defaults on one synthetic set (default ``mixed3``: a time series, a frame
sequence and a vector, 2,000 samples, 30% with one modality drowned in noise, swapped or removed),
then scores, on 10,000 fresh samples of the same world, how well each signal separates the noisy or
swapped modalities from clean ones (AUROC): the gate (1 - alpha), the support cue, and the distance
of the modality's encoder summary from the training summaries, with a full covariance
(Mahalanobis) and with per-channel variances only. The training summaries are all present ones of
the training split, corrupted or not, as a running reference would see them.

    python -m experiments.summary_distance [--set mixed3] [--backbone late] [--seed 0]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Dict, List

import numpy as np
import torch

from precal.data.dataset import MultimodalDataset
from precal.data.storage import TRUTH_CODES
from precal.data.synthetic import BENCHMARK_SETS, fresh_draw, generate
from precal.inference import Predictions, predict
from precal.metrics import auroc
from precal.training import TrainConfig, train
from precal.typicality import RIDGE

def distances(reference: np.ndarray, x: np.ndarray, ridge: float = RIDGE) -> Dict[str, np.ndarray]:
    """Squared distance of each row of ``x`` from the reference rows: full covariance and diagonal."""
    mean = reference.mean(axis=0)
    cov = np.cov(reference, rowvar=False)
    cov = cov + ridge * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    d = x - mean
    return {"full covariance": np.einsum("nd,de,ne->n", d, np.linalg.inv(cov), d),
            "per-channel variances": ((d / np.sqrt(np.diag(cov))) ** 2).sum(axis=1)}


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="mixed3", choices=list(BENCHMARK_SETS))
    parser.add_argument("--backbone", default="late")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = replace(BENCHMARK_SETS[args.set], seed=args.seed)
    data = generate(spec)
    result = train(TrainConfig(data=f"<synthetic {args.set}>", backbone=args.backbone, seed=args.seed, threads=1),
                   progress=False, data=data)

    def run(d, split: str) -> Predictions:
        return predict(result.model, MultimodalDataset(d, d.split(split), result.preprocessor,
                                                       result.model.modalities).full_batch())

    fitted = run(data, "train")
    fresh = fresh_draw(spec, 10_000)
    preds = run(fresh, "test")
    print(f"# python -m experiments.summary_distance --set {args.set} --backbone {args.backbone} --seed {args.seed}")
    print(f"# {len(preds.labels)} fresh samples; AUROC against the clean ones of each modality")
    for i, m in enumerate(preds.modalities):
        codes = np.asarray(fresh.truth[m])[preds.indices]
        clean = (codes == TRUTH_CODES.index("clean")) & preds.present[:, i]
        scores = distances(fitted.summaries_before[m][fitted.present[:, i]], preds.summaries_before[m])
        for name in ("noise", "swap"):
            hit = (codes == TRUTH_CODES.index(name)) & preds.present[:, i]
            if not hit.any():
                continue
            cells = {"gate": auroc(1 - preds.alpha[hit, i], 1 - preds.alpha[clean, i]),
                     "support": auroc(-preds.support[hit, i], -preds.support[clean, i]),
                     **{k: auroc(v[hit], v[clean]) for k, v in scores.items()}}
            print(f"{m:15s} {name:5s} n={int(hit.sum()):4d} " + "  ".join(f"{k} {v:.3f}" for k, v in cells.items()))


if __name__ == "__main__":
    main()
