"""Score the gates against ground truth: did the calibrator damp the modalities that *were* corrupted?

Only data that records what was done to each (sample, modality) can answer this (the ``truth.<m>``
arrays of :mod:`precal.data.storage`, written by the synthetic generator). For each modality and each
kind of corruption present in the truth, the table gives the AUROC of ``1 - alpha`` (and of low
support and high conflict) for separating the corrupted samples from the clean ones: 1.0 means every
corrupted modality got a lower gate than every clean one, 0.5 is chance, below 0.5 is backwards.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import pandas as pd

from precal.data.storage import TRUTH_CODES, MultimodalData
from precal.inference import Predictions
from precal.metrics import auroc

SCORED = ("noise", "swap")
"""Corruptions a gate can be scored on (an absent modality has no gate: it is masked)."""
TABLE_COLUMNS = ["modality", "corruption", "n_corrupted", "n_clean", "auroc_alpha", "auroc_support",
                 "auroc_conflict", "alpha_clean", "alpha_corrupted"]
ATTRIBUTION_COLUMNS = ["modality", "corruption", "n_corrupted", "attributed", "chance"]


def _is(codes: np.ndarray, corruption: str) -> np.ndarray:
    """Where ``codes`` record ``corruption``, or any scored corruption for ``"any"``."""
    return np.isin(codes, [TRUTH_CODES.index(c) for c in (SCORED if corruption == "any" else (corruption,))])


def truth_cells(preds: Predictions, data: MultimodalData, i: int, corruption: str) -> Tuple[np.ndarray, np.ndarray]:
    """(corrupted rows, clean rows) of modality ``i`` as the gates are scored: present and compared
    with a peer, marked ``corruption`` (or any scored one for ``"any"``) against marked clean."""
    codes = np.asarray(data.truth[preds.modalities[i]])[preds.indices]
    present = preds.present[:, i] & preds.has_context[:, i]
    return _is(codes, corruption) & present, present & (codes == TRUTH_CODES.index("clean"))


def truth_table(preds: Predictions, data: MultimodalData) -> pd.DataFrame:
    """One row per (modality, corruption) and per modality over all scored corruptions ("any").

    ``preds`` must carry the data set positions of its rows (``indices``), as predictions over a
    split do. Modalities without truth, and corruptions with no sample in the split, are left out.
    """
    if preds.indices is None:
        raise ValueError("the predictions do not say which samples they cover (indices); predict over a split")
    rows: List[Dict[str, object]] = []
    for i, m in enumerate(preds.modalities):
        if m not in data.truth:
            continue
        for name in (*SCORED, "any"):
            hit, clean = truth_cells(preds, data, i, name)
            if not hit.any() or not clean.any():
                continue
            rows.append({
                "modality": m, "corruption": name, "n_corrupted": int(hit.sum()), "n_clean": int(clean.sum()),
                "auroc_alpha": auroc(1 - preds.alpha[hit, i], 1 - preds.alpha[clean, i]),
                "auroc_support": auroc(-preds.support[hit, i], -preds.support[clean, i]),
                "auroc_conflict": auroc(preds.conflict[hit, i], preds.conflict[clean, i]),
                "alpha_clean": float(preds.alpha[clean, i].mean()),
                "alpha_corrupted": float(preds.alpha[hit, i].mean()),
            })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def truth_attribution(preds: Predictions, data: MultimodalData) -> pd.DataFrame:
    """Did the gates damp the *right* modality of a sample? One row per (modality, corruption) and per
    modality over both ("any").

    The AUROC of :func:`truth_table` compares a modality's gate on corrupted samples with its gate on
    clean ones; it is blind to the other modalities of the same sample being damped as much. Here,
    for every sample with one corrupted modality and at least one other scorable modality, each
    modality's gate is taken relative to its own typical value (median over the samples where it is
    clean), and the sample counts as attributed when the corrupted modality's is the lowest (a tie at
    the lowest counts as a random pick among the tied, so gates that do not respond score chance).
    ``chance`` is what picking one of the sample's scorable modalities at random would get.
    """
    if preds.indices is None:
        raise ValueError("the predictions do not say which samples they cover (indices); predict over a split")
    names = list(preds.modalities)
    scorable = preds.present & preds.has_context
    codes = np.stack([np.asarray(data.truth[m])[preds.indices] if m in data.truth
                      else np.zeros(len(preds.indices), dtype=np.int8) for m in names], axis=1)
    clean_code = TRUTH_CODES.index("clean")
    typical = np.array([np.median(preds.alpha[scorable[:, j] & (codes[:, j] == clean_code), j])
                        if (scorable[:, j] & (codes[:, j] == clean_code)).any() else np.nan
                        for j in range(len(names))])
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = preds.alpha / typical[None, :]
    rankable = scorable & np.isfinite(relative)  # a modality without a typical gate cannot be ranked
    relative = np.where(rankable, relative, np.inf)
    single = (_is(codes, "any") & rankable).sum(axis=1) == 1  # one suspect per sample
    rows: List[Dict[str, object]] = []
    for j, m in enumerate(names):
        for name in (*SCORED, "any"):
            hit = _is(codes[:, j], name) & rankable[:, j] & single & (rankable.sum(axis=1) >= 2)
            if not hit.any():
                continue
            rel = relative[hit]
            lowest = np.isclose(rel, rel.min(axis=1, keepdims=True), rtol=1e-6, atol=0.0)
            # a tie at the lowest is a random pick among the tied: equal gates single nothing out
            credit = np.where(lowest[:, j], 1.0 / lowest.sum(axis=1), 0.0)
            rows.append({"modality": m, "corruption": name, "n_corrupted": int(hit.sum()),
                         "attributed": float(credit.mean()),
                         "chance": float((1.0 / rankable[hit].sum(axis=1)).mean())})
    return pd.DataFrame(rows, columns=ATTRIBUTION_COLUMNS)


def truth_summary(table: pd.DataFrame) -> Dict[str, float]:
    """The headline figures: the worst and the mean over modalities of the "any" rows' AUROCs."""
    if table.empty:
        return {}
    any_rows = table[table["corruption"] == "any"]
    return {"gate_auroc_min": float(any_rows["auroc_alpha"].min()),
            "gate_auroc_mean": float(any_rows["auroc_alpha"].mean()),
            "cue_auroc_min": float(any_rows["auroc_support"].min())}
