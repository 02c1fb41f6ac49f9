"""Contracts of the pre-fusion calibrator (precal/calibration.py).

Expected values are computed independently in the tests (explicit reshapes, explicit loops over the
valid steps), never copied from a run of the code under test."""

from __future__ import annotations

from typing import Tuple

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from precal.calibration import PreFusionCalibrator, masked_mean
from precal.calibration_losses import prediction_loss
from tests.precal.calibrator_cases import twin_calibrator, B, CASES, SUBSETS, cue_tensors, expected_gated, lengths_mask, make_calibrator, make_features, perturb, reference_summary, specs_for


# ---------------------------------------------------------------------------------------------
# shapes, identity at initialisation, switches
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", sorted(SUBSETS))
def test_identity_at_initialisation_exact_for_every_layout(m):
    names = SUBSETS[m]
    cal = make_calibrator(names)
    x = make_features(names)
    out, report = cal(x)
    assert list(out) == names
    for i, n in enumerate(names):
        assert out[n].shape == x[n].shape and out[n].dtype == x[n].dtype
        assert torch.equal(out[n], x[n]), n
        assert torch.equal(report.alpha[:, i], torch.ones(B))
        assert torch.equal(report.beta[n], torch.ones(B, CASES[n][1]))
        assert torch.equal(report.summaries_after[n], report.summaries_before[n])
    assert report.alpha.shape == (B, m)
    assert report.contributions.shape == (B, m, 3 + m)
    assert report.pairwise_support.shape == (B, m, m)
    assert report.context_weights.shape == (B, m, m)
    assert report.modalities == names


@pytest.mark.parametrize("m", sorted(SUBSETS))
def test_identity_at_initialisation_with_padding_masks(m):
    names = SUBSETS[m]
    cal = make_calibrator(names)
    x = make_features(names)
    masks = {n: lengths_mask([1, 2, 3, 4][:B], x[n].shape[CASES[n][3]]) for n in names if CASES[n][3] is not None}
    out, _ = cal(x, masks)
    for n in names:
        assert torch.equal(out[n], x[n]), n


def test_float64_inputs_keep_dtype():
    names = SUBSETS[6]
    cal = make_calibrator(names).double()
    perturb(cal)
    x = make_features(names, dtype=torch.float64)
    out, report = cal(x)
    for n in names:
        assert out[n].dtype == torch.float64 and out[n].shape == x[n].shape
        assert report.beta[n].dtype == torch.float64


@pytest.mark.parametrize("m", sorted(SUBSETS))
def test_perturbed_output_is_x_times_alpha_times_beta(m):
    names = SUBSETS[m]
    cal = make_calibrator(names)
    perturb(cal)
    x = make_features(names)
    out, report = cal(x)
    for i, n in enumerate(names):
        layout = CASES[n][0]
        assert out[n].shape == x[n].shape and out[n].dtype == x[n].dtype
        assert report.beta[n].shape == (B, CASES[n][1])
        expected = expected_gated(x[n], layout, report.alpha[:, i], report.beta[n])
        torch.testing.assert_close(out[n], expected, rtol=1e-6, atol=1e-6)
        if m > 1:  # there is context: the gates are really in play
            assert (report.alpha[:, i] > 0).all() and (report.alpha[:, i] < 2).all()
            assert (report.beta[n] > 0).all() and (report.beta[n] < 2).all()
            assert not torch.equal(out[n], x[n])
            assert not torch.allclose(report.beta[n], torch.ones_like(report.beta[n]))
    if m > 1:
        assert not torch.allclose(report.alpha, torch.ones_like(report.alpha))


def test_enabled_false_is_identity_with_same_weights_after_perturbation_and_training():
    names = SUBSETS[6]
    cal = make_calibrator(names)
    perturb(cal)
    x = make_features(names)
    opt = torch.optim.Adam(cal.parameters(), lr=1e-2)
    for _ in range(3):
        out, report = cal(x)
        loss = sum((o ** 2).mean() for o in out.values()) + prediction_loss(report)
        opt.zero_grad()
        loss.backward()
        opt.step()
    on, _ = cal(x)
    assert any(not torch.equal(on[n], x[n]) for n in names)

    cal.enabled = False
    off, report = cal(x)
    for i, n in enumerate(names):
        assert torch.equal(off[n], x[n]), n
        assert torch.equal(report.alpha[:, i], torch.ones(B))
        assert torch.equal(report.beta[n], torch.ones_like(report.beta[n]))
        assert torch.equal(report.summaries_after[n], report.summaries_before[n])
    assert report.enabled is False

    # A calibrator *built* with enabled=False and loaded with the same weights is the same baseline.
    twin = PreFusionCalibrator(specs_for(names), shared_dim=8, enabled=False)
    twin.load_state_dict(cal.state_dict())
    off2, _ = twin(x)
    for n in names:
        assert torch.equal(off2[n], x[n])

    cal.enabled = True  # switching back restores the calibrated behaviour with the same weights
    cal.eval()  # (a training-mode pass also moves the running reference)
    on, _ = cal(x)
    cal.enabled = False
    cal(x)
    cal.enabled = True
    on2, _ = cal(x)
    for n in names:
        assert torch.equal(on2[n], on[n])


def test_instance_gate_off_fixes_alpha_to_one():
    names = SUBSETS[3]
    cal = make_calibrator(names, instance_gate=False)
    perturb(cal)
    x = make_features(names)
    out, report = cal(x)
    assert torch.equal(report.alpha, torch.ones(B, len(names)))
    for n in names:
        torch.testing.assert_close(out[n], expected_gated(x[n], CASES[n][0], torch.ones(B), report.beta[n]),
                                   rtol=1e-6, atol=1e-6)
        assert not torch.allclose(report.beta[n], torch.ones_like(report.beta[n]))


def test_dimension_gate_off_fixes_beta_to_one():
    names = SUBSETS[3]
    cal = make_calibrator(names, dimension_gate=False)
    perturb(cal)
    x = make_features(names)
    out, report = cal(x)
    for i, n in enumerate(names):
        assert torch.equal(report.beta[n], torch.ones(B, CASES[n][1]))
        torch.testing.assert_close(out[n], expected_gated(x[n], CASES[n][0], report.alpha[:, i], report.beta[n]),
                                   rtol=1e-6, atol=1e-6)
    assert not torch.allclose(report.alpha, torch.ones_like(report.alpha))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_gates_can_suppress_and_emphasise(sign):
    names = SUBSETS[3]
    x = make_features(names)
    cal = make_calibrator(names)
    with torch.no_grad():
        cal.alpha_bias.fill_(2.0 * sign)
    _, report = cal(x)
    expected_alpha = 2 * torch.sigmoid(torch.tensor(2.0 * sign))
    torch.testing.assert_close(report.alpha, torch.full((B, 3), float(expected_alpha)))
    assert ((report.alpha > 1) if sign > 0 else (report.alpha < 1)).all()

    cal = make_calibrator(names)
    with torch.no_grad():
        for n in names:
            cal.beta_bias[n].fill_(1.5 * sign)
    out, report = cal(x)
    for n in names:
        assert ((report.beta[n] > 1) if sign > 0 else (report.beta[n] < 1)).all()
        grew = out[n].abs() > x[n].abs()
        nonzero = x[n] != 0
        assert (grew[nonzero] if sign > 0 else ~grew[nonzero]).all()


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.05, 1.5))
def test_gates_strictly_inside_open_range(seed, scale):
    names = SUBSETS[3]
    cal = make_calibrator(names, seed=seed % 5)
    perturb(cal, seed=seed, scale=scale)
    x = make_features(names, seed=seed + 1)
    _, report = cal(x)
    assert (report.alpha > 0).all() and (report.alpha < 2).all()
    for n in names:
        assert (report.beta[n] > 0).all() and (report.beta[n] < 2).all()


def test_gates_stay_in_closed_range_and_finite_under_extreme_weights():
    """Saturation in float32 may reach the end points, but never leaves [0, 2] or produces NaN."""
    names = SUBSETS[6]
    cal = make_calibrator(names)
    perturb(cal, scale=1e4)
    x = make_features(names)
    out, report = cal(x)
    assert torch.isfinite(report.alpha).all()
    assert (report.alpha >= 0).all() and (report.alpha <= 2).all()
    for n in names:
        assert torch.isfinite(report.beta[n]).all() and torch.isfinite(out[n]).all()
        assert (report.beta[n] >= 0).all() and (report.beta[n] <= 2).all()


# ---------------------------------------------------------------------------------------------
# padding
# ---------------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    extra=st.integers(1, 4),
    log_scale=st.floats(-3.0, 30.0),
    seed=st.integers(0, 10_000),
)
def test_padding_never_changes_a_summary(lengths, extra, log_scale, seed):
    names = ["vec", "tok", "ch1d", "vid"]  # vid: (B, C, T, H, W) with a (B, T) mask
    b = len(lengths)
    t = max(lengths)
    g = torch.Generator().manual_seed(seed)
    cal = make_calibrator(names)
    perturb(cal, seed=seed)
    scale = 10.0 ** log_scale

    def shape(n: str, steps: int) -> Tuple[int, ...]:
        s = list((b, *CASES[n][2]))
        if CASES[n][3] is not None:
            s[CASES[n][3]] = steps
        return tuple(s)

    x = {n: torch.randn(shape(n, t), generator=g) for n in names}
    masks = {n: lengths_mask(lengths, t) for n in names if CASES[n][3] is not None}
    _, r1 = cal(x, masks)

    # Same samples, with `extra` appended steps of garbage and the existing padded steps overwritten
    # with garbage too.
    x2 = dict(x)
    masks2 = {}
    for n in masks:
        axis = CASES[n][3]
        garbage_tail = torch.randn(shape(n, extra), generator=g) * scale + scale
        padded = torch.cat([x[n], garbage_tail], dim=axis)
        m2 = lengths_mask(lengths, t + extra)
        invalid = (~m2).reshape(b, *([1] * (axis - 1)), t + extra, *([1] * (padded.dim() - axis - 1)))
        noise = torch.randn(padded.shape, generator=g) * scale
        x2[n] = torch.where(invalid, noise, padded)
        masks2[n] = m2
    out2, r2 = cal(x2, masks2)

    for n in names:
        layout = CASES[n][0]
        ref = reference_summary(x[n], layout, lengths if n in masks else None)
        torch.testing.assert_close(r1.summaries_before[n], ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(r2.summaries_before[n], ref, rtol=1e-5, atol=1e-5)
    for i, n in enumerate(names):
        for key, v1 in cue_tensors(r1, i, n).items():
            torch.testing.assert_close(cue_tensors(r2, i, n)[key], v1, rtol=1e-5, atol=1e-5, msg=f"{n}: {key}")
        # The summary of the calibrated output also ignores the padded steps.
        torch.testing.assert_close(masked_mean(out2[n], CASES[n][0], masks2.get(n)), r1.summaries_after[n],
                                   rtol=1e-4, atol=1e-4)


def test_sample_without_valid_steps_gets_zero_summary_not_nan():
    names = ["tok", "vid"]
    cal = make_calibrator(names)
    perturb(cal)
    x = make_features(names)
    masks = {n: lengths_mask([0, 2, 0, 3], x[n].shape[CASES[n][3]]) for n in names}
    out, report = cal(x, masks)
    for n in names:
        assert torch.equal(report.summaries_before[n][0], torch.zeros(CASES[n][1]))
        assert torch.equal(report.summaries_before[n][2], torch.zeros(CASES[n][1]))
        assert torch.isfinite(out[n]).all()
    assert torch.isfinite(report.alpha).all()


def test_masked_mean_reference_values():
    x = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)  # (B, T, D)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    got = masked_mean(x, "token", mask)
    # sample 0: steps 0 and 2 -> ([0,1] + [4,5]) / 2 ; sample 1: no valid step -> 0
    torch.testing.assert_close(got, torch.tensor([[2.0, 3.0], [0.0, 0.0]]))
    xc = x.transpose(1, 2)  # (B, C, T) channel layout, same values
    torch.testing.assert_close(masked_mean(xc, "channel", mask), got)


# ---------------------------------------------------------------------------------------------
# absent modalities, lone modality
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("absent_name", ["tok", "img", "vid"])
def test_absent_modality_never_enters_another_context(absent_name):
    names = SUBSETS[6]
    j = names.index(absent_name)
    cal = make_calibrator(names)
    perturb(cal)
    x = make_features(names)
    present = {absent_name: torch.tensor([True, False, True, False])}
    absent_rows = torch.tensor([1, 3])
    out1, r1 = cal(x, present=present)

    x2 = dict(x)
    changed = x[absent_name].clone()
    g = torch.Generator().manual_seed(3)
    changed[absent_rows] = torch.randn(changed[absent_rows].shape, generator=g) * 1e3 - 50.0
    x2[absent_name] = changed
    out2, r2 = cal(x2, present=present)

    for i, n in enumerate(names):
        if n == absent_name:
            continue
        torch.testing.assert_close(out2[n], out1[n], rtol=1e-6, atol=1e-6, msg=n)
        c1, c2 = cue_tensors(r1, i, n), cue_tensors(r2, i, n)
        for key in c1:
            torch.testing.assert_close(c2[key], c1[key], rtol=1e-6, atol=1e-6, msg=f"{n}: {key}")
    for r in (r1, r2):
        assert torch.equal(r.present[:, j], torch.tensor([True, False, True, False]))
        # Nobody attends to it, no pairwise support with it, where it is absent.
        assert (r.context_weights[absent_rows][:, :, j] == 0).all()
        assert (r.pairwise_support[absent_rows][:, :, j] == 0).all()
        assert (r.pairwise_support[absent_rows][:, j, :] == 0).all()
        assert r.contribution_names[3 + j] == f"support from {absent_name}"
        assert (r.contributions[absent_rows][:, :, 3 + j] == 0).all()
        # Documented: the absent modality itself is passed through unchanged with gates at 1.
        assert not r.has_context[absent_rows, j].any()
        assert (r.alpha[absent_rows, j] == 1).all()
        assert (r.beta[absent_name][absent_rows] == 1).all()
        assert (r.support[absent_rows, j] == 0).all() and (r.conflict[absent_rows, j] == 0).all()
        # Where it is present it does take part.
        assert (r.context_weights[torch.tensor([0, 2])][:, :, j].sum(dim=1) > 0).all()
    assert torch.equal(out2[absent_name][absent_rows], changed[absent_rows])
    assert torch.equal(out1[absent_name][absent_rows], x[absent_name][absent_rows])


def test_absent_modality_with_nan_values_never_enters_another_context():
    """Missing data is often stored as NaN: an absent modality's values must not leak anyway."""
    names = SUBSETS[3]
    cal = make_calibrator(names)
    perturb(cal)
    x = make_features(names)
    present = {"img": torch.tensor([True, False, True, False])}
    out1, r1 = cal(x, present=present)
    x2 = dict(x)
    x2["img"] = x["img"].clone()
    x2["img"][1] = float("nan")
    x2["img"][3] = float("inf")
    out2, r2 = cal(x2, present=present)
    for i, n in enumerate(names):
        if n == "img":
            continue
        torch.testing.assert_close(out2[n], out1[n], msg=n)
        torch.testing.assert_close(r2.alpha[:, i], r1.alpha[:, i])
        torch.testing.assert_close(r2.beta[n], r1.beta[n])


@pytest.mark.parametrize("absent_everywhere", [True, False])
def test_lone_present_modality_passes_through(absent_everywhere):
    names = SUBSETS[3]
    cal = make_calibrator(names)
    perturb(cal, scale=2.0)
    x = make_features(names)
    if absent_everywhere:
        present = {"ch1d": torch.zeros(B, dtype=torch.bool), "img": torch.zeros(B, dtype=torch.bool)}
        lone_rows = torch.arange(B)
    else:  # rows 0, 2: only "tok" present; rows 1, 3: all present
        present = {"ch1d": torch.tensor([False, True, False, True]), "img": torch.tensor([False, True, False, True])}
        lone_rows = torch.tensor([0, 2])
    out, r = cal(x, present=present)
    i = 0  # "tok"
    assert torch.equal(out["tok"][lone_rows], x["tok"][lone_rows])
    assert (r.alpha[lone_rows] == 1).all()  # every modality in those rows: lone or absent
    for n in names:
        assert (r.beta[n][lone_rows] == 1).all()
        assert torch.equal(out[n][lone_rows], x[n][lone_rows])
    assert not r.has_context[lone_rows].any()
    assert (r.support[lone_rows] == 0).all() and (r.conflict[lone_rows] == 0).all()
    assert (r.contributions[lone_rows] == 0).all() and (r.alpha_logit[lone_rows] == 0).all()
    assert (r.context_weights[lone_rows, i] == 0).all()  # the lone modality attends to nobody
    for k, n in enumerate(names):
        if n != "tok":  # and nobody attends to the absent ones
            assert (r.context_weights[lone_rows][:, :, k] == 0).all()
    assert torch.isfinite(r.shared["tok"]).all()
    if not absent_everywhere:  # the other rows are genuinely calibrated
        other = torch.tensor([1, 3])
        assert r.has_context[other].all()
        assert not torch.equal(out["tok"][other], x["tok"][other])
    assert (r.pairwise_support[lone_rows] == 0).all()  # no peer, no support from any peer


@pytest.mark.parametrize("name", ["vec", "tok", "vid"])
def test_single_modality_calibrator_is_identity_even_when_perturbed(name):
    cal = make_calibrator([name])
    perturb(cal, scale=3.0)
    x = make_features([name])
    out, r = cal(x)
    assert torch.equal(out[name], x[name])
    assert torch.equal(r.alpha, torch.ones(B, 1))
    assert torch.equal(r.beta[name], torch.ones(B, CASES[name][1]))
    assert not r.has_context.any()
    assert (r.support == 0).all() and (r.conflict == 0).all()
    assert (r.contributions == 0).all()
    assert torch.equal(r.summaries_after[name], r.summaries_before[name])


# ---------------------------------------------------------------------------------------------
# contributions and cues
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 6])
def test_contributions_split_alpha_logit_exactly(m):
    names = SUBSETS[m]
    cal = make_calibrator(names)
    perturb(cal)
    x = make_features(names)
    present = {names[-1]: torch.tensor([True, False, True, True])}
    _, r = cal(x, present=present)
    assert len(r.contribution_names) == r.contributions.shape[-1] == 3 + m
    assert r.contribution_names[:3] == ["baseline", "support", "conflict"]
    assert r.contribution_names[3:] == [f"support from {n}" for n in names]
    torch.testing.assert_close(r.contributions.sum(dim=-1), r.alpha_logit, rtol=0, atol=1e-6)
    torch.testing.assert_close(r.alpha, 2 * torch.sigmoid(r.alpha_logit), rtol=0, atol=1e-6)
    for i in range(m):
        assert (r.contributions[:, i, 3 + i] == 0).all(), "support from self must be 0"
    # Independent reconstruction of each part from the report's cues, the reference and the head:
    # weight = sign * log(1 + exp(raw)), evidence = (cue - mean) / max(std, floor).
    ctx = r.has_context.float()
    raw, bias = cal.alpha_weight.detach(), cal.alpha_bias.detach()
    sign = torch.tensor([1.0, -1.0] + [1.0] * m)
    w = sign * torch.log1p(torch.exp(raw))
    mean, var = cal.alpha_reference.mean, cal.alpha_reference.var
    std = var.sqrt().clamp_min(1e-2)

    def evidence(cue: Tensor, i: int, col: int) -> Tensor:
        return (cue - mean[i, col]) / std[i, col]

    torch.testing.assert_close(r.contributions[..., 0], bias[None, :] * ctx)
    for i in range(m):
        ctx_i = r.has_context[:, i]
        zero = torch.zeros(B)
        torch.testing.assert_close(r.contributions[:, i, 1],
                                   torch.where(ctx_i, w[i, 0] * evidence(r.support[:, i], i, 0), zero))
        torch.testing.assert_close(r.contributions[:, i, 2],
                                   torch.where(ctx_i, w[i, 1] * evidence(r.conflict[:, i], i, 1), zero))
        for k in range(m):
            peer = (k != i) & r.present[:, k] & ctx_i
            expected = torch.where(peer, w[i, 2 + k] * evidence(r.pairwise_support[:, i, k], i, 2 + k), zero)
            torch.testing.assert_close(r.contributions[:, i, 3 + k], expected)
            torch.testing.assert_close(r.evidence[:, i, 2 + k], torch.where(peer, r.contributions[:, i, 3 + k]
                                                                            / w[i, 2 + k], zero))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_cue_ranges_and_pairwise_matrix(seed):
    names = SUBSETS[6]
    cal = make_calibrator(names, seed=seed)
    perturb(cal, seed=seed)
    x = make_features(names, seed=seed)
    pres_row = torch.tensor([True, True, False, True])
    _, r = cal(x, present={"img": pres_row})
    assert (r.support >= -1 - 1e-6).all() and (r.support <= 1 + 1e-6).all()
    assert (r.conflict >= 0).all()
    p = r.pairwise_support
    assert (torch.diagonal(p, dim1=1, dim2=2) == 0).all()  # no support from oneself
    assert (p >= -1 - 1e-5).all() and (p <= 1 + 1e-5).all()
    # Attention weights: rows of modalities with context sum to 1 and never look at themselves.
    w = r.context_weights
    assert (torch.diagonal(w, dim1=1, dim2=2) == 0).all()
    torch.testing.assert_close(w.sum(-1)[r.has_context], torch.ones(int(r.has_context.sum())))
    for i in range(len(names)):
        u, u_hat, ctx = r.shared[names[i]], r.predicted[names[i]], r.has_context[:, i].float()
        cos = (u * u_hat).sum(-1) / (u.norm(dim=-1) * u_hat.norm(dim=-1)).clamp_min(1e-12)
        torch.testing.assert_close(r.support[:, i], cos * ctx, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(r.conflict[:, i], ((u - u_hat) ** 2).sum(-1) / u.shape[-1] * ctx)
        for k in range(len(names)):
            # support from k alone: cos(u_m, g_m(u_k)), g_m the two-layer GELU MLP written out here
            v = r.shared[names[k]]
            hidden = F.gelu(v @ cal.predictor_w1[i] + cal.predictor_b1[i])
            from_k = hidden @ cal.predictor_w2[i] + cal.predictor_b2[i]
            peer = (r.present[:, i] & r.present[:, k]).float() * float(k != i)
            cos_mk = (u * from_k).sum(-1) / (u.norm(dim=-1) * from_k.norm(dim=-1)).clamp_min(1e-12)
            torch.testing.assert_close(p[:, i, k], (cos_mk * peer).detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(r.agreement[names[i]], r.shared[names[i]] * r.predicted[names[i]]
                                   * r.has_context[:, i:i + 1].float())
        torch.testing.assert_close(r.discrepancy[names[i]], (r.shared[names[i]] - r.predicted[names[i]]).abs()
                                   * r.has_context[:, i:i + 1].float())


def test_support_one_conflict_zero_when_prediction_is_exact():
    cal, x = twin_calibrator(neg=False)
    _, r = cal(x)
    torch.testing.assert_close(r.predicted["a"], r.shared["a"], rtol=0, atol=1e-5)
    torch.testing.assert_close(r.support, torch.ones(B, 2), rtol=0, atol=1e-6)
    torch.testing.assert_close(r.conflict, torch.zeros(B, 2), rtol=0, atol=1e-9)
    torch.testing.assert_close(r.pairwise_support[:, 0, 1], torch.ones(B), rtol=0, atol=1e-6)
    assert (r.discrepancy["a"].abs() < 1e-5).all()


def test_support_minus_one_and_conflict_when_prediction_is_opposite():
    cal, x = twin_calibrator(neg=True)
    _, r = cal(x)
    u = r.shared["a"]
    torch.testing.assert_close(r.shared["b"], -u, rtol=0, atol=1e-6)
    torch.testing.assert_close(r.support, -torch.ones(B, 2), rtol=0, atol=1e-6)
    # ||u - (-u)||^2 / d = 4 * mean(u^2)
    torch.testing.assert_close(r.conflict[:, 0], 4 * (u ** 2).mean(dim=-1), rtol=1e-5, atol=1e-6)
    assert (r.conflict > 3.0).all()  # LayerNorm output has mean square ~1
    torch.testing.assert_close(r.pairwise_support[:, 0, 1], -torch.ones(B), rtol=0, atol=1e-6)
