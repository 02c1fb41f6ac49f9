"""The corruption lab: one sample corrupted as the controls say, run clean and corrupted through
every view in one forward pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch

from precal.calibration import ATYPICALITY
from precal.dashboard.backend.data import SplitBatches, row_of
from precal.dashboard.backend.pairs import ModelView
from precal.dashboard.backend.running import forward_views
from precal.dashboard.backend.url_state import corruption_words
from precal.dashboard.backend.samples import SampleOutputs, _outputs
from precal.data.batch import Batch
from precal.data.schema import DatasetSchema
from precal.robustness.corruptions import apply_corruption

CUE_QUANTITIES = ("alpha", "support", "conflict")
"""The gate and the comparison cues every calibrator has; :meth:`LabResult.quantities` adds
atypicality for a model trained with it."""


@dataclass(frozen=True)
class LabSetting:
    """Controls for one modality in the lab."""

    corruption: Optional[str] = None  # a corruption name, None for none
    severity: int = 0
    remove: bool = False  # mark the modality absent (missing)
    swap: bool = False  # replace it by the same modality of a different-class sample
    donor: Optional[int] = None  # data-set position of the swap donor; None: drawn with the seed

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
        if s.swap and s.donor is not None and pool is not None:
            batch = swap_in(batch, m, pool, s.donor)
            note.donor_index = int(s.donor)
            note.steps.append("swapped")
        elif s.swap:
            res = apply_corruption(batch, m, kind, "swap", 5, seed, pool=pool)
            batch = res.batch
            if res.donor_rows is not None and pool is not None and pool.indices is not None:
                d = int(res.donor_rows[0])
                note.donor_index = int(pool.indices[d]) if d >= 0 else None
            note.steps.append("swapped")
        if s.corruption and s.corruption != "swap" and s.severity > 0:
            batch = apply_corruption(batch, m, kind, s.corruption, int(s.severity), seed, pool=pool).batch
            note.steps.append(corruption_words(s.corruption, s.severity))
        if s.remove:
            batch = apply_corruption(batch, m, kind, "remove_absent", 1, seed, pool=pool).batch
            note.steps.append("removed")
        notes.append(note)
    return batch, notes


def swap_in(batch: Batch, modality: str, pool: Batch, donor: int) -> Batch:
    """Every row of ``batch`` with ``modality`` replaced by that of the pool's sample at data-set
    position ``donor`` (values, padding and presence: exactly the donor's data), the swap the lab
    makes when the user names the donor."""
    hits = torch.nonzero(pool.indices == int(donor)).flatten() if pool.indices is not None else torch.empty(0)
    if len(hits) == 0:
        raise KeyError(f"donor sample {donor} is not in this split")
    row = int(hits[0])
    n = batch.size
    values = pool.inputs[modality][row:row + 1].expand(n, *pool.inputs[modality].shape[1:]).clone()
    mask = pool.padding_mask.get(modality)
    return batch.with_modality(modality, values=values.to(batch.inputs[modality].dtype),
                               present=pool.presence(modality)[row:row + 1].expand(n).clone(),
                               padding_mask=None if mask is None else mask[row:row + 1].expand(n, -1).clone())


def donor_candidates(pool: Batch, index: int, modality: str) -> np.ndarray:
    """Data-set positions of the samples that can give ``modality`` to sample ``index``: present,
    of another class (the swap the sweep makes: a conflict that looks like valid data)."""
    labels = pool.labels.cpu().numpy()
    indices = pool.indices.cpu().numpy()
    me = labels[indices == index]
    ok = pool.presence(modality).cpu().numpy() & (indices != index)
    if len(me) and pool.labels is not None and not pool.labels.is_floating_point():
        ok &= labels != me[0]
    return indices[ok]


def most_conflicting_donor(view: ModelView, splits: SplitBatches, index: int, modality: str,
                           limit: int = 256) -> Optional[int]:
    """The donor (data-set position) whose ``modality``, swapped into sample ``index``, gets the
    lowest support from the other modalities of the gated model ``view``: the most conflicting
    swap, found with one batched forward pass over at most ``limit`` candidates (evenly spaced
    through the split, so the choice does not depend on the split's order). None without a
    candidate."""
    pool = splits.batch_for(view.checkpoint)
    candidates = donor_candidates(pool, index, modality)
    if len(candidates) == 0:
        return None
    if len(candidates) > limit:
        candidates = candidates[np.linspace(0, len(candidates) - 1, limit).astype(int)]
    rows = [row_of(splits, int(d)) for d in candidates]
    donors = pool.select(rows)
    base = pool.select([row_of(splits, index)] * len(rows))
    mask = donors.padding_mask.get(modality)
    swapped = base.with_modality(modality, values=donors.inputs[modality], present=donors.presence(modality),
                                 padding_mask=mask)
    outputs, _ = forward_views([view], swapped)[0]
    m = list(outputs.modalities).index(modality)
    return int(candidates[int(np.argmin(outputs.support[:, m]))])


def _missing(out: SampleOutputs, quantity: str, i: int) -> Optional[str]:
    """Why one output has no number for a modality's gate or cue (the words the lab writes instead),
    or None: the modality is absent, the model has no such cue, or (for a cue) no present peer gave
    the modality anything to be compared with (the model then reports 0 and passes it through)."""
    if not out.present[i]:
        return "n/a (absent)"
    if getattr(out, quantity) is None:
        return "no such cue"
    if quantity != "alpha" and not out.has_context[i]:
        return "n/a (no peer)"
    return None


def _shown(out: SampleOutputs, quantity: str, i: int) -> float:
    """The number the lab shows for one modality's gate or cue, or NaN where :func:`_missing` says why not."""
    return float("nan") if _missing(out, quantity, i) else float(getattr(out, quantity)[i])


MISSING_ORDER = ("n/a (absent)", "no such cue", "n/a (no peer)")
"""Which reason a cell gives when the clean and the corrupted input lack its number differently."""


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

    def quantities(self, roles: Optional[Sequence[str]] = None) -> Tuple[str, ...]:
        """The gate and the cues shown for ``roles`` (default: every view): alpha, support and conflict,
        and atypicality when any of those models was trained with it."""
        roles = list(self.corrupted) if roles is None else roles
        extra = any(self.corrupted[r].atypicality is not None for r in roles if r in self.corrupted)
        return CUE_QUANTITIES + ((ATYPICALITY,) if extra else ())

    def delta_frame(self) -> pd.DataFrame:
        """Per view and modality: its gate and cues (:meth:`quantities`) clean, corrupted and the change.
        A modality absent from either input has no gate and no cues there, and one without a present
        peer has no cues (nothing to compare it with; its gate passes it through): those numbers are
        NaN, never the pass-through 1 and 0 the model carries internally (``absent`` says which); a
        cue the model does not have is left out of its rows."""
        rows = []
        for role, cor in self.corrupted.items():
            cl, quantities = self.clean[role], self.quantities([role])
            for i, m in enumerate(cor.modalities):
                for q in quantities:
                    a, b = _shown(cl, q, i), _shown(cor, q, i)
                    rows.append({"role": role, "modality": m, "quantity": q, "clean": a, "corrupted": b,
                                 "change": b - a, "absent": not (cl.present[i] and cor.present[i])})
        return pd.DataFrame(rows, columns=["role", "modality", "quantity", "clean", "corrupted", "change", "absent"])

    def change_table(self, role: str, modalities: Sequence[str],
                     quantities: Sequence[str] = CUE_QUANTITIES) -> pd.DataFrame:
        """Corrupted minus clean per modality (rows) and quantity (columns) for one model: the lab's
        small table, built directly (a pivot of :meth:`delta_frame` costs tens of ms per update).
        NaN where either input has no number for the cell (see :meth:`cell_notes`)."""
        cl, cor = self.clean[role], self.corrupted[role]
        index = {m: i for i, m in enumerate(cor.modalities)}

        def value(m: str, q: str) -> float:
            i = index.get(m)
            return float("nan") if i is None else _shown(cor, q, i) - _shown(cl, q, i)

        rows = [[value(m, q) for q in quantities] for m in modalities]
        return pd.DataFrame(rows, index=pd.Index(list(modalities), name="modality"), columns=list(quantities))

    def cell_notes(self, role: str, modalities: Sequence[str],
                   quantities: Sequence[str] = CUE_QUANTITIES) -> pd.DataFrame:
        """What to write instead of a number in :meth:`change_table`'s cells: "n/a (absent)" for a
        modality removed (or missing in the data); "n/a (no peer)" for the cues of a modality with no
        present peer in either input; "no such cue" where the model was trained without it; for a model
        whose calibrator is off, its alpha is "fixed at 1" and its cues are read but not used ("" where
        a number is shown)."""
        cl, cor = self.clean[role], self.corrupted[role]
        index = {m: i for i, m in enumerate(cor.modalities)}
        rows = []

        def note(i: Optional[int], q: str) -> str:
            if i is None:
                return "n/a (absent)"
            reasons = {_missing(cl, q, i), _missing(cor, q, i)}
            why = next((r for r in MISSING_ORDER if r in reasons), None)
            return why or ("fixed at 1" if q == "alpha" and not cor.calibration else "")

        for m in modalities:
            rows.append([note(index.get(m), q) for q in quantities])
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


def uncalibrated_cues_note(view: ModelView, pair) -> str:
    """What the uncalibrated column's "cues" are, said where they are shown: its gates are fixed at
    1 whatever its cues, and the cues come from a calibrator that is switched off (same weights as
    the calibrated model: real readings, not used) or was never trained (a trained baseline: its
    calibrator is left at initialisation, so its support and conflict mean nothing)."""
    if view.checkpoint.config.calibration:
        return (f"Uncalibrated column ({view.label}): the calibrated model's own calibrator, switched off. Its alpha is "
                "fixed at 1; its support and conflict are what that calibrator reads, but the model does not use them.")
    return (f"Uncalibrated column ({view.label}): a model trained without a calibrator. Its alpha is fixed at 1; "
            "the support and conflict shown for it come from an untrained calibrator left at initialisation and "
            "mean nothing.")
