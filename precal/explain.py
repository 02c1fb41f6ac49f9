"""Plain-words answers to "why was this modality damped?" from a :class:`CalibrationReport`.

The calibrator's instance gate is ``alpha = 2 sigmoid(logit)`` with a logit that is *linear* in the
evidence, so the report already splits every logit exactly into the bias plus one contribution per
cue (``weight * evidence``). Nothing here re-runs the model or approximates: an explanation is a
re-reading of that split, so the waterfall always adds up to the logit that produced the gate the
model actually used.

What the parts mean (monotone gates, the default): each cue is measured against a running reference
of typical training samples, so the bias is the logit a *typical* sample gets (``typical_alpha =
2 sigmoid(bias)``) and every contribution says how far this sample's cue moved the gate away from
typical. The wording follows from that:

* the *direction* word compares the gate with the typical one: "damped" when the evidence lowered it,
  "amplified" when it raised it, "typical" when it moved less than ``threshold``; the sentence gives
  the gate's value and the typical value, so "damped to 1.10 (typical 1.40)" is never read as a cut
  below 1 that did not happen;
* the reasons are the (at most two) cues that pushed in that direction, largest first, each with its
  evidence in standard deviations from typical ("its agreement with what the others predict was low
  (-2.1 sd)"): with sign-constrained weights, a cue that lowered the gate *was* below (support) or
  above (conflict) typical, so the reading is always true; "low" and "high" are said from
  ``LEVEL_SD`` standard deviations on, nearer it is "about typical". The bias is the same for
  every sample and is never a reason;
* the *caveat* adds what the sentence leaves a reader to assume wrongly: with exactly two modalities
  present and both damped, a disagreement does not say which of them is wrong.

For checkpoints with unconstrained weights on raw cues (``gate == "free"``) a contribution's sign says
nothing about the cue's level, so the sentence only says what each cue did ("pushed it down"); for
the self-gate control the own-summary parts are summed into one "its own summary".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch

from precal.calibration import ATYPICAL_FROM_SD, ATYPICALITY, CalibrationReport

STATUSES = ("damped", "amplified", "typical", "no_context", "absent", "disabled")
BASELINE = "baseline"
SUPPORT = "support"
CONFLICT = "conflict"
PEER_PREFIX = "support from "
OWN = "own summary"
MAX_REASONS = 2
MIN_REASON = 0.005
"""A contribution smaller than this (it prints as 0.00 on the logit) is never named as a reason."""
BASIS = {"absolute": "sd from typical", "relative": "sd from typical, relative to its peers",
         "learned": "sd from typical, in part relative to its peers",
         "capped": "sd from typical, in part relative to its peers"}
"""What a monotone gate's evidence is measured against, in words, per evidence mode."""
LEVEL_SD = 1.0
"""A cue is called "low" or "high" only this many standard deviations or more from typical; nearer,
it is "about typical" (−0.2 sd is what most training samples show, not a low agreement)."""


def gate_of(logit: float) -> float:
    """The instance gate a logit gives, ``2 sigmoid(logit)`` (written ``1 + tanh(logit / 2)``)."""
    return 1.0 + math.tanh(logit / 2.0)


@dataclass
class AlphaExplanation:
    """Why one modality of one sample got the instance gate it got.

    ``contributions`` holds (cue name, contribution to the logit) for every cue that applies to this
    sample (the zero self column and columns of absent peers are left out), largest |value| first;
    ``baseline + sum(values) == logit`` exactly (up to float rounding). ``evidence`` holds what each
    weight multiplied (standard deviations from typical for monotone gates, the raw cue otherwise)
    and ``cue_values`` the raw cues. With calibration off the split still shows what the calibrator
    computed, but the gate applied was 1 (``status`` "disabled"); without context every part is 0.
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
    evidence: Dict[str, float] = field(default_factory=dict)
    gate: str = "monotone"
    basis: str = BASIS["absolute"]
    """What the evidence is measured against, in words (relative evidence: also against the peers')."""
    caveat: str = ""
    """What the sentence does not say and a reader would otherwise assume (the lone peer damped too:
    with two modalities a disagreement has no culprit); empty when there is nothing to add."""

    @property
    def with_caveat(self) -> str:
        """The sentence followed by its caveat, for a place that shows one explanation alone."""
        return f"{self.sentence} {self.caveat}" if self.caveat else self.sentence

    def basis_of(self, cue: str) -> str:
        """What one cue's evidence is measured against: the table of cues shows it per row, because
        atypicality counts only beyond the distance still taken as typical and is never relative to
        the peers, whatever the comparison cues are measured against."""
        if cue == ATYPICALITY:
            return f"sd beyond the {ATYPICAL_FROM_SD:g} sd still typical (its own, not its peers')"
        return self.basis

    @property
    def typical_alpha(self) -> float:
        """The gate a typical sample gets (the bias alone)."""
        return gate_of(self.baseline)

    @property
    def direction(self) -> str:
        """Relative to a typical sample: "damped", "amplified" or "unchanged"."""
        shift = self.logit - self.baseline
        return "damped" if shift < 0 else "amplified" if shift > 0 else "unchanged"


def explain_alpha(report: CalibrationReport, sample: int, modality: str,
                  threshold: float = 0.05, merge_single_peer: bool = False) -> AlphaExplanation:
    """Explain the instance gate of ``modality`` for row ``sample`` of ``report``.

    ``threshold``: a gate within ``threshold`` of the typical one is reported as "typical" rather
    than damped/amplified, so the UI does not dramatise a 0.99 against a typical 1.00.
    ``merge_single_peer``: when exactly one other modality is present, "support" and "support from
    <peer>" measure the same thing (what that one peer implies); they are then given as one cue,
    ``support`` with the two contributions summed, phrased "its agreement with what <peer>
    predicts" (the dashboard does this; a reader would otherwise see one number twice).
    Raises KeyError (listing the known modalities) for an unknown modality and IndexError for a
    sample outside the batch.
    """
    i = _modality_index(report, modality)
    s = _sample_index(report, sample)
    alpha = _scalar(report.alpha[s, i])
    logit = _scalar(report.alpha_logit[s, i])
    row = _row(report.contributions[s, i])
    baseline = row[0]
    gate = getattr(report, "gate", "monotone")
    cue_values = _cue_values(report, s, i) if gate != "self" else {}
    evidence_row = _row(report.evidence[s, i]) if report.evidence is not None else [0.0] * (len(row) - 1)
    if gate == "self":
        contributions = [(OWN, float(sum(row[1:])))]
        evidence: Dict[str, float] = {}
    else:
        named = [(n, v, e) for n, v, e in zip(report.contribution_names[1:], row[1:], evidence_row) if n in cue_values]
        contributions = sorted(((n, v) for n, v, _ in named), key=lambda item: -abs(item[1]))
        evidence = {n: e for n, _, e in named}
        if merge_single_peer:
            contributions, evidence, cue_values = _merge_single_peer(contributions, evidence, cue_values)
    status = _status(report, s, i, alpha, logit, baseline, threshold)
    basis = BASIS[report.evidence_mode]
    sentence, reasons = _sentence(status, modality, alpha, logit, baseline, contributions, evidence, cue_values,
                                  gate, basis)
    disagreed = any(r != ATYPICALITY for r in reasons)  # atypicality alone is no disagreement with the peer
    caveat = (_lone_peer_damped_too(report, s, i, threshold)
              if status == "damped" and gate == "monotone" and disagreed else "")
    return AlphaExplanation(modality=modality, alpha=alpha, logit=logit, baseline=baseline,
                            contributions=contributions, cue_values=cue_values, sentence=sentence,
                            status=status, reasons=reasons, evidence=evidence, gate=gate, caveat=caveat,
                            basis=basis)


def _merge_single_peer(contributions: List[Tuple[str, float]], evidence: Dict[str, float],
                       cue_values: Dict[str, float]) -> Tuple[List[Tuple[str, float]], Dict[str, float], Dict[str, float]]:
    """Fold the only "support from <peer>" column into "support" (see :func:`explain_alpha`)."""
    peers = [n for n in cue_values if n.startswith(PEER_PREFIX)]
    if len(peers) != 1 or SUPPORT not in cue_values:
        return contributions, evidence, cue_values
    peer = peers[0]
    parts = dict(contributions)
    merged = parts.pop(SUPPORT, 0.0) + parts.pop(peer, 0.0)
    name = f"{SUPPORT} ({peer[len(PEER_PREFIX):]})"
    out = sorted([*parts.items(), (name, merged)], key=lambda item: -abs(item[1]))
    ev = {k: v for k, v in evidence.items() if k not in (SUPPORT, peer)}
    if SUPPORT in evidence:
        ev[name] = evidence[SUPPORT]
    values = {k: v for k, v in cue_values.items() if k not in (SUPPORT, peer)}
    values[name] = cue_values[SUPPORT]
    return out, ev, values


def waterfall_frame(expl: AlphaExplanation) -> pd.DataFrame:
    """Rows for a plotly waterfall: the typical sample's logit (the bias), one row per cue, then the
    total (the logit).

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
    """Every present (sample, modality) pair sorted by alpha, most damped first.

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


def cue_phrase(name: str) -> str:
    """What a cue measures, in words (the dashboard's labels use the same phrases)."""
    if name == SUPPORT:
        return "its agreement with what the others predict"
    if name.startswith(SUPPORT + " (") and name.endswith(")"):  # merged with the only peer's column
        return f"its agreement with what {name[len(SUPPORT) + 2:-1]} predicts"
    if name == CONFLICT:
        return "its distance from what the others predict"
    if name.startswith(PEER_PREFIX):
        return f"its similarity to {name[len(PEER_PREFIX):]}"
    if name == OWN:
        return "its own summary"
    if name == ATYPICALITY:
        return f"its own summary's distance from typical training samples (sd beyond {ATYPICAL_FROM_SD:g})"
    return name


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
    """Raw cue values behind each contribution column: support, conflict, the pairwise support
    with each *present* peer (a peer that is absent for this sample gives no cue at all) and, when
    the calibrator reads it, the atypicality of the modality's own summary."""
    values = {SUPPORT: _scalar(report.support[s, i]), CONFLICT: _scalar(report.conflict[s, i])}
    for k, peer in enumerate(report.modalities):
        if k != i and bool(report.present[s, k]):
            values[PEER_PREFIX + peer] = _scalar(report.pairwise_support[s, i, k])
    if report.atypicality is not None:
        values[ATYPICALITY] = _scalar(report.atypicality[s, i])
    return values


def _instance_gate_off(alpha: float, logit: float) -> bool:
    """True if alpha is not ``2 sigmoid(logit)``: the model runs with the instance gate switched off."""
    return not math.isclose(alpha, gate_of(logit), rel_tol=1e-4, abs_tol=1e-5)


def _status(report: CalibrationReport, s: int, i: int, alpha: float, logit: float, baseline: float,
            threshold: float) -> str:
    # Absence first: it is the most specific fact about this sample, whatever the model's settings.
    if not bool(report.present[s, i]):
        return "absent"
    if not report.enabled or _instance_gate_off(alpha, logit):
        return "disabled"
    if not bool(report.has_context[s, i]):
        return "no_context"
    typical = gate_of(baseline)
    if alpha < typical - threshold:
        return "damped"
    if alpha > typical + threshold:
        return "amplified"
    return "typical"


def _lone_peer_damped_too(report: CalibrationReport, s: int, i: int, threshold: float) -> str:
    """With exactly two modalities present, a disagreement does not say which of them is wrong: a
    modality swapped in from another sample leaves the pair distributed alike whichever one was
    swapped, and with absolute evidence the gates of both fall (AVLetters, lips swapped: lips by
    0.64, audio by 0.69; docs/results/gates.md, "Which modality is damped"). When the one peer was
    damped too, the caveat says so, so that "damped because it disagreed" is not read as "found to
    be the wrong one"."""
    peers = [k for k in range(len(report.modalities)) if k != i and bool(report.present[s, k])]
    if len(peers) != 1:
        return ""
    k = peers[0]
    peer_alpha = _scalar(report.alpha[s, k])
    peer_logit = _scalar(report.alpha_logit[s, k])
    peer_baseline = _scalar(report.contributions[s, k, 0])
    if _status(report, s, k, peer_alpha, peer_logit, peer_baseline, threshold) != "damped":
        return ""
    peer_typical = gate_of(peer_baseline)
    return (f"{report.modalities[k]} was damped too ({peer_alpha:.2f}, typical {peer_typical:.2f}): with two "
            f"modalities, a disagreement does not say which of them is wrong.")


def _signed(v: float) -> str:
    """+0.85 / −1.20 with a real minus sign (what the UI shows)."""
    return f"{v:+.2f}".replace("-", "\u2212")


def _plain(v: float) -> str:
    return f"{v:.2f}".replace("-", "\u2212")


def cue_level(z: float, threshold: float = LEVEL_SD) -> str:
    """The word for a cue ``z`` standard deviations from typical: "high"/"low" beyond ``threshold``."""
    if abs(z) < threshold:
        return "about typical"
    return "high" if z > 0 else "low"


def _reason_phrase(name: str, value: float, evidence: Dict[str, float], cue_values: Dict[str, float],
                   gate: str, first: bool, basis: str = BASIS["absolute"]) -> str:
    suffix = " on the logit" if first else ""
    if gate == "monotone" and name == ATYPICALITY and name in evidence:  # counted only beyond a threshold
        beyond = evidence[name]
        return (f"its own summary lay {beyond + ATYPICAL_FROM_SD:.1f} sd from typical training samples, "
                f"{beyond:.1f} beyond the {ATYPICAL_FROM_SD:g} sd still taken as typical ({_signed(value)}{suffix})")
    if gate == "monotone" and name in evidence:
        z = evidence[name]
        level = cue_level(z)
        sd = f"{z:+.1f}".replace("-", "\u2212")
        return f"{cue_phrase(name)} was {level} ({sd} {basis}, {_signed(value)}{suffix})"
    push = "pushed it down" if value < 0 else "pushed it up"
    at = f", at {_plain(cue_values[name])}," if name in cue_values else ""
    return f"{cue_phrase(name)}{at} {push} ({_signed(value)}{suffix})"


def _reasons(logit: float, baseline: float, contributions: List[Tuple[str, float]]) -> List[Tuple[str, float]]:
    """At most two cues pushing the gate away from typical, in that direction, largest first."""
    shift = logit - baseline
    if shift == 0:
        return []
    sign = 1.0 if shift > 0 else -1.0
    pushes = [(n, v) for n, v in contributions if v * sign >= MIN_REASON]
    pushes.sort(key=lambda item: -abs(item[1]))
    return pushes[:MAX_REASONS]


def _sentence(status: str, modality: str, alpha: float, logit: float, baseline: float,
              contributions: List[Tuple[str, float]], evidence: Dict[str, float], cue_values: Dict[str, float],
              gate: str, basis: str = BASIS["absolute"]) -> Tuple[str, List[str]]:
    if status == "absent":
        return f"{modality} is absent for this sample: no gate, no cues.", []
    if status == "disabled":
        return "calibration is off for this model: gates fixed at 1.", []
    if status == "no_context":
        return (f"{modality} is the only present modality, so it was passed through unchanged (alpha = 1).", [])
    typical = gate_of(baseline)
    reasons = _reasons(logit, baseline, contributions)
    names = [n for n, _ in reasons]
    if not reasons:  # no evidence at all (e.g. an untrained calibrator)
        return (f"{modality} got {alpha:.2f}, as a typical sample does: no cue moved its gate.", names)
    because = " and ".join(_reason_phrase(n, v, evidence, cue_values, gate, first=(j == 0), basis=basis)
                           for j, (n, v) in enumerate(reasons))
    if status == "typical":
        word = "slightly lower" if alpha < typical else "slightly higher"
        return (f"{modality} got {alpha:.2f}, close to a typical sample's {typical:.2f} ({word}): {because}.",
                names)
    word = "damped" if status == "damped" else "amplified"
    return (f"{modality} was {word} to {alpha:.2f} (a typical sample gets {typical:.2f}) mainly because "
            f"{because}.", names)
