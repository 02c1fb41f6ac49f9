"""Cached loading, shared by every session of the server.

- models (checkpoints) and data sets: ``st.cache_resource`` (one shared copy; keyed by path and the
  checkpoint's weight fingerprint, so a re-trained checkpoint at the same path is reloaded);
- predictions: ``st.cache_data`` keyed by weight fingerprints + data + split, over the disk cache of
  :func:`precal.dashboard.backend.running.cached_predict`;
- projections: ``st.cache_resource`` in memory over :func:`precal.projection.cached_projection` on
  disk (so a restart does not refit t-SNE/UMAP).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import streamlit as st

from precal.checkpoint import WEIGHTS_FILE, Checkpoint, file_sha256, load_checkpoint
from precal.dashboard import settings, worker
from precal.dashboard.backend import own_models, pairs
from precal.dashboard.backend.data import SplitBatches, data_mtime, split_batches
from precal.dashboard.backend.embeddings import neighbourhood_table, split_projection
from precal.dashboard.backend.preload import take_preloaded
from precal.dashboard.backend.pairs import LoadProblem, ModelPair, ModelView
from precal.dashboard.backend.running import cached_predict, prediction_parts
from precal.data.storage import MultimodalData, load_dataset
from precal.inference import Predictions
from precal.own_checkpoint import open_own_model

__all__ = ["cached_split_batches", "data_mtime", "load_checkpoints", "load_data", "neighbourhoods", "projection",
           "split_predictions"]


def _weights_key(path: str) -> str:
    """Fingerprint of a checkpoint's weights (re-hashed only when the file changes)."""
    folder = Path(path)
    weights = folder / WEIGHTS_FILE if folder.is_dir() else folder
    try:
        st_ = weights.stat()
    except OSError:
        return "missing"
    return _hash_file(str(weights), st_.st_mtime_ns, st_.st_size)


@st.cache_data(show_spinner=False, max_entries=256)
def _hash_file(path: str, mtime_ns: int, size: int) -> str:  # noqa: ARG001 (cache key)
    return file_sha256(Path(path))


@st.cache_resource(show_spinner="Loading checkpoint…", max_entries=32)
def _checkpoint(path: str, fingerprint: str, model: Optional[str] = None,  # noqa: ARG001 (cache key)
                model_key: str = "") -> Checkpoint:
    if model:
        return own_models.load_named_checkpoint(path, model)
    return take_preloaded(path) or load_checkpoint(path)


def _factory_key(model: Optional[str]) -> str:
    """When your own model's file changes, what it built is loaded again (its size and time)."""
    module = (model or "").rpartition(":")[0]
    try:
        st_ = Path(module).stat() if module.endswith(".py") else None
    except OSError:
        return "missing"
    return f"{st_.st_mtime_ns}:{st_.st_size}" if st_ else ""


def load_checkpoints(paths: Sequence[str], args: Optional[settings.DashboardArgs] = None
                     ) -> Tuple[List[Checkpoint], List[LoadProblem]]:
    """:func:`precal.dashboard.backend.pairs.load_checkpoints` through the shared cache. The
    checkpoints ``args`` names load with its ``--model`` (your own model's factory); any other
    path (an upload) never does. With ``--model`` and no checkpoint, the model itself is opened."""
    model = args.model if args is not None else None
    named = {str(Path(p).expanduser().resolve()) for p in (args.checkpoints if args is not None else ())}
    loaded, problems = pairs.load_checkpoints(
        paths, load=lambda path: _checkpoint(path, _weights_key(path), model if path in named else None,
                                             _factory_key(model) if path in named else ""))
    if model and not (args.checkpoints if args is not None else ()):
        own, own_problems = own_models.load_model_without_checkpoint(model, args.data, args.weights, load=_own_model)
        loaded, problems = loaded + own, problems + own_problems
    return loaded, problems


def _own_model(model: str, data: Optional[str], weights: Optional[str]) -> Checkpoint:
    """Your model without a checkpoint, shared; rebuilt when its file or its weights change."""
    return _own_model_keyed(model, data, weights, _factory_key(model), _weights_key(weights) if weights else "")


@st.cache_resource(show_spinner="Building your model…", max_entries=8)
def _own_model_keyed(model: str, data: Optional[str], weights: Optional[str], model_key: str,  # noqa: ARG001
                     weights_key: str) -> Checkpoint:  # noqa: ARG001 (cache keys)
    return open_own_model(model, data, weights)


@st.cache_resource(show_spinner="Loading data set…", max_entries=8)
def load_data(path: str, mtime_ns: int) -> MultimodalData:  # noqa: ARG001 (cache key)
    return load_dataset(path)


@st.cache_resource(show_spinner="Preparing the split…", max_entries=16)
def cached_split_batches(pair_key: str, data_path: str, split: str, _pair: ModelPair,
                         _data: MultimodalData) -> SplitBatches:
    return split_batches(_pair, _data, split)


@st.cache_data(show_spinner="Running the model over the split…", max_entries=64)
def split_predictions(view_key: str, fingerprint: str, data_path: str, data_mtime: int, split: str,
                      variant: str, _view: ModelView, _batch) -> Predictions:
    return cached_predict(_view, _batch, prediction_parts(data_path, data_mtime, split, variant),
                          settings.cache_folder("predictions"))


@st.cache_resource(show_spinner="Fitting the 2-D map of the split (cached afterwards)…", max_entries=16)
def projection(key: str, method: str, _pre: np.ndarray, _post: np.ndarray, _parts: dict):
    """The split's pre/post map, in memory and on disk
    (:func:`precal.dashboard.backend.embeddings.split_projection`, which ``precal precompute`` fills).

    UMAP is fitted in the projection worker process: its first fit compiles numba kernels for about a
    minute, holding the GIL of the process it runs in, which in the server would slow every page."""
    return split_projection(settings.cache_folder("projections"), _parts, _pre, _post, method,
                            fitter=worker.shared_worker().fit if method == "umap" else None)


@st.cache_data(show_spinner="Scoring neighbourhoods…", max_entries=32)
def neighbourhoods(key: str, _pre: np.ndarray, _post: np.ndarray, _labels: np.ndarray):
    """kNN purity and silhouette before and after calibration
    (:func:`precal.dashboard.backend.embeddings.neighbourhood_table`), once per map's key: at 100k
    samples they cost seconds, which every rerun of the page (a selection, a colour) would repeat."""
    return neighbourhood_table(_pre, _post, _labels, k=10)
