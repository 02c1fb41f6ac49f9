"""Robustness sweep: every modality x corruption x severity on a split, batched, per checkpoint.

Speed comes from three facts: a corruption of modality ``m`` changes only ``m``'s encoder output,
so the clean features of every other modality are encoded once and reused; a cross-sample swap
only moves clean features between samples (no encoder pass at all); and each level runs as a few
large batched passes (the corruption itself is vectorised), never a Python loop over samples.

The tidy table has one row per (checkpoint, corrupted modality, corruption, severity) with the task
metric, and for every modality the mean alpha, beta, support and conflict at that level, plus how
well the calibrator's own signals flag the corrupted modality (AUROC of the conflict cue and of
1 - alpha: corrupted samples against the same modality in clean samples).

Summaries follow MultiBench (Liang et al., 2021): *relative robustness* is the area under the
metric-vs-severity curve (severity scaled to [0, 1]); *effective robustness* is the summed
difference from a baseline's curve shifted to the same clean metric,
``sum(f - (f_base + f[0] - f_base[0]))``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from precal.checkpoint import Checkpoint, CheckpointError, load_checkpoint, resolve_checkpoint_dir
from precal.robustness.corruptions import MAX_SEVERITY, apply_corruption, corruptions_for
from precal.data.batch import Batch
from precal.data.storage import MultimodalData, load_dataset
from precal.evaluation import dataset_for, resolve_data_dir
from precal.metrics import auroc, compute_metrics, primary_metric
from precal.models.model import MultimodalModel
from precal.safe_write import check_output_file, write_file

Encoded = tuple  # (features, masks, present) as returned by MultimodalModel.encode
AUROC_COLUMNS = ("auroc_conflict", "auroc_support", "auroc_alpha")
"""Detection AUROC of the corrupted modality by the conflict cue, by low support and by 1 - alpha."""


@dataclass
class LevelOutputs:
    """What one pass over the split at one corruption level yields (numpy, per sample)."""

    logits: np.ndarray
    alpha: np.ndarray  # (N, M)
    beta_mean: np.ndarray  # (N, M)
    support: np.ndarray
    conflict: np.ndarray
    present: np.ndarray  # (N, M) bool


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
def fuse_split(model: MultimodalModel, enc: Encoded, chunk: int = 256) -> LevelOutputs:
    parts: Dict[str, List[Tensor]] = {k: [] for k in ("logits", "alpha", "beta", "support", "conflict", "present")}
    n = next(iter(enc[0].values())).shape[0]
    for s in range(0, n, chunk):
        out = model.fuse(*_slice_encoded(enc, slice(s, s + chunk)))
        r = out.report
        parts["logits"].append(out.logits)
        parts["alpha"].append(r.alpha)
        parts["beta"].append(torch.stack([r.beta[m].mean(dim=1) for m in r.modalities], dim=1))
        parts["support"].append(r.support)
        parts["conflict"].append(r.conflict)
        parts["present"].append(r.present)
    cat = {k: torch.cat(v).numpy() for k, v in parts.items()}
    return LevelOutputs(cat["logits"], cat["alpha"], cat["beta"], cat["support"], cat["conflict"], cat["present"])


def _row(ckpt: Checkpoint, data: MultimodalData, labels: np.ndarray, out: LevelOutputs, clean: LevelOutputs,
         modality: str, corruption: str, severity: int, level: str, affected: Optional[np.ndarray]) -> dict:
    task = data.schema.task
    metrics = compute_metrics(task, labels, out.logits, data.schema.class_names)
    names = ckpt.model.modalities
    row = {
        "checkpoint": ckpt.name, "dataset": ckpt.schema.name, "backbone": ckpt.config.backbone,
        "calibration": bool(ckpt.config.calibration), "modality": modality, "corruption": corruption,
        "severity": severity, "level": level, "metric": primary_metric(task),
        "value": float(metrics[primary_metric(task)]),
        "macro_f1": float(metrics.get("macro_f1", np.nan)), "n": int(len(labels)),
    }
    for i, m in enumerate(names):
        keep = out.present[:, i]
        for key, arr in (("alpha", out.alpha), ("beta", out.beta_mean), ("support", out.support),
                         ("conflict", out.conflict)):
            row[f"{key}_{m}"] = float(arr[keep, i].mean()) if keep.any() else float("nan")
    if modality in names and affected is not None:
        i = names.index(modality)
        pos = affected & out.present[:, i]
        neg = clean.present[:, i]
        row["auroc_conflict"] = auroc(out.conflict[pos, i], clean.conflict[neg, i])
        row["auroc_support"] = auroc(-out.support[pos, i], -clean.support[neg, i])
        row["auroc_alpha"] = auroc(1 - out.alpha[pos, i], 1 - clean.alpha[neg, i])
    else:
        row["auroc_conflict"] = row["auroc_support"] = row["auroc_alpha"] = float("nan")
    return row


def sweep_checkpoint(ckpt: Checkpoint, data: MultimodalData, split: str = "test", seed: int = 0,
                     severities: Sequence[int] = tuple(range(1, MAX_SEVERITY + 1)),
                     corruptions: Optional[Iterable[str]] = None,
                     progress: Optional[Callable[[int], None]] = None) -> pd.DataFrame:
    """The sweep for one checkpoint as a tidy DataFrame (severity 0 = the clean row per curve)."""
    model = ckpt.model.eval()
    batch = dataset_for(ckpt, data, split).full_batch()
    labels = batch.labels.numpy()
    clean_enc = encode_split(model, batch)
    clean = fuse_split(model, clean_enc)
    rows = []
    wanted = None if corruptions is None else set(corruptions)
    for modality in model.modalities:
        kind = ckpt.schema.modality(modality).kind
        for corr in corruptions_for(kind):
            if wanted is not None and corr.name not in wanted:
                continue
            rows.append(_row(ckpt, data, labels, clean, clean, modality, corr.name, 0, corr.level_label(0), None))
            for severity in severities:
                result = apply_corruption(batch, modality, kind, corr.name, severity, seed)
                feats, masks, present = dict(clean_enc[0]), dict(clean_enc[1]), dict(clean_enc[2])
                present[modality] = result.batch.presence(modality)
                if result.donor_rows is not None:  # a swap moves clean features between samples
                    feats[modality], masks[modality] = _take_rows(clean_enc, modality, result.donor_rows)
                elif corr.name != "remove_absent":  # presence-only change: encoders unaffected
                    feats[modality], masks[modality] = encode_modality(model, result.batch, modality)
                out = fuse_split(model, (feats, masks, present))
                rows.append(_row(ckpt, data, labels, out, clean, modality, corr.name, severity,
                                 corr.level_label(severity), result.affected.numpy()))
                if progress is not None:
                    progress(1)
    return pd.DataFrame(rows)


def count_levels(ckpt: Checkpoint, severities: Sequence[int] = tuple(range(1, MAX_SEVERITY + 1)),
                 corruptions: Optional[Iterable[str]] = None) -> int:
    """Number of corrupted levels a sweep of ``ckpt`` runs (for progress bars)."""
    wanted = None if corruptions is None else set(corruptions)
    per_modality = [sum(1 for c in corruptions_for(ckpt.schema.modality(m).kind) if wanted is None or c.name in wanted)
                    for m in ckpt.model.modalities]
    return sum(per_modality) * len([s for s in severities if s > 0])


def relative_robustness(values: Sequence[float]) -> float:
    """Area under the metric-vs-severity curve with severity scaled to [0, 1] (trapezoid rule)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v[0]) if len(v) else float("nan")
    return float(np.trapezoid(v, dx=1.0 / (len(v) - 1)))


def effective_robustness(values: Sequence[float], baseline: Sequence[float]) -> float:
    """MultiBench: sum of the gap to the baseline's curve shifted to the same clean metric."""
    f, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    return float(np.sum(f - (b + f[0] - b[0])))


def summarise(table: pd.DataFrame, baseline: Optional[str] = None) -> pd.DataFrame:
    """Per checkpoint x modality x corruption: clean metric, metric at severity 3 and 5, relative and
    effective robustness (vs the ``baseline`` checkpoint name, if given) and mean detection AUROC."""
    rows = []
    for (ck, mod, corr), g in table.groupby(["checkpoint", "modality", "corruption"], sort=False):
        g = g.sort_values("severity")
        row = {"checkpoint": ck, "modality": mod, "corruption": corr, "clean": float(g["value"].iloc[0]),
               "at_severity_3": float(g.loc[g["severity"] == 3, "value"].mean()),
               "at_severity_5": float(g.loc[g["severity"] == 5, "value"].mean()),
               "relative_robustness": relative_robustness(g["value"].to_numpy()),
               **{c: float(g[c].mean(skipna=True)) if c in g else float("nan") for c in AUROC_COLUMNS}}
        if baseline is not None:
            b = table[(table["checkpoint"] == baseline) & (table["modality"] == mod) & (table["corruption"] == corr)]
            b = b.sort_values("severity")
            row["effective_robustness"] = (effective_robustness(g["value"].to_numpy(), b["value"].to_numpy())
                                           if len(b) == len(g) else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def removal_drops(table: pd.DataFrame) -> pd.DataFrame:
    """Drop of the metric when each modality is removed (absent), per checkpoint."""
    g = table[table["corruption"] == "remove_absent"]
    clean = g[g["severity"] == 0].groupby(["checkpoint", "modality"])["value"].first()
    removed = g[g["severity"] == MAX_SEVERITY].groupby(["checkpoint", "modality"])["value"].first()
    return (clean - removed).rename("drop").reset_index()


def run_sweep(paths: Sequence[str | Path], data_dir: Optional[str | Path], split: str, seed: int,
              progress: bool = True, corruptions: Optional[Sequence[str]] = None,
              severities: Sequence[int] = tuple(range(1, MAX_SEVERITY + 1))) -> pd.DataFrame:
    """Sweep several checkpoints (each on the data it records unless ``data_dir`` is given);
    ``corruptions`` restricts the sweep to some corruption names (default: all that apply)."""
    from precal.robustness.corruptions import CORRUPTIONS, check_severity

    unknown = [c for c in corruptions or () if c not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"unknown corruption {unknown[0]!r}; choose from {', '.join(CORRUPTIONS)}")
    severities = sorted({check_severity(s) for s in severities} - {0})
    ckpts = [load_checkpoint(p) for p in paths]
    datasets: Dict[Path, MultimodalData] = {}
    total = sum(count_levels(c, severities, corruptions) for c in ckpts)
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


def write_table(table: pd.DataFrame, out: Path) -> Path:
    """Write a table (.parquet, else CSV) through a temporary file and a rename."""
    if out.suffix == ".parquet":
        return write_file(out, lambda tmp: table.to_parquet(tmp, index=False))
    return write_file(out, lambda tmp: table.to_csv(tmp, index=False, float_format="%.6g"))


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


def run_sweep_cli(args: argparse.Namespace) -> None:
    overwrite = getattr(args, "overwrite", False)
    out = check_output_file(Path(args.out), overwrite)
    summary_path = check_output_file(out.with_name(out.stem + ".summary.csv"), overwrite)
    paths, baseline = sweep_paths(args.checkpoints, args.baseline)
    table = run_sweep(paths, args.data, args.split, args.seed, corruptions=args.corruptions,
                      severities=args.severities)
    summary = summarise(table, baseline)
    write_table(table, out)
    write_file(summary_path, lambda tmp: summary.to_csv(tmp, index=False, float_format="%.6g"))
    drops = removal_drops(table)
    print(summary.groupby("checkpoint")[["clean", "relative_robustness", "auroc_conflict", "auroc_support", "auroc_alpha"]]
          .mean().round(4).to_string())
    print("\nmetric drop when a modality is removed:\n" + drops.round(4).to_string(index=False))
    print(f"wrote {out} and {summary_path}")
