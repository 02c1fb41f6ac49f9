"""What the per-sample gates cost on clean data and what they buy under a swap.

The calibrated models are level with their baselines on the inner folds but 0.2-1.8 points below on
the test splits (docs/results/accuracy.md). One candidate cause is the gates themselves: a clean
test sample whose cues look atypical (a new speaker or subject) gets a modality damped that the
model needed. This measures it on each trained calibrated model directly, with its own weights:

* **gated**: the model as trained (each sample's gates from its evidence);
* **typical**: the same model with every cue's evidence set to zero, so that every sample gets its
  modality's typical gates (alpha = 2 sigma(b), beta = 2 sigma(c): the level the bias carries, no
  per-sample response).

Gated minus typical on the clean test split is what responding to each sample costs (negative) or
gains (positive) when nothing is wrong; the same difference with one modality swapped in from a
sample of another class (severity 1, corruption seed 0, averaged over the modalities) is what the
response buys when something is. Beside it, how far the swapped modality's mean alpha fell and how
far the other modalities' fell (mean over them): a gate made from agreement can only damp the odd
one out when there is one. Seed 0 is the shipped checkpoint; seeds 1-4 the checkpoints
``bash scripts/train_all.sh SEED ROOT/seedSEED`` trains (the evidence runs' recipe).

    python -m experiments.gate_clean_cost --seeds-root ROOT > results/gates/gate_clean_cost.txt
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
import torch

from experiments.robustness_report import pairs
from precal.checkpoint import load_checkpoint
from precal.data.storage import load_dataset
from precal.evaluation import dataset_for, resolve_data_dir
from precal.evidence import EvidenceReference
from precal.robustness.engine import corrupted_features, encode_split, fuse_split


@contextlib.contextmanager
def typical_gates() -> Iterator[None]:
    """Every cue's evidence is zero inside: each modality gets its typical gates on every sample."""
    original = EvidenceReference.standardise

    def zero(self, cues, valid, margin=0.0):  # noqa: ANN001 (same signature as the method it replaces)
        return torch.zeros_like(cues)

    EvidenceReference.standardise = zero
    try:
        yield
    finally:
        EvidenceReference.standardise = original


def accuracy(model, enc, labels: np.ndarray) -> float:
    return float((fuse_split(model, enc).predicted == labels).mean())


def measure(calibrated: Path, split: str = "test") -> Dict[str, float]:
    """Clean and swapped accuracy of one calibrated checkpoint, gated and at typical gates."""
    ckpt = load_checkpoint(calibrated)
    ckpt.model.eval()
    batch = dataset_for(ckpt, load_dataset(resolve_data_dir(ckpt, None)), split).full_batch()
    labels = batch.labels.numpy()
    with torch.no_grad():
        clean = encode_split(ckpt.model, batch)
        plain = fuse_split(ckpt.model, clean)
        out = {"clean gated": float((plain.predicted == labels).mean())}
        with typical_gates():
            out["clean typical"] = accuracy(ckpt.model, clean, labels)
        gated, typical, own, others = [], [], [], []
        names = list(plain.modalities)
        for m in ckpt.model.modalities:
            enc, _ = corrupted_features(ckpt.model, batch, clean, m, "swap", 1, 0)
            swapped = fuse_split(ckpt.model, enc)
            gated.append(float((swapped.predicted == labels).mean()))
            with typical_gates():
                typical.append(accuracy(ckpt.model, enc, labels))
            drop = plain.alpha.mean(axis=0) - swapped.alpha.mean(axis=0)  # how far each modality's gate fell
            own.append(float(drop[names.index(m)]))
            others.append(float(np.mean([d for k, d in zip(names, drop) if k != m])))
        out["swap gated"], out["swap typical"] = float(np.mean(gated)), float(np.mean(typical))
        out["own drop"], out["others drop"] = float(np.mean(own)), float(np.mean(others))
    return out


def _pm(values: List[float]) -> str:
    return f"{100 * statistics.mean(values):+.1f} ± {100 * (statistics.stdev(values) if len(values) > 1 else 0):.1f}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds-root", type=Path,
                        help="folder with seed1..seed4 of the evidence recipe's checkpoints (else seed 0 only)")
    args = parser.parse_args(argv)
    print("accuracy (%) on the test split; gated: as trained; typical: every sample at its modality's typical "
          "gates; swap: one modality swapped in from another class, mean over the modalities")
    print(f"{'pair':20s} {'seed':>4s} {'clean gated':>11s} {'typical':>8s} {'swap gated':>10s} {'typical':>8s} "
          f"{'alpha drop: swapped':>19s} {'others':>7s}")
    for name, on, _ in pairs():
        folders = {0: on}
        if args.seeds_root:
            for seed in range(1, 5):
                folder = args.seeds_root / f"seed{seed}" / on.name
                if folder.is_dir():
                    folders[seed] = folder
        results = {seed: measure(folder) for seed, folder in folders.items()}
        for seed, r in results.items():
            print(f"{name:20s} {seed:4d} {100 * r['clean gated']:11.1f} {100 * r['clean typical']:8.1f} "
                  f"{100 * r['swap gated']:10.1f} {100 * r['swap typical']:8.1f} {r['own drop']:19.3f} "
                  f"{r['others drop']:7.3f}", flush=True)
        clean = [r["clean gated"] - r["clean typical"] for r in results.values()]
        swap = [r["swap gated"] - r["swap typical"] for r in results.values()]
        own = [r["own drop"] for r in results.values()]
        others = [r["others drop"] for r in results.values()]
        print(f"{name:20s} gated - typical, points over {len(results)} seed(s): clean {_pm(clean)}, "
              f"swapped {_pm(swap)}; alpha falls by {statistics.mean(own):.3f} for the swapped modality, "
              f"{statistics.mean(others):.3f} for the others", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
