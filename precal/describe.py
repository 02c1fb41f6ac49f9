"""Human-readable descriptions of checkpoints and data folders (``precal info``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from precal.checkpoint import (CONFIG_FILE, OWN_MODEL_SECTION, load_checkpoint, read_config, read_records,
                               recorded_factory, resolve_checkpoint_dir)
from precal.data.schema import DatasetSchema
from precal.own_checkpoint import is_own_checkpoint
from precal.data.storage import HEADER_FILE, MultimodalData, load_dataset
from precal.training.config import WHEN_USED, summary_fields


def describe_path(path: Path) -> str:
    """Describe whatever ``path`` is; a clear error when it is neither kind."""
    if (path / HEADER_FILE).is_file():
        return describe_data(load_dataset(path), path)
    if path.is_dir() and (path / CONFIG_FILE).is_file() or path.is_file():
        return describe_checkpoint(path)
    raise ValueError(f"{path} is neither a precal checkpoint folder nor a data folder")


def describe_data(data: MultimodalData, path: Path) -> str:
    s = data.schema
    lines = [f"data set {s.name!r} at {path}", f"  task: {s.task}" +
             (f", {len(s.class_names)} classes" if s.task == "classification" else ""),
             f"  samples: {len(data)}; splits: " + ", ".join(f"{k}={len(v)}" for k, v in data.splits.items())]
    if data.groups:
        lines.append("  groups: " + ", ".join(f"{k} ({len(set(v.tolist()))} values)" for k, v in data.groups.items()))
    lines.append("  modalities:")
    for m in s.modalities:
        lengths = np.diff(data.modalities[m.name].offsets)
        present = lengths > 0
        rate = f"{m.rate_hz:g} Hz" if m.rate_hz else "-"
        span = f"T={lengths[present].min()}..{lengths[present].max()}" if present.any() else "T=-"
        lines.append(f"    {m.name:<10} {m.kind:<15} step {m.step_shape} {rate:>8} {span} "
                     f"present {present.sum()}/{len(data)} stored {data.modalities[m.name].values.dtype} {m.unit}")
    return "\n".join(lines)


OPTIONAL_TRAINING_KEYS = summary_fields(WHEN_USED)
"""Training options that are off by default: listed (by `precal info` and the dashboard) only when used."""


def used_options(training: dict) -> list:
    """(option, value) of the optional training settings a run used, in a fixed order."""
    split = training.get("train_split", "train")
    trained_on = [("train_split", split)] if split != "train" else []
    return trained_on + [(k, training[k]) for k in OPTIONAL_TRAINING_KEYS if training.get(k)]


def selected_weights(metrics: dict) -> str:
    """Which weights the checkpoint holds: the best epoch, or the average of the last epochs."""
    if metrics.get("selection_metric") == "last_epoch":
        return f"final epoch {metrics.get('selected_epoch')}: a fixed budget, no validation choice"
    average = metrics.get("weight_average")
    if isinstance(average, dict) and average.get("selected"):
        first, last = average["epochs"]
        return f"weights averaged over epochs {first}-{last}, chosen over best epoch {metrics.get('selected_epoch')}"
    return f"selected epoch {metrics.get('selected_epoch')}"


def describe_own_checkpoint(path: Path) -> str:
    """An own model's checkpoint, from its JSON files alone: describing it never runs its code."""
    directory = resolve_checkpoint_dir(path)
    config = read_config(directory)
    section = config.get(OWN_MODEL_SECTION) if isinstance(config.get(OWN_MODEL_SECTION), dict) else {}
    factory = recorded_factory(config, directory)
    schema = DatasetSchema.from_json(config.get("schema"))
    metrics, history = read_records(directory)
    sha = section.get("sha256")
    lines = [f"checkpoint {directory.name} ({directory})",
             f"  own model: built by {factory}" + (f" (file SHA-256 {str(sha)[:16]}…)" if isinstance(sha, str) else ""),
             f"  calibration: {'on' if section.get('calibration', True) is True else 'off'}; "
             f"data set: {schema.name} ({schema.task}); modalities: {', '.join(schema.modality_names)}",
             f"  load it with --model {factory} (precal evaluate, robustness, dashboard)"]
    lines += _records(config.get("training") if isinstance(config.get("training"), dict) else {}, metrics, history)
    return "\n".join(lines)


def _records(tr: dict, metrics: dict, history: list) -> list:
    """The lines on training, metrics and history every checkpoint description ends with."""
    lines = []
    if tr:
        lines.append(f"  trained: seed {tr.get('seed')}, {tr.get('epochs')} epochs, data {tr.get('data')}, "
                     f"modality dropout {tr.get('modality_dropout')}, noise {tr.get('noise_augment')}")
        options = used_options(tr)
        if options:
            lines.append("  options: " + ", ".join(f"{k} {v}" for k, v in options))
    for split in ("val", "test"):
        m = metrics.get(split)
        if isinstance(m, dict):
            shown = ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float))
            lines.append(f"  {split}: {shown}")
    if history:
        lines.append(f"  history: {len(history)} epochs ({selected_weights(metrics)})")
    return lines


def describe_checkpoint(path: Path) -> str:
    if is_own_checkpoint(path):
        return describe_own_checkpoint(path)
    ckpt = load_checkpoint(path)
    cfg = ckpt.config
    counts = ckpt.model.parameter_counts()
    backbone = counts["encoders"] + counts["fusion"] + counts["head"]
    lines = [f"checkpoint {ckpt.name} ({ckpt.path})",
             f"  data set: {ckpt.schema.name} ({ckpt.schema.task}); modalities: {', '.join(ckpt.model.modalities)}",
             f"  backbone: {cfg.backbone}; calibration: {'on' if cfg.calibration else 'off'}; dim {cfg.dim}, "
             f"shared dim {cfg.shared_dim}; trunks: frames {cfg.frame_encoder}, points {cfg.point_encoder}",
             f"  parameters: backbone {backbone:,}, calibrator {counts['calibrator']:,} "
             f"({100 * counts['calibrator'] / backbone:.1f}% of backbone)"]
    lines += _records(ckpt.training, ckpt.metrics, ckpt.history)
    return "\n".join(lines)
