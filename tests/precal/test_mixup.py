"""Mixup (`--mixup W`): blends of two samples with the same weight in every modality, and a loss
that splits the target between their labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from precal.cli import main as cli_main
from precal.data.batch import Batch
from precal.describe import describe_checkpoint
from precal.training.augment import mixup
from precal.training.loop import TrainConfig, task_loss, train

ROOT = Path(__file__).resolve().parents[2]
UTD = ROOT / "sample_data" / "utd_mhad"


def mixed_batch(rows: int = 8) -> Batch:
    gen = torch.Generator().manual_seed(0)
    return Batch(inputs={"acc": torch.randn(rows, 10, 3, generator=gen),
                         "cam": torch.randn(rows, 4, 5, 6, generator=gen),
                         "meta": torch.randn(rows, 2, generator=gen)},
                 padding_mask={"acc": torch.ones(rows, 10, dtype=torch.bool),
                               "cam": torch.ones(rows, 4, dtype=torch.bool)},
                 labels=torch.arange(rows) % 3)


def test_every_modality_is_the_same_blend_of_the_sample_and_its_partner() -> None:
    batch = mixed_batch()
    out, partner, weight = mixup(batch, 0.4, torch.Generator().manual_seed(1))
    assert (partner != torch.arange(batch.size)).all()  # never blended with itself
    assert (weight >= 0).all() and (weight <= 0.4).all() and weight.max() > 0
    for name, x in batch.inputs.items():
        w = weight.reshape(-1, *([1] * (x.dim() - 1)))
        assert torch.allclose(out.inputs[name], (1 - w) * x + w * x[partner], atol=1e-6), name
    assert torch.equal(out.labels, batch.labels)  # labels stay; the loss takes the partner's share


def test_absent_modalities_and_padding_stay_out_of_the_blend() -> None:
    batch = mixed_batch(4)
    present = torch.tensor([True, False, True, True])
    cam = batch.inputs["cam"].clone()
    cam[1] = 0  # absent: zeroed, as the collate does
    acc = batch.inputs["acc"].clone()
    pad = torch.ones(4, 10, dtype=torch.bool)
    pad[2, 6:] = False
    acc[2, 6:] = 0
    batch = Batch(inputs={"acc": acc, "cam": cam}, padding_mask={"acc": pad, "cam": batch.padding_mask["cam"]},
                  present={"cam": present}, labels=batch.labels)
    for seed in range(20):
        out, partner, weight = mixup(batch, 0.5, torch.Generator().manual_seed(seed))
        # an absent modality stays absent and zero, and a partner's absent modality adds nothing
        assert torch.equal(out.present["cam"], present)
        assert torch.equal(out.inputs["cam"][1], torch.zeros_like(cam[1]))
        for row in range(4):
            if not present[partner[row]]:
                assert torch.equal(out.inputs["cam"][row], cam[row])
        # a sample's own padding stays zero; a short partner contributes nothing past its length
        assert torch.equal(out.inputs["acc"][2, 6:], torch.zeros(4, 3))
        for row in torch.nonzero(partner == 2).flatten().tolist():
            w = float(weight[row])
            assert torch.allclose(out.inputs["acc"][row, 6:], (1 - w) * acc[row, 6:], atol=1e-6)


def test_no_blend_when_the_two_share_no_modality() -> None:
    acc, cam = torch.randn(2, 5, 3), torch.randn(2, 3, 4, 4)
    batch = Batch(inputs={"acc": acc, "cam": cam},
                  present={"acc": torch.tensor([True, False]), "cam": torch.tensor([False, True])},
                  labels=torch.tensor([0, 1]))
    out, partner, weight = mixup(batch, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(weight, torch.zeros(2))  # nothing blended, so no share of the partner's label
    assert torch.equal(out.inputs["acc"], acc) and torch.equal(out.inputs["cam"], cam)


def test_off_is_a_no_op_and_seeded_draws_repeat() -> None:
    batch = mixed_batch()
    out, _, weight = mixup(batch, 0.0, torch.Generator().manual_seed(0))
    assert out is batch and not weight.any()
    a = mixup(batch, 0.3, torch.Generator().manual_seed(5))
    b = mixup(batch, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(a[0].inputs["cam"], b[0].inputs["cam"]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="at most 0.5"):
        mixup(batch, 0.6, torch.Generator())


def test_the_loss_splits_the_target_between_the_two_labels() -> None:
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    own, other = torch.tensor([0, 1, 2, 3, 0]), torch.tensor([1, 1, 3, 0, 2])
    plain = task_loss(logits, own, "classification", 0.1)
    assert torch.allclose(task_loss(logits, own, "classification", 0.1, (other, torch.zeros(5))), plain)
    half = task_loss(logits, own, "classification", 0.0, (other, torch.full((5,), 0.5)))
    expected = 0.5 * F.cross_entropy(logits, own) + 0.5 * F.cross_entropy(logits, other)
    assert torch.allclose(half, expected)
    # regression: the target is the blend of the two targets
    pred = torch.tensor([[1.0], [2.0]])
    loss = task_loss(pred, torch.tensor([0.0, 2.0]), "regression", 0.0,
                     (torch.tensor([4.0, 2.0]), torch.tensor([0.25, 0.5])))
    assert loss.item() == pytest.approx((abs(1.0 - 1.0) + abs(2.0 - 2.0)) / 2)


def test_cli_refuses_a_partner_weight_above_half_and_writes_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "ck"
    assert cli_main(["train", "--data", str(UTD), "--mixup", "0.7", "--epochs", "1",
                     "--out", str(out), "--quiet"]) == 2
    assert "--mixup must be between 0 and 0.5" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_training_with_mixup_learns_and_records_it(tmp_path: Path) -> None:
    cfg = TrainConfig(data=str(UTD), modalities=["inertial", "skeleton"], lengths={"inertial": 48, "skeleton": 24},
                      epochs=4, dim=16, seed=3, mixup=0.3, calibration=True)
    result = train(cfg, out=tmp_path / "ck", progress=False)
    assert result.metrics["val"]["accuracy"] > 3 / 27  # above chance after a few epochs of blends
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["training"]["mixup"] == 0.3
    assert "mixup 0.3" in describe_checkpoint(tmp_path / "ck")
