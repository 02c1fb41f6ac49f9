"""Contracts of the pre-fusion calibrator (precal/calibration.py).

Expected values are computed independently in the tests (explicit reshapes, explicit loops over the
valid steps), never copied from a run of the code under test.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from precal.calibration import (CalibrationReport, ModalityFeatureSpec, PreFusionCalibrator,
                                contrastive_prediction_loss, masked_mean, prediction_loss)


B = 4

# name -> (layout, feature dim, shape of one sample *including* the feature axis, time axis or None)
# The time axis is the axis (of the full batched tensor) that a (B, T) padding mask refers to.
CASES: Dict[str, Tuple[str, int, Tuple[int, ...], Optional[int]]] = {
    "vec": ("token", 5, (5,), None),  # (B, D)
    "tok": ("token", 6, (4, 6), 1),  # (B, T, D)
    "ch1d": ("channel", 3, (3, 5), 2),  # (B, C, T)
    "img": ("channel", 4, (4, 3, 2), None),  # (B, C, H, W)
    "vid": ("channel", 2, (2, 3, 2, 2), 2),  # (B, C, T, H, W)
    "chvec": ("channel", 7, (7,), None),  # (B, C)
}
SUBSETS = {
    1: ["tok"],
    2: ["vec", "vid"],
    3: ["tok", "ch1d", "img"],
    6: ["vec", "tok", "ch1d", "img", "vid", "chvec"],
}
SEQUENCE_CASES = [n for n, c in CASES.items() if c[3] is not None]


def specs_for(names: Sequence[str]) -> List[ModalityFeatureSpec]:
    return [ModalityFeatureSpec(n, CASES[n][1], CASES[n][0]) for n in names]


def make_calibrator(names: Sequence[str], seed: int = 0, **kwargs) -> PreFusionCalibrator:
    torch.manual_seed(seed)
    return PreFusionCalibrator(specs_for(names), shared_dim=8, **kwargs)


def make_features(names: Sequence[str], seed: int = 1, b: int = B, dtype=torch.float32) -> Dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: (torch.randn((b, *CASES[n][2]), generator=g) * 2 + 0.5).to(dtype) for n in names}


def perturb(cal: PreFusionCalibrator, seed: int = 7, scale: float = 1.0) -> None:
    """Random re-init of the gate parameters and a random evidence reference, so that every gate
    responds to its cues (a fresh calibrator has no reference: its evidence is zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        touched = 0
        for name, p in cal.named_parameters():
            if name.startswith(("alpha_", "beta_")):
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
                touched += 1
        set_reference(cal, g)
    cal.eval()  # the reference stays fixed: repeated passes over the same inputs agree
    assert touched >= 5  # alpha_weight, alpha_bias, beta_agreement, beta_discrepancy, beta_bias.*


def set_reference(cal: PreFusionCalibrator, g: torch.Generator) -> None:
    """A random running reference (means around 0, variances around 1) for every cue column."""
    with torch.no_grad():
        for ref in (getattr(cal, "alpha_reference", None), getattr(cal, "beta_reference", None)):
            if ref is not None:
                ref.mean.copy_(torch.randn(ref.mean.shape, generator=g) * 0.3)
                ref.var.copy_(torch.rand(ref.var.shape, generator=g) + 0.5)
                ref.count.fill_(1)


def expected_gated(x: Tensor, layout: str, alpha: Tensor, beta: Tensor) -> Tensor:
    """x * alpha * beta with explicit reshapes per layout (alpha (B,), beta (B, D))."""
    g = alpha[:, None] * beta  # (B, D)
    if layout == "token":
        if x.dim() == 2:
            return x * g
        if x.dim() == 3:
            return x * g[:, None, :]
    else:
        if x.dim() == 2:
            return x * g
        if x.dim() == 3:
            return x * g[:, :, None]
        if x.dim() == 4:
            return x * g[:, :, None, None]
        if x.dim() == 5:
            return x * g[:, :, None, None, None]
    raise AssertionError(f"unexpected test layout {layout} {tuple(x.shape)}")


def reference_summary(x: Tensor, layout: str, lengths: Optional[Sequence[int]] = None) -> Tensor:
    """Mean over the non-feature axes using only the first ``lengths[b]`` time steps (explicit loop)."""
    rows = []
    for b in range(x.shape[0]):
        xb = x[b]
        if layout == "channel":
            xb = xb.movedim(0, -1)  # features last
        if lengths is not None:
            xb = xb[: lengths[b]]  # time is the first non-feature axis in every masked test layout
        rows.append(xb.reshape(-1, xb.shape[-1]).mean(dim=0))
    return torch.stack(rows)


def lengths_mask(lengths: Sequence[int], t: int) -> Tensor:
    return torch.arange(t)[None, :] < torch.as_tensor(list(lengths))[:, None]


def cue_tensors(report: CalibrationReport, i: int, name: str) -> Dict[str, Tensor]:
    return {
        "summary": report.summaries_before[name], "shared": report.shared[name],
        "predicted": report.predicted[name], "support": report.support[:, i],
        "conflict": report.conflict[:, i], "alpha": report.alpha[:, i],
        "alpha_logit": report.alpha_logit[:, i], "contributions": report.contributions[:, i],
        "beta": report.beta[name], "after": report.summaries_after[name],
        "pairwise_row": report.pairwise_support[:, i], "weights_row": report.context_weights[:, i],
    }


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


def _twin_calibrator(neg: bool):
    """Two identical token modalities with identical bias-free projections and predictors g = identity.

    With M = 2 the context of each modality is exactly the other's u, so with g = identity
    u_hat_a = u_b. Feeding x_b = x_a gives u_hat == u; x_b = -x_a gives u_hat == -u (LayerNorm with
    zero bias is odd). g is a two-layer GELU MLP: W1 = W2 = I, b1 = +K, b2 = -K with K large makes it
    the identity up to float rounding (GELU(z) == z for z >= ~10 in float32).

    This helper sets parameters by name (the calibrator's internals); update it if they change.
    """
    cal = PreFusionCalibrator([ModalityFeatureSpec("a", 5), ModalityFeatureSpec("b", 5)], shared_dim=8)
    params = dict(cal.named_parameters())
    needed = ["project.a.weight", "project.a.bias", "project.b.weight", "project.b.bias", "norm_bias",
              "predictor_w1", "predictor_b1", "predictor_w2", "predictor_b2"]
    missing = [k for k in needed if k not in params]
    if missing:
        pytest.fail(f"calibrator internals changed ({missing} not found): update _twin_calibrator")
    k_shift = 20.0
    with torch.no_grad():
        params["project.a.bias"].zero_()
        params["project.b.bias"].zero_()
        params["project.b.weight"].copy_(params["project.a.weight"])
        params["norm_bias"].zero_()
        if "norm_weight" in params:
            params["norm_weight"].fill_(1.0)
        eye = torch.eye(8).expand(2, 8, 8)
        params["predictor_w1"].copy_(eye)
        params["predictor_w2"].copy_(eye)
        params["predictor_b1"].fill_(k_shift)
        params["predictor_b2"].fill_(-k_shift)
    xa = make_features(["vec"])["vec"]
    return cal, {"a": xa, "b": -xa if neg else xa.clone()}


def test_support_one_conflict_zero_when_prediction_is_exact():
    cal, x = _twin_calibrator(neg=False)
    _, r = cal(x)
    torch.testing.assert_close(r.predicted["a"], r.shared["a"], rtol=0, atol=1e-5)
    torch.testing.assert_close(r.support, torch.ones(B, 2), rtol=0, atol=1e-6)
    torch.testing.assert_close(r.conflict, torch.zeros(B, 2), rtol=0, atol=1e-9)
    torch.testing.assert_close(r.pairwise_support[:, 0, 1], torch.ones(B), rtol=0, atol=1e-6)
    assert (r.discrepancy["a"].abs() < 1e-5).all()


def test_support_minus_one_and_conflict_when_prediction_is_opposite():
    cal, x = _twin_calibrator(neg=True)
    _, r = cal(x)
    u = r.shared["a"]
    torch.testing.assert_close(r.shared["b"], -u, rtol=0, atol=1e-6)
    torch.testing.assert_close(r.support, -torch.ones(B, 2), rtol=0, atol=1e-6)
    # ||u - (-u)||^2 / d = 4 * mean(u^2)
    torch.testing.assert_close(r.conflict[:, 0], 4 * (u ** 2).mean(dim=-1), rtol=1e-5, atol=1e-6)
    assert (r.conflict > 3.0).all()  # LayerNorm output has mean square ~1
    torch.testing.assert_close(r.pairwise_support[:, 0, 1], -torch.ones(B), rtol=0, atol=1e-6)


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
    cal, x = _twin_calibrator(neg=False)
    _, r = cal(x)
    assert prediction_loss(r).item() < 1e-9
    cal, x = _twin_calibrator(neg=True)
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


# ---------------------------------------------------------------------------------------------
# direction by design, evidence against a reference, the self-gate control
# ---------------------------------------------------------------------------------------------


def random_cues(cal: PreFusionCalibrator, g: torch.Generator, b: int = 6) -> Tuple[Tensor, Tensor, Tensor]:
    """Cues (B, M, 2+M) in the calibrator's ranges, with every column valid, and their validity."""
    m = len(cal.names)
    cues = torch.cat([torch.rand(b, m, 1, generator=g) * 2 - 1,  # support: a cosine
                      torch.rand(b, m, 1, generator=g) * 3,  # conflict: a mean squared distance
                      torch.rand(b, m, m, generator=g) * 2 - 1], dim=-1)  # pairwise cosines
    valid = torch.ones_like(cues, dtype=torch.bool)
    return cues, valid, torch.ones(b, m, dtype=torch.bool)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 20.0))
def test_more_support_never_lowers_and_more_conflict_never_raises_alpha_for_any_weights(seed, scale):
    names = SUBSETS[3]
    cal = make_calibrator(names, seed=seed % 7)
    perturb(cal, seed=seed, scale=scale)
    g = torch.Generator().manual_seed(seed)
    cues, valid, ctx = random_cues(cal, g)
    cues.requires_grad_(True)
    contributions, _ = cal.instance_logit_parts(cues, valid, ctx)
    grad, = torch.autograd.grad(contributions.sum(dim=-1).sum(), cues)
    # d logit_m / d cue: support and pairwise support >= 0, conflict <= 0 (own-pair column: 0).
    assert (grad[..., 0] > 0).all()
    assert (grad[..., 1] < 0).all()
    off_diagonal = ~torch.eye(3, dtype=torch.bool)
    assert (grad[..., 2:][:, off_diagonal] > 0).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 20.0))
def test_agreement_never_lowers_and_discrepancy_never_raises_any_channel_gate(seed, scale):
    names = SUBSETS[3]
    cal = make_calibrator(names, seed=seed % 7)
    perturb(cal, seed=seed, scale=scale)
    g = torch.Generator().manual_seed(seed)
    d, b = cal.shared_dim, 5
    shared = torch.cat([torch.randn(b, 3, d, generator=g), torch.rand(b, 3, d, generator=g) * 2], dim=-1)
    shared.requires_grad_(True)
    ctx = torch.ones(b, 3, dtype=torch.bool)
    logits = cal.dimension_logits(shared, torch.ones_like(shared, dtype=torch.bool), ctx)
    for i, n in enumerate(names):
        for c in range(CASES[n][1]):  # every channel on its own
            grad, = torch.autograd.grad(logits[n][:, c].sum(), shared, retain_graph=True)
            assert (grad[:, i, :d] >= 0).all() and (grad[:, i, d:] <= 0).all(), (n, c)
            assert grad[:, i].abs().sum() > 0
            others = [k for k in range(3) if k != i]
            assert (grad[:, others] == 0).all()  # a channel's gate reads its own modality's evidence


def test_fresh_calibrator_has_no_reference_and_stays_identity_in_both_modes():
    names = SUBSETS[3]
    x = make_features(names)
    for train_mode in (True, False):
        cal = make_calibrator(names)
        cal.train(train_mode)
        assert not cal.alpha_reference.ready
        out, report = cal(x)
        for n in names:
            assert torch.equal(out[n], x[n])
        assert torch.equal(report.evidence, torch.zeros_like(report.evidence))
        # Only a training-mode pass moves the reference, and only after its own gates were made.
        assert cal.alpha_reference.ready == train_mode
        assert bool((cal.beta_reference.count > 0).all()) == train_mode


def test_reference_tracks_the_training_cues_and_a_typical_sample_gets_the_bias():
    names = SUBSETS[3]
    cal = make_calibrator(names)
    perturb(cal)
    cal.train()
    with torch.no_grad():
        cal.alpha_reference.count.zero_()
        for ref in (cal.alpha_reference, cal.beta_reference):
            ref.count.zero_()
        seen = []
        for step in range(200):
            _, r = cal(make_features(names, seed=100 + step, b=16))
            seen.append(torch.cat([r.support.unsqueeze(-1), r.conflict.unsqueeze(-1)], dim=-1))
    seen = torch.cat(seen)  # (N, M, 2); the projections are fixed, so the cue distribution is too
    torch.testing.assert_close(cal.alpha_reference.mean[:, :2], seen.mean(dim=0), atol=0.05, rtol=0.1)
    torch.testing.assert_close(cal.alpha_reference.var[:, :2].sqrt(), seen.std(dim=0), atol=0.05, rtol=0.2)

    # A sample whose cues sit exactly on the reference gets no evidence: its logit is the bias.
    cal.eval()
    m = len(names)
    cues = cal.alpha_reference.mean.unsqueeze(0).clone()
    valid = torch.ones_like(cues, dtype=torch.bool)
    valid[0, torch.arange(m), 2 + torch.arange(m)] = False  # a modality has no pairwise cue with itself
    parts, evidence = cal.instance_logit_parts(cues, valid, torch.ones(1, m, dtype=torch.bool))
    assert torch.allclose(evidence, torch.zeros_like(evidence), atol=1e-6)
    torch.testing.assert_close(parts.sum(dim=-1)[0], cal.alpha_bias.detach())


def test_centring_removes_the_cue_mean_from_the_level():
    """Shifting every cue of a modality by a constant, and the reference with it, leaves its gate
    unchanged: the level is the bias's, the cues carry only evidence."""
    names = SUBSETS[3]
    cal = make_calibrator(names)
    perturb(cal)
    g = torch.Generator().manual_seed(5)
    cues, valid, ctx = random_cues(cal, g)
    before, _ = cal.instance_logit_parts(cues, valid, ctx)
    with torch.no_grad():
        cal.alpha_reference.mean += 0.7
    after, _ = cal.instance_logit_parts(cues + 0.7, valid, ctx)
    torch.testing.assert_close(after, before)


def test_self_gate_is_identity_at_init_and_ignores_the_other_modalities():
    names = SUBSETS[3]
    torch.manual_seed(0)
    cal = PreFusionCalibrator(specs_for(names), shared_dim=8, source="self")
    x = make_features(names)
    out, report = cal(x)
    for n in names:
        assert torch.equal(out[n], x[n])
    assert report.gate == "self" and report.contribution_names[0] == "baseline"
    perturb(cal)
    _, r1 = cal(x)
    x2 = dict(x)
    x2["img"] = torch.randn(x["img"].shape) * 5  # another modality changes completely
    _, r2 = cal(x2)
    for i, n in enumerate(names):
        if n != "img":
            torch.testing.assert_close(r2.alpha[:, i], r1.alpha[:, i])
            torch.testing.assert_close(r2.beta[n], r1.beta[n])
    assert not torch.allclose(r1.alpha, torch.ones_like(r1.alpha))


def test_self_gate_has_about_the_calibrator_parameter_budget():
    specs = [ModalityFeatureSpec(n, 64) for n in ("a", "b", "c")]
    peers = sum(p.numel() for p in PreFusionCalibrator(specs, shared_dim=16).parameters())
    own = sum(p.numel() for p in PreFusionCalibrator(specs, shared_dim=16, source="self").parameters())
    assert 0.85 < own / peers < 1.0  # the same predictors and projections, no attention


def test_free_direction_keeps_the_earlier_unconstrained_head():
    names = SUBSETS[3]
    cal = make_calibrator(names, direction="free")
    assert not hasattr(cal, "alpha_reference")
    with torch.no_grad():
        cal.alpha_weight.zero_()
        cal.alpha_weight[:, 1] = 2.0  # conflict *raising* the gate: allowed only here
    x = make_features(names)
    _, report = cal(x)
    torch.testing.assert_close(report.contributions[..., 2], 2.0 * report.conflict)
    assert report.gate == "free"
    with pytest.raises(ValueError, match="direction"):
        make_calibrator(names, direction="sideways")


def test_gate_ranking_loss_orders_conflicted_below_clean_and_ignores_the_bias():
    from precal.calibration import gate_ranking_loss

    names = SUBSETS[3]
    cal = make_calibrator(names)
    perturb(cal)
    x = make_features(names, b=8)
    _, report = cal(x)
    conflicted = torch.zeros(8, 3, dtype=torch.bool)
    conflicted[:3, 0] = True
    loss = gate_ranking_loss(report, conflicted)
    logit = report.alpha_logit[:, 0].detach()
    expected = F.softplus(logit[:3, None] - logit[None, 3:]).mean()
    torch.testing.assert_close(loss.detach(), expected)
    with torch.no_grad():
        cal.alpha_bias += 3.0
    _, shifted = cal(x)
    torch.testing.assert_close(gate_ranking_loss(shifted, conflicted).detach(), expected)
    # Nothing conflicted: no loss, but still a graph (the training step adds it unconditionally).
    zero = gate_ranking_loss(report, torch.zeros(8, 3, dtype=torch.bool))
    assert float(zero.detach()) == 0.0 and zero.requires_grad


def test_support_from_the_only_peer_is_the_support():
    cal = make_calibrator(["vec", "tok"])
    perturb(cal)
    _, r = cal(make_features(["vec", "tok"]))
    torch.testing.assert_close(r.pairwise_support[:, 0, 1], r.support[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(r.pairwise_support[:, 1, 0], r.support[:, 1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("direction", ["monotone", "free"])
def test_monotone_gates_read_the_cues_without_shaping_them(direction):
    """The task's gradient through the gates reaches the gate heads only (monotone): what the cues
    say is the comparison objective's business. The earlier free head let the task bend them."""
    names = SUBSETS[3]
    cal = make_calibrator(names, direction=direction)
    perturb(cal)
    cal.train()
    out, _ = cal(make_features(names))
    sum(o.pow(2).mean() for o in out.values()).backward()
    comparison = [cal.predictor_w1, cal.predictor_w2, cal.query.weight, cal.norm_weight]
    reached = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in comparison]
    assert reached == ([False] * 4 if direction == "monotone" else [True] * 4)
    assert cal.alpha_weight.grad.abs().sum() > 0 and cal.alpha_bias.grad.abs().sum() > 0
