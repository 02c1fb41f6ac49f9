"""The robustness sweep engine: every modality x corruption x severity on a split, batched.

One engine serves ``precal robustness`` (one model per checkpoint, its calibrator as trained) and
the dashboard (a checkpoint may also run with its calibrator switched off). Speed comes from three
facts: a corruption of modality ``m`` changes only ``m``'s encoder output, so the clean features of
every other modality are encoded once and reused; a cross-sample swap only moves clean features
between samples (no encoder pass at all); and each level runs as a few large batched passes (the
corruption itself is vectorised), never a Python loop over samples. Models of one checkpoint share
its encoder passes: only calibrator, fusion and head run per model.

A user's own model (:mod:`precal.own_model`) goes through the same code with the identity as its
"encoder" (precal cannot split it at its calibrator from outside): its features are its inputs, so
a swap still moves rows and every other level runs the whole model.

The table has one row per (model, corrupted modality, corruption, severity); its columns are
:data:`precal.robustness.table.COLUMNS` (see there).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from precal.checkpoint import Checkpoint
from precal.data.batch import Batch
from precal.data.schema import DatasetSchema
from precal.data.storage import TRUTH_CODES
from precal.inference import Predictions
from precal.metrics import auroc, compute_metrics, primary_metric
from precal.models.model import MultimodalModel, role_name
from precal.robustness.corruptions import MAX_SEVERITY, apply_corruption, corruptions_for, get_corruption
from precal.robustness.table import AUROC_COLUMNS, STATISTICS, columns

Encoded = tuple  # (features, masks, present) as returned by MultimodalModel.encode
ALL_SEVERITIES = tuple(range(0, MAX_SEVERITY + 1))


@dataclass(frozen=True)
class SweptModel:
    """One model of a sweep: a checkpoint run with its calibrator on or off (``calibration``, the
    model switch; a calibrated checkpoint switched off stands in for an uncalibrated one)."""

    checkpoint: Checkpoint
    calibration: bool

    @classmethod
    def as_trained(cls, ckpt: Checkpoint) -> "SweptModel":
        return cls(ckpt, bool(ckpt.config.calibration))

    @property
    def role(self) -> str:
        return role_name(self.calibration)

    @property
    def model(self) -> MultimodalModel:
        return self.checkpoint.model


def sweep_plan(schema: DatasetSchema, modalities: Optional[Sequence[str]] = None,
               corruptions: Optional[Sequence[str]] = None) -> List[Tuple[str, str]]:
    """(modality, corruption) pairs that apply, in a stable order (modalities, then the registry)."""
    plan = []
    for m in modalities or schema.modality_names:
        for c in corruptions_for(schema.modality(m).kind):
            if corruptions is None or c.name in corruptions:
                plan.append((m, c.name))
    return plan


def _cat_encoded(parts: List[Encoded]) -> Encoded:
    feats = {k: torch.cat([p[0][k] for p in parts]) for k in parts[0][0]}
    masks = {k: (None if parts[0][1][k] is None else torch.cat([p[1][k] for p in parts])) for k in parts[0][1]}
    present = {k: torch.cat([p[2][k] for p in parts]) for k in parts[0][2]}
    return feats, masks, present


def _slice_encoded(enc: Encoded, sl: slice) -> Encoded:
    feats, masks, present = enc
    return ({k: v[sl] for k, v in feats.items()}, {k: (None if v is None else v[sl]) for k, v in masks.items()},
            {k: v[sl] for k, v in present.items()})


@torch.no_grad()
def encode_split(model: MultimodalModel, batch: Batch, chunk: int = 128) -> Encoded:
    """Encoder outputs of the whole split, computed in chunks."""
    return _cat_encoded([model.encode(batch.select(slice(s, s + chunk))) for s in range(0, batch.size, chunk)])


@torch.no_grad()
def encode_modality(model: MultimodalModel, batch: Batch, modality: str, chunk: int = 128):
    """Re-encode one modality only (the others' clean features are reused)."""
    feats, masks = [], []
    for s in range(0, batch.size, chunk):
        y, m = model.encode(batch.restrict([modality]).select(slice(s, s + chunk)), only=[modality])[:2]
        feats.append(y[modality])
        masks.append(m[modality])
    return torch.cat(feats), (None if masks[0] is None else torch.cat(masks))


def _take_rows(enc: Encoded, modality: str, donor_rows: Tensor) -> tuple:
    """A swapped modality's features are its donor's clean features (encoders see one sample at a
    time in eval mode), so a swap costs an index, not an encoder pass."""
    own = torch.arange(donor_rows.shape[0])
    src = torch.where(donor_rows >= 0, donor_rows, own)
    mask = enc[1][modality]
    return enc[0][modality][src], (None if mask is None else mask[src])


@torch.no_grad()
def fuse_split(model: MultimodalModel, enc: Encoded, chunk: int = 256) -> Predictions:
    """Calibrator, fusion and head over encoded features, in chunks."""
    n = next(iter(enc[0].values())).shape[0]
    return Predictions.stack([model.fuse(*_slice_encoded(enc, slice(s, s + chunk))) for s in range(0, n, chunk)])


def corrupted_features(model: MultimodalModel, batch: Batch, clean: Encoded, modality: str, corruption: str,
                       severity: int, seed: int) -> Tuple[Encoded, np.ndarray]:
    """Encoder outputs of ``batch`` with one modality corrupted, reusing the clean features of the
    others (and, for a swap, the donors' clean features); returns them and the affected samples."""
    kind = model.schema.modality(modality).kind
    result = apply_corruption(batch, modality, kind, corruption, severity, seed)
    feats, masks, present = dict(clean[0]), dict(clean[1]), dict(clean[2])
    present[modality] = result.batch.presence(modality)
    if result.donor_rows is not None:  # a swap moves clean features between samples
        feats[modality], masks[modality] = _take_rows(clean, modality, result.donor_rows)
    elif corruption != "remove_absent":  # a presence-only change leaves the encoders' output as is
        feats[modality], masks[modality] = encode_modality(model, result.batch, modality)
    return (feats, masks, present), result.affected.numpy()


def marked_corrupted(truth: Mapping[str, np.ndarray], indices: np.ndarray) -> Optional[np.ndarray]:
    """(N,) bool: the samples at data-set positions ``indices`` whose recorded truth
    (:attr:`precal.data.storage.MultimodalData.truth`, e.g. the synthetic generator's) marks any
    modality corrupted (noise, swap or removal); None for data without truth (every real data set).
    Any modality, not only the one a sweep row corrupts: a damaged or missing peer moves the other
    modalities' cues too (a swapped peer lowers everyone's support), so such a sample is no clean
    reference for them either.

    Why: the AUROC columns compare the samples a sweep corrupted with the clean ones. A sample the
    data itself already corrupted is neither: counted as clean, a modality drowned in noise by the
    generator (and so rightly damped) looks like a missed detection, and a 30%-corrupted synthetic
    set then reads several hundredths below what the gates do on the sweep's own corruption."""
    if not truth:
        return None
    rows = np.asarray(indices, dtype=np.int64)
    clean = TRUTH_CODES.index("clean")
    return np.any([np.asarray(codes)[rows] != clean for codes in truth.values()], axis=0)


def level_row(swept: SweptModel, labels: np.ndarray, out: Predictions, clean: Predictions, modality: str,
              corruption: str, severity: int, affected: Optional[np.ndarray],
              marked: Optional[np.ndarray] = None) -> dict:
    """One row of the table: the task metric, each modality's mean gates and cues, and how well the
    calibrator's own signals flag the corrupted modality (corrupted samples against clean ones;
    samples ``marked`` corrupted by the data itself are on neither side, see :func:`marked_corrupted`)."""
    ckpt = swept.checkpoint
    task = ckpt.schema.task
    metric = primary_metric(task)
    metrics = compute_metrics(task, labels, out.logits, ckpt.schema.class_names)
    names = list(out.modalities)
    row = {
        "checkpoint": ckpt.name, "role": swept.role, "dataset": ckpt.schema.name, "backbone": ckpt.config.backbone,
        "modality": modality, "corruption": corruption, "severity": severity,
        "level": get_corruption(corruption).level_label(severity), "metric": metric,
        "value": float(metrics[metric]), "macro_f1": float(metrics.get("macro_f1", np.nan)), "n": int(len(labels)),
    }
    for i, m in enumerate(names):
        keep = out.present[:, i]
        for key, arr in zip(STATISTICS, (out.alpha, out.beta_mean, out.support, out.conflict)):
            row[f"{key}_{m}"] = float(arr[keep, i].mean()) if keep.any() else float("nan")
    if modality in names and affected is not None:
        i = names.index(modality)
        pos, neg = affected & out.present[:, i], clean.present[:, i]
        if marked is not None:
            pos, neg = pos & ~marked, neg & ~marked
        row["auroc_conflict"] = auroc(out.conflict[pos, i], clean.conflict[neg, i])
        row["auroc_support"] = auroc(-out.support[pos, i], -clean.support[neg, i])
        row["auroc_alpha"] = auroc(1 - out.alpha[pos, i], 1 - clean.alpha[neg, i])
    else:
        row.update({c: float("nan") for c in AUROC_COLUMNS})
    return row


def sweep(models: Sequence[SweptModel], batches: Mapping[str, Batch], plan: Sequence[Tuple[str, str]],
          severities: Sequence[int] = ALL_SEVERITIES, seed: int = 0,
          progress: Optional[Callable[[str], None]] = None,
          lock: Callable[[MultimodalModel], ContextManager] = lambda model: contextlib.nullcontext(),
          marked: Optional[Mapping[str, np.ndarray]] = None) -> pd.DataFrame:
    """The sweep of several models as one table.

    ``batches`` maps ``str(checkpoint.path)`` to the split preprocessed for that checkpoint;
    ``plan`` lists the (modality, corruption) pairs (:func:`sweep_plan`); severity 0 in
    ``severities`` adds the clean row of every curve. ``progress`` is called after every corrupted
    level of every model with a short description; ``lock`` guards a model while it runs (the dashboard shares
    models between sessions). Corruptions are seeded and keyed by sample, so the same seed does the
    same damage as the dashboard's lab. ``marked`` maps a key of ``batches`` to the rows its data
    marks corrupted (:func:`marked_corrupted`), which the AUROC columns leave out.
    """
    levels = sorted({int(s) for s in severities} - {0})
    clean_row = 0 in {int(s) for s in severities}
    position = {id(swept): i for i, swept in enumerate(models)}
    groups: Dict[str, List[SweptModel]] = {}
    for swept in models:
        groups.setdefault(str(swept.checkpoint.path), []).append(swept)
    records: Dict[Tuple[int, str, str], List[dict]] = {}

    def record(swept: SweptModel, m: str, c: str, row: dict) -> None:
        records.setdefault((position[id(swept)], m, c), []).append(row)

    for key, group in groups.items():
        model, batch = group[0].model, batches[key]
        labels = batch.labels.numpy()
        known = (marked or {}).get(key)
        with lock(model):
            model.eval()
            clean_enc = encode_split(model, batch)
        clean: Dict[int, Predictions] = {}
        for swept in group:
            clean[id(swept)] = _fuse(swept, clean_enc, lock)
        for m, c in plan:
            if clean_row:
                for swept in group:
                    record(swept, m, c, level_row(swept, labels, clean[id(swept)], clean[id(swept)], m, c, 0, None))
            for severity in levels:
                with lock(model):
                    enc, affected = corrupted_features(model, batch, clean_enc, m, c, severity, seed)
                for swept in group:
                    out = _fuse(swept, enc, lock)
                    record(swept, m, c, level_row(swept, labels, out, clean[id(swept)], m, c, severity, affected,
                                                  known))
                    if progress:
                        progress(f"{m} · {get_corruption(c).title} · severity {severity} · {swept.role}")
    ordered = [r for i in range(len(models)) for m, c in plan for r in records.get((i, m, c), [])]
    return pd.DataFrame(ordered, columns=columns(_modalities(models)))


def _fuse(swept: SweptModel, enc: Encoded, lock: Callable[[MultimodalModel], ContextManager]) -> Predictions:
    model = swept.model
    with lock(model), model.calibration(swept.calibration):
        return fuse_split(model, enc)


def _modalities(models: Sequence[SweptModel]) -> List[str]:
    return list(dict.fromkeys(m for s in models for m in s.model.modalities))


def count_levels(ckpt: Checkpoint, severities: Sequence[int] = ALL_SEVERITIES,
                 corruptions: Optional[Sequence[str]] = None) -> int:
    """Number of corrupted levels a sweep of ``ckpt`` runs (for progress bars)."""
    plan = sweep_plan(ckpt.schema, ckpt.model.modalities, corruptions)
    return len(plan) * len({int(s) for s in severities} - {0})
