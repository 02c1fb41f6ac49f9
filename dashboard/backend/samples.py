"""One sample through each view (prediction, gates, cues, explanation), and the tables that pick
samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from precal.calibration import CalibrationReport
from precal.dashboard.backend.data import SplitBatches, row_of
from precal.dashboard.backend.pairs import ModelView
from precal.dashboard.backend.running import forward_view
from precal.data.batch import Batch
from precal.data.storage import MultimodalData
from precal.explain import explain_alpha, most_suppressed
from precal.inference import Predictions
from precal.metrics import softmax


@dataclass
class SampleOutputs:
    """What one model did with one sample: row ``row`` of ``outputs`` (a forward pass stacked with
    every detail, :meth:`precal.inference.Predictions.stack`) and of its calibration ``report``."""

    label: str
    role: str
    calibration: bool
    class_names: List[str]
    task: str
    outputs: Predictions
    report: CalibrationReport
    row: int

    @property
    def modalities(self) -> List[str]:
        return list(self.outputs.modalities)

    @property
    def logits(self) -> np.ndarray:  # (C,)
        return self.outputs.logits[self.row]

    @property
    def alpha(self) -> np.ndarray:  # (M,)
        return self.outputs.alpha[self.row]

    @property
    def support(self) -> np.ndarray:  # (M,)
        return self.outputs.support[self.row]

    @property
    def conflict(self) -> np.ndarray:  # (M,)
        return self.outputs.conflict[self.row]

    @property
    def atypicality(self) -> Optional[np.ndarray]:  # (M,), None without the cue (``--typicality off``)
        """How unlike its typical training summaries each modality's own summary is (log of the mean
        squared whitened distance: higher is less typical; the gate reads it against the training
        samples' own spread of it); only models trained with the cue have it."""
        values = self.report.atypicality
        return None if values is None else values[self.row].detach().cpu().numpy()

    @property
    def present(self) -> np.ndarray:  # (M,) bool
        return self.outputs.present[self.row]

    @property
    def has_context(self) -> np.ndarray:  # (M,) bool
        return self.outputs.has_context[self.row]

    @property
    def pairwise(self) -> np.ndarray:  # (M, M)
        return self.outputs.pairwise[self.row]

    @property
    def beta(self) -> Dict[str, np.ndarray]:  # m -> (D_m,)
        return {m: v[self.row] for m, v in self.outputs.beta.items()}

    @property
    def fused(self) -> np.ndarray:  # (F,)
        return self.outputs.fused[self.row]

    @property
    def probabilities(self) -> np.ndarray:
        if self.task != "classification":
            return np.ones(1)
        return softmax(self.logits)

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.logits)) if self.task == "classification" else 0

    @property
    def predicted_name(self) -> str:
        if self.task != "classification":
            return f"{float(self.logits[0]):+.3f}"
        return self.class_names[self.predicted]

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max())

    def top(self, k: int = 5) -> pd.DataFrame:
        """Top-k classes: class, probability (0..1), rank."""
        if self.task != "classification":
            return pd.DataFrame({"class": ["predicted value"], "probability": [float(self.logits[0])], "rank": [1]})
        p = self.probabilities
        order = np.argsort(-p, kind="stable")[:k]
        return pd.DataFrame({"class": [self.class_names[i] for i in order], "probability": p[order],
                             "rank": np.arange(1, len(order) + 1)})

    def cue_frame(self) -> pd.DataFrame:
        """One row per modality: alpha, support, conflict, beta mean/std, present, context."""
        return pd.DataFrame({
            "modality": self.modalities, "alpha": self.alpha, "support": self.support,
            "conflict": self.conflict,
            "beta mean": self.outputs.beta_mean[self.row], "beta std": self.outputs.beta_std[self.row],
            "present": self.present, "has context": self.has_context,
        })

    def beta_matrix(self) -> Tuple[np.ndarray, List[str]]:
        """(M, max D) beta values (NaN-padded when dims differ) for a modality x channel heatmap."""
        d = max(len(v) for v in self.beta.values())
        out = np.full((len(self.modalities), d), np.nan)
        for i, m in enumerate(self.modalities):
            out[i, : len(self.beta[m])] = self.beta[m]
        return out, list(self.modalities)

    def explain(self, modality: str):
        """:class:`precal.explain.AlphaExplanation` of this modality's gate; with one other modality
        present, its "support" and "support from <peer>" are one cue (they are equal by construction)."""
        return explain_alpha(self.report, self.row, modality, merge_single_peer=True)


def _outputs(view: ModelView, outputs: Predictions, report: CalibrationReport, row: int) -> SampleOutputs:
    schema = view.checkpoint.schema
    return SampleOutputs(label=view.label, role=view.role, calibration=view.calibration,
                         class_names=list(schema.class_names), task=schema.task, outputs=outputs, report=report,
                         row=row)


def run_rows(view: ModelView, batch: Batch) -> List[SampleOutputs]:
    """Every row of a small batch through one view, one forward pass."""
    outputs, report = forward_view(view, batch)
    return [_outputs(view, outputs, report, r) for r in range(batch.size)]


def sample_outputs(views: Sequence[ModelView], splits: SplitBatches, index: int) -> Dict[str, SampleOutputs]:
    """Role -> outputs for one clean sample."""
    row = row_of(splits, index)
    return {v.role: run_rows(v, splits.batch_for(v.checkpoint).select([row]))[0] for v in views}


def sample_table(data: MultimodalData, splits: SplitBatches, preds: Optional[Predictions] = None,
                 reference: Optional[Predictions] = None) -> pd.DataFrame:
    """One row per sample of the split: index, id, class, the data set's groups (subject, speaker…),
    predicted (calibrated / reference), correct."""
    idx = splits.indices
    frame = pd.DataFrame({"index": idx, "sample id": data.sample_ids[idx].astype(str),
                          "class": [data.label_name(int(i)) for i in idx],
                          **{name: labels[idx].astype(str) for name, labels in data.groups.items()
                             if name not in ("index", "sample id", "class")}})
    names = list(data.schema.class_names)
    for tag, p in (("calibrated", preds), ("uncalibrated", reference)):
        if p is None or data.schema.task != "classification":
            continue
        frame[f"predicted ({tag})"] = [names[int(k)] for k in p.predicted]
        frame[f"correct ({tag})"] = p.predicted == p.labels
    return frame


def suppressed_table(data: MultimodalData, splits: SplitBatches, preds: Predictions,
                     limit: int = 50) -> pd.DataFrame:
    """Most suppressed (sample, modality) pairs of the split: sample id, class, modality, alpha."""
    frame = most_suppressed(preds.alpha, preds.present, preds.modalities, limit=limit)
    idx = splits.indices[frame["index"].to_numpy(dtype=int)]
    return pd.DataFrame({"index": idx, "sample id": data.sample_ids[idx].astype(str),
                         "class": [data.label_name(int(i)) for i in idx],
                         "modality": frame["modality"].to_numpy(), "alpha": frame["alpha"].to_numpy()})


ABSENT = "n/a (absent)"


def absent_as_notes(cues: pd.DataFrame, columns: Sequence[str] = ("alpha", "support", "conflict", "beta mean",
                                                                   "beta std")) -> pd.DataFrame:
    """A :meth:`SampleOutputs.cue_frame` table with an absent modality's numbers replaced by NaN and
    a ``note`` column saying "n/a (absent)": the model carries a pass-through alpha 1 and cues 0 for
    it internally, which a chart would draw as real values."""
    out = cues.copy()
    absent = ~out["present"].astype(bool)
    for c in columns:
        if c in out:
            out[c] = out[c].astype(float).where(~absent)
    out["note"] = np.where(absent, ABSENT, "")
    return out


def explanation_heading(expl) -> str:
    """The explanation's heading in the words of its finding, relative to the modality's typical
    sample: "skeleton was damped: alpha 0.41, a typical sample gets 1.12"."""
    m = expl.modality
    if expl.status == "absent":
        return f"{m} is absent for this sample: no gate ({ABSENT})"
    if expl.status == "disabled":
        return f"{m}: calibration is off for this model (gates fixed at 1)"
    if expl.status == "no_context":
        return f"{m} is the only present modality: passed through (alpha 1)"
    word = {"damped": "was damped", "amplified": "was amplified"}.get(expl.status, "was about typical")
    return f"{m} {word}: alpha {expl.alpha:.2f}, a typical sample gets {expl.typical_alpha:.2f}"
