"""Results per slice of a split: per group of the data set (subject, speaker, session: the data's
``groups``) or per class. Accuracy of both models, their difference, and the gated model's mean
gates and cues per modality, one row per slice, with the samples of each slice to open.

A cross-subject split hides its subjects in one number; this is where a researcher sees which
subject the model fails on and whether the calibrator damps a modality for that subject.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from precal.dashboard.backend.data import SplitBatches, varying_groups
from precal.data.storage import MultimodalData
from precal.inference import Predictions

BY_CLASS = "class"


def groupings(data: MultimodalData) -> List[str]:
    """What a split can be sliced by: the data's groups first (subject, speaker…), then the class."""
    out = list(data.groups)
    if data.schema.task == "classification":
        out.append(BY_CLASS)
    return out


def grouping_choices(data: MultimodalData, splits: SplitBatches) -> Tuple[List[str], List[str]]:
    """The groupings worth offering on this split, and those left out. A group with a single value
    on the split (AVLetters' test split is all repetition ``r3``) is one row that repeats the split's
    totals, so it is left out and named instead; the class is always offered. The first offered is
    the default: a real group before the class."""
    offered = varying_groups(data.groups, splits.indices)
    single = [g for g in data.groups if g not in offered]
    if data.schema.task == "classification":
        offered.append(BY_CLASS)
    return offered, single


def slice_labels(data: MultimodalData, splits: SplitBatches, grouping: str) -> np.ndarray:
    """Each sample's slice (a string) in the split's row order."""
    idx = splits.indices
    if grouping == BY_CLASS:
        return np.asarray([data.label_name(int(i)) for i in idx], dtype=object)
    if grouping not in data.groups:
        raise KeyError(f"no grouping {grouping!r}; this data set has: {', '.join(groupings(data)) or 'none'}")
    return np.asarray(data.groups[grouping][idx]).astype(str).astype(object)


def slice_table(data: MultimodalData, splits: SplitBatches, grouping: str,
                models: Sequence[Tuple[str, Predictions]], gated: Optional[Tuple[str, Predictions]] = None
                ) -> pd.DataFrame:
    """One row per slice: its name, sample count, each model's accuracy (or mean absolute error for
    a regression), the first model's minus the second's when there are two, and the gated model's mean alpha, support and
    conflict per modality (over the samples where the modality is present). Sorted by the slice
    name; the page lets the reader sort by any column."""
    labels = slice_labels(data, splits, grouping)
    classification = data.schema.task == "classification"
    rows = []
    for value in sorted(set(labels), key=_natural):
        sel = labels == value
        row: Dict[str, object] = {grouping: value, "samples": int(sel.sum())}
        scores = []
        for name, p in models:
            if classification:
                score = float(np.mean(p.predicted[sel] == p.labels[sel]))
                row[f"accuracy · {name}"] = score
            else:
                score = float(np.mean(np.abs(p.logits[sel, 0] - p.labels[sel])))
                row[f"MAE · {name}"] = score
            scores.append(score)
        if len(scores) == 2:
            row[f"Δ ({models[0][0]} − {models[1][0]})"] = scores[0] - scores[1]
        if gated is not None:
            _, g = gated
            for i, m in enumerate(g.modalities):
                present = sel & g.present[:, i]
                for q in ("alpha", "support", "conflict"):
                    row[f"{q} {m}"] = float(getattr(g, q)[present, i].mean()) if present.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def slice_members(data: MultimodalData, splits: SplitBatches, grouping: str, value: str) -> np.ndarray:
    """Data-set positions of the split's samples in one slice."""
    return splits.indices[slice_labels(data, splits, grouping) == value]


def _natural(text: str):
    """'s2' before 's10': numbers inside names sort by value."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text))]
