"""The lab's controls on many samples at once: the current corruption applied to a whole split or
to a slice of it (a subject, a speaker, a class), and how accuracy and the gates move.

The corruption is the lab's own (:func:`precal.dashboard.backend.lab.corrupt_rows`, seeded and keyed
by sample, so each sample is corrupted exactly as the lab corrupts it on its own), except that a
swap draws a donor per sample with the seed: one named donor for hundreds of samples would measure
that donor, not the swap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Collection, Dict, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from precal.dashboard.backend.data import SplitBatches
from precal.dashboard.backend.lab import LabSetting, corrupt_rows
from precal.dashboard.backend.pairs import ModelView
from precal.dashboard.backend.running import predict_view
from precal.dashboard.backend.samples import ABSENT
from precal.inference import Predictions


def take_rows(preds: Predictions, rows: np.ndarray) -> Predictions:
    """Some rows of a split's predictions (the same fields, the per-modality summaries included)."""
    arrays = {k: (None if getattr(preds, k) is None else getattr(preds, k)[rows]) for k in Predictions.ARRAYS}
    return Predictions(modalities=list(preds.modalities),
                       summaries_before={m: v[rows] for m, v in preds.summaries_before.items()},
                       summaries_after={m: v[rows] for m, v in preds.summaries_after.items()}, **arrays)


@dataclass
class BatchRun:
    """Predictions of every view on the chosen samples, clean and with the lab's settings applied."""

    indices: np.ndarray  # data-set positions of the samples
    clean: Dict[str, Predictions]  # view.role -> predictions
    corrupted: Dict[str, Predictions]


def run_on_rows(views: Sequence[ModelView], splits: SplitBatches, settings: Mapping[str, LabSetting], seed: int,
                indices: Optional[np.ndarray] = None, clean: Optional[Mapping[str, Predictions]] = None) -> BatchRun:
    """Apply the lab's ``settings`` to the samples at data-set positions ``indices`` (None: the whole
    split) and run every view on them. ``clean``: the views' cached predictions over the whole split
    (by role), reused instead of a second clean pass."""
    positions = np.arange(splits.size) if indices is None else np.array(
        [int(np.nonzero(splits.indices == i)[0][0]) for i in indices], dtype=int)
    random_donors = {m: replace(s, donor=None) for m, s in settings.items()}
    clean_out: Dict[str, Predictions] = {}
    corrupted_out: Dict[str, Predictions] = {}
    for v in views:
        pool = splits.batch_for(v.checkpoint)
        batch = pool.select(positions.tolist())
        damaged, _ = corrupt_rows(batch, v.checkpoint.schema, random_donors, seed, pool=pool)
        corrupted_out[v.role] = predict_view(v, damaged)
        if clean is not None and v.role in clean:
            clean_out[v.role] = take_rows(clean[v.role], positions)
        else:
            clean_out[v.role] = predict_view(v, batch)
    return BatchRun(splits.indices[positions], clean_out, corrupted_out)


def run_table(run: BatchRun, views: Sequence[ModelView]) -> pd.DataFrame:
    """One row per model and input (clean, corrupted): samples, accuracy (classification) or mean
    absolute error, and per modality the mean alpha, support and conflict over the samples where it
    is present (a removed modality has none: n/a)."""
    rows = []
    for v in views:
        for state, preds in (("clean", run.clean[v.role]), ("corrupted", run.corrupted[v.role])):
            row: Dict[str, object] = {"model": v.label, "input": state, "samples": len(preds.logits)}
            if preds.labels is not None and preds.logits.shape[1] > 1:
                row["accuracy"] = float(np.mean(preds.predicted == preds.labels)) if len(preds.logits) else np.nan
            elif preds.labels is not None:
                row["mean absolute error"] = float(np.mean(np.abs(preds.logits[:, 0] - preds.labels)))
            for i, m in enumerate(preds.modalities):
                present = preds.present[:, i]
                for q in ("alpha", "support", "conflict"):
                    values = getattr(preds, q)[present, i]
                    row[f"{q} {m}"] = float(values.mean()) if len(values) and (q != "alpha" or v.calibration) \
                        else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def run_changes(table: pd.DataFrame) -> pd.DataFrame:
    """Corrupted minus clean per model, from :func:`run_table`: how far accuracy and gates moved."""
    numbers = [c for c in table.columns if c not in ("model", "input", "samples")]
    out = []
    for model, g in table.groupby("model", sort=False):
        clean = g[g["input"] == "clean"][numbers].iloc[0]
        cor = g[g["input"] == "corrupted"][numbers].iloc[0]
        out.append({"model": model, **{f"Δ {c}": cor[c] - clean[c] for c in numbers}})
    return pd.DataFrame(out)


NO_GATES = "n/a (no gates)"


def readable(table: pd.DataFrame, ungated: Collection[str], signed: bool = False) -> pd.DataFrame:
    """:func:`run_table` or :func:`run_changes` as text for the page and its CSV: every number to
    three decimals (``signed``: with its sign), and no empty cell. A model without gates (its label
    in ``ungated``) has no alpha to report: its alpha cells read ``n/a (no gates)``; any other
    missing number is a modality absent from every sample of the slice: ``n/a (absent)``. A grid
    that showed "None" or an empty CSV cell would leave the reader guessing which."""
    out = table.copy()
    numbers = [c for c in table.columns if c not in ("model", "input", "samples")]
    form = "{:+.3f}" if signed else "{:.3f}"
    for c in numbers:
        gate = c.startswith(("alpha ", "Δ alpha "))
        out[c] = [NO_GATES if gate and model in ungated else ABSENT if pd.isna(x) else form.format(float(x))
                  for model, x in zip(table["model"], table[c])]
    return out
