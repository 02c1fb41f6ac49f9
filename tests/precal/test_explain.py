"""Explanations of the instance gate (precal/explain.py), checked against a real calibrator run.

Expected values (sums, the dominant cue, direction words) are derived here from the report's tensors
directly, never from the explanation under test.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import pytest
import torch
from torch import Tensor

from precal.calibration import CalibrationReport, ModalityFeatureSpec, PreFusionCalibrator
from precal.explain import (LEVEL_SD, STATUSES, AlphaExplanation, _sentence, cue_level, explain_alpha, most_suppressed,
                            waterfall_frame)

NAMES = ["inertial", "skeleton", "depth"]
DIMS = {"inertial": 6, "skeleton": 5, "depth": 7}
B = 24


def make_calibrator(seed: int = 0, scale: float = 2.0, **kwargs) -> PreFusionCalibrator:
    """A calibrator with random alpha parameters and a random evidence reference, in eval mode."""
    torch.manual_seed(seed)
    cal = PreFusionCalibrator([ModalityFeatureSpec(n, DIMS[n]) for n in NAMES], shared_dim=8, **kwargs)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        cal.alpha_weight.copy_(torch.randn(cal.alpha_weight.shape, generator=g) * scale)
        cal.alpha_bias.copy_(torch.randn(cal.alpha_bias.shape, generator=g) * 0.3)
        reference = getattr(cal, "alpha_reference", None)
        if reference is not None:
            reference.mean.copy_(torch.randn(reference.mean.shape, generator=g) * 0.2)
            reference.var.copy_(torch.rand(reference.var.shape, generator=g) * 0.1 + 0.02)
            reference.count.fill_(1)
    return cal.eval()


def run(cal: PreFusionCalibrator, present: Optional[Dict[str, Tensor]] = None, seed: int = 1) -> CalibrationReport:
    g = torch.Generator().manual_seed(seed)
    feats = {n: torch.randn(B, DIMS[n], generator=g) * 2 + 0.3 for n in NAMES}
    with torch.no_grad():
        _, report = cal(feats, present=present)
    return report


@pytest.fixture(scope="module")
def report() -> CalibrationReport:
    return run(make_calibrator())


def cue_phrase(name: str) -> str:
    """What the sentence must contain to name a cue."""
    if name == "support":
        return "agreement with what the others predict"
    if name == "conflict":
        return "distance from what the others predict"
    return "similarity to " + name[len("support from "):]


def dominant_cue(report: CalibrationReport, s: int, i: int) -> str:
    """The largest cue pushing the logit away from the bias (a typical sample's logit)."""
    row = report.contributions[s, i, 1:]
    sign = 1.0 if float(report.alpha_logit[s, i] - report.contributions[s, i, 0]) > 0 else -1.0
    names = report.contribution_names[1:]
    best = max((abs(float(v)), n) for n, v in zip(names, row) if float(v) * sign > 0)
    return best[1]


def explanations(report: CalibrationReport) -> Sequence[AlphaExplanation]:
    return [explain_alpha(report, s, m) for s in range(B) for m in NAMES]


def test_contributions_add_up_to_the_logit(report: CalibrationReport) -> None:
    for e in explanations(report):
        total = e.baseline + sum(v for _, v in e.contributions)
        assert total == pytest.approx(e.logit, abs=1e-5)
        assert e.alpha == pytest.approx(2.0 / (1.0 + np.exp(-e.logit)), rel=1e-5)


def test_waterfall_starts_at_baseline_and_ends_at_logit(report: CalibrationReport) -> None:
    e = explain_alpha(report, 3, "depth")
    frame = waterfall_frame(e)
    assert list(frame.columns[:3]) == ["step", "value", "cumulative"]
    assert frame["step"].iloc[0] == "baseline"
    assert frame["cumulative"].iloc[0] == pytest.approx(e.baseline)
    assert frame["cumulative"].iloc[-1] == pytest.approx(e.logit, abs=1e-6)
    assert frame["cumulative"].iloc[-2] == pytest.approx(e.logit, abs=1e-5)  # the running sum itself
    assert list(frame["measure"]) == ["absolute"] + ["relative"] * len(e.contributions) + ["total"]
    assert len(frame) == len(e.contributions) + 2


def test_contributions_sorted_and_self_column_dropped(report: CalibrationReport) -> None:
    e = explain_alpha(report, 0, "skeleton")
    names = [n for n, _ in e.contributions]
    assert "support from skeleton" not in names and "baseline" not in names
    assert set(names) == {"support", "conflict", "support from inertial", "support from depth"}
    magnitudes = [abs(v) for _, v in e.contributions]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert set(e.cue_values) == set(names)


def test_cue_values_are_the_raw_cues_and_evidence_is_against_the_reference(report: CalibrationReport) -> None:
    s, i = 5, NAMES.index("inertial")
    e = explain_alpha(report, s, "inertial")
    assert e.cue_values["support"] == pytest.approx(float(report.support[s, i]))
    assert e.cue_values["conflict"] == pytest.approx(float(report.conflict[s, i]))
    assert e.cue_values["support from depth"] == pytest.approx(float(report.pairwise_support[s, i, 2]))
    # Evidence = (cue - reference mean) / reference std; contribution = signed softplus weight * evidence.
    cal = make_calibrator()
    mean, std = cal.alpha_reference.mean[i], cal.alpha_reference.var[i].sqrt().clamp_min(1e-2)
    assert e.evidence["conflict"] == pytest.approx(float((report.conflict[s, i] - mean[1]) / std[1]), abs=1e-4)
    weight = -float(torch.log1p(torch.exp(cal.alpha_weight[i, 1].detach())))
    assert dict(e.contributions)["conflict"] == pytest.approx(weight * e.evidence["conflict"], abs=1e-5)


def test_sentence_names_modality_direction_and_dominant_cue(report: CalibrationReport) -> None:
    seen = set()
    for s in range(B):
        for i, m in enumerate(NAMES):
            e = explain_alpha(report, s, m)
            seen.add(e.status)
            assert e.sentence.startswith(m)
            if e.status in ("damped", "amplified"):
                other = "amplified" if e.status == "damped" else "damped"
                assert f" was {e.status} to {e.alpha:.2f} (a typical sample gets {e.typical_alpha:.2f})" in e.sentence
                assert other not in e.sentence
                assert cue_phrase(dominant_cue(report, s, i)) in e.sentence
                assert 1 <= len(e.reasons) <= 2 and "baseline" not in e.reasons
    assert {"damped", "amplified"} <= seen  # the random weights exercise both directions


def test_levels_read_from_the_evidence_are_true(report: CalibrationReport) -> None:
    """With sign-constrained weights a cue that lowered the gate was low (support) or high (conflict)
    against the reference: every "was low/high" in a sentence matches the cue and the reference."""
    cal = make_calibrator()
    checked = 0
    for s in range(B):
        for i, m in enumerate(NAMES):
            e = explain_alpha(report, s, m)
            for name in e.reasons:
                col = 0 if name == "support" else 1 if name == "conflict" else 2 + NAMES.index(name.split()[-1])
                above = e.cue_values[name] > float(cal.alpha_reference.mean[i, col])
                z = e.evidence[name]
                word = "about typical" if abs(z) < LEVEL_SD else "high" if above else "low"
                assert f"{cue_phrase(name)} was {word}" in e.sentence
                pushed_down = dict(e.contributions)[name] < 0
                assert pushed_down == (above if name == "conflict" else not above)
                checked += 1
    assert checked > 20


def test_status_is_relative_to_the_typical_sample(report: CalibrationReport) -> None:
    for e in explanations(report):
        typical = 2.0 / (1.0 + np.exp(-e.baseline))
        expected = "damped" if e.alpha < typical - 0.05 else "amplified" if e.alpha > typical + 0.05 else "typical"
        assert e.status == expected
        assert e.status in STATUSES
    wide = explain_alpha(report, 0, "depth", threshold=2.0)  # alpha is in (0, 2): always typical
    assert wide.status == "typical"
    assert "close to a typical sample's" in wide.sentence


def hand_set(conflict_raw: float, support_raw: float = -30.0, bias: float = 0.0, **kwargs) -> CalibrationReport:
    """A calibrator whose alpha head reads only conflict and overall support (same for every modality)."""
    cal = make_calibrator(**kwargs)
    with torch.no_grad():
        cal.alpha_weight.fill_(-30.0)  # softplus(-30) ~ 0: the pairwise cues do not count
        cal.alpha_weight[:, 0] = support_raw
        cal.alpha_weight[:, 1] = conflict_raw
        cal.alpha_bias.fill_(bias)
    return run(cal)


def test_high_conflict_is_called_high_and_damps() -> None:
    report = hand_set(conflict_raw=3.0)
    above = report.evidence[:, NAMES.index("depth"), 1] > LEVEL_SD
    s = int(torch.nonzero(above)[0])
    e = explain_alpha(report, s, "depth")
    assert e.status == "damped"
    assert e.reasons == ["conflict"]
    value = dict(e.contributions)["conflict"]
    assert f"depth was damped to {e.alpha:.2f} (a typical sample gets 1.00) mainly because its distance from " \
           "what the others predict was high" in e.sentence
    assert f"{abs(value):.2f} on the logit" in e.sentence and "\u2212" in e.sentence


def test_free_gates_are_only_said_to_push() -> None:
    # Unconstrained weights (checkpoints from before the direction contract): a contribution's sign
    # says nothing about the cue's level, so the sentence only says what the cue did.
    torch.manual_seed(0)
    cal = PreFusionCalibrator([ModalityFeatureSpec(n, DIMS[n]) for n in NAMES], shared_dim=8, direction="free")
    with torch.no_grad():
        cal.alpha_weight.zero_()
        cal.alpha_weight[:, 1] = 3.0  # conflict that *raises* the gate
    report = run(cal.eval())
    e = explain_alpha(report, 0, "inertial")
    assert e.gate == "free" and e.status == "amplified"
    assert "pushed it up" in e.sentence
    assert " was high" not in e.sentence and " was low" not in e.sentence


def test_the_bias_is_the_typical_level_never_a_reason() -> None:
    report = hand_set(conflict_raw=-30.0, bias=-2.0)
    e = explain_alpha(report, 1, "skeleton")
    assert e.typical_alpha == pytest.approx(2 / (1 + np.exp(2.0)))
    assert e.status == "typical" and e.reasons == []
    assert e.alpha < 1 and "as a typical sample does" in e.sentence


def test_self_gate_parts_are_one_own_summary() -> None:
    torch.manual_seed(0)
    cal = PreFusionCalibrator([ModalityFeatureSpec(n, DIMS[n]) for n in NAMES], shared_dim=8, source="self")
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        cal.alpha_weight.copy_(torch.randn(cal.alpha_weight.shape, generator=g))
        cal.alpha_reference.count.fill_(1)
    report = run(cal.eval())
    e = explain_alpha(report, 0, "depth")
    assert [n for n, _ in e.contributions] == ["own summary"]
    assert e.baseline + e.contributions[0][1] == pytest.approx(e.logit, abs=1e-5)
    if e.status in ("damped", "amplified"):
        assert "its own summary" in e.sentence


def test_lone_and_absent_modalities() -> None:
    present = {"inertial": torch.ones(B, dtype=torch.bool), "skeleton": torch.ones(B, dtype=torch.bool),
               "depth": torch.ones(B, dtype=torch.bool)}
    present["inertial"][0] = False
    present["depth"][0] = False
    present["depth"][1] = False
    report = run(make_calibrator(), present=present)

    lone = explain_alpha(report, 0, "skeleton")
    assert lone.status == "no_context"
    assert lone.sentence == "skeleton is the only present modality, so it was passed through unchanged (alpha = 1)."
    assert lone.alpha == 1.0 and lone.logit == 0.0
    assert all(v == 0.0 for _, v in lone.contributions)

    absent = explain_alpha(report, 0, "depth")
    assert absent.status == "absent"
    assert absent.sentence == "depth is absent for this sample: no gate, no cues."

    # Sample 1: depth absent, so no cue "support from depth" is offered for the others.
    e = explain_alpha(report, 1, "inertial")
    assert "support from depth" not in e.cue_values
    assert "support from depth" not in dict(e.contributions)
    assert e.baseline + sum(v for _, v in e.contributions) == pytest.approx(e.logit, abs=1e-5)


@pytest.mark.parametrize("kwargs", [{"enabled": False}, {"instance_gate": False}])
def test_calibration_off(kwargs: dict) -> None:
    report = run(make_calibrator(**kwargs))
    for m in NAMES:
        e = explain_alpha(report, 2, m)
        assert e.status == "disabled"
        assert e.sentence == "calibration is off for this model: gates fixed at 1."
        assert e.alpha == 1.0


def test_unknown_modality_and_sample(report: CalibrationReport) -> None:
    with pytest.raises(KeyError, match="inertial, skeleton, depth"):
        explain_alpha(report, 0, "audio")
    with pytest.raises(IndexError):
        explain_alpha(report, B, "depth")


def test_untrained_calibrator_is_typical() -> None:
    torch.manual_seed(0)
    cal = PreFusionCalibrator([ModalityFeatureSpec(n, DIMS[n]) for n in NAMES], shared_dim=8)
    e = explain_alpha(run(cal), 0, "depth")
    assert e.status == "typical" and e.alpha == 1.0 and e.reasons == []
    assert "no cue moved its gate" in e.sentence


def test_most_suppressed_sorts_present_pairs() -> None:
    alpha = np.array([[0.9, 1.2, 0.4], [0.3, 1.0, 1.5]])
    present = np.array([[True, True, True], [False, True, True]])
    frame = most_suppressed(alpha, present, NAMES)
    assert list(frame.columns) == ["index", "modality", "alpha"]
    assert frame["alpha"].tolist() == [0.4, 0.9, 1.0, 1.2, 1.5]  # absent (1, inertial, 0.3) left out
    assert frame.iloc[0].to_dict() == {"index": 0, "modality": "depth", "alpha": 0.4}
    assert len(most_suppressed(alpha, present, NAMES, limit=2)) == 2
    with pytest.raises(ValueError):
        most_suppressed(alpha, present[:, :2], NAMES)


def test_most_suppressed_on_report(report: CalibrationReport) -> None:
    frame = most_suppressed(report.alpha.numpy(), report.present.numpy(), report.modalities)
    first = frame.iloc[0]
    assert first["alpha"] == pytest.approx(float(report.alpha.min()))
    assert explain_alpha(report, int(first["index"]), first["modality"]).alpha == pytest.approx(first["alpha"])


def test_low_and_high_only_beyond_the_level_threshold() -> None:
    """−0.2 sd is what most training samples show: "about typical", not "low"."""
    assert cue_level(-0.2) == cue_level(0.2) == cue_level(-0.99) == "about typical"
    assert cue_level(-LEVEL_SD) == "low" and cue_level(2.5) == "high"
    # the explorer's case: lips damped 0.91 -> 0.84 by a support 0.2 sd below typical
    sentence, names = _sentence("damped", "lips", 0.835, -0.333, -0.18, [("support", -0.12), ("conflict", -0.03)],
                                {"support": -0.2, "conflict": 0.1}, {}, "monotone")
    assert names == ["support", "conflict"]
    assert "was about typical (\u22120.2 sd from typical" in sentence
    assert " was low" not in sentence and " was high" not in sentence
    sentence, _ = _sentence("damped", "lips", 0.3, -2.5, -0.18, [("support", -2.3)], {"support": -2.1}, {}, "monotone")
    assert "was low (\u22122.1 sd from typical" in sentence


def test_two_modalities_damped_together_are_said_not_to_tell_which_is_wrong() -> None:
    present = {n: torch.ones(B, dtype=torch.bool) for n in NAMES}
    present["depth"][:] = False  # inertial and skeleton only: each is the other's lone peer
    report = run(make_calibrator(), present=present)

    def damped(s: int, m: str) -> bool:  # from the report's tensors, not from the explanation
        i = NAMES.index(m)
        typical = 2 * torch.sigmoid(report.contributions[s, i, 0])
        return float(report.alpha[s, i]) < float(typical) - 0.05

    pairs = [("inertial", "skeleton"), ("skeleton", "inertial")]
    both = [(s, m, p) for m, p in pairs for s in range(B) if damped(s, m) and damped(s, p)]
    alone = [(s, m, p) for m, p in pairs for s in range(B) if damped(s, m) and not damped(s, p)]
    assert both and alone  # the random calibrator gives both kinds of sample
    for s, m, p in both:
        e = explain_alpha(report, s, m)
        assert e.caveat.endswith("with two modalities, a disagreement does not say which of them is wrong.")
        assert e.caveat.startswith(f"{p} was damped too ({float(report.alpha[s, NAMES.index(p)]):.2f},")
        assert e.with_caveat == f"{e.sentence} {e.caveat}" and "damped too" not in e.sentence
    for s, m, _ in alone:
        assert explain_alpha(report, s, m).caveat == ""
    # With three modalities present the odd one out can be found: no such caveat.
    full = run(make_calibrator())
    assert not any(explain_alpha(full, s, m).caveat for s in range(B) for m in NAMES)
    # Free and self gates: a contribution's sign says nothing about agreement, so no such reading.
    for kwargs in ({"direction": "free"}, {"source": "self"}):
        other = run(make_calibrator(**kwargs), present=present)
        assert any(explain_alpha(other, s, "inertial").status == "damped" for s in range(B))
        assert not any(explain_alpha(other, s, m).caveat for s in range(B) for m in ("inertial", "skeleton"))


def test_relative_evidence_is_read_against_the_peers() -> None:
    relative = run(make_calibrator(evidence="relative"))
    cited = [e for e in explanations(relative) if e.reasons]
    assert cited and all("sd from typical, relative to its peers" in e.sentence for e in cited)
    absolute = run(make_calibrator())
    assert not any("relative to its peers" in e.sentence for e in explanations(absolute))


def test_learned_centring_is_read_as_partly_against_the_peers() -> None:
    learned = run(make_calibrator(evidence="learned"))
    cited = [e for e in explanations(learned) if e.reasons]
    assert cited and all("sd from typical, in part relative to its peers" in e.sentence for e in cited)
    assert all(e.basis == "sd from typical, in part relative to its peers" for e in cited)
