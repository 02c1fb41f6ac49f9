"""The robustness page: a stored ``precal robustness`` table of the pair, its summaries, and a sweep
computed on demand by the same engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from precal.dashboard.backend.data import SplitBatches, data_mtime
from precal.dashboard.backend.pairs import ModelPair, ModelView
from precal import disk_cache
from precal.dashboard.backend.running import model_lock, sweep_code_key
from precal.data.schema import DatasetSchema
from precal.robustness.corruptions import CORRUPTIONS, corruptions_for
from precal.robustness.engine import SweptModel, sweep, sweep_plan
from precal.models.model import CALIBRATED
from precal.robustness.table import AUROC_COLUMNS, corrupted_alpha, read_table, summarise

ROBUSTNESS_FILES = ("robustness.csv", "robustness.parquet")


def find_robustness_table(pair: ModelPair) -> Optional[Path]:
    """A stored sweep table in a checkpoint folder of the pair (or the folder holding them): the
    first of :func:`find_robustness_tables`."""
    return next(iter(find_robustness_tables(pair)), None)


def find_robustness_tables(pair: ModelPair) -> List[Path]:
    """Every stored sweep table of the pair's checkpoints, one per folder. Two checkpoints compared
    (A vs B) each keep their own ``robustness.csv``: the first alone holds only A's rows."""
    out: List[Path] = []
    for ckpt in pair.checkpoints:
        for folder in (ckpt.path, ckpt.path.parent):
            found = next((folder / n for n in ROBUSTNESS_FILES if (folder / n).is_file()), None)
            if found is not None and found not in out:
                out.append(found)
                break
    return out


def read_robustness_tables(paths: Sequence[Path], pair: ModelPair) -> pd.DataFrame:
    """The pair's rows of several stored tables, together; a checkpoint found in more than one keeps
    the rows of the first table that holds it (the same sweep is not counted twice)."""
    frames, seen = [], set()
    for path in paths:
        frame = read_robustness_table(path, pair)
        frame = frame[~frame["checkpoint"].astype(str).isin(seen)]
        seen |= set(frame["checkpoint"].astype(str))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_robustness_table(path: Path, pair: ModelPair) -> pd.DataFrame:
    """The rows of a stored ``precal robustness`` table that belong to this pair's checkpoints."""
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
    return summary_by_names(frame, pair.calibrated.name if pair.calibrated is not None else None,
                            pair.uncalibrated.name if pair.uncalibrated is not None else None)


def summary_by_names(frame: pd.DataFrame, cal: Optional[str], base: Optional[str]) -> Optional[pd.DataFrame]:
    """:func:`robustness_summary` for the rows whose ``checkpoint`` is ``cal`` (and ``base``)."""
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
    plan = sweep_plan(schema, modalities, corruptions)
    rows = slice(0, max_samples) if max_samples else slice(None)
    batches = {str(v.checkpoint.path): splits.batch_for(v.checkpoint).select(rows) for v in views}
    marked = None if splits.marked is None else {key: splits.marked[rows] for key in batches}
    total = max(1, len(views) * len(plan) * len({int(s) for s in severities} - {0}))
    done = 0

    def tick(text: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(min(done / total, 1.0), text)

    return sweep([SweptModel(v.checkpoint, v.calibration) for v in views], batches, plan, severities, seed,
                 progress=tick, lock=model_lock, marked=marked)


def corruption_titles() -> Dict[str, str]:
    return {k: c.title for k, c in CORRUPTIONS.items()}


POINTS_ONLY = ("remove_absent", "remove_zero")
"""Corruptions with no degrees: every severity from 1 up removes the modality. Drawn as points (a
line between "present" and "removed" would suggest values in between)."""


FACET_TITLE_CHARS = 28
"""Longest panel title (corruption title and unit) kept on one line."""


def severity_facets(corruptions: Sequence[str]) -> List[Tuple[str, str, List[str]]]:
    """(corruption, panel title with its unit, tick label per severity 0-5) for the corruptions
    given, in the catalogue's order (the same order on every grid of the page). Tick labels are the
    corruption's own levels ("20" for 20 dB SNR; "removed" for a removal), 0 is "clean"."""
    out = []
    for name in CORRUPTIONS:
        if name not in corruptions:
            continue
        c = CORRUPTIONS[name]
        if name in POINTS_ONLY:
            out.append((name, c.title, ["present"] + ["removed"] * 5))
        elif c.unit == "on/off":
            out.append((name, c.title, ["clean"] + ["on"] * 5))
        else:
            # a long title breaks before its unit: in the third of three panels it ran off the figure
            sep = "<br>" if len(c.title) + len(c.unit) > FACET_TITLE_CHARS else " "
            out.append((name, f"{c.title}{sep}({c.unit})", ["clean"] + [f"{v:g}" for v in c.levels]))
    extra = [n for n in dict.fromkeys(corruptions) if n not in CORRUPTIONS]
    return out + [(n, n, ["0", "1", "2", "3", "4", "5"]) for n in extra]


def summary_labels(names: Optional[Tuple[str, str]] = None) -> Dict[str, str]:
    """The summary's column labels. ``names``: the two models' labels when they are not a calibrated
    model and its baseline (A vs B: both may be calibrated), so RR and ER say whose they are."""
    if names is None:
        return SUMMARY_COLUMNS
    a, b = names
    return {**SUMMARY_COLUMNS, "rr_calibrated": f"RR {a}", "rr_uncalibrated": f"RR {b}",
            "effective_robustness": f"ER of {a} against {b}",
            "auroc_support": f"AUROC support ({a})", "auroc_conflict": f"AUROC conflict ({a})",
            "auroc_alpha": f"AUROC 1 − alpha ({a})"}


def summary_for_display(summary: pd.DataFrame, modality: str,
                        names: Optional[Tuple[str, str]] = None) -> pd.DataFrame:
    """One modality's rows of :func:`robustness_summary` as the page shows them: titled corruptions,
    the labels of :func:`summary_labels`, and text instead of empty cells (an AUROC of a removed
    modality does not exist: it has no gate and no cues)."""
    sub = summary[summary["modality"] == modality].drop(columns="modality")
    titles = corruption_titles()
    out = sub.assign(corruption=sub["corruption"].map(lambda c: titles.get(c, c))).rename(columns=summary_labels(names))
    for col in out.columns:
        if col == "corruption":
            continue
        out[col] = [("n/a" if not isinstance(v, (int, float)) or not np.isfinite(v) else f"{v:.3f}") for v in out[col]]
    return out.reset_index(drop=True)


def computed_summary(frame: pd.DataFrame, views: Sequence[ModelView]) -> Optional[pd.DataFrame]:
    """:func:`robustness_summary` of a sweep computed in the page. Its rows are told apart by
    checkpoint *and* role: with the calibrator switched off, both models are one checkpoint."""
    if frame.empty or not (frame["role"] == "calibrated").any():
        return None
    frame = frame.assign(checkpoint=frame["checkpoint"].astype(str) + " · " + frame["role"].astype(str))
    names = {r: n for n, r in zip(frame["checkpoint"], frame["role"])}
    return summary_by_names(frame, names.get("calibrated"), names.get("uncalibrated"))


def by_column(frame: pd.DataFrame, views: Sequence[ModelView]) -> pd.DataFrame:
    """The rows of a sweep table that belong to the shown models, with ``role`` renamed to each
    model's column (``model A``, ``model B``): two calibrated seeds are both ``calibrated`` in the
    table, and would otherwise be drawn as one line."""
    keys = {(v.checkpoint.name, "calibrated" if v.calibration else "uncalibrated"): v.role for v in views}
    pairs = list(zip(frame["checkpoint"].astype(str), frame["role"].astype(str)))
    keep = [k in keys for k in pairs]
    out = frame[keep].copy()
    out["role"] = [keys[k] for k, ok in zip(pairs, keep) if ok]
    return out.reset_index(drop=True)


def gated_alpha(frame: pd.DataFrame, views: Sequence[ModelView]) -> np.ndarray:
    """Per row, the mean alpha of the corrupted modality for the rows of a gated model (NaN for the
    others). After :func:`by_column` the roles are the views' (``model A``), so whether a row has
    gates is asked of its view; a stored sweep's own ``calibrated`` rows have them too."""
    return corrupted_alpha(frame, gated_roles=sorted({v.role for v in views if v.calibration} | {CALIBRATED}))


def comparison_summary(frame: pd.DataFrame, views: Sequence[ModelView]) -> Optional[pd.DataFrame]:
    """:func:`robustness_summary` for model A against model B (a table from :func:`by_column`): A
    stands in the calibrated column, B in the baseline's; the AUROCs are A's own signals."""
    if frame.empty or len(views) < 2:
        return None
    tagged = frame.assign(checkpoint=frame["role"].astype(str))
    return summary_by_names(tagged, views[0].role, views[1].role)


SWEEPS = re.compile(r"^sweep-[0-9a-f]{32}\.csv$")
"""Names of the computed sweeps on disk (a cap like the other caches: :mod:`precal.disk_cache`)."""


def sweep_key(views: Sequence[ModelView], data: str, data_mtime: int, split: str, modalities: Sequence[str],
              corruptions: Sequence[str], severities: Sequence[int], seed: int) -> str:
    """What identifies a computed sweep: the models by weights and calibrator switch, the data folder
    and its modification time, the split, the plan, the seed and the code that runs the models,
    corrupts their inputs and scores them (:func:`~precal.dashboard.backend.running.sweep_code_key`)."""
    payload = {"views": [[v.checkpoint.fingerprint, bool(v.calibration)] for v in views], "data": str(data),
               "mtime": int(data_mtime), "split": split, "modalities": list(modalities),
               "corruptions": list(corruptions), "severities": sorted({int(s) for s in severities} | {0}),
               "seed": int(seed), "code": sweep_code_key()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def cached_sweep(cache_dir: Optional[Path], key: str, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """A computed sweep from the disk cache (``cache_dir/sweep-<key>.csv``), else ``compute()``d and
    stored there: the dashboard's robustness page and ``precal precompute`` share it, so a sweep
    computed ahead of a demo is found by the page. An unreadable file is computed again."""
    path = Path(cache_dir) / f"sweep-{key}.csv" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            frame = read_table(path)
            disk_cache.mark_used(path)
            return frame
        except (OSError, ValueError, KeyError):
            pass
    frame = compute()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                frame.to_csv(fh, index=False)
            os.replace(tmp, path)
            disk_cache.evict(path.parent, SWEEPS)
        except OSError:
            pass  # a read-only checkout still works, without the disk cache
    return frame


def has_cached_sweep(cache_dir: Path, key: str) -> bool:
    return (Path(cache_dir) / f"sweep-{key}.csv").is_file()


DEFAULT_CORRUPTIONS = ("gaussian_noise", "remove_absent")
"""What the page's sweep form starts with (those the data's modalities have) and what ``precal
precompute`` computes unless told otherwise."""
DEFAULT_SEVERITIES = (0, 1, 3, 5)
SWEEP_SEED = 0


def available_corruptions(schema: DatasetSchema) -> List[str]:
    """Every corruption some modality of the data has, in the catalogue's order."""
    return sorted({c.name for m in schema.modality_names for c in corruptions_for(schema.modality(m).kind)},
                  key=list(CORRUPTIONS).index)


def default_corruptions(schema: DatasetSchema) -> List[str]:
    available = available_corruptions(schema)
    return [c for c in DEFAULT_CORRUPTIONS if c in available]


def page_sweep(views: Sequence[ModelView], splits: SplitBatches, schema: DatasetSchema, data_path: Path | str,
               modalities: Sequence[str], corruptions: Sequence[str], severities: Sequence[int],
               cache_dir: Optional[Path], seed: int = SWEEP_SEED,
               progress: Optional[Callable[[float, str], None]] = None) -> pd.DataFrame:
    """The robustness page's computed sweep of the views over the whole split: from the disk cache
    (:func:`cached_sweep`) if the same sweep was computed before, by the page or by ``precal
    precompute``, else computed (:func:`robustness_sweep`) and stored. Modalities and corruptions
    are put in the data's and the catalogue's order first, so the order they were picked in does
    not make another key; the data folder is keyed resolved, as the predictions are."""
    modalities = [m for m in schema.modality_names if m in set(modalities)]
    corruptions = sorted(set(corruptions), key=lambda c: list(CORRUPTIONS).index(c) if c in CORRUPTIONS else 1e9)
    severities = tuple(sorted({int(s) for s in severities} | {0}))
    data = Path(data_path).expanduser().resolve()
    key = sweep_key(views, str(data), data_mtime(data), splits.split, modalities, corruptions, severities, seed)
    return cached_sweep(cache_dir, key, lambda: robustness_sweep(views, splits, schema, modalities, corruptions,
                                                                 severities, seed=seed, progress=progress))
