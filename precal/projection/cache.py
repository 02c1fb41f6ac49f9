"""Projections memoised in memory (LRU, keeps fitted UMAP models) and on disk.

The disk cache (:func:`cached_projection`) is keyed by a SHA-256 of JSON (caller's key parts,
method, parameters, seed, array shapes/dtypes and a SHA-256 of the array bytes), and stores ``.npz``
arrays plus JSON metadata, loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Tuple

import numpy as np

from precal import disk_cache
from precal.projection.method import Projection, check_method, fit_projection, is_capped

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
MEMORY_CACHE_SIZE = 8

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
                      max_fit_samples: Optional[int] = None, **params: Any) -> Projection:
    """:func:`fit_projection`, memoised in memory (LRU, keeps fitted UMAP models) and on disk (.npz).

    ``key_parts`` names what the arrays are (e.g. checkpoint fingerprint, split, feature kind) so the
    file names in the cache are traceable; the key also covers the array bytes themselves. A disk
    hit costs hashing the arrays plus reading a few small arrays (milliseconds at N = 1000); the
    returned projection places new points with PCA's linear map, or with kNN for t-SNE/UMAP.
    A corrupt cache file is ignored and rewritten. ``fitter`` replaces :func:`fit_projection` (same
    signature), e.g. the dashboard's worker process (``precal.dashboard.worker.ProjectionWorker.fit``).
    ``max_fit_samples`` caps the samples t-SNE/UMAP are fitted on (:func:`fit_projection`); it enters
    the key only where it changes the map, so a small split keeps the key it had without a cap.
    """
    check_method(method)
    capped = is_capped(int(np.shape(pre)[0]), method, max_fit_samples)
    cap = {"max_fit_samples": int(max_fit_samples)} if capped else {}
    key = cache_key(key_parts, pre, post, method, seed, {**params, **cap})
    hit = _memory_get(key)
    if hit is not None:
        return hit
    path = Path(cache_dir) / f"projection-{method}-{key[:40]}.npz"
    proj = _load(path, (np.asarray(pre), np.asarray(post))) if path.exists() else None
    if proj is None:
        proj = (fitter or fit_projection)(pre, post, method, seed, **cap, **params)
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
            "key_parts": dict(key_parts), "fit_samples": proj.fit_samples}
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


def _optional_int(value: Any) -> Optional[int]:
    """``fit_samples`` from a cache file's metadata (absent in files written before it existed)."""
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


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
                              fit_samples=_optional_int(meta.get("fit_samples")), source=source)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        log.warning("ignoring unreadable projection cache file %s (%s); refitting", path, err)
        return None
