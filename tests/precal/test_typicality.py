"""The atypicality cue: a modality's own summary against typical training summaries (precal.typicality),
read by the monotone gates beside the comparison cues."""

from __future__ import annotations

import re
import subprocess
import sys
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from precal.calibration import ATYPICAL_FROM_SD, ATYPICALITY
from precal.explain import explain_alpha
from precal.models.config import ModelConfig
from precal.typicality import REFRESH_EVERY, SummaryReference
from tests.precal.calibrator_cases import SUBSETS, make_calibrator, make_features, perturb


def trained_reference(dims=(6,), rows: int = 400, seed: int = 0) -> tuple[SummaryReference, torch.Tensor]:
    """A reference fitted on summaries that vary in the first two channels only (the others barely
    move): the shape a noisy summary leaves."""
    g = torch.Generator().manual_seed(seed)
    ref = SummaryReference(list(dims))
    basis = torch.zeros(dims[0], dims[0])
    basis[0, 0], basis[1, 1] = 3.0, 2.0
    for i in range(2, dims[0]):
        basis[i, i] = 0.05
    ref.train()
    for _ in range(20):
        s = torch.randn(rows // 20, dims[0], generator=g) @ basis + 1.0
        ref.update([s], torch.ones(s.shape[0], 1, dtype=torch.bool))
    ref.eval()
    return ref, basis


def test_a_summary_off_the_training_subspace_is_more_atypical_than_a_larger_one_on_it():
    ref, _ = trained_reference()
    typical = torch.ones(1, 6)
    typical[0, 0] += 3.0  # one standard deviation along the widest direction
    off = torch.ones(1, 6)
    off[0, 4] += 0.5  # ten standard deviations along a direction the training summaries barely use
    a = ref.atypicality([torch.cat([typical, off])])[:, 0]
    assert a[1] > a[0] + 2.0  # log scale: the off-subspace summary is far further away
    # per-channel variances would miss it: the move along channel 4 is smaller than along channel 0
    assert (off - 1).abs().sum() < (typical - 1).abs().sum()


def test_no_reference_means_no_cue_and_absent_rows_never_enter_it():
    ref = SummaryReference([3, 4])
    assert not ref.known.any()
    a = ref.atypicality([torch.randn(5, 3), torch.randn(5, 4)])
    assert torch.equal(a, torch.zeros(5, 2))
    present = torch.tensor([[True, False]] * 5)
    ref.update([torch.randn(5, 3), torch.full((5, 4), float("nan"))], present)
    assert ref.known.tolist() == [True, False]
    assert torch.isfinite(ref.cov_0).all() and torch.equal(ref.cov_1, torch.eye(4))


def test_a_loaded_reference_reads_the_same_as_the_one_saved():
    ref, _ = trained_reference()
    probe = torch.randn(7, 6) + 1.0
    before = ref.atypicality([probe])
    copy = SummaryReference([6])
    copy.atypicality([probe])  # caches a factor of its identity covariance: loading must drop it
    copy.load_state_dict(ref.state_dict())
    copy.eval()
    assert torch.allclose(copy.atypicality([probe]), before)


def test_training_updates_refresh_the_factor_and_evaluation_never_reads_a_stale_one():
    ref, _ = trained_reference()
    probe = torch.randn(3, 6) + 1.0
    ref.atypicality([probe])
    ref.train()
    shifted = torch.randn(50, 6) * 4.0 + 9.0
    ref.update([shifted], torch.ones(50, 1, dtype=torch.bool))  # fewer than REFRESH_EVERY updates
    assert REFRESH_EVERY > 1
    ref.eval()
    fresh = SummaryReference([6])
    fresh.load_state_dict(ref.state_dict())
    assert torch.allclose(ref.atypicality([probe]), fresh.atypicality([probe]))


def test_identity_at_initialisation_with_the_cue():
    names = SUBSETS[3]
    cal = make_calibrator(names, typicality=True, evidence="capped")
    feats = make_features(names)
    out, report = cal(feats)
    for n in names:
        assert torch.equal(out[n], feats[n])
    assert torch.equal(report.alpha, torch.ones_like(report.alpha))
    assert report.contribution_names[-1] == ATYPICALITY
    assert torch.equal(report.atypicality, torch.zeros_like(report.atypicality))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 20.0), evidence=st.sampled_from(
    ["absolute", "relative", "learned", "capped"]))
def test_more_atypicality_never_raises_alpha_and_the_parts_still_sum_to_the_logit(seed, scale, evidence):
    names = SUBSETS[3]
    cal = make_calibrator(names, seed=seed % 5, typicality=True, evidence=evidence)
    perturb(cal, seed=seed, scale=scale)
    g = torch.Generator().manual_seed(seed)
    b, m = 6, len(names)
    cues = torch.cat([torch.rand(b, m, 1, generator=g) * 2 - 1, torch.rand(b, m, 1, generator=g) * 3,
                      torch.rand(b, m, m, generator=g) * 2 - 1, torch.randn(b, m, 1, generator=g) * 3], dim=-1)
    valid = torch.ones_like(cues, dtype=torch.bool)
    ctx = torch.ones(b, m, dtype=torch.bool)
    parts, _ = cal.instance_logit_parts(cues, valid, ctx)
    more = cues.clone()
    more[..., -1] += torch.rand(b, m, generator=g) * 5
    parts_more, _ = cal.instance_logit_parts(more, valid, ctx)
    assert (parts_more.sum(-1) <= parts.sum(-1) + 1e-6).all()
    # the other modalities' gates do not move: atypicality is not centred over the modalities
    assert torch.allclose(parts_more[..., :-1], parts[..., :-1])


def test_only_atypicality_beyond_typical_moves_the_gate():
    names = SUBSETS[3]
    cal = make_calibrator(names, typicality=True)
    perturb(cal)
    ref = cal.alpha_reference
    b, m = 4, len(names)
    cues = torch.zeros(b, m, cal.alpha_weight.shape[1])
    mean, std = ref.mean[..., -1], ref.var[..., -1].sqrt()
    cues[..., -1] = mean + std * torch.tensor([-3.0, 0.0, ATYPICAL_FROM_SD * 0.99, ATYPICAL_FROM_SD + 2.0])[:, None]
    valid = torch.ones_like(cues, dtype=torch.bool)
    parts, evidence = cal.instance_logit_parts(cues, valid, torch.ones(b, m, dtype=torch.bool))
    assert torch.equal(parts[:3, :, -1], torch.zeros(3, m))
    assert torch.allclose(evidence[3, :, -1], torch.full((m,), 2.0), atol=1e-4)
    assert (parts[3, :, -1] < 0).all()


def test_a_noisy_modality_is_damped_and_the_explanation_names_its_atypicality():
    names = SUBSETS[3]
    cal = make_calibrator(names, typicality=True, evidence="capped")
    cal.train()
    for seed in range(30):  # the reference of typical summaries
        cal(make_features(names, seed=seed, b=32))
    cal.eval()
    with torch.no_grad():
        cal.alpha_weight.fill_(-30.0)  # every cue but atypicality off (softplus(-30) ~ 0)
        cal.alpha_weight[:, -1] = 2.0
    feats = make_features(names, seed=99, b=4)
    noisy = dict(feats)
    noisy["tok"] = feats["tok"] + torch.randn(feats["tok"].shape) * 20.0
    _, clean_report = cal(feats)
    _, report = cal(noisy)
    i = names.index("tok")
    assert (report.alpha[:, i] < 0.05).all() and clean_report.alpha[:, i].mean() > 0.5
    expl = explain_alpha(report, 0, "tok")
    assert expl.status == "damped" and expl.reasons[0] == ATYPICALITY
    # counted beyond a threshold: the sentence gives both the distance and how far beyond it lay
    lay, beyond = re.search(r"its own summary lay ([0-9.]+) sd from typical training samples, ([0-9.]+) beyond "
                            r"the 1 sd still taken as typical", expl.sentence).groups()
    assert float(lay) == pytest.approx(float(beyond) + ATYPICAL_FROM_SD, abs=0.051)
    assert float(beyond) == pytest.approx(expl.evidence[ATYPICALITY], abs=0.051)
    assert "relative to its peers" not in expl.sentence and "disagreement" not in expl.with_caveat
    # the table of cues says per row what the evidence is measured against: the comparison cues
    # against typical and in part against the peers (capped), atypicality beyond its own threshold
    assert "relative to its peers" in expl.basis_of("support")
    assert "beyond the 1 sd" in expl.basis_of(ATYPICALITY) and "not its peers" in expl.basis_of(ATYPICALITY)


def test_model_configs_written_before_the_cue_load_without_it_and_other_gates_refuse_it():
    assert ModelConfig.from_json({"backbone": "late", "gate": "monotone"}).typicality is False
    with pytest.raises(ValueError, match="atypicality"):
        ModelConfig(gate="free", typicality=True)
    with pytest.raises(ValueError, match="atypicality"):
        make_calibrator(SUBSETS[2], source="self", typicality=True)


def test_a_cumulative_reference_is_the_plain_average_and_reset_forgets_it():
    """Weight averaging re-estimates every running statistic (precal.training.weight_average) with
    momentum None: the plain average over the batches, then the reference is kept as it is."""
    g = torch.Generator().manual_seed(3)
    ref = SummaryReference([3], momentum=None)
    a, b = torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g) + 2.0
    every = torch.ones(40, 1, dtype=torch.bool)
    ref.update([a], every)
    ref.update([b], every)
    both = torch.cat([a, b])
    assert torch.allclose(ref.mean_0, both.mean(0), atol=1e-5)
    assert torch.allclose(ref.cov_0, torch.cov(both.T, correction=0), atol=1e-4)
    ref.reset()
    assert not ref.known.any() and torch.equal(ref.cov_0, torch.eye(3))


def test_a_damaged_covariance_never_stops_a_forward_pass_and_a_float64_reference_reads_in_float64():
    ref, _ = trained_reference()
    probe = torch.randn(4, 6, dtype=torch.float64) + 1.0
    ref.double()
    assert ref.atypicality([probe]).dtype == torch.float64
    with torch.no_grad():
        ref.cov_0.copy_(-torch.eye(6, dtype=torch.float64))  # not a covariance (a damaged file)
    ref._stale[0] = 1
    assert torch.isfinite(ref.atypicality([probe])).all()


def test_building_the_reference_on_the_meta_device_does_not_import_sympy():
    """Checkpoints are size-checked on the meta device first; torch.eye there imports sympy (about a
    second of every load)."""
    code = ("import sys, torch\nfrom precal.typicality import SummaryReference\n"
            "with torch.device('meta'):\n    SummaryReference([8, 8])\nprint('sympy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_a_batch_of_one_is_refused_with_the_cue_rather_than_leaving_it_off():
    from precal.training.checks import check_train_config
    from precal.training.config import TrainConfig

    with pytest.raises(ValueError, match="--batch-size 2 or more"):
        check_train_config(TrainConfig(data="x", typicality=True, batch_size=1))
    check_train_config(TrainConfig(data="x", typicality=True, batch_size=2))
    check_train_config(TrainConfig(data="x", batch_size=1))
