"""The overview and training pages' tables: modalities, how a model was trained, parameters, metrics,
gate distributions and the training history.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from precal.checkpoint import Checkpoint
from precal.dashboard.backend.formatting import fmt_setting, setting_name
from precal.dashboard.backend.pairs import ModelView
from precal.data.schema import DatasetSchema
from precal.data.storage import MultimodalData
from precal.describe import selected_weights, used_options
from precal.inference import Predictions
from precal.metrics import compute_metrics
from precal.models.derived import describe_derived
from precal.training.config import ALWAYS, summary_fields


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


TRAINING_KEYS = tuple(summary_fields(ALWAYS))
"""Training settings the overview lists for every run (the others: when used, :func:`used_options`)."""


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


def calibrator_summary(ckpt: Checkpoint) -> Optional[str]:
    """How a calibrated checkpoint's gates read their evidence, in words ("monotone gates, capped
    evidence, no atypicality cue"): what its explanations mean depends on it, and the recipe alone
    does not say it when the run took the defaults. None without a calibrator in use (or for an own
    model that does not record it)."""
    cfg = ckpt.config
    if not getattr(cfg, "calibration", False) or not getattr(cfg, "gate", None):
        return None
    parts = [f"{cfg.gate} gates"]
    if cfg.gate == "monotone":
        parts.append(f"{getattr(cfg, 'evidence', None) or 'absolute'} evidence")
        parts.append("atypicality cue" if getattr(cfg, "typicality", False) else "no atypicality cue")
    return ", ".join(parts)


def training_summary(ckpt: Checkpoint) -> List[Tuple[str, str]]:
    """(setting, value) rows of how a checkpoint was trained, ending with which weights it holds.

    Options that were off are left out, so the list shows the recipe rather than every flag."""
    tr = ckpt.training
    rows = [(setting_name(k), fmt_setting(tr[k])) for k in TRAINING_KEYS if k in tr]
    calibrator = calibrator_summary(ckpt)
    if calibrator:
        rows.append(("calibrator", calibrator))
    rows += [(setting_name(k), fmt_setting(v)) for k, v in used_options(tr)]
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


def seed_groups(ckpts: Sequence[Checkpoint]) -> List[List[Checkpoint]]:
    """Checkpoints that are one configuration trained with several seeds: the same recipe
    (:func:`precal.dashboard.backend.pairs.recipe_of`) apart from the seed, and the same calibrator
    switch. Only groups of two or more, each sorted by seed."""
    from precal.dashboard.backend.pairs import recipe_of, seed_of

    groups: Dict[str, List[Checkpoint]] = {}
    for c in ckpts:
        recipe = {k: v for k, v in recipe_of(c).items() if k != "seed"}
        key = repr((sorted((k, repr(v)) for k, v in recipe.items()), bool(c.config.calibration)))
        if all(c is not other for other in groups.get(key, [])):
            groups.setdefault(key, []).append(c)
    out = [sorted(g, key=lambda c: (seed_of(c) if seed_of(c) is not None else -1, c.name))
           for g in groups.values() if len({seed_of(c) for c in g}) > 1]
    return out


def seed_summary(name: str, metrics: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> Dict[str, Any]:
    """Mean ± standard deviation (over seeds, ddof 1) of each metric in ``keys``: one row of the
    overview's table of configurations trained with several seeds."""
    row: Dict[str, Any] = {"configuration": name, "seeds": len(metrics)}
    for k in keys:
        values = np.array([float(m[k]) for m in metrics if m.get(k) is not None], dtype=float)
        if len(values):
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            row[k] = f"{values.mean():.3f} ± {std:.3f}"
            row[f"{k} (mean)"] = float(values.mean())
            row[f"{k} (std)"] = std
    return row
