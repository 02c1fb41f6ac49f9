"""Everything the dashboard computes, with no Streamlit in it (so it is unit-tested like the rest).

The pages in ``dashboard/`` only lay out widgets and charts; every number they show comes from here
or from the modules this builds on (:mod:`precal.inference`, :mod:`precal.explain`,
:mod:`precal.projection`, :mod:`precal.corruptions`). The same forward pass that predicts also
produces the calibration report the pages draw (no second code path for the UI).

Vocabulary used throughout:

- a **pair** (:class:`ModelPair`) groups the calibrated (``..._calon``) and uncalibrated
  (``..._caloff``) checkpoints of one data set and backbone; either may be missing;
- a **view** (:class:`ModelView`) is one model as shown in a column: a checkpoint plus the runtime
  calibrator switch. If a pair has no trained baseline, the calibrated checkpoint run with its
  calibrator switched off stands in as "uncalibrated" (same weights, gates fixed at 1);
- a **split batch** is a whole split preprocessed exactly as the checkpoint's training data was
  (:func:`precal.evaluation.dataset_for`); single samples are rows of it, so a corrupted sample in the
  lab is corrupted exactly as in a batched robustness sweep (randomness is keyed by sample index).
"""

from __future__ import annotations

import atexit
import io
import lzma
import math
import os
import re
import shutil
import stat
import struct
import tempfile
import threading
import time
import weakref
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor

import precal
from precal import disk_cache
from precal.calibration import CalibrationReport
from precal.checkpoint import CONFIG_FILE, WEIGHTS_FILE, Checkpoint, CheckpointError, load_checkpoint
from precal.dashboard_launcher import (  # noqa: F401 (APP_PATH, ENV_* re-exported for the app and tests)
    APP_PATH, ENV_CHECKPOINTS, ENV_DATA, MAX_UPLOAD_BYTES, ROOT)
from precal.data.batch import Batch
from precal.data.dataset import Preprocessor
from precal.data.skeleton import KINECT_V1_BONES, skeleton_bones  # noqa: F401 (part of this module's API)
from precal.data.schema import DatasetSchema, ModalitySchema, SchemaError
from precal.data.storage import HEADER_FILE, MultimodalData, load_dataset
from precal.describe import selected_weights, used_options
from precal.evaluation import dataset_for, resolve_data_dir
from precal.inference import Predictions, predict
from precal.limits import read_json
from precal.metrics import compute_metrics
from precal.models.derived import describe_derived


CACHE_DIR = ROOT / ".cache" / "precal"
"""On-disk caches (projections, predictions); gitignored."""
UMAP_WARM_UP_DELAY_S = 15.0
"""How long after the first page the dashboard starts compiling UMAP (see dash_state.schedule_warmups)."""
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
"""What one upload may expand to (its declared sizes, and what is actually written)."""
MAX_UPLOAD_FILES = 32
MAX_UPLOAD_AREA_BYTES = 1024 * 1024 * 1024
"""What all uploads of one server process may occupy together (they are kept while it runs)."""
UPLOADED_FILES = re.compile(r"^(config\.json|model\.safetensors|metrics\.json|history\.json"
                            r"|eval_[A-Za-z0-9_+\-]+\.json)$")
"""The only files of an uploaded archive that are unpacked: a checkpoint's own (nothing else is read)."""

USER_ERRORS: Tuple[type, ...] = (CheckpointError, SchemaError, ValueError, KeyError, FileNotFoundError, OSError)
"""What a bad path, file or choice raises: shown to the user as one line, never as a traceback."""

CALIBRATED = "calibrated"
UNCALIBRATED = "uncalibrated"
ROLES = (CALIBRATED, UNCALIBRATED)
REFERENCE_TRAINED = "trained baseline"
REFERENCE_SWITCHED_OFF = "calibrator switched off"


def error_message(exc: BaseException) -> str:
    """One readable line for a user-caused error (KeyError's repr quotes are dropped)."""
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    else:
        text = str(exc) or type(exc).__name__
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


# --------------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardArgs:
    """What to open: explicit checkpoint folders (empty: every loadable folder in ``checkpoints/``)
    and an optional data folder (a data set, or a folder of data sets such as ``sample_data/``)."""

    checkpoints: Tuple[str, ...] = ()
    data: Optional[str] = None


def parse_dashboard_args(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> DashboardArgs:
    """Arguments after ``--`` on the ``streamlit run`` line win; else ``PRECAL_CHECKPOINTS``
    (``os.pathsep``-separated) and ``PRECAL_DATA`` (what the launcher also sets, and what tests use)."""
    checkpoints: List[str] = []
    data: Optional[str] = None
    it = iter(argv)
    for arg in it:
        if arg in ("--checkpoint", "--data"):
            value = next(it, None)
            if value is None:
                raise ValueError(f"{arg} needs a value")
            if arg == "--checkpoint":
                checkpoints.append(value)
            else:
                data = value
        elif arg.startswith("--checkpoint="):
            checkpoints.append(arg.split("=", 1)[1])
        elif arg.startswith("--data="):
            data = arg.split("=", 1)[1]
    if not checkpoints:
        checkpoints = [p for p in environ.get(ENV_CHECKPOINTS, "").split(os.pathsep) if p.strip()]
    if data is None:
        data = environ.get(ENV_DATA) or None
    return DashboardArgs(tuple(checkpoints), data)


# --------------------------------------------------------------------------------------------------
# Checkpoints and pairs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadProblem:
    """A checkpoint or data folder that could not be opened, with a one-line reason."""

    path: str
    message: str


def default_checkpoint_dirs(root: Path = ROOT) -> List[Path]:
    """Every folder in ``<root>/checkpoints`` that looks like a checkpoint (has a config.json)."""
    folder = root / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / CONFIG_FILE).is_file()
                  and not p.name.startswith("."))


def load_checkpoints(paths: Sequence[str | Path]) -> Tuple[List[Checkpoint], List[LoadProblem]]:
    """Load each folder; a failure becomes a :class:`LoadProblem` instead of stopping the others."""
    loaded: List[Checkpoint] = []
    problems: List[LoadProblem] = []
    seen: set = set()
    for p in paths:
        try:
            ckpt = load_checkpoint(p)
        except USER_ERRORS as exc:
            problems.append(LoadProblem(str(p), error_message(exc)))
            continue
        key = ckpt.path.resolve()
        if key not in seen:
            seen.add(key)
            loaded.append(ckpt)
    return loaded, problems


_SUFFIX = re.compile(r"^(?P<base>.+?)[_\-]cal(?P<flag>on|off)$")


def _group_key(ckpt: Checkpoint) -> str:
    m = _SUFFIX.match(ckpt.name)
    if m:
        return m.group("base")
    return f"{ckpt.schema.name}_{ckpt.config.backbone}"


@dataclass
class ModelPair:
    """The calibrated and uncalibrated checkpoint of one data set + backbone (either may be None)."""

    key: str
    calibrated: Optional[Checkpoint] = None
    uncalibrated: Optional[Checkpoint] = None
    _fingerprints: Dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def checkpoints(self) -> List[Checkpoint]:
        return [c for c in (self.calibrated, self.uncalibrated) if c is not None]

    @property
    def primary(self) -> Checkpoint:
        """The checkpoint whose schema, data and splits the pages use."""
        return self.checkpoints[0]

    @property
    def dataset(self) -> str:
        return self.primary.schema.name

    @property
    def backbone(self) -> str:
        return self.primary.config.backbone

    @property
    def label(self) -> str:
        parts = []
        if self.calibrated is not None:
            parts.append("calibrated")
        if self.uncalibrated is not None:
            parts.append("uncalibrated")
        return f"{self.dataset} · {self.backbone} backbone ({' + '.join(parts)})"

    def fingerprint(self, ckpt: Checkpoint) -> str:
        key = str(ckpt.path)
        if key not in self._fingerprints:
            self._fingerprints[key] = ckpt.fingerprint
        return self._fingerprints[key]

    @property
    def cache_key(self) -> str:
        """Identifies the weights of every checkpoint in the pair (for caches)."""
        return "-".join(self.fingerprint(c) for c in self.checkpoints)

    def reference_options(self) -> List[str]:
        """How the uncalibrated column can be produced for this pair."""
        options = []
        if self.uncalibrated is not None:
            options.append(REFERENCE_TRAINED)
        if self.calibrated is not None:
            options.append(REFERENCE_SWITCHED_OFF)
        return options

    def views(self, reference: Optional[str] = None) -> List["ModelView"]:
        """The models shown side by side: calibrated first, then the uncalibrated reference."""
        out: List[ModelView] = []
        if self.calibrated is not None:
            out.append(ModelView(CALIBRATED, self.calibrated, True, f"calibrated ({self.calibrated.name})"))
        options = self.reference_options()
        ref = reference if reference in options else (options[0] if options else None)
        if ref == REFERENCE_TRAINED and self.uncalibrated is not None:
            out.append(ModelView(UNCALIBRATED, self.uncalibrated, False, f"uncalibrated ({self.uncalibrated.name})"))
        elif ref == REFERENCE_SWITCHED_OFF and self.calibrated is not None:
            out.append(ModelView(UNCALIBRATED, self.calibrated, False,
                                 f"calibrator off (same weights as {self.calibrated.name})"))
        return out


@dataclass(frozen=True)
class ModelView:
    """One model as shown in a column: a checkpoint and the runtime calibrator switch."""

    role: str
    checkpoint: Checkpoint
    calibration: bool
    label: str

    @property
    def key(self) -> str:
        return f"{self.checkpoint.path}|{'on' if self.calibration else 'off'}"


def pair_checkpoints(ckpts: Sequence[Checkpoint]) -> List[ModelPair]:
    """Group checkpoints into calibrated/uncalibrated pairs.

    Folders named ``<name>_calon`` / ``<name>_caloff`` pair by ``<name>``; others by data set and
    backbone. A second checkpoint of the same role starts a pair of its own (named after its folder).
    """
    pairs: Dict[str, ModelPair] = {}
    for c in ckpts:
        role = CALIBRATED if c.config.calibration else UNCALIBRATED
        key = _group_key(c)
        pair = pairs.get(key)
        if pair is not None and getattr(pair, role) is not None:
            key = c.name
            pair = pairs.get(key)
        if pair is None:
            pair = pairs[key] = ModelPair(key)
        setattr(pair, role, c)
    return sorted(pairs.values(), key=lambda p: p.key)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def _is_dataset_dir(path: Path) -> bool:
    return (path / HEADER_FILE).is_file()


def _dataset_name(path: Path) -> Optional[str]:
    try:
        return read_json(path / HEADER_FILE, "data set header").get("schema", {}).get("name")
    except (ValueError, AttributeError):
        return None


def find_data_dir(ckpt: Checkpoint, data: Optional[str | Path] = None, root: Path = ROOT,
                  trust_recorded: bool = True) -> Path:
    """The data folder to show a checkpoint with.

    ``data`` may be a data set folder or a folder of data sets (``sample_data/``): then the one whose
    schema name matches the checkpoint's (or whose folder name matches the recorded one) is used.
    Without ``data``: the folder recorded at training time, else a match in ``<root>/sample_data``.
    ``trust_recorded=False`` (an uploaded checkpoint) never looks at the recorded path itself: a
    stranger's file must not make the server probe, or reveal, arbitrary folders; only ``data`` and
    ``<root>/sample_data`` are searched. Raises :class:`CheckpointError` with a readable message.
    """
    recorded = Path(str(ckpt.training.get("data", ""))).name

    def match_in(folder: Path) -> Optional[Path]:
        if not folder.is_dir():
            return None
        subs = sorted(p for p in folder.iterdir() if p.is_dir() and _is_dataset_dir(p))
        for p in subs:
            if _dataset_name(p) == ckpt.schema.name:
                return p
        for p in subs:
            if recorded and p.name == recorded:
                return p
        return None

    if data is not None:
        path = Path(data)
        if not path.is_dir():
            raise CheckpointError(f"data folder {path} does not exist")
        if _is_dataset_dir(path):
            return path
        found = match_in(path)
        if found is None:
            raise CheckpointError(f"{path} holds no data set named {ckpt.schema.name!r} "
                                  f"(needed by checkpoint {ckpt.name})")
        return found
    if not trust_recorded:
        found = match_in(root / "sample_data")
        if found is None:
            raise CheckpointError(f"no data set named {ckpt.schema.name!r} among the data the dashboard was "
                                  f"started with; an uploaded checkpoint is shown only with that data")
        return found
    try:
        return resolve_data_dir(ckpt)
    except CheckpointError as exc:
        found = match_in(root / "sample_data")
        if found is None:
            raise CheckpointError(f"{error_message(exc)}; no data set named {ckpt.schema.name!r} in "
                                  f"{root / 'sample_data'} either") from exc
        return found


def load_data(path: str | Path) -> MultimodalData:
    """Load a data folder (one readable error on failure)."""
    return load_dataset(path)


@dataclass
class SplitBatches:
    """One split preprocessed for each checkpoint of a pair (shared when preprocessing agrees)."""

    split: str
    indices: np.ndarray  # (N,) positions in the data set, row order of every batch
    batches: Dict[str, Batch]  # checkpoint path -> full split batch

    def batch_for(self, ckpt: Checkpoint) -> Batch:
        return self.batches[str(ckpt.path)]

    @property
    def size(self) -> int:
        return int(len(self.indices))


def split_batches(pair: ModelPair, data: MultimodalData, split: str) -> SplitBatches:
    """The split as full batches, preprocessed as each checkpoint's training data was."""
    batches: Dict[str, Batch] = {}
    by_config: Dict[str, Batch] = {}
    import json

    for ckpt in pair.checkpoints:
        key = json.dumps([ckpt.preprocessor.to_json(), list(ckpt.model.modalities)], sort_keys=True)
        if key not in by_config:
            by_config[key] = dataset_for(ckpt, data, split).full_batch()
        batches[str(ckpt.path)] = by_config[key]
    first = next(iter(batches.values()))
    indices = first.indices.numpy() if first.indices is not None else np.asarray(data.split(split))
    return SplitBatches(split, indices, batches)


# --------------------------------------------------------------------------------------------------
# Running models (thread-safe: Streamlit sessions share the cached models)
# --------------------------------------------------------------------------------------------------

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


def forward_view(view: ModelView, batch: Batch) -> Tuple[Tensor, Tensor, CalibrationReport]:
    """One forward pass keeping the full report (for a few samples): logits, fused, report."""
    return forward_views([view], batch)[0]


def forward_views(views: Sequence[ModelView], batch: Batch) -> List[Tuple[Tensor, Tensor, CalibrationReport]]:
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
                results.append((out.logits, out.fused, out.report))
        finally:
            model.train(was)
    return results


_CODE_KEY: Optional[str] = None
_CODE_FILES = ("calibration.py", "inference.py", "models/model.py", "models/encoders.py", "models/fusion.py",
               "data/dataset.py", "data/batch.py")


def code_key() -> str:
    """Hash of the code that turns weights + inputs into predictions: a cached prediction from older
    code (same weights, different maths) is never reused."""
    global _CODE_KEY
    if _CODE_KEY is None:
        import hashlib

        h = hashlib.sha256(precal.__version__.encode())
        base = Path(precal.__file__).resolve().parent
        for name in _CODE_FILES:
            try:
                h.update((base / name).read_bytes())
            except OSError:
                h.update(name.encode())
        _CODE_KEY = h.hexdigest()[:16]
    return _CODE_KEY


_PRED_ARRAYS = ("logits", "labels", "indices", "alpha", "support", "conflict", "beta_mean", "beta_std", "present",
                "has_context", "fused")


def cached_predict(view: ModelView, batch: Batch, key_parts: Mapping[str, Any],
                   cache_dir: Optional[Path] = None) -> Predictions:
    """:func:`predict_view`, stored on disk as ``.npz`` (no pickle) under ``cache_dir``.

    ``key_parts`` must identify the inputs (data folder + its modification time, split); the key
    adds the weights' fingerprint, the calibrator switch, the batch shapes and :func:`code_key`.
    An unreadable cache file is ignored and rewritten. Without ``cache_dir`` nothing is stored.
    """
    if cache_dir is None:
        return predict_view(view, batch)
    import hashlib
    import json

    shapes = {m: list(v.shape) for m, v in batch.inputs.items()}
    payload = {"parts": dict(key_parts), "weights": view.checkpoint.fingerprint, "calibration": view.calibration,
               "modalities": list(view.checkpoint.model.modalities), "shapes": shapes, "code": code_key()}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]
    path = Path(cache_dir) / f"predictions-{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                mods = [str(m) for m in f["modalities"]]
                arrays = {k: (f[k] if k in f.files else None) for k in _PRED_ARRAYS}
                before = {m: f[f"before.{m}"] for m in mods}
                after = {m: f[f"after.{m}"] for m in mods}
            disk_cache.mark_used(path)
            return Predictions(modalities=mods, summaries_before=before, summaries_after=after, **arrays)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass
    preds = predict_view(view, batch)
    arrays = {k: getattr(preds, k) for k in _PRED_ARRAYS if getattr(preds, k) is not None}
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


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------------------------------
# One sample: prediction, gates, cues, explanation
# --------------------------------------------------------------------------------------------------


@dataclass
class SampleOutputs:
    """What one model did with one sample (row ``row`` of ``report``)."""

    label: str
    role: str
    calibration: bool
    modalities: List[str]
    class_names: List[str]
    task: str
    logits: np.ndarray  # (C,)
    alpha: np.ndarray  # (M,)
    support: np.ndarray  # (M,)
    conflict: np.ndarray  # (M,)
    present: np.ndarray  # (M,) bool
    has_context: np.ndarray  # (M,) bool
    pairwise: np.ndarray  # (M, M)
    beta: Dict[str, np.ndarray]  # m -> (D_m,)
    fused: np.ndarray  # (F,)
    report: CalibrationReport
    row: int

    @property
    def probabilities(self) -> np.ndarray:
        if self.task != "classification":
            return np.ones(1)
        return softmax(self.logits)

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.logits)) if self.task == "classification" else 0

    @property
    def predicted_name(self) -> str:
        if self.task != "classification":
            return f"{float(self.logits[0]):+.3f}"
        return self.class_names[self.predicted]

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max())

    def top(self, k: int = 5) -> pd.DataFrame:
        """Top-k classes: class, probability (0..1), rank."""
        if self.task != "classification":
            return pd.DataFrame({"class": ["predicted value"], "probability": [float(self.logits[0])], "rank": [1]})
        p = self.probabilities
        order = np.argsort(-p, kind="stable")[:k]
        return pd.DataFrame({"class": [self.class_names[i] for i in order], "probability": p[order],
                             "rank": np.arange(1, len(order) + 1)})

    def cue_frame(self) -> pd.DataFrame:
        """One row per modality: alpha, support, conflict, beta mean/std, present, context."""
        return pd.DataFrame({
            "modality": self.modalities, "alpha": self.alpha, "support": self.support,
            "conflict": self.conflict,
            "beta mean": [float(self.beta[m].mean()) for m in self.modalities],
            "beta std": [float(self.beta[m].std()) for m in self.modalities],
            "present": self.present, "has context": self.has_context,
        })

    def beta_matrix(self) -> Tuple[np.ndarray, List[str]]:
        """(M, max D) beta values (NaN-padded when dims differ) for a modality x channel heatmap."""
        d = max(len(v) for v in self.beta.values())
        out = np.full((len(self.modalities), d), np.nan)
        for i, m in enumerate(self.modalities):
            out[i, : len(self.beta[m])] = self.beta[m]
        return out, list(self.modalities)

    def explain(self, modality: str):
        """:class:`precal.explain.AlphaExplanation` of this modality's gate."""
        from precal.explain import explain_alpha

        return explain_alpha(self.report, self.row, modality)


def _outputs(view: ModelView, logits: Tensor, fused: Tensor, report: CalibrationReport, row: int) -> SampleOutputs:
    schema = view.checkpoint.schema
    return SampleOutputs(
        label=view.label, role=view.role, calibration=view.calibration, modalities=list(report.modalities),
        class_names=list(schema.class_names), task=schema.task,
        logits=logits[row].numpy().astype(np.float64),
        alpha=report.alpha[row].numpy().astype(np.float64),
        support=report.support[row].numpy().astype(np.float64),
        conflict=report.conflict[row].numpy().astype(np.float64),
        present=report.present[row].numpy().astype(bool),
        has_context=report.has_context[row].numpy().astype(bool),
        pairwise=report.pairwise_support[row].numpy().astype(np.float64),
        beta={m: report.beta[m][row].numpy().astype(np.float64) for m in report.modalities},
        fused=fused[row].numpy().astype(np.float64),
        report=report, row=row,
    )


def run_rows(view: ModelView, batch: Batch) -> List[SampleOutputs]:
    """Every row of a small batch through one view, one forward pass."""
    logits, fused, report = forward_view(view, batch)
    return [_outputs(view, logits, fused, report, r) for r in range(batch.size)]


def row_of(splits: SplitBatches, index: int) -> int:
    """Row of data-set position ``index`` in the split batches."""
    hits = np.nonzero(splits.indices == index)[0]
    if len(hits) == 0:
        raise KeyError(f"sample {index} is not in split {splits.split!r}")
    return int(hits[0])


def sample_outputs(views: Sequence[ModelView], splits: SplitBatches, index: int) -> Dict[str, SampleOutputs]:
    """Role -> outputs for one clean sample."""
    row = row_of(splits, index)
    return {v.role: run_rows(v, splits.batch_for(v.checkpoint).select([row]))[0] for v in views}


# --------------------------------------------------------------------------------------------------
# Choosing samples
# --------------------------------------------------------------------------------------------------


def sample_table(data: MultimodalData, splits: SplitBatches, preds: Optional[Predictions] = None,
                 reference: Optional[Predictions] = None) -> pd.DataFrame:
    """One row per sample of the split: index, id, class, predicted (calibrated / reference), correct."""
    idx = splits.indices
    frame = pd.DataFrame({"index": idx, "sample id": data.sample_ids[idx].astype(str),
                          "class": [data.label_name(int(i)) for i in idx]})
    names = list(data.schema.class_names)
    for tag, p in (("calibrated", preds), ("uncalibrated", reference)):
        if p is None or data.schema.task != "classification":
            continue
        frame[f"predicted ({tag})"] = [names[int(k)] for k in p.predicted]
        frame[f"correct ({tag})"] = p.predicted == p.labels
    return frame


def suppressed_table(data: MultimodalData, splits: SplitBatches, preds: Predictions,
                     limit: int = 50) -> pd.DataFrame:
    """Most suppressed (sample, modality) pairs of the split: sample id, class, modality, alpha."""
    from precal.explain import most_suppressed

    frame = most_suppressed(preds.alpha, preds.present, preds.modalities, limit=limit)
    idx = splits.indices[frame["index"].to_numpy(dtype=int)]
    return pd.DataFrame({"index": idx, "sample id": data.sample_ids[idx].astype(str),
                         "class": [data.label_name(int(i)) for i in idx],
                         "modality": frame["modality"].to_numpy(), "alpha": frame["alpha"].to_numpy()})


# --------------------------------------------------------------------------------------------------
# Inputs in native form
# --------------------------------------------------------------------------------------------------

def input_view_kind(spec: ModalitySchema, extra: Mapping[str, Any]) -> str:
    """How to draw a modality: skeleton, frames, imu, heatmap (feature streams), vector."""
    if spec.kind == "frame_sequence":
        return "frames"
    if spec.kind == "vector":
        return "vector"
    if len(spec.step_shape) == 2 and spec.step_shape[1] in (2, 3) and "joint_names" in extra \
            and len(extra["joint_names"]) == spec.step_shape[0]:
        return "skeleton"
    if spec.step_shape == (6,) and "inertial_columns" in extra:
        return "imu"
    if spec.kind == "time_series" and spec.num_features <= 8:
        return "lines"
    return "heatmap"


def denormalise(preprocessor: Preprocessor, spec: ModalitySchema, x: np.ndarray) -> np.ndarray:
    """Model input (normalised) back to physical units: ``x * std + mean``."""
    if spec.name not in preprocessor.mean:
        return x
    shape = (1,) if spec.kind == "frame_sequence" else spec.step_shape
    mean = preprocessor.mean[spec.name].reshape(shape)
    std = preprocessor.std[spec.name].reshape(shape)
    return x * std + mean


def root_point_name(schema: DatasetSchema, preprocessor: Preprocessor, modality: str) -> str:
    """The name of the point a centred modality is expressed relative to (its index if unnamed)."""
    return point_name(schema, preprocessor.centre[modality])


def point_name(schema: DatasetSchema, index: int) -> str:
    names = list(schema.extra.get("joint_names", []))
    return names[index] if index < len(names) else f"point {index}"


def geometry_note(schema: DatasetSchema, preprocessor: Preprocessor, modality: str) -> str:
    """One sentence on how a point-sequence modality is placed and sized for the model (empty if
    it is drawn as recorded), so a user reading the lab's drawing knows its origin and unit."""
    parts = []
    if modality in preprocessor.centre:
        parts.append(f"Relative to the first frame's {root_point_name(schema, preprocessor, modality)} "
                     "(where the subject stands is removed, as the model is trained).")
    if modality in preprocessor.scale:
        a, b = (point_name(schema, i) for i in preprocessor.scale[modality])
        parts.append(f"Lengths in body units, the first frame's {a}–{b} distance, rather than metres "
                     "(body size is removed, as the model is trained).")
    return " ".join(parts) + (" " if parts else "")


def model_input_unit(schema: DatasetSchema, preprocessor: Preprocessor, modality: str) -> str:
    """The length unit of a modality as the model sees it: its recorded unit, or "body units" when
    the checkpoint measures it in a body segment (``--scale``; :func:`geometry_note` names the
    segment). Short on purpose: it titles the axes of small multiples."""
    if modality in preprocessor.scale:
        return "body units"
    return schema.modality(modality).unit or "value"


def model_input(batch: Batch, row: int, spec: ModalitySchema, preprocessor: Preprocessor) -> np.ndarray:
    """Row ``row`` of ``batch`` for one modality in physical units, real steps only; empty if absent."""
    x = batch.inputs[spec.name][row].numpy()
    if not bool(batch.presence(spec.name)[row]):
        return x[:0]
    mask = batch.padding_mask.get(spec.name)
    if mask is not None:
        x = x[mask[row].numpy()]
    return denormalise(preprocessor, spec, x).astype(np.float32)


def time_axis(steps: int, spec: ModalitySchema, original_steps: Optional[int] = None) -> Tuple[np.ndarray, str]:
    """Times of ``steps`` samples in seconds (if the rate is known) or step numbers.

    ``original_steps``: length of the recording before resampling; resampled steps span it evenly.
    """
    if spec.rate_hz:
        total = original_steps if original_steps else steps
        if steps <= 1:
            return np.zeros(steps), "time (s)"
        return np.linspace(0.0, (total - 1) / spec.rate_hz, steps), "time (s)"
    return np.arange(steps, dtype=float), "step"


def frame_picks(steps: int, count: int = 8) -> np.ndarray:
    """Evenly spaced frame indices for a strip."""
    if steps <= 0:
        return np.zeros(0, dtype=int)
    return np.unique(np.round(np.linspace(0, steps - 1, min(count, steps))).astype(int))


def feature_names(spec: ModalitySchema, extra: Mapping[str, Any]) -> List[str]:
    """Names of the flattened features of one step (columns for charts)."""
    cols = extra.get(f"{spec.name}_columns")
    if isinstance(cols, (list, tuple)) and len(cols) == spec.num_features:
        return [str(c) for c in cols]
    if "MFCC_E_D" in spec.description and spec.num_features == 26:  # HTK: c1..c12, log energy, deltas
        base = [f"c{i}" for i in range(1, 13)] + ["log E"]
        return base + [f"Δ{b}" for b in base]
    return [f"{spec.name}[{i}]" for i in range(spec.num_features)]


# --------------------------------------------------------------------------------------------------
# Corruption lab
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabSetting:
    """Controls for one modality in the lab."""

    corruption: Optional[str] = None  # a corruption name, None for none
    severity: int = 0
    remove: bool = False  # mark the modality absent (missing)
    swap: bool = False  # replace it by the same modality of a different-class sample

    @property
    def active(self) -> bool:
        return self.remove or self.swap or (self.corruption is not None and self.severity > 0)


@dataclass
class CorruptionNote:
    modality: str
    steps: List[str]
    donor_index: Optional[int] = None  # data-set position of the swap donor


def corrupt_rows(batch: Batch, schema: DatasetSchema, settings: Mapping[str, LabSetting], seed: int,
                 pool: Optional[Batch] = None) -> Tuple[Batch, List[CorruptionNote]]:
    """Apply each modality's setting to a (small) batch: swap, then the corruption, then removal.

    Randomness is keyed by sample index, so the result equals what a whole-split sweep with the same
    seed does to these samples. ``pool`` is the donor set for swaps (the whole split).
    """
    from precal.robustness.corruptions import apply_corruption

    notes: List[CorruptionNote] = []
    for m, s in settings.items():
        if m not in batch.inputs or not s.active:
            continue
        kind = schema.modality(m).kind
        note = CorruptionNote(m, [])
        if s.swap:
            res = apply_corruption(batch, m, kind, "swap", 5, seed, pool=pool)
            batch = res.batch
            if res.donor_rows is not None and pool is not None and pool.indices is not None:
                d = int(res.donor_rows[0])
                note.donor_index = int(pool.indices[d]) if d >= 0 else None
            note.steps.append("swapped")
        if s.corruption and s.corruption != "swap" and s.severity > 0:
            batch = apply_corruption(batch, m, kind, s.corruption, int(s.severity), seed, pool=pool).batch
            note.steps.append(f"{s.corruption} s{s.severity}")
        if s.remove:
            batch = apply_corruption(batch, m, kind, "remove_absent", 1, seed, pool=pool).batch
            note.steps.append("removed")
        notes.append(note)
    return batch, notes


def stack_rows(a: Batch, b: Batch) -> Batch:
    """Two batches with identical padded shapes as one (one forward pass for clean + corrupted)."""
    def cat(x: Dict[str, Tensor], y: Dict[str, Tensor]) -> Dict[str, Tensor]:
        return {k: torch.cat([x[k], y[k]]) for k in x}

    pres_a = {m: a.presence(m) for m in a.inputs}
    pres_b = {m: b.presence(m) for m in b.inputs}
    return Batch(cat(a.inputs, b.inputs), cat(a.padding_mask, b.padding_mask), cat(pres_a, pres_b),
                 None if a.labels is None else torch.cat([a.labels, b.labels]),
                 None if a.indices is None else torch.cat([a.indices, b.indices]))


@dataclass
class LabResult:
    """Clean and corrupted outputs of every view for one sample, plus the corrupted inputs."""

    index: int
    clean: Dict[str, SampleOutputs]  # role -> outputs (the views shown side by side)
    corrupted: Dict[str, SampleOutputs]
    corrupted_batches: Dict[str, Batch]  # checkpoint path -> the corrupted one-row batch
    notes: List[CorruptionNote]
    seconds: float
    by_view: Dict[str, Tuple[SampleOutputs, SampleOutputs]] = field(default_factory=dict)  # view.key -> (clean, corrupted)

    def delta_frame(self) -> pd.DataFrame:
        """Per view and modality: alpha/support/conflict clean, corrupted and the change."""
        rows = []
        for role, cor in self.corrupted.items():
            cl = self.clean[role]
            for i, m in enumerate(cor.modalities):
                for q in ("alpha", "support", "conflict"):
                    a, b = float(getattr(cl, q)[i]), float(getattr(cor, q)[i])
                    rows.append({"model": role, "modality": m, "quantity": q, "clean": a, "corrupted": b,
                                 "change": b - a})
        return pd.DataFrame(rows, columns=["model", "modality", "quantity", "clean", "corrupted", "change"])

    def change_table(self, role: str, modalities: Sequence[str],
                     quantities: Sequence[str] = ("alpha", "support", "conflict")) -> pd.DataFrame:
        """Corrupted minus clean per modality (rows) and quantity (columns) for one model: the lab's
        small table, built directly (a pivot of :meth:`delta_frame` costs tens of ms per update)."""
        cl, cor = self.clean[role], self.corrupted[role]
        index = {m: i for i, m in enumerate(cor.modalities)}
        rows = [[float(getattr(cor, q)[index[m]] - getattr(cl, q)[index[m]]) if m in index else float("nan")
                 for q in quantities] for m in modalities]
        return pd.DataFrame(rows, index=pd.Index(list(modalities), name="modality"), columns=list(quantities))

    def prediction_changed(self, role: str) -> bool:
        return self.clean[role].predicted != self.corrupted[role].predicted


def lab_update(views: Sequence[ModelView], splits: SplitBatches, index: int,
               settings: Mapping[str, LabSetting], seed: int = 0,
               extra_views: Sequence[ModelView] = ()) -> LabResult:
    """Corrupt one sample as ``settings`` say and run every view on clean + corrupted (a two-row
    batch; one encoder pass per checkpoint, see :func:`forward_views`). ``extra_views`` (e.g. the calibrator switched off, for the
    'before calibration' point of the projection) are only stored in ``by_view``."""
    start = time.perf_counter()
    row = row_of(splits, index)
    clean_out: Dict[str, SampleOutputs] = {}
    cor_out: Dict[str, SampleOutputs] = {}
    batches: Dict[str, Batch] = {}
    notes: List[CorruptionNote] = []
    by_view: Dict[str, Tuple[SampleOutputs, SampleOutputs]] = {}
    groups: Dict[str, List[ModelView]] = {}  # views of one checkpoint share its encoder pass
    for v in list(views) + [e for e in extra_views if e.key not in {w.key for w in views}]:
        groups.setdefault(str(v.checkpoint.path), []).append(v)
    for key, group in groups.items():
        pool = splits.batch_for(group[0].checkpoint)
        clean_row = pool.select([row])
        batches[key], notes = corrupt_rows(clean_row, group[0].checkpoint.schema, settings, seed, pool=pool)
        for v, (logits, fused, report) in zip(group, forward_views(group, stack_rows(clean_row, batches[key]))):
            by_view[v.key] = (_outputs(v, logits, fused, report, 0), _outputs(v, logits, fused, report, 1))
    for v in views:
        clean_out[v.role], cor_out[v.role] = by_view[v.key]
    return LabResult(index, clean_out, cor_out, batches, notes, time.perf_counter() - start, by_view)


# --------------------------------------------------------------------------------------------------
# Overview
# --------------------------------------------------------------------------------------------------


def modality_table(ckpt: Checkpoint) -> pd.DataFrame:
    """Modalities of a checkpoint: kind, step shape, rate, unit, model input length, derived inputs."""
    rows = []
    for spec in ckpt.schema.modalities:
        length = ckpt.preprocessor.lengths.get(spec.name)
        rows.append({
            "modality": spec.name, "kind": spec.kind.replace("_", " "),
            "step shape": " × ".join(str(s) for s in spec.step_shape),
            "rate": f"{spec.rate_hz:g} Hz" if spec.rate_hz else "—",
            "unit": spec.unit or "—",
            "model input": f"{length} steps (resampled)" if length else "native length",
            "encoder also sees": describe_derived(spec.name in ckpt.config.velocity,
                                                  ckpt.config.norms.get(spec.name, "")),
            "description": spec.description,
        })
    return pd.DataFrame(rows)


TRAINING_KEYS = ("epochs", "batch_size", "lr", "seed", "lengths", "centre", "frame_encoder", "point_encoder",
                 "modality_dropout", "noise_augment", "swap_augment", "aux_loss", "aux_weight", "cue_gradient")


def trained_splits(checkpoints: Sequence[Checkpoint]) -> set:
    """The splits any of the checkpoints trained on ("train+val" counts both)."""
    return {part for c in checkpoints for part in str(c.training.get("train_split", "train")).split("+")}


def history_fit_note(checkpoints: Sequence[Checkpoint]) -> Optional[str]:
    """A warning for the training-dynamics page when a model also trained on the split its history
    measures every epoch on: those curves then show fit, not generalisation (AVLetters' shipped
    models train on train+val and keep the final epoch)."""
    names = [c.name for c in checkpoints
             if str(c.training.get("val_split", "val")) in str(c.training.get("train_split", "train")).split("+")]
    if not names:
        return None
    split = str(checkpoints[0].training.get("val_split", "val"))
    return (f"{' and '.join(names)} trained on the {split!r} split too, so the per-epoch {split} curves below "
            "(loss, metrics, gates, cues and probes) measure fit, not generalisation; the final epoch was kept, "
            "with no choice on this split.")


def split_label(data: MultimodalData, split: str, trained: set) -> str:
    """The split selector's entry: its size, and a warning when the models trained on it (its
    accuracy then measures fit, not generalisation)."""
    return f"{split} ({len(data.splits[split])} samples{', trained on' if split in trained else ''})"


def training_summary(ckpt: Checkpoint) -> List[Tuple[str, str]]:
    """(setting, value) rows of how a checkpoint was trained, ending with which weights it holds.

    Options that were off are left out, so the list shows the recipe rather than every flag."""
    tr = ckpt.training
    rows = [(k, str(tr[k])) for k in TRAINING_KEYS if k in tr]
    rows += [(k, str(v)) for k, v in used_options(tr)]
    if ckpt.metrics.get("selected_epoch") is not None:
        rows.append(("weights", selected_weights(ckpt.metrics)))
    return rows


def parameter_table(ckpt: Checkpoint) -> Tuple[pd.DataFrame, float]:
    """Parameters per part and the calibrator's size in % of the rest of the model (the backbone:
    encoders + fusion + head)."""
    counts = ckpt.model.parameter_counts()
    backbone = sum(v for k, v in counts.items() if k != "calibrator")
    frame = pd.DataFrame({"part": list(counts), "parameters": list(counts.values())})
    return frame, 100.0 * counts.get("calibrator", 0) / max(backbone, 1)


def live_metrics(preds: Predictions, schema: DatasetSchema) -> Dict[str, Any]:
    return compute_metrics(schema.task, preds.labels, preds.logits, schema.class_names)


def metrics_table(views: Sequence[ModelView], live: Mapping[str, Mapping[str, Any]], split: str) -> pd.DataFrame:
    """Stored (metrics.json) and live metrics per view, one row per (model, source)."""
    rows = []
    for v in views:
        stored = v.checkpoint.metrics.get(split, {}) if isinstance(v.checkpoint.metrics, dict) else {}
        scalars = ("accuracy", "macro_f1") if v.checkpoint.schema.task == "classification" else \
            ("acc2_non0", "f1_non0", "mae", "corr")
        # Stored numbers are for the checkpoint as trained; a calibrator switched off at runtime
        # has none of its own.
        if stored and (v.calibration == v.checkpoint.config.calibration):
            rows.append({"model": v.label, "source": f"stored metrics.json ({split})",
                         **{k: stored.get(k) for k in scalars}})
        if v.role in live:
            rows.append({"model": v.label, "source": f"live ({split})",
                         **{k: live[v.role].get(k) for k in scalars}})
    return pd.DataFrame(rows)


def alpha_frame(preds: Predictions, class_names: Sequence[str]) -> pd.DataFrame:
    """Long table of instance gates: modality, alpha, class, present (for box/violin plots)."""
    n, m = preds.alpha.shape
    labels = preds.labels if preds.labels is not None else np.zeros(n, dtype=int)
    names = [class_names[int(k)] if class_names else str(k) for k in labels]
    return pd.DataFrame({
        "modality": np.tile(np.asarray(preds.modalities, dtype=object), n),
        "alpha": preds.alpha.reshape(-1),
        "class": np.repeat(np.asarray(names, dtype=object), m),
        "present": preds.present.reshape(-1),
    })


# --------------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------------

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


def mix_rows(clean: Batch, corrupted: Batch, rows: Tensor) -> Batch:
    """``corrupted`` where ``rows`` (B,) is True, ``clean`` elsewhere (same padded shapes)."""
    def pick(a: Tensor, b: Tensor) -> Tensor:
        r = rows.reshape(-1, *([1] * (a.dim() - 1)))
        return torch.where(r, b, a)

    return Batch(
        {k: pick(v, corrupted.inputs[k]) for k, v in clean.inputs.items()},
        {k: pick(v, corrupted.padding_mask[k]) for k, v in clean.padding_mask.items()},
        {k: pick(clean.presence(k), corrupted.presence(k)) for k in clean.inputs},
        clean.labels, clean.indices,
    )


def corrupt_fraction(batch: Batch, schema: DatasetSchema, modality: str, corruption: str, severity: int,
                     seed: int = 0, fraction: float = 0.5) -> Tuple[Batch, np.ndarray]:
    """Corrupt ``modality`` for a seeded ``fraction`` of the samples (to colour embeddings by
    corruption); returns the mixed batch and the (N,) bool mask of corrupted samples."""
    from precal.robustness.corruptions import apply_corruption

    res = apply_corruption(batch, modality, schema.modality(modality).kind, corruption, severity, seed, pool=batch)
    gen = torch.Generator().manual_seed(seed + 7919)
    chosen = torch.rand(batch.size, generator=gen) < fraction
    rows = chosen & res.affected.cpu()
    return mix_rows(batch, res.batch, rows), rows.numpy()


def projection_key(pair: ModelPair, split: str, space: str, extra: Mapping[str, Any] | None = None) -> Dict[str, Any]:
    """Cache key parts for a projection: weights, split, feature space, corruption."""
    return {"weights": pair.cache_key, "split": split, "space": space, **(extra or {})}


def neighbourhood_table(pre: np.ndarray, post: np.ndarray, labels: np.ndarray, k: int = 10) -> pd.DataFrame:
    """kNN purity and silhouette of the features before and after calibration."""
    from precal.projection import neighbourhood_scores

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


# --------------------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------------------

ROBUSTNESS_FILES = ("robustness.csv", "robustness.parquet")


def find_robustness_table(pair: ModelPair) -> Optional[Path]:
    """A stored sweep table in a checkpoint folder of the pair (or the folder holding them)."""
    for ckpt in pair.checkpoints:
        for folder in (ckpt.path, ckpt.path.parent):
            for name in ROBUSTNESS_FILES:
                if (folder / name).is_file():
                    return folder / name
    return None


def read_robustness_table(path: Path, pair: ModelPair) -> pd.DataFrame:
    """The rows of a stored ``precal robustness`` table that belong to this pair's checkpoints."""
    from precal.robustness.table import read_table

    frame = read_table(path)
    names = {c.name for c in pair.checkpoints}
    return frame[frame["checkpoint"].astype(str).isin(names)].reset_index(drop=True)


SUMMARY_COLUMNS = {
    "modality": "corrupted modality", "corruption": "corruption",
    "rr_calibrated": "RR calibrated", "rr_uncalibrated": "RR uncalibrated", "effective_robustness": "ER",
    "auroc_support": "AUROC support", "auroc_conflict": "AUROC conflict", "auroc_alpha": "AUROC 1 − alpha",
}
"""Columns of :func:`robustness_summary` and the labels the dashboard shows for them."""


def robustness_summary(frame: pd.DataFrame, pair: ModelPair) -> Optional[pd.DataFrame]:
    """MultiBench summaries and conflict detection from a stored sweep of the pair
    (:func:`read_robustness_table`).

    One row per corrupted modality and corruption: relative robustness (area under the
    accuracy-vs-severity curve) of both models, effective robustness of the calibrated model against
    the uncalibrated one, and how well the calibrated model's own signals flag the corrupted
    modality (AUROC of low support, of the conflict cue and of 1 − alpha; corrupted samples against
    the clean split). None when the table holds no row of the calibrated checkpoint.
    """
    from precal.robustness.table import AUROC_COLUMNS, summarise

    cal = pair.calibrated.name if pair.calibrated is not None else None
    base = pair.uncalibrated.name if pair.uncalibrated is not None else None
    if cal is None or not (frame["checkpoint"] == cal).any():
        return None
    has_base = base is not None and (frame["checkpoint"] == base).any()
    summary = summarise(frame, baseline=base if has_base else None)
    mine = summary[summary["checkpoint"] == cal].set_index(["modality", "corruption"])
    out = pd.DataFrame({
        "rr_calibrated": mine["relative_robustness"],
        "rr_uncalibrated": (summary[summary["checkpoint"] == base].set_index(["modality", "corruption"])
                            ["relative_robustness"] if has_base else np.nan),
        "effective_robustness": mine["effective_robustness"] if has_base else np.nan,
        **{c: mine[c] for c in AUROC_COLUMNS},
    }).reset_index()
    return out[list(SUMMARY_COLUMNS)]


def robustness_sweep(views: Sequence[ModelView], splits: SplitBatches, schema: DatasetSchema,
                     modalities: Optional[Sequence[str]] = None, corruptions: Optional[Sequence[str]] = None,
                     severities: Sequence[int] = (0, 1, 3, 5), seed: int = 0, max_samples: Optional[int] = None,
                     progress: Optional[Callable[[float, str], None]] = None) -> pd.DataFrame:
    """The sweep of :mod:`precal.robustness.engine` (the one ``precal robustness`` runs) over the
    views, on the first ``max_samples`` samples of the split, in the table of
    :mod:`precal.robustness.table`. ``progress`` gets the fraction done and a short description."""
    from precal.robustness.engine import SweptModel, sweep, sweep_plan

    plan = sweep_plan(schema, modalities, corruptions)
    rows = slice(0, max_samples) if max_samples else slice(None)
    batches = {str(v.checkpoint.path): splits.batch_for(v.checkpoint).select(rows) for v in views}
    total = max(1, len(views) * len(plan) * len({int(s) for s in severities} - {0}))
    done = 0

    def tick(text: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(min(done / total, 1.0), text)

    return sweep([SweptModel(v.checkpoint, v.calibration) for v in views], batches, plan, severities, seed,
                 progress=tick, lock=model_lock)


def corruption_titles() -> Dict[str, str]:
    from precal.robustness.corruptions import CORRUPTIONS

    return {k: c.title for k, c in CORRUPTIONS.items()}


# --------------------------------------------------------------------------------------------------
# Training dynamics
# --------------------------------------------------------------------------------------------------


def history_frames(history: Sequence[Mapping[str, Any]]) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """history.json as two tables: per epoch scalars, and per epoch x modality dynamics (long:
    epoch, modality, quantity, mean, std)."""
    scalars = pd.DataFrame([{k: v for k, v in h.items() if not isinstance(v, (dict, list))} for h in history])
    rows = []
    for h in history:
        for m, d in (h.get("modalities") or {}).items():
            keys = {k[: -len("_mean")] for k in d if k.endswith("_mean")}
            for q in sorted(keys):
                rows.append({"epoch": h.get("epoch"), "modality": m, "quantity": q,
                             "mean": d.get(f"{q}_mean"), "std": d.get(f"{q}_std", 0.0)})
            for k, v in d.items():
                if not k.endswith(("_mean", "_std")) and isinstance(v, (int, float)):
                    rows.append({"epoch": h.get("epoch"), "modality": m, "quantity": k, "mean": v, "std": 0.0})
    dyn = pd.DataFrame(rows, columns=["epoch", "modality", "quantity", "mean", "std"])
    return scalars, dyn


# --------------------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------------------


class UploadArea:
    """A private temporary folder for one server process's uploads, removed when it exits.

    Why not one fixed folder under the system temp dir: that was shared by every server and user
    of the machine, and kept every upload forever. This one is created with ``tempfile.mkdtemp``
    (readable by its owner only) on the first upload, and an ``atexit`` hook removes it."""

    def __init__(self, prefix: str = "precal-uploads-") -> None:
        self._prefix = prefix
        self._root: Optional[Path] = None
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        with self._lock:
            if self._root is None or not self._root.is_dir():
                self._root = Path(tempfile.mkdtemp(prefix=self._prefix))
                atexit.register(self.remove)
            return self._root

    def contains(self, path: Path | str) -> bool:
        """Whether ``path`` lies in this area (an uploaded checkpoint)."""
        if self._root is None:
            return False
        base = self._root.resolve()
        return base in Path(path).resolve().parents

    def remove(self) -> None:
        with self._lock:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None


_UPLOADS = UploadArea()


def upload_area() -> UploadArea:
    """This server process's upload area (see :class:`UploadArea`)."""
    return _UPLOADS


def is_uploaded(ckpt: Checkpoint) -> bool:
    return _UPLOADS.contains(ckpt.path)


class UploadTooLarge(CheckpointError):
    """An archive that unpacks to more than it may."""


_UNPACK_ERRORS: Tuple[type, ...] = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError, EOFError,
                                    ValueError, NotImplementedError, zlib.error, lzma.LZMAError, struct.error)
"""What a corrupt archive raises while it is read (a broken deflate stream: zlib.error; LZMA:
LZMAError; bzip2: OSError; an unknown compression method: NotImplementedError)."""


def extract_checkpoint_zip(payload: bytes, dest_root: Path | str, max_bytes: int = MAX_UPLOAD_BYTES,
                           max_uncompressed: int = MAX_UNCOMPRESSED_BYTES) -> Path:
    """Safely unpack a zipped checkpoint folder into a fresh folder under ``dest_root``; return the
    folder holding ``config.json`` and ``model.safetensors``.

    Refused with a one-line :class:`CheckpointError`: archives over ``max_bytes`` (or over
    ``max_uncompressed`` once unpacked: zip bombs), non-zip data, corrupt compressed streams,
    absolute paths, ``..`` components, symlinks and other special files, too many entries, and
    archives without a checkpoint. Only the checkpoint's own files (:data:`UPLOADED_FILES`) are
    written; a refused archive leaves nothing behind. Nothing is executed or unpickled; the caller
    then loads the folder with ``load_checkpoint``.
    """
    if len(payload) > max_bytes:
        raise CheckpointError(f"the upload is {len(payload) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except _UNPACK_ERRORS as exc:
        raise CheckpointError("the upload is not a zip archive (zip the checkpoint folder)") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if len(infos) > MAX_UPLOAD_FILES:
            raise CheckpointError(f"the archive holds {len(infos)} files; a checkpoint has only a few")
        if sum(i.file_size for i in infos) > max_uncompressed:
            raise UploadTooLarge(f"the archive unpacks to more than {max_uncompressed / 1e6:.0f} MB")
        safe: List[Tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for info in infos:
            name = info.filename.replace("\\", "/")
            path = PurePosixPath(name)
            if name.startswith("/") or path.is_absolute() or re.match(r"^[A-Za-z]:", name) \
                    or any(part in ("..", "") for part in path.parts):
                raise CheckpointError(f"the archive has an unsafe path {info.filename!r}")
            mode = (info.external_attr >> 16) & 0o170000
            if mode and not stat.S_ISREG(mode):
                raise CheckpointError(f"the archive entry {info.filename!r} is not a regular file")
            if path.parts[0] in ("__MACOSX",) or path.name.startswith("._"):
                continue
            safe.append((info, path))
        configs = [p for _, p in safe if p.name == CONFIG_FILE]
        if not configs:
            raise CheckpointError(f"the archive has no {CONFIG_FILE}: zip a checkpoint folder "
                                  f"({CONFIG_FILE} + {WEIGHTS_FILE})")
        top = min(configs, key=lambda p: len(p.parts)).parent
        wanted = [(i, p) for i, p in safe if p.parent == top and UPLOADED_FILES.match(p.name)]
        dest_root = Path(dest_root)
        dest_root.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix="upload-", dir=dest_root))
        base = dest.resolve()
        written = 0
        try:
            for info, path in wanted:
                target = (dest / Path(*path.parts)).resolve()
                if base not in target.parents:
                    raise CheckpointError(f"the archive has an unsafe path {info.filename!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as out:
                    while True:
                        chunk = src.read(1 << 20)
                        if not chunk:
                            break
                        written += len(chunk)
                        if written > max_uncompressed:
                            raise UploadTooLarge(f"the archive unpacks to more than {max_uncompressed / 1e6:.0f} MB")
                        out.write(chunk)
        except CheckpointError:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        except _UNPACK_ERRORS as exc:
            shutil.rmtree(dest, ignore_errors=True)
            raise CheckpointError(f"the archive cannot be unpacked (corrupt?): {info.filename}: "
                                  f"{error_message(exc)}") from exc
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    folder = dest / Path(*top.parts) if top.parts else dest
    return folder


def load_uploaded_checkpoint(payload: bytes, dest_root: Optional[Path | str] = None,
                             max_bytes: int = MAX_UPLOAD_BYTES) -> Checkpoint:
    """Unpack and load an uploaded checkpoint into ``dest_root`` (default: this process's private
    :func:`upload_area`); a refused upload leaves nothing behind, and all uploads together stay
    within :data:`MAX_UPLOAD_AREA_BYTES`."""
    root = Path(dest_root) if dest_root is not None else upload_area().root
    used = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink()) if root.is_dir() else 0
    left = MAX_UPLOAD_AREA_BYTES - used
    full = CheckpointError(f"the dashboard's upload space ({MAX_UPLOAD_AREA_BYTES / 1e6:.0f} MB for all uploads) "
                           f"has {max(left, 0) / 1e6:.1f} MB left; restart the dashboard to clear it")
    if left <= 0:
        raise full
    try:
        folder = extract_checkpoint_zip(payload, root, max_bytes=max_bytes,
                                        max_uncompressed=min(MAX_UNCOMPRESSED_BYTES, left))
    except UploadTooLarge:
        if left < MAX_UNCOMPRESSED_BYTES:
            raise full from None
        raise
    try:
        return load_checkpoint(folder)
    except BaseException:
        shutil.rmtree(root / folder.relative_to(root).parts[0], ignore_errors=True)  # the whole upload-* folder
        raise


# --------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------


def fmt_shape(shape: Sequence[int]) -> str:
    return " × ".join(str(int(s)) for s in shape)


def fmt_count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} M"
    if n >= 1_000:
        return f"{n / 1e3:.1f} k"
    return str(n)


def finite_or_none(x: float) -> Optional[float]:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
