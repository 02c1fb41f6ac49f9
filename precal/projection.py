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
  fitted in a :class:`ProjectionWorker` process (as the dashboard does), whose model stays there.
* t-SNE: has no transform. A new point is placed at the inverse-distance-weighted mean of the 2-D
  positions of its k = 5 nearest fitted points, distances measured in the standardised input space.
  A point that coincides with fitted points lands exactly on (the mean of) their positions. This is
  an interpolation, not an optimisation: it is fast and stable but cannot place a point outside the
  hull of the fitted map.

The disk cache (:func:`cached_projection`) is keyed by a SHA-256 of JSON (caller's key parts,
method, parameters, seed, array shapes/dtypes and a SHA-256 of the array bytes), and stores ``.npz``
arrays plus JSON metadata, loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import tempfile
import threading
import weakref
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from precal import disk_cache

log = logging.getLogger(__name__)

METHODS = ("pca", "tsne", "umap")
MIN_POINTS = 5
KNN_PLACEMENT_K = 5
SILHOUETTE_METRIC = "euclidean"  # on standardised features; cosine would ignore feature magnitude
SILHOUETTE_MAX_SAMPLES = 5000  # silhouette is O(N^2): above this a seeded subsample is scored
CACHE_FORMAT = 1
MEMORY_CACHE_SIZE = 8
_BLOCK_ELEMENTS = 4_000_000  # query x reference distances per block in kNN placement (~32 MB)


# --- the projection ---------------------------------------------------------------------------


@dataclass
class Projection:
    """A 2-D map of N samples before (``pre_xy``) and after (``post_xy``) calibration, one space.

    ``mean``/``scale`` are the standardisation fitted on the stacked data; ``pca_mean`` and
    ``components`` are set for PCA only; ``model`` is a live fitted UMAP (None after a reload from
    disk). ``inputs`` (2N, D) is the standardised stacked data, the reference set for kNN placement;
    it is computed lazily from ``source`` so a cache hit does not pay for it.
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


def fit_projection(pre: np.ndarray, post: np.ndarray, method: str, seed: int = 0, **params: Any) -> Projection:
    """Fit ``method`` ("pca", "tsne" or "umap") on standardised ``[pre; post]`` and split the map.

    ``params`` go to the method (``sklearn.decomposition.PCA``, ``sklearn.manifold.TSNE``,
    ``umap.UMAP``); unset ones get defaults that are valid for small N (t-SNE perplexity and UMAP
    n_neighbors are capped by the number of points). The seed makes every method reproducible.
    Raises ValueError for NaN/inf, mismatched shapes, an unknown method, bad parameters or fewer
    than 5 samples.
    """
    _check_method(method)
    pre, post = _check_pair(pre, post)
    mean, scale = _standardisation(pre, post)
    stacked = (np.concatenate([pre, post]) - mean) / scale
    resolved = _resolve_params(method, stacked.shape[0], params)
    fitters = {"pca": _fit_pca, "tsne": _fit_tsne, "umap": _fit_umap}
    xy, extra = fitters[method](stacked, seed, resolved)
    n = pre.shape[0]
    return Projection(method=method, seed=int(seed), params=resolved, pre_xy=xy[:n], post_xy=xy[n:],
                      mean=mean, scale=scale, source=(pre, post), _inputs=stacked, **extra)


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


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown projection method {method!r}; choose one of {', '.join(METHODS)}")


def _check_pair(pre: np.ndarray, post: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
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
    with the same label; ``silhouette``: ``sklearn.metrics.silhouette_score`` with the Euclidean
    metric on the standardised features (scored on a seeded subsample of 5000 points above that
    size; NaN when there are fewer than 2 or more than N - 1 distinct labels). Computed here and
    not on the 2-D map, whose neighbourhoods are distorted by construction.
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
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z)
    purity = float(_same_label_fraction(idx, labels, k).mean())
    return {"knn_purity": purity, "silhouette": _silhouette(z, labels, seed, silhouette_score)}


def _same_label_fraction(idx: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per point, the share of its k neighbours with its label. The query point is removed from its
    own row wherever it appears (with duplicate points it need not come first)."""
    own = np.arange(idx.shape[0])[:, None]
    is_self = idx == own
    # Keep the first k non-self entries: drop self if present, else drop the last (k+1-th) entry.
    keep = ~is_self
    no_self = ~is_self.any(axis=1)
    keep[no_self, -1] = False
    neighbours = idx[keep].reshape(idx.shape[0], k)
    return (labels[neighbours] == labels[:, None]).mean(axis=1)


def _silhouette(z: np.ndarray, labels: np.ndarray, seed: int, score: Any) -> float:
    n_labels = np.unique(labels).size
    if n_labels < 2 or n_labels > z.shape[0] - 1:
        return float("nan")
    size = SILHOUETTE_MAX_SAMPLES if z.shape[0] > SILHOUETTE_MAX_SAMPLES else None
    return float(score(z, labels, metric=SILHOUETTE_METRIC, sample_size=size, random_state=seed))


# --- caching ----------------------------------------------------------------------------------

_memory: "OrderedDict[str, Projection]" = OrderedDict()
_memory_lock = threading.Lock()


def clear_memory_cache() -> None:
    """Forget the in-process LRU (fitted UMAP models included); the disk cache is untouched."""
    with _memory_lock:
        _memory.clear()


def _array_digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(memoryview(a).cast("B")).hexdigest() if a.size else hashlib.sha256(b"").hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)  # Paths and the like: stable enough for a key, documented as a fallback


def cache_key(key_parts: Mapping[str, Any], pre: np.ndarray, post: np.ndarray, method: str, seed: int,
              params: Mapping[str, Any]) -> str:
    """SHA-256 over JSON of everything that determines the map (values without a JSON form use
    ``str``), including a digest of the array bytes, so changed data can never hit a stale entry."""
    pre, post = np.asarray(pre), np.asarray(post)
    payload = {
        "format": CACHE_FORMAT, "key_parts": dict(key_parts), "method": method, "params": dict(params),
        "seed": int(seed), "shapes": [list(pre.shape), list(post.shape)], "dtypes": [str(pre.dtype), str(post.dtype)],
        "data": [_array_digest(pre), _array_digest(post)],
    }
    text = json.dumps(payload, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cached_projection(cache_dir: Path | str, key_parts: Mapping[str, Any], pre: np.ndarray, post: np.ndarray,
                      method: str, seed: int = 0, fitter: Optional[Callable[..., Projection]] = None,
                      **params: Any) -> Projection:
    """:func:`fit_projection`, memoised in memory (LRU, keeps fitted UMAP models) and on disk (.npz).

    ``key_parts`` names what the arrays are (e.g. checkpoint fingerprint, split, feature kind) so the
    file names in the cache are traceable; the key also covers the array bytes themselves. A disk
    hit costs hashing the arrays plus reading a few small arrays (milliseconds at N = 1000); the
    returned projection places new points with PCA's linear map, or with kNN for t-SNE/UMAP.
    A corrupt cache file is ignored and rewritten. ``fitter`` replaces :func:`fit_projection` (same
    signature), e.g. :meth:`ProjectionWorker.fit` to fit in another process.
    """
    _check_method(method)
    key = cache_key(key_parts, pre, post, method, seed, params)
    hit = _memory_get(key)
    if hit is not None:
        return hit
    path = Path(cache_dir) / f"projection-{method}-{key[:40]}.npz"
    proj = _load(path, (np.asarray(pre), np.asarray(post))) if path.exists() else None
    if proj is None:
        proj = (fitter or fit_projection)(pre, post, method, seed, **params)
        _save(path, proj, key_parts)
        disk_cache.evict(path.parent, disk_cache.PROJECTIONS)
    else:
        disk_cache.mark_used(path)
    _memory_put(key, proj)
    return proj


def _memory_get(key: str) -> Optional[Projection]:
    with _memory_lock:
        proj = _memory.get(key)
        if proj is not None:
            _memory.move_to_end(key)
        return proj


def _memory_put(key: str, proj: Projection) -> None:
    with _memory_lock:
        _memory[key] = proj
        _memory.move_to_end(key)
        while len(_memory) > MEMORY_CACHE_SIZE:
            _memory.popitem(last=False)


def _save(path: Path, proj: Projection, key_parts: Mapping[str, Any]) -> None:
    """Write arrays + JSON metadata atomically (temp file + rename): a reader never sees half a file."""
    meta = {"format": CACHE_FORMAT, "method": proj.method, "seed": proj.seed, "params": proj.params,
            "key_parts": dict(key_parts)}
    arrays = {"pre_xy": proj.pre_xy, "post_xy": proj.post_xy, "mean": proj.mean, "scale": proj.scale,
              "meta": np.frombuffer(json.dumps(meta, sort_keys=True, default=_json_default).encode(), dtype=np.uint8)}
    if proj.components is not None:
        arrays.update(pca_mean=proj.pca_mean, components=proj.components)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path, source: Tuple[np.ndarray, np.ndarray]) -> Optional[Projection]:
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(f["meta"].tobytes().decode("utf-8"))
            if meta.get("format") != CACHE_FORMAT:
                return None
            pca = "components" in f.files
            return Projection(method=meta["method"], seed=int(meta["seed"]), params=meta["params"],
                              pre_xy=f["pre_xy"], post_xy=f["post_xy"], mean=f["mean"], scale=f["scale"],
                              pca_mean=f["pca_mean"] if pca else None, components=f["components"] if pca else None,
                              source=source)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        log.warning("ignoring unreadable projection cache file %s (%s); refitting", path, err)
        return None


# --- UMAP warm-up -----------------------------------------------------------------------------

_warm_lock = threading.Lock()
_warm_thread: Optional[threading.Thread] = None


def warm_up_umap() -> threading.Thread:
    """Start (once per process) a daemon thread that fits and applies UMAP on 50 random points.

    UMAP's first call JIT-compiles its numba kernels, which takes tens of seconds on a small CPU; doing
    it in the background when the dashboard starts keeps its first projection page from blocking.
    Calling again returns the same thread. Failures are logged, never raised: warm-up is optional.
    """
    global _warm_thread
    with _warm_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_warm_up_quietly, name="precal-umap-warm-up", daemon=True)
            _warm_thread.start()
        return _warm_thread


def _warm_up_quietly() -> None:
    try:
        _umap_jit_workload()
    except Exception:  # noqa: BLE001 - warm-up must never take the app down
        log.exception("UMAP warm-up failed; the first UMAP projection will compile on demand")


def _umap_jit_workload() -> None:
    """The same code paths as real UMAP projections: fit on stacked pre/post, then place.

    Both of UMAP's neighbour-search paths are compiled: exact distances (fewer than 4096 fitted
    points) and the pynndescent index (larger maps, forced here on few points). Placement runs for one
    point and for several, because numba compiles separate versions for the contiguous slices a
    single row produces and the strided ones of several rows.
    """
    rng = np.random.default_rng(0)
    pre = rng.normal(size=(25, 8)).astype(np.float32)
    post = pre + rng.normal(scale=0.1, size=pre.shape).astype(np.float32)
    for approximate in (False, True):
        proj = fit_projection(pre, post, "umap", seed=0, force_approximation_algorithm=approximate)
        proj.place(pre[:1])
        proj.place(pre[:3])


# --- fitting in a worker process --------------------------------------------------------------


class WorkerDied(RuntimeError):
    """The projection worker process ended (or could not start) while it had a request."""


class ProjectionWorker:
    """One long-lived worker process that fits projections away from the calling process.

    Why: UMAP's first fit JIT-compiles numba kernels for about a minute on a small CPU, holding the
    GIL of the process it runs in. In the dashboard's server process that slows every page of every
    session for that minute; in a worker process it costs one CPU core and no GIL. The worker keeps
    its compiled kernels, so later fits there are fast.

    The warm-up compile runs at the lowest CPU priority (nice 19, see :func:`_at_lowest_priority`):
    separating the GIL is not enough on a 2-core machine, where the compile also takes a core that
    the browser and the server need (``benchmarks/dashboard.py`` measures the lab's round trip
    during the compile), and a page that someone is using can pause it (:meth:`pause_warm_up`).
    Fits run at normal priority and are never paused: a user is waiting for those.

    Only arrays come back: the fitted UMAP object stays in the worker, so new points are placed with
    the kNN rule, exactly as for a projection reloaded from the disk cache (see the module docstring).
    Requests are served one at a time (a fit asked for during the warm-up waits for it). The
    process is started on the first request (a fresh interpreter with the caller's ``sys.path``:
    no copy of the caller's threads or torch state), is killed by :meth:`close` and at exit, and is
    restarted if it died. If it cannot serve a fit at all, :meth:`fit` fits in the calling process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one request at a time on the connection
        self._process: Optional[Any] = None
        self._conn: Optional[Any] = None
        self._warm_thread: Optional[threading.Thread] = None
        self._closing = False  # close() killed the process: a request's WorkerDied is expected
        self._warming = False
        self._pause_lock = threading.Lock()
        self._paused: Optional[Any] = None  # the process stopped by pause_warm_up, if any
        self._resume_timer: Optional[threading.Timer] = None
        _live_workers.add(self)

    def fit(self, pre: np.ndarray, post: np.ndarray, method: str, seed: int = 0, **params: Any) -> Projection:
        """:func:`fit_projection` in the worker (same arguments, errors and result, minus ``model``)."""
        _check_method(method)
        pre, post = _check_pair(pre, post)
        try:
            arrays = self._call("fit", pre, post, method, int(seed), params)
        except WorkerDied:
            log.warning("the projection worker failed; fitting %s in this process instead", method, exc_info=True)
            return fit_projection(pre, post, method, seed, **params)
        n = pre.shape[0]
        if arrays["pre_xy"].shape != (n, 2) or arrays["post_xy"].shape != (n, 2):  # never cache a mix-up
            raise WorkerDied(f"the projection worker answered with maps of shape {arrays['pre_xy'].shape}, "
                             f"expected ({n}, 2)")
        return Projection(method=method, seed=int(seed), source=(pre, post), **arrays)

    def warm_up(self) -> threading.Thread:
        """Compile UMAP in the worker, from a daemon thread that waits for it (started once; a
        failure is logged, never raised: warm-up is optional)."""
        with _warm_lock:
            if self._warm_thread is None:
                self._warm_thread = threading.Thread(target=self._warm_up_quietly, daemon=True,
                                                     name="precal-umap-worker-warm-up")
                self._warm_thread.start()
            return self._warm_thread

    @property
    def pid(self) -> Optional[int]:
        process = self._process
        return None if process is None else process.pid

    def close(self) -> None:
        """Stop the worker process now, even in the middle of a request (which then raises
        :class:`WorkerDied` in its caller); a new request starts another process."""
        process = self._process
        if process is not None and process.poll() is None:
            self._closing = True
            process.kill()  # without the lock: a request in progress may hold it for minutes
        if self._lock.acquire(timeout=10):  # the request's wait loop sees the kill within 0.2 s
            try:
                self._stop()
            finally:
                self._lock.release()

    def pause_warm_up(self, seconds: float = 2.0) -> bool:
        """Stop a running warm-up compile (SIGSTOP) until ``seconds`` after the last call, then let
        it go on (SIGCONT). Returns whether a compile was paused.

        Why: even at nice 19 the compile costs a page that a user is waiting for some tens of ms on
        a 2-core machine (the kernel still gives it a share, and it competes for caches); a page
        that calls this whenever it runs keeps the whole machine while someone is interacting.
        Fits that a user asked for are never paused. POSIX only (elsewhere a no-op)."""
        import signal

        process = self._process
        if not self._warming or process is None or process.poll() is not None or not hasattr(signal, "SIGSTOP"):
            return False
        with self._pause_lock:
            if self._paused is None:
                os.kill(process.pid, signal.SIGSTOP)
                self._paused = process
            if self._resume_timer is not None:
                self._resume_timer.cancel()
            self._resume_timer = threading.Timer(seconds, self._resume)
            self._resume_timer.daemon = True
            self._resume_timer.start()
        return True

    def _resume(self) -> None:
        import signal

        with self._pause_lock:
            process, self._paused = self._paused, None
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)

    def _warm_up_quietly(self) -> None:
        self._warming = True
        try:
            self._call("warm_up")
        except WorkerDied:
            if not self._closing:  # not stopped on purpose
                log.exception("UMAP warm-up in the worker failed; the first UMAP projection will compile on demand")
        except Exception:  # noqa: BLE001 - warm-up must never take the caller down
            log.exception("UMAP warm-up in the worker failed; the first UMAP projection will compile on demand")
        finally:
            self._warming = False
            self._resume()

    def _call(self, request: str, *args: Any) -> Any:
        with self._lock:
            try:
                if self._process is None or self._process.poll() is not None:
                    self._start()
                self._conn.send((request, args))
                while not self._conn.poll(0.2):  # waits without the GIL
                    if self._process.poll() is not None:
                        raise EOFError("the worker process ended")
                ok, value = self._conn.recv()
            except (EOFError, OSError) as err:
                self._stop()
                raise WorkerDied(f"the projection worker process ended during {request!r}: {err}") from err
            except BaseException:
                # Interrupted between sending and reading the answer: that answer would otherwise be
                # read as the next request's. A new process is started for the next request.
                self._stop()
                raise
        if not ok:
            raise value
        return value

    def _start(self) -> None:
        """A plain ``python -c`` child on one end of a socket pair. Not ``multiprocessing``'s spawn:
        that re-runs the caller's main script in the child, which is a server's (or a test
        runner's) start-up, not something to repeat. The child gets the caller's ``sys.path``, so it
        imports the same ``precal`` (not one that the child's working directory would shadow)."""
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        self._closing = False
        mine, theirs = socket.socketpair()
        try:
            # this precal's folder first, then the caller's path minus "" (a working directory's own
            # precal/ must not shadow the one the caller runs)
            paths = [str(Path(__file__).resolve().parent.parent)] + [p for p in sys.path if p]
            code = (f"import sys; sys.path[:] = {paths!r}; "
                    f"from precal.projection import _serve_fd; _serve_fd({theirs.fileno()})")
            self._process = subprocess.Popen([sys.executable, "-c", code], pass_fds=(theirs.fileno(),),
                                             stdin=subprocess.DEVNULL)
            self._conn = Connection(mine.detach())
        finally:
            theirs.close()
            mine.close()  # a no-op once detached

    def _stop(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is not None and process.poll() is None:
            process.kill()
            try:
                process.wait(5)
            except Exception:  # noqa: BLE001 - a kill that takes longer still ends the process
                pass
        if conn is not None:
            conn.close()


_live_workers: "weakref.WeakSet[ProjectionWorker]" = weakref.WeakSet()


@atexit.register
def _close_live_workers() -> None:
    """A compile in progress must not outlive its caller."""
    for worker in list(_live_workers):
        worker.close()


def _serve_fd(fd: int) -> None:
    """The worker's loop: answer (request, args) with (ok, result or error) until the caller
    closes its end. Its messages are pickles, as in ``multiprocessing``: both ends are this code."""
    import signal
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is for the caller, who stops us
    conn = Connection(fd)
    handlers = {"fit": _fit_arrays, "warm_up": lambda: _at_lowest_priority(_umap_jit_workload)}
    while True:
        try:
            request, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer = (True, handlers[request](*args))
        except Exception as err:  # noqa: BLE001 - every error goes back to the caller
            answer = (False, _portable_error(err))
        try:
            conn.send(answer)
        except OSError:  # the caller is gone
            return


def _at_lowest_priority(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a thread at the lowest CPU priority (nice 19) and wait for it.

    The warm-up compile is speculative background work: on a small machine it must yield to the
    server and the browser, whose work a user is waiting for (idle cores it still gets). A fit that
    a user asked for runs at normal priority in the worker's main thread; the compiled kernels are
    the process's, so it profits from the warm-up all the same. Linux sets priorities per thread;
    where that fails the work simply runs at normal priority."""
    outcome: Dict[str, Any] = {}

    def run() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass
        try:
            outcome["value"] = work()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = err

    thread = threading.Thread(target=run, name="precal-low-priority")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _portable_error(err: Exception) -> Exception:
    """An exception that survives the trip to the caller: ValueError (the API's "bad input") as
    itself, anything else as a RuntimeError naming the original type (a custom exception may not
    pickle, or not be rebuilt on the other side)."""
    if isinstance(err, ValueError):
        return ValueError(str(err))
    return RuntimeError(f"{type(err).__name__} in the projection worker: {err}")


def _fit_arrays(pre: np.ndarray, post: np.ndarray, method: str, seed: int, params: Dict[str, Any]) -> Dict[str, Any]:
    proj = fit_projection(pre, post, method, seed, **params)
    return {"params": proj.params, "pre_xy": np.array(proj.pre_xy), "post_xy": np.array(proj.post_xy),
            "mean": proj.mean, "scale": proj.scale, "pca_mean": proj.pca_mean, "components": proj.components}


_shared_worker: Optional[ProjectionWorker] = None


def shared_worker() -> ProjectionWorker:
    """This process's one :class:`ProjectionWorker` (created on first use, no process until needed)."""
    global _shared_worker
    with _warm_lock:
        if _shared_worker is None:
            _shared_worker = ProjectionWorker()
        return _shared_worker
