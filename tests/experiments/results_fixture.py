"""A small results folder in the layout the drivers write (one folder per run, loose sweep tables),
with every store the report generators read, so each of their sections has something to show.

Numbers come from a seeded generator: long floats, as real runs write them, so a store that
rounded or reordered anything would change a section.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

MODALITIES = {"utd-mhad": ["inertial", "skeleton", "depth"], "avletters": ["audio", "lips"]}
CLASSES = ["wave", "clap", "throw"]
SAMPLES = [f"a{a}_s{s}_t{t}" for a in (1, 2, 3) for s in (2, 4) for t in (1, 2)]
GATES = {"off": None, "on": "monotone", "self": "self", "free": "free"}
"""Variant -> the config's gate (None: calibration off; "free": written before the field, none)."""


def _json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))


def _config(dataset: str, modalities: List[str], backbone: str, variant: str, seed: int, epochs: int,
            fit: Optional[str], rng: np.random.RandomState) -> dict:
    model = {"backbone": backbone, "calibration": variant != "off", "modalities": modalities}
    if variant in ("on", "self"):
        model["gate"] = GATES[variant]
    training = {"seed": seed, "epochs": epochs, "threads": int(rng.choice([1, 2]))}
    if fit == "trainval":
        training.update(train_split="train+val", selection="last")
    elif fit == "val":
        training.update(train_split="train", selection="best")
    return {"format": "precal-checkpoint", "model": model, "schema": {"name": dataset}, "training": training}


def _sweep(checkpoint: str, dataset: str, backbone: str, calibrated: bool, corruptions: List[str],
           severities: List[int], rng: np.random.RandomState) -> pd.DataFrame:
    mods = MODALITIES[dataset]
    rows = []
    for mod in mods:
        for corruption in corruptions:
            for severity in [0, *severities]:
                row = {"checkpoint": checkpoint, "dataset": dataset, "backbone": backbone, "calibration": calibrated,
                       "modality": mod, "corruption": corruption, "severity": severity,
                       "level": "clean" if severity == 0 else f"severity {severity}", "metric": "accuracy",
                       "value": 0.95 - 0.1 * severity * rng.rand(), "n": 260}
                for m in mods:
                    row[f"alpha_{m}"] = 1.2 - 0.08 * severity * rng.rand() if calibrated else 1.0
                for cue in ("conflict", "support", "alpha"):
                    row[f"auroc_{cue}"] = rng.rand() if severity else np.nan
                rows.append(row)
    return pd.DataFrame(rows)


def _run(folder: Path, dataset: str, modalities: List[str], backbone: str, variant: str, seed: int,
         rng: np.random.RandomState, epochs: int = 40, fit: Optional[str] = "trainval",
         history: bool = True, predictions: bool = False, swap: bool = False) -> None:
    config = _config(dataset, modalities, backbone, variant, seed, epochs, fit, rng)
    accuracy = 0.85 + 0.1 * rng.rand()
    n = len(CLASSES)
    matrix = (np.eye(n, dtype=int) * 4 + (rng.rand(n, n) < 0.3)).tolist()
    metrics = {"selected_epoch": 2, "val": {"accuracy": 0.9 + 0.1 * rng.rand()},
               "test": {"accuracy": accuracy, "macro_f1": accuracy - 0.01 * rng.rand(), "confusion_matrix": matrix},
               "train_seconds": 20 + 100 * rng.rand()}
    _json(folder / "config.json", config)
    _json(folder / "metrics.json", metrics)
    if history:
        _json(folder / "history.json", [
            {"epoch": e, "lr": 1e-3 * rng.rand(), "train_loss": rng.rand(),
             "modalities": {m: {"alpha_mean": 0.8 + 0.5 * rng.rand(), "probe_accuracy": rng.rand()}
                            for m in modalities}} for e in (1, 2, 3)])
    if predictions:
        truth = [CLASSES[int(s[1]) - 1] for s in SAMPLES]
        wrong = rng.rand(len(SAMPLES)) < 0.3
        pd.DataFrame({"sample_id": SAMPLES, "true": truth,
                      "predicted": [CLASSES[(CLASSES.index(t) + 1) % n] if w else t for t, w in zip(truth, wrong)]}
                     ).to_csv(folder / "test_predictions.csv", index=False)
    if swap:
        _sweep(folder.name, dataset, backbone, True, ["swap"], [1], rng).to_csv(
            folder / "swap.csv", index=False, float_format="%.6g")


def _evidence(store: Path, rng: np.random.RandomState, variants=("off", "on", "self"), seeds=(0, 1, 2),
              datasets=("utd-mhad", "avletters"), unimodal: bool = True, **kwargs) -> None:
    """Every data set x backbone x variant (and the unimodal models), several seeds."""
    for dataset in datasets:
        tag = dataset.replace("-", "_")
        for seed in seeds:
            for backbone in ("sequence", "conv"):
                for variant in variants:
                    _run(store / f"{tag}_{backbone}_cal{variant}_seed{seed}", dataset, MODALITIES[dataset],
                         backbone, variant, seed, rng, predictions=dataset == "utd-mhad",
                         swap=variant in ("on", "self"), **kwargs)
            for m in MODALITIES[dataset] if unimodal else ():
                _run(store / f"uni_{tag}_{m}_seed{seed}", dataset, [m], "sequence", "off", seed, rng,
                     predictions=dataset == "utd-mhad", **kwargs)


def _inner_folds(store: Path, variants: List[str], held_out: List[int], dataset: str,
                 rng: np.random.RandomState) -> None:
    for variant in variants:
        modalities = MODALITIES[dataset] if variant.startswith(("fused", "conv")) else [variant.split("_")[0]]
        for held in held_out:
            for seed in (0, 1):
                _run(store / f"{variant}_held{held}_seed{seed}", dataset, modalities, "sequence",
                     "on" if "_on" in variant else "off", seed, rng, history=False)


def write_results(root: Path, seed: int = 0) -> Path:
    """The results folder ``root``, in the per-run layout; returns it."""
    rng = np.random.RandomState(seed)
    _evidence(root / "runs", rng)
    _evidence(root / "free_gates" / "runs", rng, variants=("free",), unimodal=False)
    _evidence(root / "avletters_validation_selection" / "runs", rng, variants=("off", "free"),
              datasets=("avletters",), fit="val", history=False)
    for store in ("utd_mhad_validation_selection", "utd_mhad_without_derived_inputs"):
        _evidence(root / store / "runs", rng, variants=("off", "free"), datasets=("utd-mhad",), fit="val",
                  history=False, epochs=60)
    for store in ("runs", "current"):
        _evidence(root / "input_ablation" / store, rng, variants=("off", "free"), datasets=("utd-mhad",), fit=None)
    _inner_folds(root / "inner_fold", ["inertial", "fused_off", "fused_on", "fused_off_ep60", "fused_on_ep60",
                                       "fused_off_ep60_rerun", "fused_on_ep60_rerun"], [1, 7], "utd-mhad", rng)
    _inner_folds(root / "inner_fold_avletters", ["audio", "fused_off", "fused_on", "fused_on_noswap"], [1, 2],
                 "avletters", rng)
    (root / "ablation").mkdir()
    for dataset, backbones in (("utd-mhad", ["sequence"]), ("avletters", ["conv", "sequence"])):
        for backbone in backbones:
            for cal in ("on", "off"):
                for recipe in ("swap", "noswap"):
                    for s in (0, 1, 2):
                        name = f"{dataset}_{backbone}_cal{cal}_{recipe}_seed{s}"
                        _sweep(name, dataset, backbone, cal == "on", ["gaussian_noise", "swap"], [1, 3, 5],
                               rng).to_csv(root / "ablation" / f"{name}.csv", index=False, float_format="%.6g")
    (root / "gates" / "free_shipped").mkdir(parents=True)
    for dataset in MODALITIES:
        for backbone in ("sequence", "conv"):
            name = f"{dataset.replace('-', '_')}_{backbone}_calon"
            _sweep(name, dataset, backbone, True, ["swap"], [1], rng).to_csv(
                root / "gates" / "free_shipped" / f"{name}.csv", index=False, float_format="%.6g")
    return root


STORES = ("runs", "free_gates/runs", "avletters_validation_selection/runs", "utd_mhad_validation_selection/runs",
          "utd_mhad_without_derived_inputs/runs", "input_ablation/runs", "input_ablation/current", "inner_fold",
          "inner_fold_avletters", "ablation")
"""The stores of :func:`write_results`, relative to its root."""


def stores_of(root: Path) -> Dict[str, Path]:
    return {name: root / name for name in STORES}
