"""Evaluate a checkpoint on a split of a data set and store the result next to it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from precal.checkpoint import Checkpoint, CheckpointError, load_checkpoint, resolve_checkpoint_dir
from precal.data.dataset import MultimodalDataset
from precal.data.storage import MultimodalData, load_dataset
from precal.gate_truth import truth_summary, truth_table
from precal.inference import predict
from precal.metrics import compute_metrics
from precal.safe_write import UnsafeWriteError, write_file


def resolve_data_dir(ckpt: Checkpoint, data_dir: Optional[str | Path] = None) -> Path:
    """The data folder to use: the given one, else the one recorded at training time (relative to
    the working directory, else to the project folder that holds ``checkpoints/``)."""
    if data_dir is not None:
        return Path(data_dir)
    recorded = ckpt.training.get("data")
    if not recorded or not isinstance(recorded, str):
        raise CheckpointError(f"checkpoint {ckpt.name} records no data folder; pass --data")
    candidates = [Path(recorded), ckpt.path.parent.parent / recorded]
    for c in candidates:
        if c.is_dir():
            return c
    raise CheckpointError(f"data folder {recorded!r} recorded in {ckpt.name} was not found; pass --data")


def check_compatible(ckpt: Checkpoint, data: MultimodalData) -> None:
    """Refuse data whose modalities, shapes or classes differ from what the model was trained on."""
    ckpt.check_modalities(data.schema.modality_names)
    for name in ckpt.model.modalities:
        want, got = ckpt.schema.modality(name), data.schema.modality(name)
        if want.kind != got.kind or want.step_shape != got.step_shape:
            raise CheckpointError(f"modality {name!r}: checkpoint {ckpt.name} expects {want.kind} {want.step_shape}, "
                                  f"the data has {got.kind} {got.step_shape}")
    if ckpt.schema.task != data.schema.task or list(ckpt.schema.class_names) != list(data.schema.class_names):
        raise CheckpointError(f"the data's task/classes differ from those checkpoint {ckpt.name} was trained on")


def dataset_for(ckpt: Checkpoint, data: MultimodalData, split: str) -> MultimodalDataset:
    """A split preprocessed exactly as the checkpoint's training data was."""
    check_compatible(ckpt, data)
    indices = data.split(split)
    if len(indices) == 0:
        raise ValueError(f"split {split!r} of data set {data.schema.name!r} is empty")
    return MultimodalDataset(data, indices, ckpt.preprocessor, ckpt.model.modalities)


def evaluate(ckpt: Checkpoint, data: MultimodalData, split: str = "test") -> Dict[str, Any]:
    """The task metrics on ``split``; on data that records which modalities were corrupted (the
    synthetic benchmark), also how well the gates and cues find them (``gate_truth``)."""
    preds = predict(ckpt.model, dataset_for(ckpt, data, split).full_batch())
    metrics = compute_metrics(data.schema.task, preds.labels, preds.logits, data.schema.class_names)
    metrics["split"] = split
    if data.truth:
        table = truth_table(preds, data)
        metrics.update(truth_summary(table))
        metrics["gate_truth"] = table.to_dict(orient="records")
    return metrics


def evaluate_checkpoint(path: Path, data_dir: Optional[str | Path] = None,
                        split: str = "test") -> Tuple[Dict[str, Any], Path]:
    """Evaluate and write ``eval_<split>.json`` in the checkpoint folder.

    The folder must be a real folder, not a symbolic link: the result is written only where the
    user pointed, never into the folder a link leads to (a link to someone else's checkpoint would
    otherwise gain a file there). Checked before anything is computed."""
    out = eval_path(resolve_checkpoint_dir(path), split)
    ckpt = load_checkpoint(path)
    data = load_dataset(resolve_data_dir(ckpt, data_dir))
    metrics = evaluate(ckpt, data, split)
    write_file(out, lambda tmp: tmp.write_text(json.dumps(metrics, indent=1) + "\n"))
    return metrics, out


def eval_path(folder: Path, split: str) -> Path:
    """Where ``precal evaluate`` writes: ``eval_<split>.json`` in a real checkpoint folder."""
    if not re.fullmatch(r"[A-Za-z0-9_+\-]{1,100}", split):
        raise ValueError(f"--split {split[:60]!r}: a split name may hold only letters, digits, '_', '-' and '+'")
    if folder.is_symlink():
        raise UnsafeWriteError(f"checkpoint {folder} is a symbolic link; precal evaluate writes eval_{split}.json "
                               "into the checkpoint folder and does not write through links: pass the real folder")
    out = folder / f"eval_{split}.json"
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise UnsafeWriteError(f"{out} exists and is not a file precal wrote; precal will not replace it")
    return out
