"""Derived input channels (precal/models/derived.py): velocities and column-group norms computed
inside the model, standardised on the training split and carried in the checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from precal.checkpoint import load_checkpoint, save_checkpoint
from precal.cli import build_parser
from precal.data.dataset import Preprocessor
from precal.models.derived import SOFT_LIMIT, DerivedInputs, derived_step_shape, parse_column_groups, soft_clip
from precal.models.model import MultimodalModel
from tests.precal.test_models import B, LENGTHS, STEPS, lengths_mask, make_batch, small_config, toy_schema

INERTIAL_MEAN = torch.tensor([0.1, -0.9, 0.2, 3.0, -2.0, 1.0])
INERTIAL_STD = torch.tensor([0.5, 0.4, 0.6, 80.0, 60.0, 70.0])


def test_column_groups_parse_inclusive_ranges():
    assert parse_column_groups("0-2,3-5") == [(0, 3), (3, 6)]
    assert parse_column_groups(" 1-4 ") == [(1, 5)]


@pytest.mark.parametrize("text", ["", "0-0", "2-1", "0-2;3-5", "a-b", "0-2,", "3"])
def test_malformed_column_groups_are_refused_with_the_expected_form(text):
    with pytest.raises(ValueError, match=r"e\.g\. 0-2,3-5"):
        parse_column_groups(text)


def test_step_shapes_keep_each_point_together():
    assert derived_step_shape((20, 3), velocity=True, norms=()) == (20, 6)
    assert derived_step_shape((6,), velocity=False, norms=[(0, 3), (3, 6)]) == (8,)
    assert derived_step_shape((6,), velocity=True, norms=[(0, 3)]) == (13,)


def unclip(y: torch.Tensor) -> torch.Tensor:
    """The standardised value behind a soft-clipped one."""
    return SOFT_LIMIT * torch.atanh(y / SOFT_LIMIT)


def test_soft_clip_is_nearly_the_identity_near_zero_and_bounded():
    x = torch.linspace(-1, 1, 21)
    torch.testing.assert_close(soft_clip(x), x, atol=0.03, rtol=0)
    assert soft_clip(torch.tensor([1e6, -1e6])).abs().max() <= SOFT_LIMIT
    torch.testing.assert_close(unclip(soft_clip(x * 3)), x * 3, atol=1e-4, rtol=0)


def _fitted_norms(x: torch.Tensor, mask=None) -> DerivedInputs:
    derived = DerivedInputs((6,), norms=[(0, 3), (3, 6)])
    present = torch.ones(x.shape[0], dtype=torch.bool)
    derived.fit(x, mask, present, INERTIAL_MEAN, INERTIAL_STD)
    return derived


def test_norms_are_physical_lengths_standardised_on_the_fitted_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 30, 6, generator=g)
    derived = _fitted_norms(x)
    out = derived(x, None)
    assert out.shape == (8, 30, 8)
    assert torch.equal(out[..., :6], x)  # the input itself passes unchanged
    physical = x * INERTIAL_STD + INERTIAL_MEAN
    expected = torch.stack([physical[..., :3].norm(dim=-1), physical[..., 3:].norm(dim=-1)], dim=-1)
    standardised = unclip(out[..., 6:])
    torch.testing.assert_close(standardised * derived.derived_std + derived.derived_mean, expected,
                               atol=1e-4, rtol=1e-4)
    # standardised on the data it was fitted on
    torch.testing.assert_close(standardised.mean(dim=(0, 1)), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(standardised.std(dim=(0, 1)), torch.ones(2), atol=1e-3, rtol=0)


def test_norms_do_not_turn_with_the_sensor():
    """Rotating the accelerometer and gyroscope axes (a strap sitting differently) leaves the norms
    unchanged: the reason they exist."""
    g = torch.Generator().manual_seed(1)
    physical = torch.randn(4, 20, 6, generator=g) * 3
    angle = torch.tensor(0.7)
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    turned = torch.cat([physical[..., :3] @ rot.T, physical[..., 3:] @ rot.T], dim=-1)
    normalise = lambda p: (p - INERTIAL_MEAN) / INERTIAL_STD  # noqa: E731
    derived = _fitted_norms(normalise(physical))
    a, b = derived(normalise(physical), None), derived(normalise(turned), None)
    torch.testing.assert_close(a[..., 6:], b[..., 6:], atol=1e-4, rtol=0)
    assert not torch.allclose(a[..., :6], b[..., :6])


def test_velocity_is_the_change_since_the_previous_real_step():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 10, 20, 3, generator=g)
    mask = lengths_mask([10, 6, 1], 10)
    derived = DerivedInputs((20, 3), velocity=True)
    derived.fit(x, mask, torch.ones(3, dtype=torch.bool), torch.zeros(60), torch.ones(60))
    out = derived(x, mask)
    assert out.shape == (3, 10, 20, 6)
    velocity = unclip(out[..., 3:]) * derived.derived_std.reshape(20, 3) + derived.derived_mean.reshape(20, 3)
    torch.testing.assert_close(velocity[0, 1:], x[0, 1:] - x[0, :-1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(velocity[1, 1:6], x[1, 1:6] - x[1, :5], atol=1e-4, rtol=1e-4)
    # no velocity at a first step (the training average, 0), and nothing at all on padded steps
    assert torch.equal(out[:, 0, :, 3:], torch.zeros(3, 20, 3))
    assert torch.equal(out[1, 6:, :, 3:], torch.zeros(4, 20, 3))
    assert torch.equal(out[2, 1:, :, 3:], torch.zeros(9, 20, 3))


def test_padding_never_changes_a_sample_s_derived_channels():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 6, generator=g)
    derived = DerivedInputs((6,), velocity=True, norms=[(0, 3)])
    derived.fit(x, None, torch.ones(2, dtype=torch.bool), INERTIAL_MEAN, INERTIAL_STD)
    padded = torch.cat([x, torch.randn(2, 5, 6, generator=g) * 50], dim=1)  # garbage in the padding
    mask = lengths_mask([8, 8], 13)
    torch.testing.assert_close(derived(padded, mask)[:, :8], derived(x, None))


def test_fit_ignores_absent_samples_and_padding():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(6, 12, 6, generator=g)
    mask = lengths_mask([12, 12, 12, 12, 4, 4], 12)
    present = torch.tensor([True, True, True, True, True, False])
    derived = DerivedInputs((6,), norms=[(0, 3)])
    derived.fit(x, mask, present, INERTIAL_MEAN, INERTIAL_STD)
    reference = DerivedInputs((6,), norms=[(0, 3)])
    reference.fit(torch.cat([x[:4].reshape(-1, 6), x[4, :4]])[None], None, torch.ones(1, dtype=torch.bool),
                  INERTIAL_MEAN, INERTIAL_STD)
    torch.testing.assert_close(derived.derived_mean, reference.derived_mean)
    torch.testing.assert_close(derived.derived_std, reference.derived_std)


# ------------------------------------------------------------------------------------------- model


def derived_model(**kw) -> MultimodalModel:
    torch.manual_seed(0)
    cfg = small_config("sequence", velocity=["skeleton"], norms={"inertial": "0-2,3-5"}, **kw)
    return MultimodalModel(toy_schema(), cfg)


def test_model_encoders_see_the_derived_channels():
    model = derived_model()
    batch = make_batch(lengths=LENGTHS)
    model.fit_derived_inputs(batch, {"inertial": INERTIAL_MEAN, "skeleton": torch.zeros(60)},
                             {"inertial": INERTIAL_STD, "skeleton": torch.ones(60)})
    assert model.encoders["skeleton"].derived.out_step_shape == (20, 6)
    assert model.encoders["inertial"].derived.out_step_shape == (8,)
    out = model.eval()(batch)
    assert out.logits.shape == (B, 3) and torch.isfinite(out.logits).all()
    # a change of skeleton motion with the same mean pose reaches the prediction through the velocity
    with torch.no_grad():
        shuffled = batch.with_modality("skeleton", values=batch.inputs["skeleton"].flip(1))
        assert not torch.allclose(model(shuffled).logits, out.logits)


@pytest.mark.parametrize("kw, message", [
    ({"velocity": ["depth"]}, "'depth' is a frame_sequence"),
    ({"norms": {"skeleton": "0-2"}}, r"steps of shape \(F,\); 'skeleton'"),
    ({"norms": {"inertial": "4-6"}}, "out of range for 'inertial', which has 6 columns"),
    ({"velocity": ["lidar"]}, "lidar"),
])
def test_impossible_derived_inputs_are_refused_naming_the_modality(kw, message):
    with pytest.raises(ValueError, match=message):
        MultimodalModel(toy_schema(), small_config("sequence", **kw))


def test_checkpoint_round_trip_keeps_the_fitted_statistics(tmp_path: Path):
    model = derived_model()
    batch = make_batch(lengths=LENGTHS)
    model.fit_derived_inputs(batch, {"inertial": INERTIAL_MEAN, "skeleton": torch.zeros(60)},
                             {"inertial": INERTIAL_STD, "skeleton": torch.ones(60)})
    model.eval()
    pre = Preprocessor(lengths={"inertial": STEPS["inertial"]})
    save_checkpoint(tmp_path / "ckpt", model, pre)
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.model.config.velocity == ["skeleton"] and loaded.model.config.norms == {"inertial": "0-2,3-5"}
    torch.testing.assert_close(loaded.model.encoders["inertial"].derived.input_std, INERTIAL_STD)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(batch).logits, model(batch).logits)
    # the overview's modality table says what each encoder sees beyond its input
    from precal.dashboard.backend.overview import modality_table
    table = modality_table(loaded).set_index("modality")["encoder also sees"]
    assert table["skeleton"] == "change per step"
    assert table["inertial"] == "lengths of columns 0-2,3-5"
    assert table["depth"] == "—"


def test_cli_parses_the_derived_input_options():
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--velocity", "skeleton",
                                      "--norms", "inertial=0-2,3-5"])
    assert args.velocity == ["skeleton"] and args.norms == ["inertial=0-2,3-5"]


def test_cli_refuses_impossible_derived_inputs_in_one_line_and_writes_nothing(tmp_path: Path, capsys):
    from precal.cli import main as cli_main
    utd = Path(__file__).resolve().parents[2] / "sample_data" / "utd_mhad"
    cases = [(["--velocity", "lidar"], "lidar"),
             (["--velocity", "depth"], "'depth' is a frame_sequence"),
             (["--norms", "inertial=0-2;3-5"], "e.g. 0-2,3-5"),
             (["--norms", "inertial"], "NAME=VALUE")]
    for extra, message in cases:
        out = tmp_path / "never"
        assert cli_main(["train", "--data", str(utd), "--out", str(out), "--epochs", "1", "--quiet",
                         "--modalities", "inertial", "depth", *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("precal train: error:") and err.count("\n") == 1 and message in err
        assert not out.exists()


def test_a_shared_recipe_applies_derived_inputs_only_to_the_model_s_modalities():
    from precal.training.loop import TrainConfig
    recipe = dict(velocity=["skeleton"], norms={"inertial": "0-2,3-5"})
    assert TrainConfig(data="d", modalities=["depth"], **recipe).model_config().velocity == []
    assert TrainConfig(data="d", modalities=["depth"], **recipe).model_config().norms == {}
    both = TrainConfig(data="d", modalities=["skeleton", "inertial"], **recipe).model_config()
    assert both.velocity == ["skeleton"] and both.norms == {"inertial": "0-2,3-5"}
    everything = TrainConfig(data="d", **recipe).model_config()
    assert everything.velocity == ["skeleton"]
