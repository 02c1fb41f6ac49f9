"""Pre- vs post-calibration feature maps in ONE aligned 2-D space, plus neighbourhood scores.

Why one space: fitting t-SNE/UMAP separately on the features before and after calibration gives two
maps with arbitrary, unrelated axes, so "this sample moved" means nothing. Here both sets are
standardised with the statistics of the *stacked* data and the 2-D method is fitted once on
``[pre; post]`` (2N points). Row ``i`` of ``pre_xy`` and row ``i`` of ``post_xy`` are then the same
sample before and after calibration, in the same coordinates, and can be joined by an arrow.

Placing new points (e.g. a sample the user just corrupted in the dashboard):

* PCA: exact linear map, ``((x - mean) / scale - pca_mean) @ components.T``; stored as plain arrays,
  so it survives the disk cache unchanged.
* UMAP: ``umap.UMAP.transform`` of the fitted model while that model is alive (it is kept in an
  in-process LRU). A projection reloaded from the disk cache has no fitted UMAP object (the cache
  holds arrays only, never a pickle), so it falls back to the kNN rule below; so does a UMAP map
  fitted in the dashboard's worker process (``precal.dashboard.worker``), whose model stays there.
* t-SNE: has no transform. A new point is placed at the inverse-distance-weighted mean of the 2-D
  positions of its k = 5 nearest fitted points, distances measured in the standardised input space.
  A point that coincides with fitted points lands exactly on (the mean of) their positions. This is
  an interpolation, not an optimisation: it is fast and stable but cannot place a point outside the
  hull of the fitted map.

Large maps (:data:`MAX_FIT_SAMPLES`): t-SNE and UMAP cost minutes at some ten thousand points and
grow faster than linearly (t-SNE on 2 x 2,500 samples: about 20 s on one core), so above a cap
``fit_projection(..., max_fit_samples=cap)`` fits the method on a seeded subsample of ``cap``
samples (their pre and post rows) and places every other row as a new point would be placed
(UMAP's transform of the model just fitted, t-SNE's kNN rule above). Every sample gets a position;
the fitted ones are where the method put them, the rest an out-of-sample placement
(``Projection.fit_samples`` says how many were fitted). PCA is linear and fast: always fitted on all.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

METHODS = ("pca", "tsne", "umap")
MIN_POINTS = 5
KNN_PLACEMENT_K = 5
SILHOUETTE_METRIC = "euclidean"  # on standardised features; cosine would ignore feature magnitude
SILHOUETTE_MAX_SAMPLES = 5000  # silhouette is O(N^2): above this a seeded subsample is scored
PURITY_MAX_QUERIES = 5000  # kNN purity above this: the mean over a seeded subsample of query points
MAX_FIT_SAMPLES = 5_000
"""The dashboard's cap on samples a t-SNE or UMAP map is fitted on (10,000 points: each sample before
and after calibration); above it, the rest are placed out of sample (see the module docstring)."""
SUBSAMPLED_METHODS = ("tsne", "umap")
"""The methods a cap applies to (PCA fits 100k samples in about a second)."""
_BLOCK_ELEMENTS = 4_000_000  # query x reference distances per block in kNN placement (~32 MB)


# --- the projection ---------------------------------------------------------------------------


@dataclass
class Projection:
    """A 2-D map of N samples before (``pre_xy``) and after (``post_xy``) calibration, one space.

    ``mean``/``scale`` are the standardisation fitted on the stacked data; ``pca_mean`` and
    ``components`` are set for PCA only; ``model`` is a live fitted UMAP (None after a reload from
    disk). ``inputs`` (2N, D) is the standardised stacked data, the reference set for kNN placement;
    it is computed lazily from ``source`` so a cache hit does not pay for it. ``fit_samples``: how
    many samples the method was fitted on when that is fewer than all (a capped t-SNE/UMAP fit, the
    others placed out of sample); None when every sample was fitted.
    """

    method: str
    seed: int
    params: Dict[str, Any]
    pre_xy: np.ndarray
    post_xy: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    pca_mean: Optional[np.ndarray] = None
    components: Optional[np.ndarray] = None
    fit_samples: Optional[int] = None
    model: Any = field(default=None, repr=False, compare=False)
    source: Optional[Tuple[np.ndarray, np.ndarray]] = field(default=None, repr=False, compare=False)
    _inputs: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Projections are shared through the in-process cache: make the maps read-only so one caller
        # cannot silently change what the next one gets.
        for a in (self.pre_xy, self.post_xy):
            a.flags.writeable = False

    @property
    def n(self) -> int:
        return int(self.pre_xy.shape[0])

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def subsampled(self) -> bool:
        """Whether the method saw only some samples (the others were placed out of sample)."""
        return self.fit_samples is not None and self.fit_samples < self.n

    @property
    def xy(self) -> np.ndarray:
        """(2N, 2): pre rows then post rows, the order the method was fitted on."""
        return np.concatenate([self.pre_xy, self.post_xy])

    @property
    def placement(self) -> str:
        """How :meth:`place` works for this projection: "linear", "umap-transform" or "knn"."""
        if self.components is not None:
            return "linear"
        return "umap-transform" if self.model is not None else "knn"

    def standardise(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - self.mean) / self.scale

    @property
    def inputs(self) -> np.ndarray:
        with self._lock:
            if self._inputs is None:
                if self.source is None:
                    raise ValueError("this projection has no source data for kNN placement; "
                                     "load it through cached_projection(...) with the same pre/post arrays")
                self._inputs = self.standardise(np.concatenate(self.source))
            return self._inputs

    def place(self, points: np.ndarray) -> np.ndarray:
        """2-D positions (n, 2) of new points (n, D) (or one point (D,)) in this map."""
        pts = _check_points(points, self.dim)
        z = self.standardise(pts)
        if self.components is not None:
            return (z - self.pca_mean) @ self.components.T
        if self.model is not None:
            # One fitted model is shared by every dashboard session through the cache, and UMAP does
            # not promise a thread-safe transform: serialise it.
            with self._lock:
                return np.asarray(self.model.transform(z.astype(np.float32)), dtype=np.float64)
        return knn_place(z, self.inputs, self.xy, KNN_PLACEMENT_K)


def fit_projection(pre: np.ndarray, post: np.ndarray, method: str, seed: int = 0,
                   max_fit_samples: Optional[int] = None, **params: Any) -> Projection:
    """Fit ``method`` ("pca", "tsne" or "umap") on standardised ``[pre; post]`` and split the map.

    ``params`` go to the method (``sklearn.decomposition.PCA``, ``sklearn.manifold.TSNE``,
    ``umap.UMAP``); unset ones get defaults that are valid for small N (t-SNE perplexity and UMAP
    n_neighbors are capped by the number of points). The seed makes every method reproducible.
    ``max_fit_samples``: t-SNE and UMAP with more samples than this are fitted on a seeded subsample
    of that many and place the rest out of sample (:func:`subsample_rows`; PCA ignores it). Raises
    ValueError for NaN/inf, mismatched shapes, an unknown method, bad parameters or fewer than 5
    samples.
    """
    check_method(method)
    pre, post = check_pair(pre, post)
    if max_fit_samples is not None and int(max_fit_samples) < MIN_POINTS:
        raise ValueError(f"max_fit_samples must be at least {MIN_POINTS}, got {max_fit_samples}")
    mean, scale = _standardisation(pre, post)
    n = pre.shape[0]
    stacked = (np.concatenate([pre, post]) - mean) / scale
    rows = subsample_rows(n, method, max_fit_samples, seed)
    fitted = stacked if rows is None else np.concatenate([stacked[rows], stacked[n + rows]])
    resolved = _resolve_params(method, fitted.shape[0], params)
    fitters = {"pca": _fit_pca, "tsne": _fit_tsne, "umap": _fit_umap}
    fitted_xy, extra = fitters[method](fitted, seed, resolved)
    xy = fitted_xy if rows is None else _place_rest(stacked, rows, fitted, fitted_xy, extra.get("model"))
    return Projection(method=method, seed=int(seed), params=resolved, pre_xy=xy[:n], post_xy=xy[n:],
                      mean=mean, scale=scale, fit_samples=None if rows is None else int(rows.size),
                      source=(pre, post), _inputs=stacked, **extra)


def is_capped(n: int, method: str, max_fit_samples: Optional[int]) -> bool:
    """Whether a fit of ``method`` on ``n`` samples uses a subsample (t-SNE and UMAP above the cap)."""
    return method in SUBSAMPLED_METHODS and max_fit_samples is not None and n > int(max_fit_samples)


def subsample_rows(n: int, method: str, max_fit_samples: Optional[int], seed: int = 0) -> Optional[np.ndarray]:
    """The sorted sample rows a capped fit uses (a seeded choice of ``max_fit_samples`` of ``n``),
    or None when every sample is fitted (:func:`is_capped` false)."""
    if not is_capped(n, method, max_fit_samples):
        return None
    rng = np.random.default_rng(int(seed) + 104_729)  # a stream of its own, not the method's
    return np.sort(rng.choice(n, size=int(max_fit_samples), replace=False))


def _place_rest(stacked: np.ndarray, rows: np.ndarray, fitted: np.ndarray, fitted_xy: np.ndarray,
                model: Any) -> np.ndarray:
    """Positions of all 2N stacked rows after a fit on the subsample ``rows``: the fitted rows where
    the method put them, every other row placed as a new point (UMAP's transform, else kNN)."""
    n = stacked.shape[0] // 2
    chosen = np.concatenate([rows, n + rows])
    xy = np.empty((stacked.shape[0], 2), dtype=np.float64)
    xy[chosen] = fitted_xy
    rest = np.setdiff1d(np.arange(stacked.shape[0]), chosen, assume_unique=True)
    if model is not None:
        xy[rest] = np.asarray(model.transform(stacked[rest].astype(np.float32)), dtype=np.float64)
    else:
        xy[rest] = knn_place(stacked[rest], fitted, fitted_xy, KNN_PLACEMENT_K)
    return xy


def knn_place(z: np.ndarray, reference: np.ndarray, reference_xy: np.ndarray, k: int = KNN_PLACEMENT_K) -> np.ndarray:
    """Inverse-distance-weighted mean of the 2-D positions of the k nearest reference points.

    Candidates are found blockwise with the ``|a|^2 - 2ab + |b|^2`` expansion (fast), then their
    distances are recomputed directly so a query equal to a reference point gets distance exactly 0
    and is placed exactly on it (mean of the positions of all exact matches).
    """
    k = min(k, reference.shape[0])
    ref_sq = np.einsum("ij,ij->i", reference, reference)
    out = np.empty((z.shape[0], 2), dtype=np.float64)
    chunk = max(1, _BLOCK_ELEMENTS // reference.shape[0])
    for start in range(0, z.shape[0], chunk):
        q = z[start:start + chunk]
        d2 = ref_sq[None, :] - 2.0 * (q @ reference.T)  # + |q|^2, constant per row: no effect on ranking
        idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
        dist = np.linalg.norm(q[:, None, :] - reference[idx], axis=2)  # exact, (n, k)
        out[start:start + q.shape[0]] = _idw(dist, reference_xy[idx])
    return out


def _idw(dist: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(n, k) distances, (n, k, 2) positions -> (n, 2); exact matches win outright."""
    exact = dist <= 1e-12
    weights = np.where(exact.any(axis=1, keepdims=True), exact.astype(np.float64), 1.0 / np.maximum(dist, 1e-12))
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkc->nc", weights, xy)


# --- validation and fitting -------------------------------------------------------------------


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown projection method {method!r}; choose one of {', '.join(METHODS)}")


def check_pair(pre: np.ndarray, post: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    pre, post = np.asarray(pre), np.asarray(post)
    for name, a in (("pre", pre), ("post", post)):
        if a.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array (N samples, D features), got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if pre.shape != post.shape:
        raise ValueError(f"pre {pre.shape} and post {post.shape} must have the same shape: "
                         "row i of both is the same sample before and after calibration")
    if pre.shape[0] < MIN_POINTS:
        raise ValueError(f"need at least {MIN_POINTS} samples to fit a 2-D map, got {pre.shape[0]}")
    if pre.shape[1] < 2:
        raise ValueError(f"need at least 2 feature dimensions for a 2-D map, got {pre.shape[1]}")
    for name, a in (("pre", pre), ("post", post)):
        _check_finite(name, a)
    return pre, post


def _check_finite(name: str, a: np.ndarray) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(f"{name} has {int(bad.sum())} non-finite values (NaN or inf) in {rows.size} rows, "
                         f"first rows {rows[:5].tolist()}; drop or impute them before projecting")


def _check_points(points: np.ndarray, dim: int) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 1:
        pts = pts[None, :]
    if pts.ndim != 2 or pts.shape[1] != dim:
        raise ValueError(f"points must have shape (n, {dim}) like the fitted data, got {np.shape(points)}")
    _check_finite("points", pts)
    return pts


def _standardisation(pre: np.ndarray, post: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and scale over both sets together (so neither set is privileged); constant features
    get scale 1 instead of a division by zero."""
    stacked = np.concatenate([pre, post]).astype(np.float64, copy=False)
    mean = stacked.mean(axis=0)
    scale = stacked.std(axis=0)
    return mean, np.where(scale > 1e-12, scale, 1.0)


def _resolve_params(method: str, n_points: int, params: Mapping[str, Any]) -> Dict[str, Any]:
    """The caller's parameters plus defaults that are valid for this many points."""
    resolved = dict(params)
    if method == "tsne":
        resolved.setdefault("perplexity", float(min(30.0, (n_points - 1) / 3.0)))
        resolved.setdefault("init", "pca")
        if resolved["perplexity"] >= n_points:
            raise ValueError(f"t-SNE perplexity {resolved['perplexity']} must be below the number of points "
                             f"({n_points}, pre and post stacked)")
    elif method == "umap":
        resolved.setdefault("n_neighbors", int(min(15, n_points - 1)))
        resolved.setdefault("min_dist", 0.1)
    return resolved


def _build(cls: Any, name: str, **kwargs: Any) -> Any:
    try:
        return cls(**kwargs)
    except TypeError as err:  # an unknown keyword: say which method did not accept it
        raise ValueError(f"bad {name} parameters {sorted(kwargs)}: {err}") from None


def _fit_pca(stacked: np.ndarray, seed: int, params: Dict[str, Any]) -> Tuple[np.ndarray, Dict[str, Any]]:
    from sklearn.decomposition import PCA

    pca = _build(PCA, "pca", n_components=2, svd_solver="full", random_state=seed, **params).fit(stacked)
    components = np.asarray(pca.components_, dtype=np.float64)
    pca_mean = np.asarray(pca.mean_, dtype=np.float64)
    # Project with the same expression as Projection.place, so placing a fitted point is bit-exact.
    xy = (stacked - pca_mean) @ components.T
    return xy, {"pca_mean": pca_mean, "components": components}


def _fit_tsne(stacked: np.ndarray, seed: int, params: Dict[str, Any]) -> Tuple[np.ndarray, Dict[str, Any]]:
    from sklearn.manifold import TSNE

    tsne = _build(TSNE, "tsne", n_components=2, random_state=seed, **params)
    return np.asarray(tsne.fit_transform(stacked.astype(np.float32)), dtype=np.float64), {}


def _fit_umap(stacked: np.ndarray, seed: int, params: Dict[str, Any]) -> Tuple[np.ndarray, Dict[str, Any]]:
    import umap  # imported lazily: it pulls in numba (seconds), which pages without UMAP should not pay

    kwargs = {"n_jobs": 1, **params}  # a seed forces one job anyway; saying so avoids umap's warning
    model = _build(umap.UMAP, "umap", n_components=2, random_state=seed, **kwargs)
    xy = np.asarray(model.fit_transform(stacked.astype(np.float32)), dtype=np.float64)
    # UMAP builds its search index for new points on the first transform (seconds for a large map):
    # pay that here, once per fit, rather than on the user's first interactive placement.
    model.transform(stacked[:1].astype(np.float32))
    return xy, {"model": model}


# --- neighbourhood scores ---------------------------------------------------------------------


def neighbourhood_scores(X: np.ndarray, labels: np.ndarray, k: int = 10, seed: int = 0) -> Dict[str, float]:
    """How well labels cluster in the *high-dimensional* features (standardised per feature).

    ``knn_purity``: mean over points of the fraction of its k nearest neighbours (itself excluded)
    with the same label (above 5000 points, the mean over a seeded subsample of 5000 of them, their
    neighbours still sought among all: an unbiased estimate in seconds instead of minutes at 100k);
    ``silhouette``: ``sklearn.metrics.silhouette_score`` with the Euclidean metric on the
    standardised features (scored on a seeded subsample of 5000 points above that size; NaN when
    there are fewer than 2 or more than N - 1 distinct labels). Computed here and not on the 2-D
    map, whose neighbourhoods are distorted by construction.
    """
    from sklearn.metrics import silhouette_score
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    if X.ndim != 2 or labels.shape != (X.shape[0],):
        raise ValueError(f"X must be (N, D) and labels (N,), got {X.shape} and {labels.shape}")
    if X.shape[0] < 3:
        raise ValueError(f"need at least 3 points for neighbourhood scores, got {X.shape[0]}")
    _check_finite("X", X)
    mean, scale = _standardisation(X, X[:0])
    z = (X - mean) / scale
    k = max(1, min(k, X.shape[0] - 1))
    queries = np.arange(z.shape[0])
    if z.shape[0] > PURITY_MAX_QUERIES:
        queries = np.sort(np.random.default_rng(seed).choice(z.shape[0], PURITY_MAX_QUERIES, replace=False))
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z[queries])
    purity = float(_same_label_fraction(idx, labels, k, queries).mean())
    return {"knn_purity": purity, "silhouette": _silhouette(z, labels, seed, silhouette_score)}


def _same_label_fraction(idx: np.ndarray, labels: np.ndarray, k: int,
                         queries: Optional[np.ndarray] = None) -> np.ndarray:
    """Per query point (row ``queries[i]`` of the data; default all rows), the share of its k
    neighbours with its label. The query point is removed from its own row wherever it appears
    (with duplicate points it need not come first)."""
    queries = np.arange(idx.shape[0]) if queries is None else np.asarray(queries)
    own = queries[:, None]
    is_self = idx == own
    # Keep the first k non-self entries: drop self if present, else drop the last (k+1-th) entry.
    keep = ~is_self
    no_self = ~is_self.any(axis=1)
    keep[no_self, -1] = False
    neighbours = idx[keep].reshape(idx.shape[0], k)
    return (labels[neighbours] == labels[queries][:, None]).mean(axis=1)


def _silhouette(z: np.ndarray, labels: np.ndarray, seed: int, score: Any) -> float:
    n_labels = np.unique(labels).size
    if n_labels < 2 or n_labels > z.shape[0] - 1:
        return float("nan")
    size = SILHOUETTE_MAX_SAMPLES if z.shape[0] > SILHOUETTE_MAX_SAMPLES else None
    return float(score(z, labels, metric=SILHOUETTE_METRIC, sample_size=size, random_state=seed))
