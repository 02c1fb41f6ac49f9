"""The corruption lab: one sample corrupted as the controls say, run clean and corrupted through
every view in one forward pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

from precal.dashboard.backend.data import SplitBatches, row_of
from precal.dashboard.backend.pairs import ModelView
from precal.dashboard.backend.running import forward_views
from precal.dashboard.backend.samples import SampleOutputs, _outputs
from precal.data.batch import Batch
from precal.data.schema import DatasetSchema
from precal.robustness.corruptions import apply_corruption


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
                    rows.append({"role": role, "modality": m, "quantity": q, "clean": a, "corrupted": b,
                                 "change": b - a})
        return pd.DataFrame(rows, columns=["role", "modality", "quantity", "clean", "corrupted", "change"])

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
        for v, (outputs, report) in zip(group, forward_views(group, clean_row.stack(batches[key]))):
            by_view[v.key] = (_outputs(v, outputs, report, 0), _outputs(v, outputs, report, 1))
    for v in views:
        clean_out[v.role], cor_out[v.role] = by_view[v.key]
    return LabResult(index, clean_out, cor_out, batches, notes, time.perf_counter() - start, by_view)
