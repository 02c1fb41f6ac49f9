"""Direction by design (more support never lowers a gate, more conflict never raises it), evidence
against a training reference, and the self-gate control."""

from __future__ import annotations

from typing import Tuple

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from precal.calibration import ModalityFeatureSpec, PreFusionCalibrator
from tests.precal.calibrator_cases import B, CASES, SUBSETS, make_calibrator, make_features, perturb, specs_for


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
    from precal.calibration_losses import gate_ranking_loss

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


def test_evidence_margin_ignores_the_typical_range_and_keeps_the_direction():
    """With a margin, a cue within that many standard deviations of typical is no evidence at all,
    and beyond it the evidence still grows with the cue (soft-thresholding is non-decreasing)."""
    from precal.evidence import EvidenceReference

    ref = EvidenceReference((1, 1))
    ref.update(torch.tensor([[[0.0]], [[2.0]]]), torch.ones(2, 1, 1, dtype=torch.bool))  # mean 1, std 1
    cues = torch.linspace(-3.0, 5.0, 81).reshape(-1, 1, 1)
    valid = torch.ones_like(cues, dtype=torch.bool)
    z = ref.standardise(cues, valid, margin=1.5)
    plain = ref.standardise(cues, valid)
    inside = plain.abs() <= 1.5
    assert (z[inside] == 0).all() and inside.any()
    torch.testing.assert_close(z[~inside], plain[~inside] - 1.5 * plain[~inside].sign())
    assert (z.flatten().diff() >= 0).all()
    names = SUBSETS[3]
    with pytest.raises(ValueError, match="evidence margin"):
        make_calibrator(names, evidence_margin=-1.0)


# ---------------------------------------------------------------------------------------------
# relative evidence: centred over the sample's modalities
# ---------------------------------------------------------------------------------------------


def perturbed_with_cues(names, seed: int, scale: float, **kwargs):
    """A calibrator with random gate parameters and reference, and random valid cues for it."""
    cal = make_calibrator(names, seed=seed % 7, **kwargs)
    perturb(cal, seed=seed, scale=scale)
    g = torch.Generator().manual_seed(seed)
    return (cal, *random_cues(cal, g))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 20.0), m=st.sampled_from([2, 3]))
def test_relative_evidence_keeps_the_direction_of_each_modalitys_own_gate(seed, scale, m):
    cal, cues, valid, ctx = perturbed_with_cues(SUBSETS[m], seed, scale, evidence="relative")
    valid[:, torch.eye(m, dtype=torch.bool).nonzero()[:, 0], 2 + torch.eye(m, dtype=torch.bool).nonzero()[:, 1]] = False
    cues.requires_grad_(True)
    contributions, _ = cal.instance_logit_parts(cues, valid, ctx)
    logit = contributions.sum(dim=-1)
    for i in range(m):
        grad, = torch.autograd.grad(logit[:, i].sum(), cues, retain_graph=True)
        assert (grad[:, i, 0] > 0).all() and (grad[:, i, 1] < 0).all()  # its own support up, conflict down
        if m > 2:  # a peer column defined for two or more modalities: its own entry counts too
            peers = [2 + k for k in range(m) if k != i]
            assert (grad[:, i, peers] > 0).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 20.0), shift=st.floats(-5.0, 5.0))
def test_a_disagreement_every_modality_shows_moves_no_gate_with_relative_evidence(seed, scale, shift):
    names = SUBSETS[3]
    cal, cues, valid, ctx = perturbed_with_cues(names, seed, scale, evidence="relative")
    std = cal.alpha_reference.var.clamp_min(0).sqrt().clamp_min(cal.alpha_reference.min_std)
    moved = cues.clone()
    moved[..., 0] += shift * std[:, 0]  # every modality's support moves by the same number of sd
    before, _ = cal.instance_logit_parts(cues, valid, ctx)
    after, _ = cal.instance_logit_parts(moved, valid, ctx)
    assert torch.allclose(before.sum(-1), after.sum(-1), rtol=1e-5, atol=1e-3)
    absolute = make_calibrator(names, seed=seed % 7)
    perturb(absolute, seed=seed, scale=scale)
    a_before, _ = absolute.instance_logit_parts(cues, valid, ctx)
    a_after, _ = absolute.instance_logit_parts(moved, valid, ctx)
    # Absolute evidence: the same shift moves every gate by its support weight times the shift.
    expected = absolute.alpha_weights()[:, 0].detach() * shift
    assert torch.allclose(a_after.sum(-1) - a_before.sum(-1), expected.expand_as(a_before[..., 0]),
                          rtol=1e-4, atol=1e-3)


def test_relative_evidence_is_identity_at_init_adds_up_and_needs_monotone_peer_gates():
    names = SUBSETS[3]
    x = make_features(names)
    for train_mode in (True, False):
        cal = make_calibrator(names, evidence="relative").train(train_mode)
        out, report = cal(x)
        assert all(torch.equal(out[n], x[n]) for n in names)
    cal = make_calibrator(names, evidence="relative")
    perturb(cal)
    _, report = cal(x)
    assert torch.allclose(report.contributions.sum(-1), report.alpha_logit, atol=1e-6)
    valid = report.has_context
    assert torch.allclose((report.evidence[..., 0] * valid).sum(1), torch.zeros(B), atol=1e-5)  # centred
    for kwargs in ({"direction": "free"}, {"source": "self"}):
        with pytest.raises(ValueError, match="centred evidence"):
            make_calibrator(names, evidence="relative", **kwargs)
    with pytest.raises(ValueError, match="unknown evidence mode"):
        make_calibrator(names, evidence="centred")


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 20.0), centring=st.floats(-8.0, 8.0),
       mode=st.sampled_from(["learned", "capped"]))
def test_learned_centring_keeps_the_direction_and_lies_between_absolute_and_relative(seed, scale, centring, mode):
    """The evidence is the absolute one minus a share of its mean over the modalities: sigmoid of the
    trained parameter (learned), at most one half (capped), and a modality's own cue keeps its
    direction whatever the share. Capped: however far training drives the share, at least half of a
    drop that every modality shows reaches each gate (with two modalities a swap lowers both alike,
    and a share near 1 would hide it)."""
    from precal.calibration import MAX_CENTRING_SHARE

    cal, cues, valid, ctx = perturbed_with_cues(SUBSETS[3], seed, scale, evidence=mode)
    with torch.no_grad():
        cal.centring.fill_(centring)
    cues.requires_grad_(True)
    contributions, evidence = cal.instance_logit_parts(cues, valid, ctx)
    logit = contributions.sum(dim=-1)
    for i in range(3):
        grad, = torch.autograd.grad(logit[:, i].sum(), cues, retain_graph=True)
        assert (grad[:, i, 0] > 0).all() and (grad[:, i, 1] < 0).all()
    absolute = cal.alpha_reference.standardise(cues, valid)
    mean = absolute.mean(dim=1, keepdim=True)
    share = cal.centring_share()  # what reports and runs read is what the forward pass takes off
    sigmoid = torch.sigmoid(torch.tensor(centring))
    assert torch.allclose(share, sigmoid.clamp(max=MAX_CENTRING_SHARE) if mode == "capped" else sigmoid.expand(3))
    assert torch.allclose(evidence, absolute - share.view(1, -1, 1) * mean, atol=1e-4)
    if mode == "capped":  # support one reference sd lower in every modality: evidence at least half a sd lower
        std = cal.alpha_reference.var[:, 0].sqrt().clamp_min(cal.alpha_reference.min_std)
        shifted = cues.detach().clone()
        shifted[..., 0] -= std
        _, lower = cal.instance_logit_parts(shifted, valid, ctx)
        drop = (evidence - lower)[..., 0].detach()
        known = valid[..., 0] & cal.alpha_reference.known[..., 0]
        assert (drop[known] >= 0.5 - 1e-4).all()


def test_learned_centring_starts_half_way_is_identity_at_init_and_is_trained():
    names = SUBSETS[3]
    x = make_features(names)
    for mode in ("learned", "capped"):
        for train_mode in (True, False):
            fresh = make_calibrator(names, evidence=mode)
            assert torch.allclose(torch.sigmoid(fresh.centring), torch.full((3,), 0.5))
            out, _ = fresh.train(train_mode)(x)
            assert all(torch.equal(out[n], x[n]) for n in names)
        cal = make_calibrator(names, evidence=mode)
        perturb(cal)
        with torch.no_grad():
            cal.centring.fill_(-0.3)  # below the cap: trained either way
        out, report = cal(x)
        assert torch.allclose(report.contributions.sum(-1), report.alpha_logit, atol=1e-6)
        sum(o.sum() for o in out.values()).backward()
        assert cal.centring.grad is not None and cal.centring.grad.abs().sum() > 0


def test_centring_leaves_out_columns_without_a_reference():
    """A (modality, cue) column that never had a training row has no typical value: its evidence is
    0, and centring must neither count it in the mean nor give it the others' mean."""
    names = SUBSETS[3]
    x = make_features(names)
    for mode in ("relative", "learned", "capped"):
        cal = make_calibrator(names, evidence=mode)
        perturb(cal)
        with torch.no_grad():
            cal.alpha_reference.count[0, 0] = 0  # modality 0's support: no reference
        _, report = cal(x)
        assert torch.equal(report.evidence[:, 0, 0], torch.zeros(B))
        valid = report.has_context[:, 1:]
        others = report.evidence[:, 1:, 0]
        if mode == "relative":  # the other two are centred between themselves
            assert torch.allclose((others * valid).sum(1), torch.zeros(B), atol=1e-5)


def test_the_torch_free_config_offers_the_calibrators_evidence_modes():
    from precal.calibration import EVIDENCE_MODES as CALIBRATOR_MODES
    from precal.models.config import EVIDENCE_MODES as CONFIG_MODES

    assert CONFIG_MODES == CALIBRATOR_MODES
