"""Plain-words answers to "why was this modality suppressed?" from a :class:`CalibrationReport`.

The calibrator's instance gate is ``alpha = 2 sigmoid(logit)`` with a logit that is *linear* in the
cues, so the report already splits every logit exactly into a baseline (the learned bias) plus one
contribution per cue (``weight * cue value``). Nothing here re-runs the model or approximates: an
explanation is a re-reading of that split, so the waterfall always adds up to the logit that
produced the gate the model actually used.

Wording rules (kept deliberately conservative so a sentence is never more confident than the maths):

* the *direction* word comes from alpha: "damped" when alpha < 1, "amplified" when alpha > 1;
* only cues that push in the direction of the outcome are named, at most two, largest first; the
  learned baseline is named as a reason too when it is one of the two largest pushes that way;
* "high"/"low" describes the sign of the cue value itself, and is used only when the learned weight
  has the intuitive sign (more support -> larger gate, more conflict -> smaller gate). Then a
  negative support contribution means the support cosine was negative ("low") and a negative
  conflict contribution means conflict was present ("high"). When the learned weight has the
  counter-intuitive sign, the sentence says only that the cue "pushed it down/up": true, and it
  does not claim a reading of the cue the model does not use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch

from precal.calibration import CalibrationReport

STATUSES = ("suppressed", "emphasised", "neutral", "no_context", "absent", "disabled")
BASELINE = "baseline"
SUPPORT = "support"
CONFLICT = "conflict"
PEER_PREFIX = "support from "
MAX_REASONS = 2


@dataclass
class AlphaExplanation:
    """Why one modality of one sample got the instance gate it got.

    ``contributions`` holds (cue name, contribution to the logit) for every cue that applies to this
    sample (the zero self column and columns of absent peers are left out), largest |value| first;
    ``baseline + sum(values) == logit`` exactly (up to float rounding). With calibration off the
    split still shows what the calibrator computed, but the gate applied was 1 (``status``
    "disabled"); without context every contribution is 0.
    """

    modality: str
    alpha: float
    logit: float
    baseline: float
    contributions: List[Tuple[str, float]]
    cue_values: Dict[str, float]
    sentence: str
    status: str
    reasons: List[str] = field(default_factory=list)  # cue names the sentence cites, in order

    @property
    def direction(self) -> str:
        return "damped" if self.alpha < 1.0 else "amplified" if self.alpha > 1.0 else "unchanged"


def explain_alpha(report: CalibrationReport, sample: int, modality: str,
                  threshold: float = 0.05) -> AlphaExplanation:
    """Explain the instance gate of ``modality`` for row ``sample`` of ``report``.

    ``threshold``: alpha within ``1 ± threshold`` is reported as "neutral" (barely changed) rather
    than suppressed/emphasised, so the UI does not dramatise a 0.99.
    Raises KeyError (listing the known modalities) for an unknown modality and IndexError for a
    sample outside the batch.
    """
    i = _modality_index(report, modality)
    s = _sample_index(report, sample)
    alpha = _scalar(report.alpha[s, i])
    logit = _scalar(report.alpha_logit[s, i])
    row = _row(report.contributions[s, i])
    baseline = row[0]
    cue_values = _cue_values(report, s, i)
    contributions = sorted(((n, v) for n, v in zip(report.contribution_names[1:], row[1:]) if n in cue_values),
                           key=lambda item: -abs(item[1]))
    status = _status(report, s, i, alpha, logit, threshold)
    sentence, reasons = _sentence(status, modality, alpha, logit, baseline, contributions, cue_values)
    return AlphaExplanation(modality=modality, alpha=alpha, logit=logit, baseline=baseline,
                            contributions=contributions, cue_values=cue_values, sentence=sentence,
                            status=status, reasons=reasons)


def waterfall_frame(expl: AlphaExplanation) -> pd.DataFrame:
    """Rows for a plotly waterfall: the baseline, one row per cue, then the total (the logit).

    ``measure`` is plotly's ("absolute" / "relative" / "total"), so
    ``go.Waterfall(x=df.step, y=df.value, measure=df.measure)`` draws it directly; ``cumulative`` is
    the running logit after each step and ends at ``expl.logit``.
    """
    steps = [BASELINE] + [n for n, _ in expl.contributions]
    values = [expl.baseline] + [v for _, v in expl.contributions]
    cumulative = np.cumsum(values).tolist()
    frame = pd.DataFrame({
        "step": steps + ["alpha logit"],
        "value": values + [expl.logit],
        "cumulative": cumulative + [expl.logit],
        "measure": ["absolute"] + ["relative"] * len(expl.contributions) + ["total"],
    })
    return frame


def most_suppressed(alpha: np.ndarray, present: np.ndarray, modalities: Sequence[str],
                    limit: Optional[int] = None) -> pd.DataFrame:
    """Every present (sample, modality) pair sorted by alpha, most suppressed first.

    Absent modalities are left out: their alpha is a pass-through 1, not a decision. Ties keep
    sample order (stable sort) so the table does not reshuffle between reruns.
    """
    alpha = np.asarray(alpha, dtype=float)
    present = np.asarray(present, dtype=bool)
    if alpha.ndim != 2 or alpha.shape != present.shape or alpha.shape[1] != len(modalities):
        raise ValueError(f"alpha {alpha.shape} and present {present.shape} must both be (N, {len(modalities)})")
    rows, cols = np.nonzero(present)
    frame = pd.DataFrame({"index": rows, "modality": np.asarray(list(modalities), dtype=object)[cols],
                          "alpha": alpha[rows, cols]})
    frame = frame.sort_values("alpha", kind="mergesort").reset_index(drop=True)
    return frame if limit is None else frame.head(limit)


# --- helpers ---------------------------------------------------------------------------------


def _modality_index(report: CalibrationReport, modality: str) -> int:
    if modality not in report.modalities:
        raise KeyError(f"unknown modality {modality!r}; the report has: {', '.join(report.modalities)}")
    return report.modalities.index(modality)


def _sample_index(report: CalibrationReport, sample: int) -> int:
    b = report.alpha.shape[0]
    if not -b <= sample < b:
        raise IndexError(f"sample {sample} is outside the batch of {b}")
    return sample % b


def _scalar(x: torch.Tensor) -> float:
    return float(x.detach().cpu())


def _row(x: torch.Tensor) -> List[float]:
    return [float(v) for v in x.detach().cpu().double()]


def _cue_values(report: CalibrationReport, s: int, i: int) -> Dict[str, float]:
    """Raw cue values behind each contribution column: support, conflict and the pairwise support
    with each *present* peer (a peer that is absent for this sample gives no cue at all)."""
    values = {SUPPORT: _scalar(report.support[s, i]), CONFLICT: _scalar(report.conflict[s, i])}
    for k, peer in enumerate(report.modalities):
        if k != i and bool(report.present[s, k]):
            values[PEER_PREFIX + peer] = _scalar(report.pairwise_support[s, i, k])
    return values


def _instance_gate_off(alpha: float, logit: float) -> bool:
    """True if alpha is not ``2 sigmoid(logit)``: the model runs with the instance gate switched off."""
    return not math.isclose(alpha, 1.0 + math.tanh(logit / 2.0), rel_tol=1e-4, abs_tol=1e-5)  # 2 sigmoid(x)


def _status(report: CalibrationReport, s: int, i: int, alpha: float, logit: float, threshold: float) -> str:
    # Absence first: it is the most specific fact about this sample, whatever the model's settings.
    if not bool(report.present[s, i]):
        return "absent"
    if not report.enabled or _instance_gate_off(alpha, logit):
        return "disabled"
    if not bool(report.has_context[s, i]):
        return "no_context"
    if alpha < 1.0 - threshold:
        return "suppressed"
    if alpha > 1.0 + threshold:
        return "emphasised"
    return "neutral"


def _signed(v: float) -> str:
    """+0.85 / −1.20 with a real minus sign (what the UI shows)."""
    return f"{v:+.2f}".replace("-", "\u2212")


def _plain(v: float) -> str:
    return f"{v:.2f}".replace("-", "\u2212")


def _intuitive_weight(name: str, value: float, cue: float) -> Optional[bool]:
    """Whether the learned weight (value / cue) has the intuitive sign for this cue; None if unknown."""
    if cue == 0.0 or value == 0.0:
        return None
    weight_positive = (value > 0) == (cue > 0)
    return (not weight_positive) if name == CONFLICT else weight_positive


def _cue_phrase(name: str) -> str:
    if name == SUPPORT:
        return "its support from the others"
    if name == CONFLICT:
        return "its conflict with the other modalities"
    if name.startswith(PEER_PREFIX):
        return f"its support from {name[len(PEER_PREFIX):]}"
    return name


def _reason_phrase(name: str, value: float, cue_values: Dict[str, float], modality: str, first: bool) -> str:
    suffix = " on the logit" if first else ""
    if name == BASELINE:
        push = "pushed it down" if value < 0 else "pushed it up"
        return f"its learned baseline for {modality} {push} ({_signed(value)}{suffix})"
    cue = cue_values.get(name, 0.0)
    intuitive = _intuitive_weight(name, value, cue)
    if intuitive:
        level = "high" if cue > 0 else "low"
        return f"{_cue_phrase(name)} was {level} ({_signed(value)}{suffix})"
    push = "pushed it down" if value < 0 else "pushed it up"
    return f"{_cue_phrase(name)}, at {_plain(cue)}, {push} ({_signed(value)}{suffix})"


def _reasons(logit: float, baseline: float, contributions: List[Tuple[str, float]]) -> List[Tuple[str, float]]:
    """At most two pushes in the direction of the outcome (baseline included), largest first."""
    sign = 1.0 if logit > 0 else -1.0
    pushes = [(n, v) for n, v in [(BASELINE, baseline)] + contributions if v * sign > 0]
    pushes.sort(key=lambda item: -abs(item[1]))
    return pushes[:MAX_REASONS]


def _sentence(status: str, modality: str, alpha: float, logit: float, baseline: float,
              contributions: List[Tuple[str, float]], cue_values: Dict[str, float]) -> Tuple[str, List[str]]:
    if status == "absent":
        return f"{modality} is absent for this sample.", []
    if status == "disabled":
        return "calibration is off for this model: gates fixed at 1.", []
    if status == "no_context":
        return (f"{modality} is the only present modality, so it was passed through unchanged (alpha = 1).", [])
    reasons = _reasons(logit, baseline, contributions)
    names = [n for n, _ in reasons]
    if not reasons:  # logit exactly 0 (e.g. an untrained calibrator)
        return f"{modality} was left unchanged (alpha = {alpha:.2f}): no cue moved its gate.", names
    because = " and ".join(_reason_phrase(n, v, cue_values, modality, first=(j == 0))
                           for j, (n, v) in enumerate(reasons))
    if status == "neutral":
        word = "slightly damped" if alpha < 1.0 else "slightly amplified"
        return f"{modality} was barely changed ({word} to {alpha:.2f}): {because}.", names
    word = "damped" if alpha < 1.0 else "amplified"
    return f"{modality} was {word} to {alpha:.2f} mainly because {because}.", names
