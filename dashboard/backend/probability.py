"""Probability calibration: do a model's predicted probabilities match how often it is right?
(Not the pre-fusion calibrator: this is about the softmax of the output.)

A reliability diagram bins the top-class probability (confidence) and plots each bin's accuracy
against it; the expected calibration error (ECE) is the count-weighted mean gap. Both come from
:func:`precal.metrics.reliability_bins` and :func:`precal.metrics.expected_calibration_error`, the
ones ``precal evaluate`` reports, here for both models, clean and under a corruption.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import pandas as pd

from precal.inference import Predictions
from precal.metrics import expected_calibration_error, reliability_bins

BINS = 10
"""Bins of the dashboard's reliability diagrams: ten, as the splits are small (a few hundred)."""


def reliability_frame(models: Mapping[str, Predictions], bins: int = BINS) -> pd.DataFrame:
    """Long table of reliability bins: model, bin range, mean confidence, accuracy, count, gap."""
    rows = []
    for name, p in models.items():
        for b in reliability_bins(p.labels, p.logits, bins):
            rows.append({"model": name, "bin": f"{b['low']:.1f}–{b['high']:.1f}", "confidence": b["confidence"],
                         "accuracy": b["accuracy"], "count": b["count"],
                         "gap (confidence − accuracy)": b["confidence"] - b["accuracy"]})
    return pd.DataFrame(rows, columns=["model", "bin", "confidence", "accuracy", "count",
                                       "gap (confidence − accuracy)"])


def calibration_table(models: Mapping[str, Predictions], bins: int = BINS) -> pd.DataFrame:
    """One row per model: samples, accuracy, mean confidence, ECE (lower is better) and whether the
    model is over- or under-confident on average."""
    rows = []
    for name, p in models.items():
        probs = p.probabilities()
        confidence = float(probs.max(axis=1).mean()) if len(probs) else float("nan")
        accuracy = float(np.mean(p.predicted == p.labels)) if len(probs) else float("nan")
        gap = confidence - accuracy
        rows.append({"model": name, "samples": int(len(probs)), "accuracy": accuracy, "mean confidence": confidence,
                     "ECE": expected_calibration_error(p.labels, p.logits, bins),
                     "on average": "over-confident" if gap > 0.01 else "under-confident" if gap < -0.01
                     else "about right"})
    return pd.DataFrame(rows)


def bins_by_model(models: Mapping[str, Predictions], bins: int = BINS) -> Dict[str, List[Dict[str, float]]]:
    """The bins of every model (for :func:`precal.dashboard.backend.svg.reliability_diagram`)."""
    return {name: reliability_bins(p.labels, p.logits, bins) for name, p in models.items()}


def labelled(models: Sequence[Tuple[str, Predictions]], state: str) -> Dict[str, Predictions]:
    """``{"<model> · <state>": predictions}``: the keys the tables and diagrams show."""
    return {f"{name} · {state}": p for name, p in models}
