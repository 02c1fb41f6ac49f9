"""The embeddings page: features before and after calibration, a split half corrupted to colour
them by, and neighbourhood scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch

from precal.data.batch import Batch
from precal.data.schema import DatasetSchema
from precal.inference import Predictions
from precal.projection import Projection, cached_projection, neighbourhood_scores
from precal.projection.method import KNN_PLACEMENT_K, MAX_FIT_SAMPLES
from precal.robustness.corruptions import apply_corruption

FUSED = "fused representation"
PROJECTION_SEED = 0
"""Every map of the split is fitted with this seed: the page, the lab and ``precal precompute``
must ask the disk cache for the same key."""
METHOD_TITLES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
WEBGL_FROM = 3000
"""From this many samples the map is drawn with WebGL (``scattergl``): SVG markers stop being
interactive at some ten thousand points (``benchmarks/embeddings.py`` times the figure at 100k)."""
LINES_UP_TO = 20_000
"""Lines before → after are drawn up to this many samples (beyond, they are a grey blanket)."""


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


def projection_key(weights: str, split: str, space: str, extra: Mapping[str, Any] | None = None) -> Dict[str, Any]:
    """Cache key parts for a projection: the weights of the gated checkpoint (its features with the
    calibrator off and on are the map's two halves, so the other model of a pair plays no part: the
    map is found whichever checkpoint it is shown beside), split, feature space, corruption."""
    return {"weights": weights, "split": split, "space": space, **(extra or {})}


def split_projection(cache_dir: Optional[Path], parts: Mapping[str, Any], pre: np.ndarray, post: np.ndarray,
                     method: str, fitter: Optional[Callable[..., Projection]] = None) -> Projection:
    """The map the embeddings page and the lab draw: :func:`precal.projection.cached_projection`
    with the page's seed and its cap on fitted samples (t-SNE/UMAP above
    :data:`~precal.projection.method.MAX_FIT_SAMPLES` samples are fitted on a subsample and place
    the rest). ``precal precompute`` calls this too, so what it stores is what the page finds."""
    return cached_projection(cache_dir, parts, pre, post, method, PROJECTION_SEED, fitter=fitter,
                             max_fit_samples=MAX_FIT_SAMPLES)


def fit_note(proj: Projection) -> Optional[str]:
    """What the page says under a map fitted on a subsample (None when every sample was fitted)."""
    if not proj.subsampled:
        return None
    title = METHOD_TITLES.get(proj.method, proj.method)
    rest = proj.n - int(proj.fit_samples or 0)
    return (f"{title} was fitted on a seeded subsample of {proj.fit_samples:,} of the {proj.n:,} samples (their "
            f"points before and after calibration); the other {rest:,} are placed on that map out of sample "
            + ("(UMAP's transform)" if proj.method == "umap" else
               f"(at the weighted mean position of their {KNN_PLACEMENT_K} nearest fitted points)")
            + f". Above {MAX_FIT_SAMPLES:,} samples a full fit would take many minutes.")


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


# ---- working with the map: selections, neighbours, search, displacement ----------------------------


def displacement(pre_xy: np.ndarray, post_xy: np.ndarray) -> np.ndarray:
    """How far each sample moved on the map from before to after calibration (map units): what to
    colour by when the two points nearly coincide and the lines between them cannot be seen."""
    return np.linalg.norm(np.asarray(post_xy) - np.asarray(pre_xy), axis=1)


def selected_rows(sample_ids: Sequence[str], chosen: Sequence[Any]) -> np.ndarray:
    """Sorted rows of the samples a selection returned (their ids, from the points' customdata).

    A lookup table, not ``np.isin``: on object arrays that compares every selected id with every
    sample (6 s for 5,000 of 100,000), and a box selection returns thousands."""
    position = {str(s): i for i, s in enumerate(sample_ids)}
    return np.unique(np.asarray([position[str(c)] for c in chosen if str(c) in position], dtype=int))


def find_rows(sample_ids: Sequence[str], query: str, limit: int = 20) -> np.ndarray:
    """Rows whose sample id matches ``query``: the exact id first, then ids containing it
    (case-insensitive), at most ``limit``."""
    q = str(query).strip().lower()
    if not q:
        return np.zeros(0, dtype=int)
    ids = [str(s).lower() for s in sample_ids]
    exact = [i for i, s in enumerate(ids) if s == q]
    partial = [i for i, s in enumerate(ids) if q in s and s != q]
    return np.asarray((exact + partial)[:limit], dtype=int)


def nearest_neighbours(features: np.ndarray, row: int, k: int = 10) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other samples of sample ``row`` in the standardised high-dimensional
    features (not the 2-D map, which distorts distances): their rows and distances."""
    x = np.asarray(features, dtype=np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    z = (x - mean) / np.where(std > 1e-12, std, 1.0)
    d = np.linalg.norm(z - z[row], axis=1)
    d[row] = np.inf
    k = max(0, min(k, len(x) - 1))
    order = np.argsort(d, kind="stable")[:k]
    return order, d[order]


def selection_summary(rows: np.ndarray, classes: Sequence[str], models: Sequence[Tuple[str, Predictions]],
                      gated: Optional[Predictions] = None) -> Dict[str, pd.DataFrame]:
    """What a box or lasso selection holds: its class mix (count and share), each model's accuracy
    on it ("selection") and on the whole split ("whole split"), and the gated model's mean alpha, support and
    conflict per modality (over the selected samples where the modality is present)."""
    rows = np.asarray(rows, dtype=int)
    names = np.asarray(list(classes), dtype=object)[rows]
    mix = pd.Series(names).value_counts()
    out = {"classes": pd.DataFrame({"class": mix.index.astype(str), "samples": mix.to_numpy(),
                                    "share": mix.to_numpy() / max(len(rows), 1)})}
    acc = []
    for name, p in models:
        if p.labels is None or p.logits.shape[1] < 2:
            continue
        right = p.predicted == p.labels
        # short headers: the table sits in a third of the page under "Accuracy of both models"
        acc.append({"model": name, "selection": float(right[rows].mean()) if len(rows) else np.nan,
                    "whole split": float(right.mean())})
    out["accuracy"] = pd.DataFrame(acc)
    if gated is not None:
        cues = []
        for i, m in enumerate(gated.modalities):
            present = gated.present[rows, i]
            row: Dict[str, Any] = {"modality": m}
            for q in ("alpha", "support", "conflict"):
                values = getattr(gated, q)[rows, i][present]
                row[q] = float(values.mean()) if len(values) else np.nan
            cues.append(row)
        out["cues"] = pd.DataFrame(cues)
    return out
