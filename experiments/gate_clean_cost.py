"""What the per-sample gates cost on clean data and what they buy under a swap.

A calibrated model's gates respond to each sample's evidence. Whether that response helps is
measured here on each trained calibrated model with its own weights:

* **gated**: the model as trained (each sample's gates from its evidence);
* **typical**: the same model with every evidence weight set to zero
  (:func:`experiments.cue_shift.without_evidence`), so that every sample gets its modality's typical
  gates (alpha = 2 sigma(b), beta = 2 sigma(c): the level the bias carries, no per-sample response).

Gated minus typical on the clean test split is what responding costs (negative) or gains (positive)
when nothing is wrong; the same difference with one modality of *every* test sample swapped in from
a sample of another class (the sweep's top swap severity, corruption seed 0), per swapped modality,
is what it buys when something is. Beside it, how far the swapped modality's alpha fell on the
swapped samples and how far the other modalities' fell (mean over them): a gate made from agreement
can only damp the odd one out when there is one. Seed 0 is the shipped checkpoint; seeds 1-4 the
checkpoints ``bash scripts/train_all.sh SEED ROOT/seedSEED`` trains (the evidence runs' recipe).

    python -m experiments.gate_clean_cost --seeds-root ROOT > results/gates/gate_clean_cost.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import ContextManager, Dict, List, Optional

import numpy as np
import torch

from experiments.cue_shift import without_evidence
from experiments.figures import mean_std
from experiments.robustness_report import pairs
from precal.checkpoint import load_checkpoint
from precal.data.storage import load_dataset
from precal.evaluation import dataset_for, resolve_data_dir
from precal.metrics import auroc
from precal.robustness.engine import Encoded, corrupted_features, encode_split, fuse_split


EVIDENCE_WEIGHTS = ["alpha_weight", "beta_agreement", "beta_discrepancy"]


def typical_gates(model: torch.nn.Module) -> ContextManager[None]:
    """Every evidence weight of ``model``'s calibrator is zero inside: each modality gets its
    typical gates on every sample."""
    return without_evidence(model.calibrator, EVIDENCE_WEIGHTS)


FULL_SWAP = 5
"""The sweep's top swap severity: every test sample gets the modality of a sample of another class."""


def accuracy(model: torch.nn.Module, enc: Encoded, labels: np.ndarray) -> float:
    return float((fuse_split(model, enc).predicted == labels).mean())


def measure(calibrated: Path, split: str = "test") -> Dict[str, Dict[str, float]]:
    """For one calibrated checkpoint: clean accuracy gated and at typical gates (key "clean"), and per
    swapped modality the same under a full swap, the AUROC of 1 - alpha for its swapped samples
    against the clean ones, and how far each gate fell on the swapped samples."""
    ckpt = load_checkpoint(calibrated)
    model = ckpt.model.eval()
    batch = dataset_for(ckpt, load_dataset(resolve_data_dir(ckpt, None)), split).full_batch()
    labels = batch.labels.numpy()
    out: Dict[str, Dict[str, float]] = {}
    with torch.no_grad():
        clean = encode_split(model, batch)
        plain = fuse_split(model, clean)
        with typical_gates(model):
            out["clean"] = {"gated": float((plain.predicted == labels).mean()),
                            "typical": accuracy(model, clean, labels)}
        names = list(plain.modalities)
        for m in model.modalities:
            enc, affected = corrupted_features(model, batch, clean, m, "swap", FULL_SWAP, 0)
            swapped = fuse_split(model, enc)
            with typical_gates(model):
                typical = accuracy(model, enc, labels)
            rows = affected.astype(bool)
            drop = plain.alpha[rows].mean(axis=0) - swapped.alpha[rows].mean(axis=0)
            i = names.index(m)
            out[m] = {"gated": float((swapped.predicted == labels).mean()), "typical": typical,
                      "auroc": auroc(1 - swapped.alpha[rows, i], 1 - plain.alpha[:, i]),
                      "own drop": float(drop[i]),
                      "others drop": float(np.mean([d for k, d in zip(names, drop) if k != m])),
                      "swapped": float(rows.mean())}
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds-root", type=Path,
                        help="folder with seed1..seed4 of the evidence recipe's checkpoints (else seed 0 only)")
    args = parser.parse_args(argv)
    print("Accuracy (%) on the test split, gated (as trained) and at typical gates (every evidence weight zero), "
          "clean and with one modality swapped in from a sample of another class in every test sample; the "
          "alpha drops are mean clean alpha minus swapped alpha over the swapped samples.")
    for name, on, _ in pairs():
        folders = {0: on}
        if args.seeds_root:
            for seed in range(1, 5):
                folder = args.seeds_root / f"seed{seed}" / on.name
                if folder.is_dir():
                    folders[seed] = folder
        results = {seed: measure(folder) for seed, folder in folders.items()}
        print(f"\n{name} ({len(results)} seed(s))")
        for seed, r in results.items():
            parts = [f"clean {100 * r['clean']['gated']:.1f} / {100 * r['clean']['typical']:.1f}"]
            parts += [f"{m} swapped {100 * v['gated']:.1f} / {100 * v['typical']:.1f} (alpha drop {v['own drop']:.3f}, "
                      f"others {v['others drop']:.3f})" for m, v in r.items() if m != "clean"]
            print(f"  seed {seed}: " + "; ".join(parts), flush=True)
        for what in results[0]:
            change = [r[what]["gated"] - r[what]["typical"] for r in results.values()]
            line = f"  gated - typical, {'clean' if what == 'clean' else what + ' swapped'}: {mean_std(change, 100, 1, signed=True)} points"
            if what != "clean":
                line += (f"; alpha falls by {mean_std([r[what]['own drop'] for r in results.values()], 1, 3, signed=True)} for {what}, "
                         f"{mean_std([r[what]['others drop'] for r in results.values()], 1, 3, signed=True)} for the others")
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
