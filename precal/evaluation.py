"""Evaluate a checkpoint on a split of a data set and store the result next to it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from precal.checkpoint import Checkpoint, CheckpointError, resolve_checkpoint_dir
from precal.data.dataset import MultimodalDataset
from precal.data.storage import HEADER_FILE, MultimodalData, load_dataset
from precal.gate_truth import truth_summary, truth_table
from precal.inference import predict
from precal.limits import read_json
from precal.metrics import compute_metrics, expected_calibration_error
from precal.safe_write import UnsafeWriteError, check_output_file, write_file


def resolve_data_dir(ckpt: Checkpoint, data_dir: Optional[str | Path] = None, search: Sequence[str | Path] = (),
                     trust_recorded: bool = True) -> Path:
    """The data folder to use with a checkpoint.

    ``data_dir`` may be a data set folder or a folder of data sets (``sample_data/``): then the one
    whose schema name matches the checkpoint's (or whose folder name matches the recorded one) is
    used. Without it: the folder recorded at training time (relative to the working directory, else
    to the project folder that holds ``checkpoints/``), else a match in one of the ``search``
    folders. ``trust_recorded=False`` (a checkpoint from a stranger, e.g. uploaded to the dashboard)
    never looks at the recorded path itself: a stranger's file must not make the reader probe, or
    reveal, arbitrary folders; only ``data_dir`` and ``search`` are searched. Raises
    :class:`CheckpointError` with a readable message."""
    if data_dir is not None:
        path = Path(data_dir)
        if not path.is_dir():
            raise CheckpointError(f"data folder {path} does not exist")
        found = path if is_dataset_dir(path) else find_dataset(path, ckpt)
        if found is None:
            raise CheckpointError(f"{path} holds no data set named {ckpt.schema.name!r} "
                                  f"(needed by checkpoint {ckpt.name})")
        return found
    searched = next((f for f in (find_dataset(Path(s), ckpt) for s in search) if f is not None), None)
    if not trust_recorded:
        if searched is None:
            raise CheckpointError(f"no data set named {ckpt.schema.name!r} among the data it may be shown with; "
                                  "a checkpoint from elsewhere is shown only with that data")
        return searched
    recorded = ckpt.training.get("data")
    if not recorded or not isinstance(recorded, str):
        problem = f"checkpoint {ckpt.name} records no data folder; pass --data"
    else:
        for c in (Path(recorded), ckpt.path.parent.parent / recorded):
            if c.is_dir():
                return c
        problem = f"data folder {recorded!r} recorded in {ckpt.name} was not found; pass --data"
    if searched is None:
        where = "".join(f"; no data set named {ckpt.schema.name!r} in {s} either" for s in search)
        raise CheckpointError(problem + where)
    return searched


def is_dataset_dir(path: Path) -> bool:
    return (path / HEADER_FILE).is_file()


def find_dataset(folder: Path, ckpt: Checkpoint) -> Optional[Path]:
    """The data set in ``folder`` (a folder of data sets) whose schema name is the checkpoint's, else
    the one whose folder name is the one recorded at training time; None if neither is there."""
    if not folder.is_dir():
        return None
    recorded = Path(str(ckpt.training.get("data", ""))).name
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and is_dataset_dir(p))
    for p in subs:
        if _dataset_name(p) == ckpt.schema.name:
            return p
    return next((p for p in subs if recorded and p.name == recorded), None)


def _dataset_name(path: Path) -> Optional[str]:
    try:
        return read_json(path / HEADER_FILE, "data set header").get("schema", {}).get("name")
    except (ValueError, AttributeError):
        return None


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
    """The task metrics on ``split`` (classification: also the expected calibration error of the
    predicted probabilities, ``ece``); on data that records which modalities were corrupted (the
    synthetic benchmark), also how well the gates and cues find them (``gate_truth``)."""
    preds = predict(ckpt.model, dataset_for(ckpt, data, split).full_batch())
    metrics = compute_metrics(data.schema.task, preds.labels, preds.logits, data.schema.class_names)
    metrics["split"] = split
    if data.schema.task == "classification":  # how well the predicted probabilities match accuracy
        metrics["ece"] = expected_calibration_error(preds.labels, preds.logits)
    if data.truth:
        table = truth_table(preds, data)
        metrics.update(truth_summary(table))
        metrics["gate_truth"] = table.to_dict(orient="records")
    return metrics


def evaluate_checkpoint(path: Path, data_dir: Optional[str | Path] = None, split: str = "test",
                        model: Optional[str] = None, out: Optional[Path] = None, overwrite: bool = False,
                        note: Callable[[str], None] = lambda _text: None) -> Tuple[Dict[str, Any], Path]:
    """Evaluate and write ``eval_<split>.json`` in the checkpoint folder (or ``out``, a file).

    The folder must be a real folder, not a symbolic link: the result is written only where the
    user pointed, never into the folder a link leads to (a link to someone else's checkpoint would
    otherwise gain a file there). Checked before anything is computed. ``model`` is the factory of
    an own model's checkpoint (:mod:`precal.own_checkpoint`); ``note`` receives its one-line remarks
    (a factory file that changed since training)."""
    from precal.own_checkpoint import open_checkpoint

    target = (check_metrics_file(out, overwrite) if out is not None
              else eval_path(resolve_checkpoint_dir(path), split))
    ckpt = open_checkpoint(path, model)
    for text in getattr(ckpt, "notes", []):
        note(text)
    data = load_dataset(resolve_data_dir(ckpt, data_dir))
    metrics = evaluate(ckpt, data, split)
    write_metrics_file(target, metrics)
    return metrics, target


def evaluate_own_model(model: str, data_dir: Optional[str | Path], split: str = "test",
                       weights: Optional[str | Path] = None, out: Optional[Path] = None,
                       overwrite: bool = False) -> Tuple[Dict[str, Any], Optional[Path]]:
    """Evaluate a user's model without a checkpoint (``precal evaluate --model F [--weights W] --data
    DIR``): preprocessing fitted on the data's training split; nothing is written unless ``out``
    names a file."""
    from precal.own_checkpoint import own_model_without_checkpoint, single_dataset_dir

    target = check_metrics_file(out, overwrite) if out is not None else None
    path = single_dataset_dir(data_dir)
    data = load_dataset(path)
    ckpt = own_model_without_checkpoint(model, data, path, weights)
    metrics = evaluate(ckpt, data, split)
    metrics["model"] = str(model)
    if weights is not None:
        metrics["weights"] = str(weights)
    if target is not None:
        write_metrics_file(target, metrics)
    return metrics, target


def is_metrics_file(path: Path) -> bool:
    """A file ``precal evaluate`` wrote: a JSON object naming the split it measured."""
    try:
        value = read_json(path, "metrics file")
    except ValueError:
        return False
    return isinstance(value, dict) and isinstance(value.get("split"), str)


def check_metrics_file(out: Path | str, overwrite: bool) -> Path:
    """``--out`` of ``precal evaluate``: a new file, or one it wrote (with ``--overwrite``)."""
    return check_output_file(Path(out), overwrite, recognise=is_metrics_file, what="metrics file")


def write_metrics_file(target: Path, metrics: Dict[str, Any]) -> None:
    write_file(target, lambda tmp: tmp.write_text(json.dumps(metrics, indent=1) + "\n"))


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
