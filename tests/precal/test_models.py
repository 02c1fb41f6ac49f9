"""Contracts of the model around the calibrator (precal/models): encoders -> calibrator -> fusion -> head."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import pytest
import torch
import torch.nn.functional as F

from precal.calibration import masked_mean
from precal.data.batch import Batch
from precal.data.schema import DatasetSchema, ModalitySchema
from precal.models import BACKBONES, ModelConfig, MultimodalModel

B = 4
CLASSES = ("walk", "sit", "wave")
STEPS = {"inertial": 16, "skeleton": 12, "depth": 6}


def toy_schema(task: str = "classification") -> DatasetSchema:
    return DatasetSchema(
        "toy",
        (
            ModalitySchema("inertial", "time_series", (6,)),
            ModalitySchema("skeleton", "time_series", (20, 3)),
            ModalitySchema("depth", "frame_sequence", (12, 16)),
            ModalitySchema("meta", "vector", (5,)),
        ),
        task=task,
        class_names=CLASSES if task == "classification" else (),
    )


def small_config(backbone: str, calibration: bool = True, **kw) -> ModelConfig:
    return ModelConfig(backbone=backbone, calibration=calibration, dim=16, shared_dim=8, fusion_layers=1,
                       heads=2, head_hidden=16, dropout=0.1, **kw)


def build(backbone: str, calibration: bool = True, seed: int = 0, task: str = "classification",
          **kw) -> MultimodalModel:
    torch.manual_seed(seed)
    return MultimodalModel(toy_schema(task), small_config(backbone, calibration, **kw))


def lengths_mask(lengths: Sequence[int], t: int) -> torch.Tensor:
    return torch.arange(t)[None, :] < torch.as_tensor(list(lengths))[:, None]


def make_batch(seed: int = 0, b: int = B, lengths: Optional[Dict[str, Sequence[int]]] = None,
               steps: Optional[Dict[str, int]] = None) -> Batch:
    g = torch.Generator().manual_seed(seed)
    steps = steps or STEPS
    inputs = {
        "inertial": torch.randn(b, steps["inertial"], 6, generator=g),
        "skeleton": torch.randn(b, steps["skeleton"], 20, 3, generator=g),
        "depth": torch.rand(b, steps["depth"], 12, 16, generator=g),
        "meta": torch.randn(b, 5, generator=g),
    }
    masks = {}
    if lengths:
        masks = {n: lengths_mask(lengths[n], steps[n]) for n in lengths}
    return Batch(inputs, padding_mask=masks, labels=torch.arange(b) % len(CLASSES))


def perturb_calibrator(model: MultimodalModel, seed: int = 3, scale: float = 1.0) -> None:
    """Random gate parameters and a random evidence reference (a fresh calibrator has none)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.calibrator.named_parameters():
            if name.startswith(("alpha_", "beta_")):
                p.copy_(torch.randn(p.shape, generator=g) * scale)
        for ref in (getattr(model.calibrator, "alpha_reference", None), getattr(model.calibrator, "beta_reference", None)):
            if ref is not None:
                ref.mean.copy_(torch.randn(ref.mean.shape, generator=g) * 0.3)
                ref.count.fill_(1)


LENGTHS = {"inertial": [16, 9, 12, 5], "skeleton": [12, 7, 3, 10], "depth": [6, 4, 2, 5]}


# ---------------------------------------------------------------------------------------------
# shapes and calibration on/off
# ---------------------------------------------------------------------------------------------


def test_backbones_listed():
    assert set(BACKBONES) == {"sequence", "conv", "late", "score"}
    from precal.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    choices = next(a.choices for a in train._actions if a.dest == "backbone")
    assert set(choices) == set(BACKBONES)  # the CLI offers exactly the model's backbones


@pytest.mark.parametrize("backbone", BACKBONES)
def test_output_shapes(backbone):
    model = build(backbone).eval()
    out = model(make_batch(lengths=LENGTHS))
    assert out.logits.shape == (B, len(CLASSES))
    # sequence: d_model; conv: the temporal mixing width (2 x dim); late: concatenation of 4 vectors;
    # score: the summed log-probabilities of the experts
    expected_fused = {"sequence": 16, "conv": 2 * 16, "late": 16 * 4, "score": len(CLASSES)}[backbone]
    assert out.fused.shape == (B, expected_fused)
    assert torch.isfinite(out.logits).all()
    assert out.report.modalities == ["inertial", "skeleton", "depth", "meta"]
    assert out.report.alpha.shape == (B, 4)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_regression_schema_gives_one_output(backbone):
    model = build(backbone, task="regression").eval()
    out = model(make_batch())
    assert out.logits.shape == (B, 1)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_calibration_on_at_init_equals_calibration_off_exactly(backbone):
    model = build(backbone).eval()
    batch = make_batch(lengths=LENGTHS)
    with torch.no_grad():
        on = model(batch)
        with model.calibration(False) as m:
            assert m is model and model.calibrator.enabled is False
            off = model(batch)
        assert model.calibrator.enabled is True
    assert torch.equal(on.logits, off.logits)
    assert torch.equal(on.fused, off.fused)
    assert torch.equal(on.report.alpha, torch.ones(B, 4))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_perturbed_calibrator_changes_logits_and_switch_restores_baseline(backbone):
    model = build(backbone).eval()
    batch = make_batch(lengths=LENGTHS)
    with torch.no_grad():
        baseline = model(batch).logits
        perturb_calibrator(model)
        calibrated = model(batch).logits
        with model.calibration(False):
            restored = model(batch)
        again = model(batch).logits  # the switch is temporary
    assert not torch.allclose(calibrated, baseline, atol=1e-4)
    assert torch.equal(restored.logits, baseline)
    assert restored.report.enabled is False
    assert torch.equal(again, calibrated)


def test_configs_written_before_the_gate_field_load_with_the_free_gate():
    old = small_config("late").to_json()
    del old["gate"], old["evidence"]  # the evidence field came after the gate field
    assert ModelConfig.from_json(old).gate == "free"
    assert ModelConfig().gate == "monotone"
    with pytest.raises(ValueError, match="unknown gate"):
        small_config("late", gate="sideways")
    legacy = MultimodalModel(toy_schema(), ModelConfig.from_json(old))
    assert legacy.calibrator.direction == "free" and not hasattr(legacy.calibrator, "alpha_reference")
    control = build("late", gate="self")
    assert control.calibrator.source == "self"


def test_evidence_defaults_to_capped_for_the_calibrator_and_old_configs_keep_absolute():
    """A config that names no evidence mode: capped centring for monotone gates from the peers (the
    measured default, also with the calibrator off: the same parameters either way), absolute for
    the self-gate and the free gates, which do not read centred cues; a checkpoint written before the field existed loads as
    absolute, its weights having no centring parameter; the resolved mode is what the config stores."""
    assert ModelConfig().evidence == "capped" and ModelConfig().to_json()["evidence"] == "capped"
    assert [ModelConfig(gate=g).evidence for g in ("self", "free")] == ["absolute", "absolute"]
    assert ModelConfig(calibration=False).evidence == "capped"
    assert ModelConfig.from_json({**ModelConfig().to_json(), "evidence": "learned"}).evidence == "learned"  # kept
    assert ModelConfig(evidence="relative").evidence == "relative"
    old = small_config("late").to_json()
    assert ModelConfig.from_json({**old, "evidence": None}).evidence == "absolute"  # an empty field too
    del old["evidence"]
    assert ModelConfig.from_json(old).evidence == "absolute"
    assert not hasattr(MultimodalModel(toy_schema(), ModelConfig.from_json(old)).calibrator, "centring")
    assert hasattr(build("late").calibrator, "centring")


def test_calibration_switch_restores_state_after_exception():
    model = build("late")
    with pytest.raises(RuntimeError):
        with model.calibration(False):
            raise RuntimeError("boom")
    assert model.calibrator.enabled is True


@pytest.mark.parametrize("backbone", BACKBONES)
def test_same_architecture_with_and_without_calibration(backbone):
    on = build(backbone, calibration=True)
    off = build(backbone, calibration=False)
    sd_on, sd_off = on.state_dict(), off.state_dict()
    assert list(sd_on) == list(sd_off)
    assert {k: tuple(v.shape) for k, v in sd_on.items()} == {k: tuple(v.shape) for k, v in sd_off.items()}
    classifier = "fusion.experts." if backbone == "score" else "head."  # the score backbone's experts are its head
    assert any(k.startswith("encoders.") for k in sd_on) and any(k.startswith(classifier) for k in sd_on)
    if backbone == "sequence":  # conv/late fusion have no parameters
        assert any(k.startswith("fusion.") for k in sd_on)
    names_on = {n for n, _ in on.named_parameters() if not n.startswith("calibrator.")}
    names_off = {n for n, _ in off.named_parameters() if not n.startswith("calibrator.")}
    assert names_on == names_off
    # A calibrated checkpoint loaded into the baseline config behaves like calibration(False).
    perturb_calibrator(on)
    off.load_state_dict(on.state_dict())
    on.eval(), off.eval()
    batch = make_batch(lengths=LENGTHS)
    with torch.no_grad():
        with on.calibration(False):
            ref = on(batch).logits
        got = off(batch).logits
        calibrated = on(batch).logits
    assert torch.equal(got, ref)
    assert not torch.allclose(calibrated, ref, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# absent modalities and padding
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("absent", ["skeleton", "depth", "meta"])
def test_absent_modality_does_not_change_logits(backbone, absent):
    model = build(backbone).eval()
    perturb_calibrator(model)
    present = torch.tensor([True, False, True, False])
    batch = make_batch(lengths=LENGTHS)
    batch = batch.with_modality(absent, present=present)
    g = torch.Generator().manual_seed(11)
    garbage = batch.inputs[absent].clone()
    garbage[~present] = torch.randn(garbage[~present].shape, generator=g) * 100 + 7
    batch2 = batch.with_modality(absent, values=garbage)
    with torch.no_grad():
        o1, o2 = model(batch), model(batch2)
    torch.testing.assert_close(o2.logits, o1.logits, rtol=1e-5, atol=1e-5)
    # Where it is present it matters (so the test above is not vacuous).
    changed_present = batch.inputs[absent].clone()
    changed_present[present] = changed_present[present] * -3 + 1
    with torch.no_grad():
        o3 = model(batch.with_modality(absent, values=changed_present))
    assert not torch.allclose(o3.logits[present], o1.logits[present], atol=1e-6)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_modality_absent_gives_finite_logits(backbone):
    model = build(backbone).eval()
    perturb_calibrator(model)
    batch = make_batch(lengths=LENGTHS)
    for n in list(batch.inputs):
        batch = batch.with_modality(n, present=torch.zeros(B, dtype=torch.bool))
    with torch.no_grad():
        out = model(batch)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.fused).all()
    assert not out.report.has_context.any()
    # Nothing of the inputs reaches the prediction: other values, same logits.
    other = make_batch(seed=5, lengths=LENGTHS)
    for n in list(other.inputs):
        other = other.with_modality(n, present=torch.zeros(B, dtype=torch.bool))
    with torch.no_grad():
        torch.testing.assert_close(model(other).logits, out.logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_garbage_in_padded_steps_does_not_change_logits(backbone):
    model = build(backbone).eval()
    perturb_calibrator(model)
    batch = make_batch(lengths=LENGTHS)
    g = torch.Generator().manual_seed(9)
    batch2 = batch
    for n, mask in batch.padding_mask.items():
        x = batch.inputs[n].clone()
        x[~mask] = torch.randn(x[~mask].shape, generator=g) * 1e4
        batch2 = batch2.with_modality(n, values=x)
    with torch.no_grad():
        o1, o2 = model(batch), model(batch2)
    torch.testing.assert_close(o2.logits, o1.logits, rtol=1e-5, atol=1e-5)
    for n in model.modalities:
        torch.testing.assert_close(o2.report.summaries_before[n], o1.report.summaries_before[n])


def _append_padding(batch: Batch, extra: Dict[str, int], seed: int = 4) -> Batch:
    g = torch.Generator().manual_seed(seed)
    out = batch
    for n, k in extra.items():
        x = batch.inputs[n]
        tail = torch.randn((x.shape[0], k, *x.shape[2:]), generator=g) * 50 + 3
        mask = torch.cat([batch.padding_mask[n], torch.zeros(x.shape[0], k, dtype=torch.bool)], dim=1)
        out = out.with_modality(n, values=torch.cat([x, tail], dim=1), padding_mask=mask)
    return out


def test_calibrator_summaries_unchanged_by_appended_padded_tokens():
    """At the calibrator input (encoder outputs in the sequence backbone's token layout), appending
    padded tokens with garbage changes no summary, cue or gate."""
    model = build("sequence").eval()
    perturb_calibrator(model)
    with torch.no_grad():
        feats, masks, present = model.encode(make_batch(lengths=LENGTHS))
        masks = {k: v for k, v in masks.items() if v is not None}
        assert set(masks) == {"inertial", "skeleton", "depth"}
        for n, m in masks.items():
            assert m.shape == feats[n].shape[:2] and m.dtype == torch.bool
        _, r1 = model.calibrator(feats, masks, present)
        g = torch.Generator().manual_seed(2)
        feats2, masks2 = dict(feats), {}
        for n, m in masks.items():
            tail = torch.randn(B, 3, feats[n].shape[-1], generator=g) * 1e3
            feats2[n] = torch.cat([feats[n], tail], dim=1)
            masks2[n] = torch.cat([m, torch.zeros(B, 3, dtype=torch.bool)], dim=1)
        _, r2 = model.calibrator(feats2, masks2, present)
    for i, n in enumerate(model.modalities):
        torch.testing.assert_close(r2.summaries_before[n], r1.summaries_before[n], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(r2.summaries_before[n], masked_mean(feats[n], "token", masks.get(n)))
        torch.testing.assert_close(r2.beta[n], r1.beta[n], rtol=1e-5, atol=1e-5)
    for key in ("alpha", "support", "conflict", "pairwise_support"):
        torch.testing.assert_close(getattr(r2, key), getattr(r1, key), rtol=1e-5, atol=1e-5)


def test_sequence_logits_unchanged_when_padded_steps_are_appended():
    model = build("sequence").eval()
    batch = make_batch(lengths=LENGTHS)
    longer = _append_padding(batch, {"inertial": 8, "skeleton": 4, "depth": 3})
    with torch.no_grad():
        o1, o2 = model(batch), model(longer)
    for n in ("inertial", "skeleton", "depth"):
        torch.testing.assert_close(o2.report.summaries_before[n], o1.report.summaries_before[n],
                                   rtol=1e-5, atol=1e-5, msg=n)
    torch.testing.assert_close(o2.logits, o1.logits, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def test_unknown_modality_in_config_raises_valueerror_naming_it():
    with pytest.raises(ValueError, match="sonar"):
        MultimodalModel(toy_schema(), small_config("late", modalities=["inertial", "sonar"]))


def test_subset_of_modalities():
    model = MultimodalModel(toy_schema(), small_config("conv", modalities=["skeleton", "meta"])).eval()
    assert model.modalities == ["skeleton", "meta"]
    assert model.calibrator.names == ["skeleton", "meta"]
    with torch.no_grad():
        out = model(make_batch().restrict(["skeleton", "meta"]))
    assert out.logits.shape == (B, 3) and out.fused.shape == (B, 32)


def test_unknown_backbone_raises_valueerror_listing_choices():
    with pytest.raises(ValueError) as exc:
        ModelConfig(backbone="rnn")
    msg = str(exc.value)
    assert "rnn" in msg
    for choice in ("sequence", "conv", "late"):
        assert choice in msg


def test_batch_missing_a_modality_raises_keyerror():
    model = build("sequence").eval()
    batch = make_batch()
    batch = Batch({k: v for k, v in batch.inputs.items() if k != "depth"})
    with pytest.raises(KeyError, match="depth"):
        model(batch)


# ---------------------------------------------------------------------------------------------
# size and learning
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", BACKBONES)
def test_calibrator_is_small_relative_to_the_rest(backbone):
    schema = DatasetSchema(
        "utd_like",
        (
            ModalitySchema("inertial", "time_series", (6,)),
            ModalitySchema("skeleton", "time_series", (20, 3)),
            ModalitySchema("depth", "frame_sequence", (30, 40)),
        ),
        class_names=tuple(f"a{i}" for i in range(27)),
    )
    model = MultimodalModel(schema, ModelConfig(backbone=backbone))
    counts = model.parameter_counts()
    assert set(counts) == {"encoders", "calibrator", "fusion", "head"}
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters())
    rest = counts["encoders"] + counts["fusion"] + counts["head"]
    assert counts["calibrator"] > 0
    assert counts["calibrator"] <= 0.05 * rest, counts


@pytest.mark.parametrize("backbone", BACKBONES)
def test_short_training_run_drives_loss_down(backbone):
    torch.manual_seed(0)
    model = build(backbone, seed=1)
    n = 24
    batch = make_batch(seed=2, b=n)
    labels = torch.arange(n) % len(CLASSES)
    # The label is encoded in the mean of the inertial stream.
    inertial = batch.inputs["inertial"] * 0.5 + (labels.float() - 1.0)[:, None, None] * 1.5
    batch = batch.with_modality("inertial", values=inertial)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    model.train()
    for _ in range(30):
        out = model(batch)
        loss = F.cross_entropy(out.logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.5 * first, losses
    model.eval()
    with torch.no_grad():
        acc = (model(batch).logits.argmax(dim=1) == labels).float().mean().item()
    assert acc >= 0.9


# ---------------------------------------------------------------------------------------------
# decision-level (score) backbone
# ---------------------------------------------------------------------------------------------


def _expert_log_probs(model: MultimodalModel, batch: Batch) -> Dict[str, torch.Tensor]:
    """Each expert's log-probabilities, computed by hand from the calibrated features."""
    feats, masks, present = model.encode(batch)
    calibrated, _ = model.calibrator(feats, {k: v for k, v in masks.items() if v is not None}, present)
    out = {}
    for n in model.modalities:
        pooled = masked_mean(calibrated[n], "token", masks.get(n))
        out[n] = F.log_softmax(model.fusion.experts[n](pooled), dim=1)
    return out


def test_score_backbone_adds_the_present_experts_log_probabilities():
    model = build("score").eval()
    perturb_calibrator(model)  # the gates are active: the experts see calibrated features
    batch = make_batch(lengths=LENGTHS)
    batch = batch.with_modality("depth", present=torch.tensor([True, False, True, False]))
    with torch.no_grad():
        logits = model(batch).logits
        experts = _expert_log_probs(model, batch)
    present = {n: batch.presence(n).float()[:, None] for n in model.modalities}
    expected = sum(experts[n] * present[n] for n in model.modalities)
    assert torch.allclose(logits, expected, atol=1e-5)
    # one modality alone: the prediction is that expert's
    alone = batch
    for n in ("inertial", "skeleton", "depth"):
        alone = alone.with_modality(n, present=torch.zeros(B, dtype=torch.bool))
    with torch.no_grad():
        only_meta = model(alone).logits
    assert torch.allclose(only_meta, _expert_log_probs(model, alone)["meta"], atol=1e-5)


def test_score_backbone_trains_its_experts_as_the_side_heads():
    model = build("score", unimodal_heads=True).train()
    assert len(model.unimodal_heads) == 0  # no extra heads: the experts take the per-expert loss
    out = model(make_batch())
    assert set(out.unimodal_logits) == set(model.modalities)
    loss = sum(F.cross_entropy(v, torch.arange(B) % len(CLASSES)) for v in out.unimodal_logits.values())
    loss.backward()
    assert all(model.fusion.experts[n].net[-1].weight.grad is not None for n in model.modalities)
    assert model.eval()(make_batch()).unimodal_logits == {}  # the prediction never needs them
    counts = model.parameter_counts()  # the experts are counted as the head, nothing as fusion
    assert counts["fusion"] == 0 and counts["head"] == sum(p.numel() for p in model.fusion.experts.parameters())


def test_score_backbone_regression_averages_the_present_experts():
    model = build("score", task="regression").eval()
    batch = make_batch().with_modality("meta", present=torch.tensor([True, True, False, False]))
    with torch.no_grad():
        feats, masks, present = model.encode(batch)
        calibrated, _ = model.calibrator(feats, {k: v for k, v in masks.items() if v is not None}, present)
        experts = model.fusion.expert_logits(calibrated, masks)
        out = model(batch).logits
    count = torch.tensor([4.0, 4.0, 3.0, 3.0])[:, None]
    expected = sum(experts[n] * batch.presence(n).float()[:, None] for n in model.modalities) / count
    assert torch.allclose(out, expected, atol=1e-5)
