"""Running the models: one lock per shared model, batched and single-sample forward passes, and
predictions over a split cached on disk.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import threading
import weakref
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

import precal
from precal import disk_cache
from precal.calibration import CalibrationReport
from precal.dashboard.backend.pairs import ModelView
from precal.data.batch import Batch
from precal.inference import Predictions, predict

_LOCKS: "weakref.WeakKeyDictionary[torch.nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()


_LOCKS_GUARD = threading.Lock()


def model_lock(model: torch.nn.Module) -> threading.RLock:
    """One lock per model: the runtime calibrator switch mutates the shared module."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


def predict_view(view: ModelView, batch: Batch, batch_size: int = 128) -> Predictions:
    """Batched predictions (with cues and features) of one view over a batch."""
    model = view.checkpoint.model
    with model_lock(model), model.calibration(view.calibration):
        return predict(model, batch, batch_size=batch_size)


def forward_view(view: ModelView, batch: Batch) -> Tuple[Predictions, CalibrationReport]:
    """One forward pass of a few samples keeping everything (per-channel gates, pairwise support and
    the full report, which explanations need)."""
    return forward_views([view], batch)[0]


def forward_views(views: Sequence[ModelView], batch: Batch) -> List[Tuple[Predictions, CalibrationReport]]:
    """:func:`forward_view` for several views of one checkpoint (e.g. calibrated and calibrator
    switched off). The encoders do not depend on the calibrator switch, so they run once; only
    calibrator, fusion and head run per view. The lab does this on every control change."""
    model = views[0].checkpoint.model
    if any(v.checkpoint.model is not model for v in views):
        raise ValueError("forward_views needs views of one checkpoint")
    with model_lock(model), torch.inference_mode():
        was = model.training
        model.eval()
        try:
            encoded = model.encode(batch)
            results = []
            for v in views:
                with model.calibration(v.calibration):
                    out = model.fuse(*encoded)
                results.append((Predictions.stack([out], batch.labels, batch.indices, detail=True), out.report))
        finally:
            model.train(was)
    return results


_CODE_FILES = ("calibration.py", "inference.py", "models/model.py", "models/encoders.py", "models/fusion.py",
               "data/dataset.py", "data/batch.py", "own_model.py")
_SWEEP_FILES = ("robustness/engine.py", "robustness/corruptions.py", "robustness/damage.py",
                "robustness/keyed_random.py", "robustness/table.py", "metrics.py")


@functools.lru_cache(maxsize=None)
def _source_key(names: Tuple[str, ...]) -> str:
    """Hash of precal's version and of these source files (relative to the package), once per process."""
    h = hashlib.sha256(precal.__version__.encode())
    base = Path(precal.__file__).resolve().parent
    for name in names:
        try:
            h.update((base / name).read_bytes())
        except OSError:
            h.update(name.encode())
    return h.hexdigest()[:16]


def code_key() -> str:
    """Hash of the code that turns weights + inputs into predictions: a cached prediction from older
    code (same weights, different maths) is never reused."""
    return _source_key(_CODE_FILES)


def sweep_code_key() -> str:
    """:func:`code_key` plus the code that corrupts the inputs and scores a sweep: a cached sweep
    from an older engine (say, before it left a data set's own corrupted samples out of the AUROC
    columns) is never reused."""
    return _source_key(_CODE_FILES + _SWEEP_FILES)


def prediction_parts(data_path: Path | str, data_mtime: int, split: str, variant: str = "clean") -> Dict[str, Any]:
    """The key parts :func:`cached_predict` gets for a split's predictions: the data folder (resolved:
    the dashboard given ``sample_data/`` and ``precal precompute`` given ``sample_data/utd_mhad``
    from another folder mean the same files), its modification time, the split and the variant."""
    return {"data": str(Path(data_path).expanduser().resolve()), "data_mtime": int(data_mtime), "split": split,
            "variant": variant}


def cached_predict(view: ModelView, batch: Batch, key_parts: Mapping[str, Any],
                   cache_dir: Optional[Path] = None) -> Predictions:
    """:func:`predict_view`, stored on disk as ``.npz`` (no pickle) under ``cache_dir``.

    ``key_parts`` must identify the inputs (data folder + its modification time, split); the key
    adds the weights' fingerprint, the calibrator switch, the batch shapes and :func:`code_key`.
    An unreadable cache file is ignored and rewritten. Without ``cache_dir`` nothing is stored.
    """
    if cache_dir is None:
        return predict_view(view, batch)
    shapes = {m: list(v.shape) for m, v in batch.inputs.items()}
    payload = {"parts": dict(key_parts), "weights": view.checkpoint.fingerprint, "calibration": view.calibration,
               "modalities": list(view.checkpoint.model.modalities), "shapes": shapes, "code": code_key()}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]
    path = Path(cache_dir) / f"predictions-{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                mods = [str(m) for m in f["modalities"]]
                arrays = {k: (f[k] if k in f.files else None) for k in Predictions.ARRAYS}
                before = {m: f[f"before.{m}"] for m in mods}
                after = {m: f[f"after.{m}"] for m in mods}
            disk_cache.mark_used(path)
            return Predictions(modalities=mods, summaries_before=before, summaries_after=after, **arrays)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass
    preds = predict_view(view, batch)
    arrays = {k: getattr(preds, k) for k in Predictions.ARRAYS if getattr(preds, k) is not None}
    arrays["modalities"] = np.asarray(preds.modalities)
    arrays.update({f"before.{m}": v for m, v in preds.summaries_before.items()})
    arrays.update({f"after.{m}": v for m, v in preds.summaries_after.items()})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
        disk_cache.evict(path.parent, disk_cache.PREDICTIONS)
    except OSError:
        pass  # a read-only checkout still works, just without the disk cache
    return preds
