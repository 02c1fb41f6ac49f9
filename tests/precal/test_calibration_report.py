"""The calibrator's report comes from the forward pass that predicts; gradients, losses and the
errors a wrong input raises."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from precal.calibration import CalibrationReport, ModalityFeatureSpec, PreFusionCalibrator, masked_mean
from precal.calibration_losses import contrastive_prediction_loss, prediction_loss
from tests.precal.calibrator_cases import twin_calibrator, B, CASES, SEQUENCE_CASES, SUBSETS, expected_gated, lengths_mask, make_calibrator, make_features, perturb, reference_summary


# ---------------------------------------------------------------------------------------------
# summaries after, report from the same pass, gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_masks", [False, True])
def test_summaries_after_are_masked_mean_of_output(with_masks):
    names = SUBSETS[6]
    cal = make_calibrator(names)
    perturb(cal)
    x = make_features(names)
    masks = {}
    if with_masks:
        masks = {n: lengths_mask([1, 3, 2, 4], x[n].shape[CASES[n][3]]) for n in SEQUENCE_CASES}
    out, r = cal(x, masks)
    for n in names:
        torch.testing.assert_close(r.summaries_after[n], masked_mean(out[n], CASES[n][0], masks.get(n)),
                                   rtol=1e-5, atol=1e-6)
        lengths = [1, 3, 2, 4] if n in masks else None
        torch.testing.assert_close(r.summaries_after[n], reference_summary(out[n], CASES[n][0], lengths),
                                   rtol=1e-5, atol=1e-6)


def test_report_comes_from_the_forward_pass_that_produced_the_output():
    names = SUBSETS[3]
    cal = make_calibrator(names)
    perturb(cal)
    x = make_features(names)
    out, r = cal(x)
    assert r.alpha.grad_fn is not None
    for i, n in enumerate(names):
        # Raises if report.alpha / report.beta are not part of the graph that produced out[n].
        d_alpha, d_beta = torch.autograd.grad(out[n].sum(), [r.alpha, r.beta[n]], retain_graph=True)
        # d sum(x * a * beta) / d a_b = sum over positions of x * beta (computed with explicit reshapes)
        expected = expected_gated(x[n], CASES[n][0], torch.ones(B), r.beta[n].detach())
        torch.testing.assert_close(d_alpha[:, i], expected.reshape(B, -1).sum(dim=1), rtol=1e-5, atol=1e-5)
        others = [k for k in range(len(names)) if k != i]
        assert (d_alpha[:, others] == 0).all()
        assert d_beta.abs().sum() > 0
    cal.zero_grad()
    sum(o.sum() for o in out.values()).backward()
    assert cal.alpha_weight.grad is not None and cal.alpha_weight.grad.abs().sum() > 0
    assert cal.alpha_bias.grad.abs().sum() > 0
    assert all(cal.beta_bias[n].grad.abs().sum() > 0 for n in names)


def test_output_does_not_depend_on_calibrator_when_disabled():
    names = SUBSETS[3]
    cal = make_calibrator(names, enabled=False)
    perturb(cal)
    x = {k: v.requires_grad_(True) for k, v in make_features(names).items()}
    out, _ = cal(x)
    total = sum(o.sum() for o in out.values())
    total.backward()
    assert all(p.grad is None or (p.grad == 0).all() for p in cal.parameters())


def test_every_parameter_receives_gradient_during_short_training():
    names = SUBSETS[3]
    cal = make_calibrator(names)
    torch.manual_seed(5)
    head = nn.Linear(sum(CASES[n][1] for n in names), 3)
    x = make_features(names, b=8)
    masks = {n: lengths_mask([4, 3, 2, 4, 1, 4, 3, 2], x[n].shape[CASES[n][3]])
             for n in names if CASES[n][3] is not None}
    present = {"img": torch.tensor([True] * 6 + [False] * 2)}
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    opt = torch.optim.Adam(list(cal.parameters()) + list(head.parameters()), lr=1e-2)
    got_grad = {name: False for name, _ in cal.named_parameters()}
    assert len(got_grad) >= 10
    for _ in range(5):
        out, r = cal(x, masks, present)
        pooled = torch.cat([masked_mean(out[n], CASES[n][0], masks.get(n)) for n in names], dim=1)
        loss = F.cross_entropy(head(pooled), labels) + prediction_loss(r)
        opt.zero_grad()
        loss.backward()
        for name, p in cal.named_parameters():
            if p.grad is not None and (p.grad != 0).any():
                got_grad[name] = True
        opt.step()
    never = [n for n, ok in got_grad.items() if not ok]
    assert not never, f"parameters without gradient: {never}"


def test_prediction_loss_zero_when_prediction_exact_and_counts_only_context():
    cal, x = twin_calibrator(neg=False)
    _, r = cal(x)
    assert prediction_loss(r).item() < 1e-9
    cal, x = twin_calibrator(neg=True)
    _, r = cal(x)
    u = r.shared["a"]
    # both modalities contribute mean((-u - u)^2) = 4 mean(u^2); averaged over the 2B entries
    expected = (4 * (u ** 2).mean(dim=-1)).mean()
    torch.testing.assert_close(prediction_loss(r), expected, rtol=1e-5, atol=1e-6)
    _, r = cal(x, present={"b": torch.zeros(B, dtype=torch.bool)})
    assert prediction_loss(r).item() == 0.0


def test_detach_removes_autograd_history():
    names = SUBSETS[3]
    cal = make_calibrator(names)
    perturb(cal)
    _, r = cal(make_features(names))
    assert r.alpha.requires_grad
    d = r.detach()
    assert isinstance(d, CalibrationReport)
    n_tensors = 0
    for key, value in vars(d).items():
        if isinstance(value, Tensor):
            assert not value.requires_grad, key
            n_tensors += 1
        elif isinstance(value, dict):
            for k, v in value.items():
                assert not v.requires_grad, f"{key}[{k}]"
                n_tensors += 1
    assert n_tensors >= 10
    torch.testing.assert_close(d.alpha, r.alpha.detach())
    assert d.modalities == r.modalities and d.contribution_names == r.contribution_names


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def test_unknown_modality_raises_keyerror_naming_it():
    names = SUBSETS[2]
    cal = make_calibrator(names)
    x = make_features(names)
    x["sonar"] = torch.randn(B, 5)
    with pytest.raises(KeyError, match="sonar"):
        cal(x)


def test_missing_modality_raises_keyerror_naming_it():
    names = SUBSETS[3]
    cal = make_calibrator(names)
    x = make_features(names)
    del x["ch1d"]
    with pytest.raises(KeyError, match="ch1d"):
        cal(x)


@pytest.mark.parametrize("name,bad_shape", [("tok", (B, 4, 7)), ("ch1d", (B, 5, 3)), ("vid", (B, 3, 3, 2, 2)),
                                            ("vec", (B,))])
def test_wrong_feature_dim_raises_valueerror_naming_modality_and_shape(name, bad_shape):
    names = SUBSETS[6]
    cal = make_calibrator(names)
    x = make_features(names)
    x[name] = torch.randn(bad_shape)
    with pytest.raises(ValueError) as exc:
        cal(x)
    msg = str(exc.value)
    assert repr(name) in msg or name in msg
    assert str(tuple(bad_shape)) in msg


def test_bad_layout_and_bad_construction_raise_valueerror():
    with pytest.raises(ValueError, match="layout"):
        ModalityFeatureSpec("x", 4, "spatial")
    with pytest.raises(ValueError):
        ModalityFeatureSpec("x", 0, "token")
    with pytest.raises(ValueError):
        PreFusionCalibrator([])
    with pytest.raises(ValueError, match="duplicate"):
        PreFusionCalibrator([ModalityFeatureSpec("a", 3), ModalityFeatureSpec("a", 3)])


@pytest.mark.parametrize("name,mask_shape", [("tok", (B, 5)), ("tok", (B - 1, 4)), ("ch1d", (B, 4)),
                                             ("vid", (B, 2)), ("vid", (B, 3, 2, 2, 9))])
def test_mask_shape_mismatch_raises_valueerror(name, mask_shape):
    names = SUBSETS[6]
    cal = make_calibrator(names)
    x = make_features(names)
    with pytest.raises(ValueError, match="mask"):
        cal(x, {name: torch.ones(mask_shape, dtype=torch.bool)})


def test_mask_for_a_vector_modality_is_validated():
    """A (B, D) input has no step axis: a mask with steps is a mistake, not something to ignore;
    a (B,) mask marks whole samples valid/invalid (an invalid one gets the zero summary)."""
    names = SUBSETS[2]
    cal = make_calibrator(names)
    x = make_features(names)
    with pytest.raises(ValueError, match="mask"):
        cal(x, {"vec": torch.ones(B, 3, dtype=torch.bool)})
    got = masked_mean(x["vec"], "token", torch.tensor([True, False, True, True]))
    assert torch.equal(got[[0, 2, 3]], x["vec"][[0, 2, 3]])
    assert torch.equal(got[1], torch.zeros(CASES["vec"][1]))


def test_contrastive_loss_rewards_matching_the_own_sample_and_ignores_excluded_rows():
    names = ["tok", "ch1d"]
    cal = make_calibrator(names)
    perturb(cal)
    _, r = cal(make_features(names))
    base = contrastive_prediction_loss(r)
    assert torch.isfinite(base) and base.item() > 0
    # Predictions equal to the own sample's u are the best possible case; the same predictions
    # attached to shifted rows (everyone predicts its neighbour) are worse.
    exact = dict(r.predicted)
    exact.update({n: r.shared[n] * 3.0 for n in names})
    rolled = {n: r.shared[n].roll(1, dims=0) * 3.0 for n in names}
    good = contrastive_prediction_loss(dataclasses.replace(r, predicted=exact))
    bad = contrastive_prediction_loss(dataclasses.replace(r, predicted=rolled))
    assert good.item() < base.item() and good.item() < bad.item()
    # Excluding every anchor leaves nothing to learn from, and still gives a differentiable zero.
    none = contrastive_prediction_loss(r, torch.zeros(B, 2, dtype=torch.bool))
    assert none.item() == 0.0 and none.requires_grad
    # An absent modality is neither anchor nor candidate: its (arbitrary) u cannot change the loss.
    present = {"tok": torch.tensor([True, True, False, True]), "ch1d": torch.ones(B, dtype=torch.bool)}
    feats = make_features(names)
    _, r1 = cal(feats, present=present)
    feats["tok"][2] = 1e3
    _, r2 = cal(feats, present=present)
    torch.testing.assert_close(contrastive_prediction_loss(r1), contrastive_prediction_loss(r2))


@pytest.mark.parametrize("cue_gradient", [True, False])
def test_cue_gradient_decides_whether_the_cue_objective_reaches_the_features(cue_gradient):
    """With ``cue_gradient=False`` the cue objective trains the calibrator only: the encoder
    features get no gradient from it, while the gated outputs still pass the task gradient."""
    torch.manual_seed(0)
    cal = PreFusionCalibrator([ModalityFeatureSpec("a", 8, "token"), ModalityFeatureSpec("b", 6, "token")],
                              shared_dim=4, cue_gradient=cue_gradient)
    feats = {"a": torch.randn(5, 3, 8, requires_grad=True), "b": torch.randn(5, 2, 6, requires_grad=True)}
    out, report = cal(feats)
    contrastive_prediction_loss(report).backward(retain_graph=True)
    reached = all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats.values())
    assert reached == cue_gradient
    assert cal.project["a"].weight.grad.abs().sum() > 0  # the calibrator itself always learns
    for f in feats.values():
        f.grad = None
    sum(o.sum() for o in out.values()).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats.values())
