"""Two pre-extracted feature vectors per sample (an image and a text embedding), the data a new user
most often brings: does ``precal train`` give gates that see a swap, per evidence mode?

The data is made here, not taken from the synthetic benchmark: two vector modalities of 1024 and 768
dimensions, each a noisy non-linear view of a 64-d latent class code, 100 classes, 20,000 samples
(14,000 train, 2,000 val, 4,000 test), both views strong on their own. It is easy (test accuracy
near 100%) and has two modalities, the case where a conflict has no culprit: a swap lowers both
modalities' evidence alike. The swap is measured exactly as ``precal robustness CK --corruptions swap
--severities 1`` does (AUROC of 1 - alpha for the swapped modality, and of its support cue), beside
each run's learned centring share and mean alpha.

    python -m experiments.two_feature_vectors --out results/gates/two_feature_vectors.csv   (seed 0)
    python -m experiments.two_feature_vectors --backbones late score --seeds 1 --out SEED1.csv   (rows added)
    python -m experiments.two_feature_vectors --report results/gates/two_feature_vectors.csv
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Dict, List

import numpy as np
import pandas as pd
import torch

from experiments.unseen_defaults import stored_rows
from precal.checkpoint import load_checkpoint
from precal.data.schema import DatasetSchema, ModalitySchema
from precal.data.storage import MultimodalData, build_ragged
from precal.robustness.sweep import sweep_checkpoint
from precal.training import TrainConfig, train
from precal.training.config import EVIDENCE_MODES

BACKBONES = ("sequence", "conv", "late", "score")


def make_data(samples: int = 20_000, classes: int = 100, dims=(1024, 768), latent: int = 64,
              seed: int = 7) -> MultimodalData:
    """Image and text features of one latent class code each (tanh of a random projection, plus noise)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, samples)
    code = rng.normal(size=(classes, latent))[labels] + 0.9 * rng.normal(size=(samples, latent))

    def view(dim: int, noise: float) -> np.ndarray:
        weights = rng.normal(size=(latent, dim)) / np.sqrt(latent)
        return (np.tanh(code @ weights) + noise * rng.normal(size=(samples, dim))).astype(np.float32)

    image, text = view(dims[0], 0.6), view(dims[1], 0.8)
    schema = DatasetSchema("two_feature_vectors", (ModalitySchema("image", "vector", (dims[0],)),
                                                   ModalitySchema("text", "vector", (dims[1],))),
                           class_names=tuple(f"c{i}" for i in range(classes)))
    order = rng.permutation(samples)
    cut = (int(0.7 * samples), int(0.8 * samples))
    splits = {"train": np.sort(order[:cut[0]]), "val": np.sort(order[cut[0]:cut[1]]), "test": np.sort(order[cut[1]:])}
    return MultimodalData(schema, np.array([f"s{i}" for i in range(samples)]), labels,
                          {"image": build_ragged(list(image[:, None]), (dims[0],), np.float32),
                           "text": build_ragged(list(text[:, None]), (dims[1],), np.float32)}, splits)


def rows_for(data: MultimodalData, backbone: str, evidence: str, seed: int) -> List[Dict[str, object]]:
    cfg = TrainConfig(data="<two feature vectors>", backbone=backbone, seed=seed, threads=1, evidence=evidence)
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, out=Path(tmp) / "ck", progress=False, data=data)
        ckpt = load_checkpoint(Path(tmp) / "ck")
        table = sweep_checkpoint(ckpt, data, "test", seed=0, severities=(1,), corruptions=["swap"])
    share = ckpt.model.calibrator.centring_share().detach().numpy()
    clean = table[table["severity"] == 0]
    rows = []
    for r in table[table["severity"] == 1].itertuples():
        i = list(ckpt.model.modalities).index(r.modality)
        rows.append({"backbone": backbone, "evidence": evidence, "seed": seed, "modality": r.modality,
                     "accuracy": float(clean["value"].iloc[0]), "gate": float(r.auroc_alpha),
                     "support": float(r.auroc_support), "share": float(share[i]),
                     "alpha_clean": float(clean[f"alpha_{r.modality}"].iloc[0])})
    return rows


def report(frame: pd.DataFrame) -> str:
    cols = ["accuracy", "gate", "support", "share", "alpha_clean"]
    with pd.option_context("display.width", 200):
        return (f"# {len(frame)} modality x run rows; gate / support: AUROC of 1 - alpha / of the support cue for "
                "a swap at severity 1 (precal robustness); share: the learned centring share (0 for absolute)\n"
                + frame.groupby(["backbone", "evidence", "modality"])[cols].mean().round(3).to_string())


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--evidence", nargs="+", default=["learned", "capped"], choices=EVIDENCE_MODES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--out", type=Path, help="write the rows as CSV")
    parser.add_argument("--report", nargs="+", type=Path, metavar="CSV", help="only summarise stored rows")
    args = parser.parse_args(argv)
    if args.report:
        print(f"# python -m experiments.two_feature_vectors --report {' '.join(map(str, args.report))}")
        print(report(pd.concat([pd.read_csv(p) for p in args.report], ignore_index=True)))
        return
    torch.set_num_threads(1)
    data = make_data()
    rows: List[Dict[str, object]] = []
    for seed in args.seeds:
        for backbone in args.backbones:
            for evidence in args.evidence:
                new = rows_for(data, backbone, evidence, seed)
                rows += new
                print(" ".join(f"{r['modality']}:{r['gate']:.3f}" for r in new), f"<- {backbone} {evidence} seed {seed}",
                      flush=True)
    print(report(stored_rows(rows, args.out)))


if __name__ == "__main__":
    main()
