"""Design choices without touching the test split: inner folds inside the training data.

UTD-MHAD. The official validation split (trial 4 of the training subjects) saturates at 100% and
cannot see whether a choice transfers to *new subjects*, which is what the test split measures. An
inner fold holds out one training subject instead: fit on the other three (trials 1-3, trial 4 for
model selection), score on the held-out one. Subject 7 is the first fold; subjects 1, 3 and 5 give
the other three (leave-one-training-subject-out). Subjects 2, 4, 6, 8 are never read.

AVLetters. The test split is repetition 3 of every letter and speaker, and the official validation
split is drawn from the same repetitions as training (1-2), so it cannot see whether a choice
transfers to a *new repetition*; on AVLetters/sequence it even ranks the models the other way
round from the test split. An inner fold holds out repetition 1 or 2: fit on the other one (its
official train part, its official val part for model selection), score on the held-out
repetition. Repetition 3 is never read.

    python -m experiments.inner_fold split OUT_DIR [HELD_OUT [DATASET]]  # one fold's data set
    python -m experiments.inner_fold report [DATASET]                     # stored runs -> README section

DATASET is utd_mhad (default) or avletters. ``scripts/inner_fold.sh`` trains the variants and folds
their metrics into the store results/inner_fold/ (UTD-MHAD) or results/inner_fold_avletters/ (see
``experiments/results_store.py``), one run <variant>_held<S>_seed<N> each.
"""
from __future__ import annotations

import json
import shutil
import sys
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import pandas as pd

from experiments import results_store
from experiments.figures import mean_std
from experiments.readme_section import replace_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
"""The stores below are folders under a results folder (this one, or a test's)."""
SOURCE = ROOT / "sample_data" / "utd_mhad"
STORE = "inner_fold"
TRAINING_SUBJECTS, FIRST_HELD_OUT, SELECTION_TRIAL = (1, 3, 5, 7), 7, 4
AVL_SOURCE = ROOT / "sample_data" / "avletters"
AVL_STORE = "inner_fold_avletters"
RUN_NAMES = "*_held*_seed*"
"""<variant>_held<S>_seed<N>: what a fold's run is called."""
AVL_TRAINING_REPETITIONS = (1, 2)

VARIANTS = {  # name -> what it is (the arguments are in scripts/inner_fold.sh)
    "inertial": "inertial alone",
    "skeleton_camera": "skeleton alone, camera coordinates",
    "skeleton_hip": "skeleton alone, hip-centred",
    "depth_frames": "depth alone, per-frame trunk",
    "depth_motion": "depth alone, motion-energy trunk",
    "fused_previous_off": "fused baseline, earlier inputs (per-frame depth, camera skeleton)",
    "fused_off": "fused baseline (shipped inputs and augmentation, 40 epochs)",
    "fused_on": "fused calibrated (shipped inputs and augmentation, 40 epochs)",
    "fused_on_aux0": "fused calibrated, no cue objective (--aux-weight 0)",
    "fused_on_nocuegrad": "fused calibrated, cues on detached features (--cue-gradient off)",
    "fused_off_noswap": "fused baseline, no swap augmentation",
    "fused_on_noswap": "fused calibrated, no swap augmentation",
    "fused_off_ep60": "fused baseline, 60 epochs instead of 40",
    "fused_on_ep60": "fused calibrated, 60 epochs instead of 40",
    "fused_off_ep60_noswap": "fused baseline, 60 epochs, no swap augmentation",
    "fused_on_ep60_noswap": "fused calibrated, 60 epochs, no swap augmentation",
    "fused_off_ep80": "fused baseline, 80 epochs",
    "fused_on_ep80": "fused calibrated, 80 epochs",
    "fused_off_ep60_unimodal": "fused baseline, 60 epochs, per-encoder loss (--unimodal-loss 0.5)",
    "fused_on_ep60_unimodal": "fused calibrated, 60 epochs, per-encoder loss (--unimodal-loss 0.5)",
    "fused_off_ep60_rot15": "fused baseline, 60 epochs, inertial and skeleton rotated up to 15°",
    "fused_on_ep60_rot15": "fused calibrated, 60 epochs, inertial and skeleton rotated up to 15°",
    "fused_off_ep60_rot30": "fused baseline, 60 epochs, inertial and skeleton rotated up to 30°",
    "fused_on_ep60_rot30": "fused calibrated, 60 epochs, inertial and skeleton rotated up to 30°",
    "fused_off_ep60_avg20": "fused baseline, 60 epochs, weights averaged over the last 20 (--average-epochs 20)",
    "fused_on_ep60_avg20": "fused calibrated, 60 epochs, weights averaged over the last 20 (--average-epochs 20)",
    "fused_off_ep60_drop03": "fused baseline, 60 epochs, dropout 0.3 instead of 0.1",
    "fused_on_ep60_drop03": "fused calibrated, 60 epochs, dropout 0.3 instead of 0.1",
    "fused_off_ep60_late": "fused baseline, 60 epochs, late (concatenation) backbone instead of sequence",
    "fused_on_ep60_late": "fused calibrated, 60 epochs, late (concatenation) backbone instead of sequence",
    "fused_off_ep60_swap04": "fused baseline, 60 epochs, swap probability 0.4 instead of 0.2",
    "fused_on_ep60_swap04": "fused calibrated, 60 epochs, swap probability 0.4 instead of 0.2",
    "fused_off_ep60_scale": "fused baseline, 60 epochs, skeleton in torso lengths (--scale)",
    "fused_on_ep60_scale": "fused calibrated, 60 epochs, skeleton in torso lengths (--scale)",
    "fused_off_ep60_dim128": "fused baseline, 60 epochs, width 128 instead of 64 (--dim)",
    "fused_on_ep60_dim128": "fused calibrated, 60 epochs, width 128 instead of 64 (--dim)",
    "fused_off_ep60_rec03": "fused baseline, 60 epochs, same-class modality exchange 0.3 (--recombine-augment)",
    "fused_on_ep60_rec03": "fused calibrated, 60 epochs, same-class modality exchange 0.3 (--recombine-augment)",
    "fused_off_ep60_bs16": "fused baseline, 60 epochs, batch size 16 instead of 32",
    "fused_on_ep60_bs16": "fused calibrated, 60 epochs, batch size 16 instead of 32",
    "fused_off_ep60_time": "fused baseline, 60 epochs, random crop-and-stretch in time 0.5 (--time-augment)",
    "fused_on_ep60_time": "fused calibrated, 60 epochs, random crop-and-stretch in time 0.5 (--time-augment)",
    "fused_off_ep60_trainval": "fused baseline, 60 epochs, trained on train+val, final epoch kept (--train-split train+val --selection last)",
    "fused_on_ep60_trainval": "fused calibrated, 60 epochs, trained on train+val, final epoch kept (--train-split train+val --selection last)",
    "fused_off_ep60_score": "fused baseline, 60 epochs, decision-level backbone with a loss per expert (--backbone score --unimodal-loss 1)",
    "fused_on_ep60_score": "fused calibrated, 60 epochs, decision-level backbone with a loss per expert (--backbone score --unimodal-loss 1)",
    "depth_motion_ep60": "depth alone, motion-energy trunk, 60 epochs, 16 frames",
    "depth_motion_ep60_len32": "depth alone, motion-energy trunk, 60 epochs, 32 frames (--length depth=32)",
    "skeleton_hip_ep60": "skeleton alone, hip-centred, 60 epochs (series trunk)",
    "skeleton_joints_ep60": "skeleton alone, hip-centred, 60 epochs, joint-graph trunk (--point-encoder joints)",
    "fused_off_ep60_joints": "fused baseline, 60 epochs, joint-graph skeleton trunk (--point-encoder joints)",
    "fused_on_ep60_joints": "fused calibrated, 60 epochs, joint-graph skeleton trunk (--point-encoder joints)",
    "fused_off_ep60_mix03": "fused baseline, 60 epochs, mixup with partner weight up to 0.3 (--mixup 0.3)",
    "fused_on_ep60_mix03": "fused calibrated, 60 epochs, mixup with partner weight up to 0.3 (--mixup 0.3)",
    "fused_off_ep60_md07": "fused baseline, 60 epochs, modality dropout 0.7 instead of 0.4",
    "fused_on_ep60_md07": "fused calibrated, 60 epochs, modality dropout 0.7 instead of 0.4",
    "inertial_ep60": "inertial alone, 60 epochs",
    "inertial_ep60_norms": "inertial alone, 60 epochs, with |acc| and |gyro| (--norms inertial=0-2,3-5)",
    "skeleton_hip_ep60_velocity": "skeleton alone, hip-centred, 60 epochs, with joint velocities (--velocity skeleton)",
    "fused_off_ep60_rerun": "fused baseline, 60 epochs, rerun with the current code (reference of the derived inputs)",
    "fused_on_ep60_rerun": "fused calibrated, 60 epochs, rerun with the current code (reference of the derived inputs)",
    "fused_off_ep60_derived": "fused baseline, 60 epochs, joint velocities and IMU norms (--velocity skeleton --norms inertial=0-2,3-5)",
    "fused_on_ep60_derived": "fused calibrated, 60 epochs, joint velocities and IMU norms (--velocity skeleton --norms inertial=0-2,3-5)",
    "fused_off_ep60_derived_rot30": "fused baseline, 60 epochs, derived inputs, inertial and skeleton rotated up to 30°",
    "fused_on_ep60_derived_rot30": "fused calibrated, 60 epochs, derived inputs, inertial and skeleton rotated up to 30°",
    "conv_off_ep60_derived": "conv baseline, 60 epochs, derived inputs (shipped conv recipe)",
    "conv_on_ep60_derived": "conv calibrated, 60 epochs, derived inputs (shipped conv recipe)",
    "conv_off_ep60_derived_noswap": "conv baseline, 60 epochs, derived inputs, no swap augmentation",
    "conv_on_ep60_derived_noswap": "conv calibrated, 60 epochs, derived inputs, no swap augmentation",
    "inertial_ep60_norms_len160": "inertial alone, 60 epochs, with norms, 160 steps instead of 96 (--length inertial=160)",
    "skeleton_hip_ep60_velocity_len64": "skeleton alone, hip-centred, 60 epochs, with velocities, 64 steps instead of 48 (--length skeleton=64)",
    "inertial_ep60_norms_shear02": "inertial alone, 60 epochs, with norms, sheared up to 0.2 (--shear-augment inertial=0.2)",
    "skeleton_hip_ep60_velocity_shear02": "skeleton alone, hip-centred, 60 epochs, with velocities, sheared up to 0.2 (--shear-augment skeleton=0.2)",
    "skeleton_hip_ep60_velocity_shear04": "skeleton alone, hip-centred, 60 epochs, with velocities, sheared up to 0.4",
    "fused_off_ep60_derived_shear02": "fused baseline, 60 epochs, derived inputs, inertial and skeleton sheared up to 0.2",
    "fused_on_ep60_derived_shear02": "fused calibrated, 60 epochs, derived inputs, inertial and skeleton sheared up to 0.2",
    "fused_off_ep60_derived_skshear02": "fused baseline, 60 epochs, derived inputs, skeleton sheared up to 0.2",
    "fused_on_ep60_derived_skshear02": "fused calibrated, 60 epochs, derived inputs, skeleton sheared up to 0.2",
    "fused_off_ep60_derived_uni03": "fused baseline, 60 epochs, derived inputs, per-encoder loss (--unimodal-loss 0.3)",
    "fused_on_ep60_derived_uni03": "fused calibrated, 60 epochs, derived inputs, per-encoder loss (--unimodal-loss 0.3)",
    "fused_off_ep60_derived_trainval": "fused baseline, 60 epochs, derived inputs, trained on train+val, final epoch kept",
    "fused_on_ep60_derived_trainval": "fused calibrated, 60 epochs, derived inputs, trained on train+val, final epoch kept",
    "conv_off_ep60_derived_trainval": "conv baseline, 60 epochs, derived inputs, trained on train+val, final epoch kept",
    "conv_on_ep60_derived_trainval": "conv calibrated, 60 epochs, derived inputs, trained on train+val, final epoch kept",
    "fused_on_monotone": "fused calibrated with monotone gates and absolute evidence (the rows above have free gates), "
                         "60 epochs, derived inputs, train+val, final epoch",
    "fused_on_monotone_margin1": "fused calibrated, monotone gates with an evidence margin of 1 sd (--evidence-margin 1)",
    "fused_on_monotone_cgoff": "fused calibrated, monotone gates with the cue gradient off (--cue-gradient off)",
    "fused_on_monotone_learned": "fused calibrated, monotone gates with learned evidence centring (--evidence learned, the shipped models' mode before capped)",
    "fused_on_monotone_capped": "fused calibrated, monotone gates with capped evidence centring (--evidence capped: a learned share of at most one half; the shipped models' mode)",
    "fused_on_monotone_capped_typ": "fused calibrated, capped evidence centring and the atypicality cue (--typicality on)",
    "conv_on_monotone": "conv calibrated with monotone gates and absolute evidence, 60 epochs, derived inputs, "
                        "train+val, final epoch",
    "conv_on_monotone_learned": "conv calibrated, monotone gates with learned evidence centring (--evidence learned, the shipped models' mode before capped)",
    "conv_on_monotone_capped": "conv calibrated, monotone gates with capped evidence centring (--evidence capped: a learned share of at most one half; the shipped models' mode)",
    "conv_on_monotone_capped_typ": "conv calibrated, capped evidence centring and the atypicality cue (--typicality on)",
}


AVL_VARIANTS = {  # name -> what it is (AVLetters, 40 epochs; arguments in scripts/inner_fold.sh)
    "fused_off": "sequence baseline (validation selection: the recipe before train+val)",
    "fused_on": "sequence calibrated (validation selection: the recipe before train+val)",
    "fused_off_noswap": "sequence baseline, no swap augmentation",
    "fused_on_noswap": "sequence calibrated, no swap augmentation",
    "fused_off_md0": "sequence baseline, no modality dropout (shipped: 0.4)",
    "fused_on_md0": "sequence calibrated, no modality dropout (shipped: 0.4)",
    "fused_off_md07": "sequence baseline, modality dropout 0.7",
    "fused_on_md07": "sequence calibrated, modality dropout 0.7",
    "conv_off": "conv baseline (validation selection)",
    "conv_on": "conv calibrated (validation selection)",
    "fused_off_diffs": "sequence baseline, lips with a frame-difference channel (--frame-encoder frame-diffs)",
    "fused_on_diffs": "sequence calibrated, lips with a frame-difference channel (--frame-encoder frame-diffs)",
    "audio": "audio alone",
    "lips": "lips alone (per-frame trunk)",
    "lips_diffs": "lips alone, with a frame-difference channel",
    "fused_off_trainval": "sequence baseline, trained on train+val, final epoch kept (--train-split train+val --selection last; shipped)",
    "fused_on_trainval": "sequence calibrated, trained on train+val, final epoch kept (shipped)",
    "fused_off_last": "sequence baseline, final epoch kept instead of the best validation epoch (--selection last)",
    "fused_on_last": "sequence calibrated, final epoch kept instead of the best validation epoch (--selection last)",
    "conv_off_trainval": "conv baseline, trained on train+val, final epoch kept (shipped)",
    "conv_on_trainval": "conv calibrated, trained on train+val, final epoch kept (shipped)",
    "audio_trainval": "audio alone, trained on train+val, final epoch kept (shipped)",
    "lips_trainval": "lips alone, trained on train+val, final epoch kept (shipped)",
    "fused_off_trainval_noswap": "sequence baseline, shipped recipe (train+val, final epoch) without swap augmentation",
    "fused_on_trainval_noswap": "sequence calibrated, shipped recipe (train+val, final epoch) without swap augmentation",
    "conv_off_rerun": "conv baseline, shipped recipe rerun with the current code (the monotone calibrator's reference)",
    "conv_on_monotone": "conv calibrated with monotone gates and absolute evidence, shipped recipe",
    "conv_on_monotone_cgoff": "conv calibrated, monotone gates with the cue gradient off (--cue-gradient off)",
    "conv_on_monotone_margin1": "conv calibrated, monotone gates with an evidence margin of 1 sd (--evidence-margin 1)",
    "conv_on_monotone_learned": "conv calibrated, monotone gates with learned evidence centring (--evidence learned, the shipped models' mode before capped)",
    "conv_on_monotone_capped": "conv calibrated, monotone gates with capped evidence centring (--evidence capped: a learned share of at most one half; the shipped models' mode)",
    "conv_on_monotone_capped_typ": "conv calibrated, capped evidence centring and the atypicality cue (--typicality on)",
    "fused_on_monotone": "sequence calibrated with monotone gates and absolute evidence, shipped recipe",
    "fused_on_monotone_learned": "sequence calibrated, monotone gates with learned evidence centring (--evidence learned, the shipped models' mode before capped)",
    "fused_on_monotone_capped": "sequence calibrated, monotone gates with capped evidence centring (--evidence capped: a learned share of at most one half; the shipped models' mode)",
    "fused_on_monotone_capped_typ": "sequence calibrated, capped evidence centring and the atypicality cue (--typicality on)",
}


def write_split(out: Path, held_out: int = FIRST_HELD_OUT, dataset: str = "utd_mhad") -> None:
    if dataset == "avletters":
        return write_avletters_split(out, held_out)
    if dataset != "utd_mhad":
        raise SystemExit(f"unknown data set {dataset!r} (utd_mhad or avletters)")
    if held_out not in TRAINING_SUBJECTS:
        raise SystemExit(f"held-out subject must be a training subject ({TRAINING_SUBJECTS}), got {held_out}")
    header = json.loads((SOURCE / "dataset.json").read_text())
    ids = np.load(SOURCE / "data.npz")["sample_ids"]
    subject = np.array([int(s.split("_")[1][1:]) for s in ids])
    trial = np.array([int(s.split("_")[2][1:]) for s in ids])
    fit = np.isin(subject, [t for t in TRAINING_SUBJECTS if t != held_out])
    header["splits"] = {
        "train": np.flatnonzero(fit & (trial != SELECTION_TRIAL)).tolist(),
        "val": np.flatnonzero(fit & (trial == SELECTION_TRIAL)).tolist(),
        "test": np.flatnonzero(subject == held_out).tolist(),
    }
    _write_fold(out, SOURCE, header)


def write_avletters_split(out: Path, held_out: int) -> None:
    """Fit on the other training repetition (official train / val parts of it), score on ``held_out``."""
    if held_out not in AVL_TRAINING_REPETITIONS:
        raise SystemExit(f"held-out repetition must be a training repetition ({AVL_TRAINING_REPETITIONS}), "
                         f"got {held_out}")
    header = json.loads((AVL_SOURCE / "dataset.json").read_text())
    ids = np.load(AVL_SOURCE / "data.npz")["sample_ids"]
    repetition = np.array([int(s.split("_")[0][1:]) for s in ids])
    fit = [r for r in AVL_TRAINING_REPETITIONS if r != held_out][0]
    official = header["splits"]
    header["splits"] = {
        "train": [i for i in official["train"] if repetition[i] == fit],
        "val": [i for i in official["val"] if repetition[i] == fit],
        "test": np.flatnonzero(repetition == held_out).tolist(),
    }
    _write_fold(out, AVL_SOURCE, header)


def _write_fold(out: Path, source: Path, header: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "data.npz", out / "data.npz")
    (out / "dataset.json").write_text(json.dumps(header, indent=1) + "\n")
    print(f"wrote {out}: " + ", ".join(f"{k}={len(v)}" for k, v in header["splits"].items()))


def fold_runs(store: Path) -> List[results_store.Run]:
    """The store's fold runs (named <variant>_held<S>_seed<N>) that have metrics."""
    return [run for run in results_store.load(store) if fnmatch(run.name, RUN_NAMES) and run.metrics is not None]


def fold_of(run: results_store.Run) -> Dict[str, Any]:
    """Variant, held-out unit and seed of a fold run, from its name <variant>_held<S>_seed<N>."""
    name, rest = run.name.rsplit("_held", 1)
    held, seed = rest.split("_seed")
    return {"variant": name, "held_out": int(held), "seed": int(seed)}


def held_out_of(run: results_store.Run) -> int:
    return fold_of(run)["held_out"]


def load_results(runs: Sequence[results_store.Run]) -> pd.DataFrame:
    """Variant, held-out unit, seed and test accuracy of every fold run."""
    return pd.DataFrame([{**fold_of(run), "accuracy": run.metrics["test"]["accuracy"]} for run in runs])


NAMED_REFERENCES = {  # a variant whose reference its name does not give -> the run it changes one thing of
    "skeleton_joints_ep60": "skeleton_hip_ep60",
    "depth_motion_ep60_len32": "depth_motion_ep60",
    "audio_trainval": "audio",
    "lips_trainval": "lips",
    "lips_diffs": "lips",
    "fused_off_trainval_noswap": "fused_off_trainval",
    "fused_on_trainval_noswap": "fused_on_trainval",
    "inertial_ep60_norms": "inertial_ep60",
    "skeleton_hip_ep60_velocity": "skeleton_hip_ep60",
    "fused_off_ep60_rerun": "fused_off_ep60",
    "fused_on_ep60_rerun": "fused_on_ep60",
    "fused_off_ep60_derived": "fused_off_ep60_rerun",
    "fused_on_ep60_derived": "fused_on_ep60_rerun",
    "fused_off_ep60_derived_rot30": "fused_off_ep60_derived",
    "fused_on_ep60_derived_rot30": "fused_on_ep60_derived",
    "conv_off_ep60_derived": "fused_off_ep60_derived",  # the backbone is the change
    "conv_on_ep60_derived": "fused_on_ep60_derived",
    "conv_off_ep60_derived_noswap": "conv_off_ep60_derived",
    "conv_on_ep60_derived_noswap": "conv_on_ep60_derived",
    "inertial_ep60_norms_len160": "inertial_ep60_norms",
    "inertial_ep60_norms_shear02": "inertial_ep60_norms",
    "skeleton_hip_ep60_velocity_len64": "skeleton_hip_ep60_velocity",
    "skeleton_hip_ep60_velocity_shear02": "skeleton_hip_ep60_velocity",
    "skeleton_hip_ep60_velocity_shear04": "skeleton_hip_ep60_velocity",
    "fused_off_ep60_derived_shear02": "fused_off_ep60_derived",
    "fused_on_ep60_derived_shear02": "fused_on_ep60_derived",
    "fused_off_ep60_derived_skshear02": "fused_off_ep60_derived",
    "fused_on_ep60_derived_skshear02": "fused_on_ep60_derived",
    "fused_off_ep60_derived_uni03": "fused_off_ep60_derived",
    "fused_on_ep60_derived_uni03": "fused_on_ep60_derived",
    "fused_off_ep60_derived_trainval": "fused_off_ep60_derived",
    "fused_on_ep60_derived_trainval": "fused_on_ep60_derived",
    "conv_off_ep60_derived_trainval": "conv_off_ep60_derived",
    "conv_on_ep60_derived_trainval": "conv_on_ep60_derived",
    "fused_on_monotone": "fused_on_ep60_derived_trainval",  # free gates -> monotone gates
    "fused_on_monotone_margin1": "fused_on_monotone",
    "fused_on_monotone_cgoff": "fused_on_monotone",
    "fused_on_monotone_learned": "fused_on_monotone",
    "fused_on_monotone_capped": "fused_on_monotone_learned",
    "fused_on_monotone_capped_typ": "fused_on_monotone_capped",
    # AVLetters (on UTD-MHAD only conv_on_monotone and its learned variant have been run): the rerun
    # against the earlier runs of its recipe, the monotone calibrator with absolute evidence against
    # that baseline, each change against it.
    "conv_off_rerun": "conv_off_trainval",
    "conv_on_monotone": "conv_off_rerun",
    "conv_on_monotone_cgoff": "conv_on_monotone",
    "conv_on_monotone_margin1": "conv_on_monotone",
    "conv_on_monotone_learned": "conv_on_monotone",
    "conv_on_monotone_capped": "conv_on_monotone_learned",
    "conv_on_monotone_capped_typ": "conv_on_monotone_capped",
}


DATASET_REFERENCES = {  # variants run on both data sets whose reference differs between them
    "avletters": {"fused_on_monotone": "fused_on_trainval"},  # free gates -> monotone, shipped recipe
    "utd_mhad": {"conv_on_monotone": "conv_on_ep60_derived_trainval"},
}


def reference_of(variant: str, dataset: str = "utd_mhad") -> str | None:
    """The run a fused variant changes one thing of: the same model at the same budget (40 or 60
    epochs); for the variants listed in DATASET_REFERENCES (of ``dataset``) or NAMED_REFERENCES
    (unimodal ones, and changes to the shipped AVLetters recipe), the run named there."""
    if variant in DATASET_REFERENCES.get(dataset, {}):
        return DATASET_REFERENCES[dataset][variant]
    if variant in NAMED_REFERENCES:
        return NAMED_REFERENCES[variant]
    for model in ("fused_off", "fused_on", "conv_off", "conv_on"):
        if variant.startswith(model + "_"):
            reference = model + ("_ep60" if variant.startswith(model + "_ep60_") else "")
            return reference if reference != variant else None
    return None


def paired_difference(runs: pd.DataFrame, variant: str, reference: str) -> str:
    """Variant minus reference over the (subject, seed) pairs both were run on, in points."""
    table = runs.pivot_table(index=["held_out", "seed"], columns="variant", values="accuracy")
    if variant not in table or reference not in table:
        return "–"
    diff = 100 * (table[variant] - table[reference]).dropna()
    if diff.empty:
        return "–"
    spread = f" ± {diff.std():.1f}" if len(diff) > 1 else ""
    return f"{diff.mean():+.1f}{spread} ({len(diff)})"


def kept_under_corruption(runs: Sequence[results_store.Run]) -> pd.DataFrame:
    """Variant, held-out unit, seed, clean accuracy, accuracy kept at severity >= 3 (fraction of
    clean, the README's figure: mean over modalities and corruptions but removal) and the swap AUROC
    of 1 - alpha (worst modality; none for a model without a calibrator, whose alpha is 1) of every
    fold run that has a corruption sweep (SWEEP=1)."""
    from experiments.robustness_report import kept_fraction  # pulls in the sweep engine: only when asked

    rows = []
    for run in runs:
        if run.sweep is None:
            continue
        sweep = run.sweep.copy()
        for column in ("severity", "value", "auroc_alpha"):
            if column in sweep:
                sweep[column] = pd.to_numeric(sweep[column], errors="coerce")
        gated = (run.config or {}).get("model", {}).get("calibration", True) and "auroc_alpha" in sweep
        swaps = sweep[(sweep["corruption"] == "swap") & (sweep["severity"] >= 3)] if gated else sweep.iloc[:0]
        worst = swaps.groupby("modality")["auroc_alpha"].mean().min() if len(swaps) else np.nan  # no gates: none
        rows.append({**fold_of(run), "clean": run.metrics["test"]["accuracy"],
                     "kept": kept_fraction(sweep, sweep["checkpoint"].iloc[0]), "swap_auroc": worst})
    return pd.DataFrame(rows)


def kept_lines(runs: Sequence[results_store.Run], variants: Dict[str, str], unit: str,
               dataset: str = "utd_mhad") -> List[str]:
    """The section's table of accuracy kept under corruption (empty if no run has a sweep): each
    variant's mean ± std over its runs and, paired by (held-out unit, seed), its change against
    its reference."""
    table = kept_under_corruption(runs)
    if table.empty:
        return []
    lines = ["", f"Under corruption, on the held-out {unit} (the runs above that have a sweep: `SWEEP=1 bash "
             "scripts/inner_fold.sh`): accuracy kept at severity 3-5 as a fraction of clean accuracy (mean over "
             "modalities and corruptions but removal), and the swap-detection AUROC of 1 - alpha of the worst "
             f"modality. Mean ± std over runs; the paired change is against the reference, over the ({unit}, "
             "seed) pairs both have, in points of kept accuracy.", "",
             "| variant | runs | clean accuracy | kept under corruption | swap AUROC of 1 - alpha, worst modality "
             "| paired change of kept |", "|---|---|---|---|---|---|"]
    kept = table.rename(columns={"kept": "accuracy"})  # what paired_difference pairs
    for name, what in variants.items():
        own = table[table["variant"] == name]
        if own.empty:
            continue
        reference = reference_of(name, dataset)
        change = paired_difference(kept, name, reference) if reference else "–"
        auroc = own["swap_auroc"].dropna().tolist()
        lines.append(f"| {what} | {len(own)} | {mean_std(own['clean'].tolist(), 100, 1)} | {mean_std(own['kept'].tolist())} "
                     f"| {mean_std(auroc) if auroc else '–'} | {change} |")
    return lines


def persistent_confusions(runs: Sequence[results_store.Run], class_names: list, top: int = 3) -> list:
    """The (held-out unit, true class, predicted class, count, out of) confusions that recur most
    over all fused fold runs: the errors no variant removes."""
    counts: dict = {}
    totals: dict = {}
    for run in runs:
        if not fnmatch(run.name, "fused_" + RUN_NAMES):
            continue
        held = held_out_of(run)
        matrix = np.asarray(run.metrics["test"]["confusion_matrix"])
        for true in range(len(matrix)):
            totals[(held, true)] = totals.get((held, true), 0) + int(matrix[true].sum())
            for pred in np.flatnonzero(matrix[true]):
                if pred != true:
                    key = (held, true, int(pred))
                    counts[key] = counts.get(key, 0) + int(matrix[true, pred])
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return [(held, class_names[t], class_names[p], n, totals[(held, t)]) for (held, t, p), n in ranked]


RECURRING_SHOWN = ("fused_off_ep60_rerun", "fused_on_ep60_rerun", "fused_off_ep60_derived", "fused_on_ep60_derived")
"""Variants for which the report says how often they get the recurring confusions right."""


def recurring_right(runs: Sequence[results_store.Run], variant: str, confusions: list, class_names: list) -> str:
    """How often a variant predicts the true class of each recurring confusion, over its runs."""
    parts = []
    for held, true, _, _, _ in confusions:
        t = class_names.index(true)
        right = total = 0
        for run in runs:
            if not fnmatch(run.name, f"{variant}_held{held}_seed*"):
                continue
            matrix = np.asarray(run.metrics["test"]["confusion_matrix"])
            right, total = right + int(matrix[t, t]), total + int(matrix[t].sum())
        parts.append(f"subject {held}'s {true} {right} of {total}")
    return "; ".join(parts)


REPORTS = {  # data set -> (store, variants, README section, what a fold holds out, what the reference is)
    "utd_mhad": (STORE, VARIANTS, "inner", "subject", "40- or 60-epoch run"),
    "avletters": (AVL_STORE, AVL_VARIANTS, "inner_avl", "repetition", "recipe with validation selection"),
}


def section(dataset: str = "utd_mhad", results: Path = RESULTS) -> str:
    """The inner-fold section of a data set, from its store under ``results``."""
    if dataset not in REPORTS:
        raise SystemExit(f"unknown data set {dataset!r} (utd_mhad or avletters)")
    store, variants, _, unit, reference_name = REPORTS[dataset]
    fold = fold_runs(results / store)
    runs = load_results(fold)
    if runs.empty:
        raise SystemExit(f"no results in {results / store}; run scripts/inner_fold.sh first")
    folds = sorted(runs["held_out"].unique())
    per_fold = runs.groupby(["variant", "held_out"])["accuracy"].agg(["mean", "std", "size"])
    others = "the other three" if dataset == "utd_mhad" else "the other one"
    lines = [f"Accuracy (%) on the held-out training {unit}, each fitted on {others} "
             f"({len(runs)} runs; `bash scripts/inner_fold.sh`). A cell is mean ± std over its seeds; the last "
             f"column but one averages the {unit}s a variant was run on. The last column is the variant minus "
             f"the same model without the change ({reference_name}), in points, over the ({unit}, seed) pairs "
             "both have: mean ± std (pairs).", "",
             "| variant | " + " | ".join(f"{unit} {f}" for f in folds) + f" | mean over {unit}s | paired change |",
             "|---|" + "---|" * (len(folds) + 2)]
    for name, what in variants.items():
        if name not in per_fold.index.get_level_values(0):
            continue
        cells, means = [], []
        for f in folds:
            if (name, f) not in per_fold.index:
                cells.append("–")
                continue
            r = per_fold.loc[(name, f)]
            spread = f" ± {100 * r['std']:.1f}" if r["size"] > 1 else ""
            cells.append(f"{100 * r['mean']:.1f}{spread} ({int(r['size'])})")
            means.append(r["mean"])
        reference = reference_of(name, dataset)
        change = paired_difference(runs, name, reference) if reference else "–"
        lines.append(f"| {what} | " + " | ".join(cells) + f" | {100 * np.mean(means):.1f} ({len(means)}) | {change} |")
    lines += kept_lines(fold, variants, unit, dataset)
    if dataset == "utd_mhad":
        names = json.loads((SOURCE / "dataset.json").read_text())["schema"]["class_names"]
        confusions = persistent_confusions(fold, names)
        recurring = "; ".join(f"subject {h}'s {t} read as {p} in {n} of {total} predictions"
                              for h, t, p, n, total in confusions)
        lines += ["", f"The confusions that recur most over all fused runs above: {recurring}."]
        shown = [v for v in RECURRING_SHOWN if v in per_fold.index.get_level_values(0)]
        if shown:
            lines += ["", "Right predictions of these samples:"]
            lines += [f"- {variants[v]}: {recurring_right(fold, v, confusions, names)}" for v in shown]
    return "\n".join(lines)


def sections(results: Path = RESULTS) -> Dict[str, str]:
    """Every section this generator writes (both data sets), by name, from the stores under ``results``."""
    return {REPORTS[dataset][2]: section(dataset, results) for dataset in REPORTS}


def report(dataset: str = "utd_mhad") -> None:
    text = section(dataset)
    replace_section(REPORTS[dataset][2], text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) in (3, 4, 5) and sys.argv[1] == "split":
        write_split(Path(sys.argv[2]), *(int(a) for a in sys.argv[3:4]), *sys.argv[4:5])
    elif len(sys.argv) in (2, 3) and sys.argv[1] == "report":
        report(*sys.argv[2:3])
    else:
        raise SystemExit(__doc__)
