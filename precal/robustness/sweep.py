"""``precal robustness``: sweep checkpoints on their data and write one table and its summary.

The sweep itself is :func:`precal.robustness.engine.sweep` (the dashboard runs the same engine);
the table's schema and summaries are in :mod:`precal.robustness.table`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import pandas as pd
from tqdm.auto import tqdm

from precal.checkpoint import Checkpoint, CheckpointError, resolve_checkpoint_dir
from precal.data.storage import MultimodalData, load_dataset
from precal.evaluation import dataset_for, resolve_data_dir
from precal.own_checkpoint import is_own, is_own_checkpoint, open_checkpoint, open_own_model
from precal.robustness.corruptions import CORRUPTIONS, MAX_SEVERITY, check_severity
from precal.robustness.engine import SweptModel, count_levels, marked_corrupted, sweep, sweep_plan
from precal.robustness.table import AUROC_COLUMNS, removal_drops, summarise, write_table
from precal.safe_write import check_output_file, write_file

SEVERITIES = tuple(range(1, MAX_SEVERITY + 1))


def swept_models(ckpt: Checkpoint) -> List[SweptModel]:
    """The models a checkpoint stands for in a sweep: itself as trained; an own model trained with
    its calibrator on also with it switched off, as the uncalibrated role (the user's model has no
    separately trained baseline beside it)."""
    models = [SweptModel.as_trained(ckpt)]
    if is_own(ckpt) and ckpt.config.calibration:
        models.append(SweptModel(ckpt, False))
    return models


def sweep_checkpoint(ckpt: Checkpoint, data: MultimodalData, split: str = "test", seed: int = 0,
                     severities: Sequence[int] = SEVERITIES, corruptions: Optional[Iterable[str]] = None,
                     progress: Optional[Callable[[int], None]] = None) -> pd.DataFrame:
    """The sweep of one checkpoint (:func:`swept_models`; severity 0 = the clean row of every
    curve); ``progress`` is called with 1 after every corrupted level of every model."""
    batch = dataset_for(ckpt, data, split).full_batch()
    plan = sweep_plan(ckpt.schema, ckpt.model.modalities, None if corruptions is None else list(corruptions))
    marked = marked_corrupted(data.truth, batch.indices.numpy())
    return sweep(swept_models(ckpt), {str(ckpt.path): batch}, plan, (0, *severities), seed,
                 progress=None if progress is None else (lambda _text: progress(1)),
                 marked=None if marked is None else {str(ckpt.path): marked})


def run_sweep(paths: Sequence[str | Path], data_dir: Optional[str | Path], split: str, seed: int,
              progress: bool = True, corruptions: Optional[Sequence[str]] = None,
              severities: Sequence[int] = SEVERITIES, model: Optional[str] = None,
              weights: Optional[str | Path] = None, note: Callable[[str], None] = lambda _text: None) -> pd.DataFrame:
    """Sweep several checkpoints (each on the data it records unless ``data_dir`` is given);
    ``corruptions`` restricts the sweep to some corruption names (default: all that apply).
    ``model`` names the factory of own-model checkpoints among ``paths``; with no ``paths`` it is
    swept without a checkpoint, on ``data_dir`` (weights from ``weights``). ``note`` receives
    one-line remarks (a factory file that changed since training)."""
    unknown = [c for c in corruptions or () if c not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"unknown corruption {unknown[0]!r}; choose from {', '.join(CORRUPTIONS)}")
    severities = sorted({check_severity(s) for s in severities} - {0})
    if paths:
        ckpts = [open_checkpoint(p, model if is_own_checkpoint(p) else None) for p in paths]
    else:
        ckpts = [open_own_model(model, data_dir, weights)]
    for ckpt in ckpts:
        for text in getattr(ckpt, "notes", []):
            note(text)
    datasets: Dict[Path, MultimodalData] = {}
    total = sum(count_levels(c, severities, corruptions) * len(swept_models(c)) for c in ckpts)
    bar = tqdm(total=total, desc="robustness sweep", unit="level", disable=not progress)
    tables = []
    for ckpt in ckpts:
        path = resolve_data_dir(ckpt, data_dir)
        if path not in datasets:
            datasets[path] = load_dataset(path)
        tables.append(sweep_checkpoint(ckpt, datasets[path], split, seed, severities=severities,
                                       corruptions=corruptions, progress=bar.update))
    bar.close()
    return pd.concat(tables, ignore_index=True)


def sweep_paths(checkpoints: Sequence[str], baseline: Optional[str]) -> Tuple[List[str], Optional[str]]:
    """The checkpoints to sweep and the baseline's name: a ``--baseline`` that is not among the
    checkpoints is swept too (its curves are what effective robustness is measured against)."""
    if not baseline:
        return list(checkpoints), None
    try:
        base = resolve_checkpoint_dir(baseline)
    except CheckpointError as exc:
        raise CheckpointError(f"--baseline: {exc}") from None
    paths = list(checkpoints)
    if base.resolve() not in {resolve_checkpoint_dir(p).resolve() for p in paths}:
        paths.append(str(base))
    return paths, base.name


def run_sweep_cli(args: argparse.Namespace, note: Callable[[str], None] = lambda _text: None) -> None:
    overwrite = getattr(args, "overwrite", False)
    out = check_output_file(Path(args.out), overwrite)
    summary_path = check_output_file(out.with_name(out.stem + ".summary.csv"), overwrite)
    paths, baseline = sweep_paths(args.checkpoints, args.baseline)
    if args.model and paths and not any(is_own_checkpoint(p) for p in paths):
        raise ValueError("--model: none of the checkpoints holds an own model; leave --model out, or sweep your "
                         "model without a checkpoint (--model FACTORY --data DIR)")
    table = run_sweep(paths, args.data, args.split, args.seed, corruptions=args.corruptions,
                      severities=args.severities, model=args.model, weights=args.weights, note=note)
    summary = summarise(table, baseline)
    write_table(table, out)
    write_file(summary_path, lambda tmp: summary.to_csv(tmp, index=False, float_format="%.6g"))
    drops = removal_drops(table)
    print(summary.groupby(["checkpoint", "role"], sort=False)[["clean", "relative_robustness", *AUROC_COLUMNS]]
          .mean().round(4).to_string())
    print("\nmetric drop when a modality is removed:\n" + drops.round(4).to_string(index=False))
    print(f"wrote {out} and {summary_path}")
