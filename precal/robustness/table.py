"""The robustness table: its one schema, reading and writing it, and its MultiBench summaries.

One row per (model, corrupted modality, corruption, severity), severity 0 being the clean input:

- ``checkpoint`` (folder name) and ``role`` (``calibrated`` or ``uncalibrated``: the calibrator
  switch the model ran with), ``dataset``, ``backbone``;
- ``modality``, ``corruption``, ``severity``, ``level`` (the severity in the corruption's unit);
- ``metric`` (the task's primary metric), ``value``, ``macro_f1``, ``n`` (samples);
- for every modality ``m``: ``alpha_m``, ``beta_m``, ``support_m``, ``conflict_m`` (means over the
  samples where ``m`` is present);
- ``auroc_conflict``, ``auroc_support``, ``auroc_alpha``: how well the conflict cue, low support and
  1 - alpha flag the corrupted modality (corrupted samples against the same modality in clean ones;
  samples that a data set with recorded truth, such as a synthetic one, marks corrupted already are
  on neither side: :func:`precal.robustness.engine.marked_corrupted`).

Tables written before the ``role`` column existed carry the switch as a boolean ``calibration``
column instead; :func:`read_table` turns it into ``role``.

Summaries follow MultiBench (Liang et al., 2021): *relative robustness* is the area under the
metric-vs-severity curve (severity scaled to [0, 1]); *effective robustness* is the summed
difference from a baseline's curve shifted to the same clean metric,
``sum(f - (f_base + f[0] - f_base[0]))``.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import pandas as pd

from precal.models.model import role_name
from precal.safe_write import write_file

HEAD_COLUMNS = ("checkpoint", "role", "dataset", "backbone", "modality", "corruption", "severity", "level",
                "metric", "value", "macro_f1", "n")
STATISTICS = ("alpha", "beta", "support", "conflict")
"""Per-modality means in every row: ``<statistic>_<modality>``."""
AUROC_COLUMNS = ("auroc_conflict", "auroc_support", "auroc_alpha")
"""Detection AUROC of the corrupted modality by the conflict cue, by low support and by 1 - alpha."""
KEY = ["checkpoint", "role", "modality", "corruption"]
"""What identifies one curve (metric against severity)."""


def columns(modalities: Sequence[str]) -> List[str]:
    """The table's columns for models over these modalities."""
    return [*HEAD_COLUMNS, *[f"{k}_{m}" for m in modalities for k in STATISTICS], *AUROC_COLUMNS]


def gated_modalities(table: pd.DataFrame) -> List[str]:
    """The modalities whose mean alpha the table records (an ``alpha_m`` column with a value)."""
    return [c[len("alpha_"):] for c in table.columns if c.startswith("alpha_") and table[c].notna().any()]


def read_table(path: Path | str) -> pd.DataFrame:
    """A table written by ``precal robustness`` (.csv or .parquet), with its ``role`` column."""
    path = Path(path)
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    if "role" not in frame.columns and "calibration" in frame.columns:  # written before the role column
        on = frame["calibration"].astype(str).str.lower().isin(("true", "1"))
        frame = frame.drop(columns="calibration")
        frame.insert(min(1, len(frame.columns)), "role", [role_name(bool(v)) for v in on])
    missing = [c for c in ("checkpoint", "role", "modality", "corruption", "severity", "value") if c not in frame]
    if missing:
        raise ValueError(f"{path} is not a table precal robustness wrote: it lacks the column {missing[0]!r}")
    return frame


def write_table(table: pd.DataFrame, out: Path) -> Path:
    """Write a table (.parquet, else CSV) through a temporary file and a rename."""
    if out.suffix == ".parquet":
        return write_file(out, lambda tmp: table.to_parquet(tmp, index=False))
    return write_file(out, lambda tmp: table.to_csv(tmp, index=False, float_format="%.6g"))


def corrupted_alpha(table: pd.DataFrame, gated_roles: Sequence[str] = (role_name(True),)) -> np.ndarray:
    """Per row, the mean alpha of the corrupted modality (NaN where it was absent, or where the
    model ran without its calibrator: it has no gates then). ``gated_roles``: the roles of rows
    whose model has gates (a sweep's own: ``calibrated``; a comparison names its models)."""
    values = [row.get(f"alpha_{row['modality']}", np.nan) for _, row in table.iterrows()]
    alpha = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)
    return np.where(table["role"].astype(str).isin(list(gated_roles)).to_numpy(), alpha, np.nan) if len(table) \
        else alpha


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
    """Per model (checkpoint and role) x modality x corruption: clean metric, metric at severity 3 and
    5, relative and effective robustness (vs the curves of the ``baseline`` checkpoint name, if
    given) and mean detection AUROC."""
    rows = []
    for (ck, role, mod, corr), g in table.groupby(KEY, sort=False):
        g = g.sort_values("severity")
        row = {"checkpoint": ck, "role": role, "modality": mod, "corruption": corr,
               "clean": float(g["value"].iloc[0]),
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
    """Drop of the metric when each modality is removed (absent), per model (checkpoint and role):
    clean minus removed at the highest severity swept (removal is on at every severity >= 1)."""
    g = table[table["corruption"] == "remove_absent"]
    keys = ["checkpoint", "role", "modality"]
    clean = g[g["severity"] == 0].groupby(keys, sort=False)["value"].first()
    worst = g[g["severity"] > 0].sort_values("severity").groupby(keys, sort=False)["value"].last()
    return (clean - worst).rename("drop").reset_index()
