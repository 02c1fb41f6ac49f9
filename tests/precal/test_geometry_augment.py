"""Geometry augmentation: a real rotation and shear in raw units, on real UTD-MHAD batches."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from precal.checkpoint import load_checkpoint
from precal.cli import main as cli_main
from precal.data.storage import load_dataset
from precal.training.augment import GeometryAugment, random_rotations, random_shears
from precal.training.loop import TrainConfig, prepare_data, train

UTD = Path(__file__).resolve().parents[2] / "sample_data" / "utd_mhad"


@pytest.fixture(scope="module")
def utd():
    data = load_dataset(UTD)
    cfg = TrainConfig(data=str(UTD), lengths={"inertial": 48, "skeleton": 24, "depth": 8},
                      centre={"skeleton": "hip_center"})
    pre, sets = prepare_data(data, cfg)
    return data, pre, sets["train"].full_batch().select(torch.arange(12))


def _raw(pre, name: str, x: torch.Tensor) -> torch.Tensor:
    mean = torch.as_tensor(pre.mean[name]).reshape(-1, 3)
    std = torch.as_tensor(pre.std[name]).reshape(-1, 3)
    return x.reshape(x.shape[0], x.shape[1], -1, 3) * std + mean


def test_random_rotations_are_proper_rotations_within_the_angle() -> None:
    rot = random_rotations(500, 20.0, torch.Generator().manual_seed(0))
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(500, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(500), atol=1e-5)
    angles = torch.rad2deg(torch.arccos(((rot.diagonal(dim1=1, dim2=2).sum(1) - 1) / 2).clamp(-1, 1)))
    assert angles.max() <= 20.0 + 1e-3 and angles.max() > 15.0  # uses the range, never exceeds it


def test_rotation_preserves_raw_lengths_and_angles_between_joints(utd) -> None:
    data, pre, batch = utd
    out = GeometryAugment({"skeleton": 30, "inertial": 30}, data.schema, pre.mean, pre.std)(
        batch, torch.Generator().manual_seed(1))
    for name in ("skeleton", "inertial"):
        before, after = _raw(pre, name, batch.inputs[name]), _raw(pre, name, out.inputs[name])
        assert not torch.allclose(before, after, atol=1e-3)  # something did turn
        gram_before = before @ before.transpose(-1, -2)  # all dot products between the step's vectors
        gram_after = after @ after.transpose(-1, -2)
        assert torch.allclose(gram_before, gram_after, rtol=1e-4, atol=1e-3 * float(gram_before.abs().max()))
    assert torch.equal(out.inputs["depth"], batch.inputs["depth"])  # not asked for: untouched


def _per_sample_maps(pre, before: torch.Tensor, after: torch.Tensor, name: str, count: int) -> list[torch.Tensor]:
    """The 3x3 map M with after = M before, fitted per sample over all its steps and vectors."""
    raw_before, raw_after = _raw(pre, name, before), _raw(pre, name, after)
    maps = []
    for i in range(count):
        a, b = raw_before[i].reshape(-1, 3).double(), raw_after[i].reshape(-1, 3).double()
        solution = torch.linalg.lstsq(a, b).solution  # b = a @ M^T
        assert torch.allclose(a @ solution, b, atol=1e-3)  # one map explains every step and joint
        maps.append(solution.T)
    return maps


def test_random_shears_have_unit_diagonal_and_bounded_off_diagonal() -> None:
    shear = random_shears(500, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(shear.diagonal(dim1=1, dim2=2), torch.ones(500, 3))
    off = shear[:, ~torch.eye(3, dtype=torch.bool)]
    assert off.abs().max() <= 0.3 and off.abs().max() > 0.25  # uses the range, never exceeds it


def test_one_shear_per_sample_shared_by_all_steps(utd) -> None:
    data, pre, batch = utd
    out = GeometryAugment({}, data.schema, pre.mean, pre.std, shear={"skeleton": 0.4})(
        batch, torch.Generator().manual_seed(6))
    for m in _per_sample_maps(pre, batch.inputs["skeleton"], out.inputs["skeleton"], "skeleton", 4):
        assert torch.allclose(m.diagonal(), torch.ones(3, dtype=torch.float64), atol=1e-3)
        off = m[~torch.eye(3, dtype=torch.bool)]
        assert off.abs().max() <= 0.4 + 1e-3 and off.abs().max() > 1e-2
    for name in ("inertial", "depth"):  # not asked for: untouched
        assert torch.equal(out.inputs[name], batch.inputs[name])


def test_shear_follows_the_same_rotation_a_rotation_only_run_draws(utd) -> None:
    """Rotations are drawn first, so adding a shear keeps the rotation stream of earlier runs."""
    data, pre, batch = utd
    turned = GeometryAugment({"skeleton": 30}, data.schema, pre.mean, pre.std)(batch, torch.Generator().manual_seed(7))
    both = GeometryAugment({"skeleton": 30}, data.schema, pre.mean, pre.std, shear={"skeleton": 0.3})(
        batch, torch.Generator().manual_seed(7))
    rotations = _per_sample_maps(pre, batch.inputs["skeleton"], turned.inputs["skeleton"], "skeleton", 3)
    composites = _per_sample_maps(pre, batch.inputs["skeleton"], both.inputs["skeleton"], "skeleton", 3)
    for rot, composite in zip(rotations, composites):
        shear = composite @ rot.T  # M = S R, R orthogonal
        assert torch.allclose(shear.diagonal(), torch.ones(3, dtype=torch.float64), atol=1e-3)
        assert not torch.allclose(shear, torch.eye(3, dtype=torch.float64), atol=1e-2)


def test_one_rotation_per_sample_shared_by_all_steps(utd) -> None:
    data, pre, batch = utd
    out = GeometryAugment({"skeleton": 45}, data.schema, pre.mean, pre.std)(batch, torch.Generator().manual_seed(2))
    before, after = _raw(pre, "skeleton", batch.inputs["skeleton"]), _raw(pre, "skeleton", out.inputs["skeleton"])
    for i in range(3):
        a, b = before[i].reshape(-1, 3).double(), after[i].reshape(-1, 3).double()
        solution = torch.linalg.lstsq(a, b).solution  # b = a @ R^T for one R across every step and joint
        assert torch.allclose(a @ solution, b, atol=1e-3)
        assert torch.allclose(solution.T @ solution, torch.eye(3, dtype=torch.float64), atol=1e-3)


def test_absent_modality_and_padded_steps_stay_zero(utd) -> None:
    data, pre, batch = utd
    absent = torch.zeros(batch.size, dtype=torch.bool)
    absent[:4] = True
    x = batch.inputs["inertial"].clone()
    x[:4] = 0
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    mask[4:, -10:] = False
    x[4:, -10:] = 0
    holey = batch.with_modality("inertial", values=x, present=~absent, padding_mask=mask)
    out = GeometryAugment({"inertial": 30}, data.schema, pre.mean, pre.std)(holey, torch.Generator().manual_seed(3))
    assert torch.all(out.inputs["inertial"][:4] == 0)
    assert torch.all(out.inputs["inertial"][4:, -10:] == 0)
    assert torch.all(out.inputs["inertial"][4:, :-10].abs().sum(-1) > 0)


def test_same_generator_same_rotation(utd) -> None:
    data, pre, batch = utd
    aug = GeometryAugment({"inertial": 15, "skeleton": 15}, data.schema, pre.mean, pre.std)
    a, b = aug(batch, torch.Generator().manual_seed(4)), aug(batch, torch.Generator().manual_seed(4))
    assert all(torch.equal(a.inputs[n], b.inputs[n]) for n in batch.modalities)


@pytest.mark.parametrize("degrees, message", [
    ({"lidar": 15}, "lidar"),
    ({"depth": 15}, "3-vectors"),
    ({"inertial": 0}, "degrees"),
    ({"inertial": math.inf}, "degrees"),
])
def test_refuses_what_cannot_be_rotated(utd, degrees, message) -> None:
    data, pre, _ = utd
    with pytest.raises(ValueError, match=message):
        GeometryAugment(degrees, data.schema, pre.mean, pre.std)


@pytest.mark.parametrize("shear, message", [
    ({"lidar": 0.2}, "lidar"),
    ({"depth": 0.2}, "3-vectors"),
    ({"skeleton": 0}, r"shear of 'skeleton' must be in \(0, 1\]"),
    ({"skeleton": 1.5}, r"shear of 'skeleton' must be in \(0, 1\]"),
])
def test_refuses_what_cannot_be_sheared(utd, shear, message) -> None:
    data, pre, _ = utd
    with pytest.raises(ValueError, match=message):
        GeometryAugment({}, data.schema, pre.mean, pre.std, shear=shear)


def test_cli_option_errors_name_the_format(tmp_path: Path, capsys) -> None:
    assert cli_main(["train", "--data", str(UTD), "--rotate-augment", "inertial", "--out", str(tmp_path / "x")]) == 2
    assert "NAME=" in capsys.readouterr().err
    assert cli_main(["train", "--data", str(UTD), "--rotate-augment", "inertial=lots",
                     "--out", str(tmp_path / "x")]) == 2
    assert "NAME=NUMBER" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_training_with_rotation_is_seeded_and_recorded(tmp_path: Path) -> None:
    cfg = TrainConfig(data=str(UTD), epochs=1, batch_size=64, seed=5, modalities=["inertial", "skeleton"],
                      lengths={"inertial": 32, "skeleton": 16}, rotate_augment={"inertial": 20, "skeleton": 20})
    first = train(cfg, out=tmp_path / "a", progress=False)
    second = train(cfg, progress=False)
    plain = train(TrainConfig(**{**cfg.__dict__, "rotate_augment": {}}), progress=False)
    state = first.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in second.model.state_dict().items())
    assert any(not torch.equal(state[k], v) for k, v in plain.model.state_dict().items())
    assert load_checkpoint(tmp_path / "a").training["rotate_augment"] == {"inertial": 20, "skeleton": 20}
    assert np.isfinite(first.history[-1]["train_loss"])


def test_cli_shear_is_recorded_and_changes_training(tmp_path: Path) -> None:
    common = ["train", "--data", str(UTD), "--epochs", "1", "--batch-size", "64", "--modalities", "skeleton",
              "--length", "skeleton=16", "--quiet", "--threads", "1"]
    assert cli_main([*common, "--shear-augment", "skeleton=0.3", "--out", str(tmp_path / "sheared")]) == 0
    assert cli_main([*common, "--out", str(tmp_path / "plain")]) == 0
    sheared, plain = load_checkpoint(tmp_path / "sheared"), load_checkpoint(tmp_path / "plain")
    assert sheared.training["shear_augment"] == {"skeleton": 0.3} and plain.training["shear_augment"] == {}
    assert any(not torch.equal(v, plain.model.state_dict()[k]) for k, v in sheared.model.state_dict().items())
    assert cli_main([*common, "--shear-augment", "depth=0.3", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
