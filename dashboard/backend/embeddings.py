"""The embeddings page: features before and after calibration, a split half corrupted to colour
them by, and neighbourhood scores.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import pandas as pd
import torch

from precal.dashboard.backend.pairs import ModelPair
from precal.data.batch import Batch
from precal.data.schema import DatasetSchema
from precal.inference import Predictions
from precal.projection import neighbourhood_scores
from precal.robustness.corruptions import apply_corruption

FUSED = "fused representation"


def feature_spaces(modalities: Sequence[str]) -> List[str]:
    return [FUSED] + list(modalities)


def pre_post_features(space: str, calibrated: Predictions, switched_off: Predictions) -> Tuple[np.ndarray, np.ndarray]:
    """Features before and after calibration for a space.

    ``fused``: the calibrated model's fused representation with the calibrator switched off (pre)
    and on (post), same weights. A modality: its summary before and after the gates.
    """
    if space == FUSED:
        return switched_off.fused, calibrated.fused
    if space not in calibrated.summaries_before:
        raise KeyError(f"unknown feature space {space!r}; choose one of {', '.join(feature_spaces(calibrated.modalities))}")
    return calibrated.summaries_before[space], calibrated.summaries_after[space]


def corrupt_fraction(batch: Batch, schema: DatasetSchema, modality: str, corruption: str, severity: int,
                     seed: int = 0, fraction: float = 0.5) -> Tuple[Batch, np.ndarray]:
    """Corrupt ``modality`` for a seeded ``fraction`` of the samples (to colour embeddings by
    corruption); returns the mixed batch and the (N,) bool mask of corrupted samples."""
    res = apply_corruption(batch, modality, schema.modality(modality).kind, corruption, severity, seed, pool=batch)
    gen = torch.Generator().manual_seed(seed + 7919)
    chosen = torch.rand(batch.size, generator=gen) < fraction
    rows = chosen & res.affected.cpu()
    return batch.where(rows, res.batch), rows.numpy()


def projection_key(pair: ModelPair, split: str, space: str, extra: Mapping[str, Any] | None = None) -> Dict[str, Any]:
    """Cache key parts for a projection: weights, split, feature space, corruption."""
    return {"weights": pair.weights_key, "split": split, "space": space, **(extra or {})}


def neighbourhood_table(pre: np.ndarray, post: np.ndarray, labels: np.ndarray, k: int = 10) -> pd.DataFrame:
    """kNN purity and silhouette of the features before and after calibration."""
    k = max(1, min(k, len(labels) - 1))
    before = neighbourhood_scores(pre, labels, k=k)
    after = neighbourhood_scores(post, labels, k=k)
    return pd.DataFrame({"score": list(before), "before": [before[s] for s in before],
                         "after": [after[s] for s in before]})


def arrow_segments(start: np.ndarray, end: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """x, y arrays of line segments start->end separated by NaN (one plotly trace for N lines)."""
    n = len(start)
    xs = np.full(3 * n, np.nan)
    ys = np.full(3 * n, np.nan)
    xs[0::3], xs[1::3] = start[:, 0], end[:, 0]
    ys[0::3], ys[1::3] = start[:, 1], end[:, 1]
    return xs, ys


def placement_note(placement: str) -> str:
    """How a new point (the lab's corrupted sample) is placed on this map, in words."""
    if placement == "linear":
        return ("Point placement for new points: linear. PCA is a linear map, so a new sample is placed exactly "
                "where the map puts it.")
    if placement == "knn":
        return ("Point placement for new points: knn. t-SNE and a reloaded UMAP cannot map a new sample, so it is "
                "placed at the inverse-distance-weighted mean position of its 5 nearest samples of the split (in the "
                "high-dimensional features): near the samples it resembles, an approximation.")
    return f"Point placement for new points: {placement}."
