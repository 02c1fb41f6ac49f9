"""The per-encoder classification loss (``precal train --unimodal-loss``): side heads that exist
only for training, never change a prediction, and learn only from a modality's own rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from precal.checkpoint import load_checkpoint
from precal.cli import main as cli_main
from precal.data.batch import Batch
from precal.data.schema import DatasetSchema, ModalitySchema
from precal.models import ModelConfig, MultimodalModel
from precal.training.loop import unimodal_loss

UTD = Path(__file__).resolve().parents[2] / "sample_data" / "utd_mhad"
SCHEMA = DatasetSchema("toy", (ModalitySchema("acc", "time_series", (3,)),
                               ModalitySchema("gyro", "time_series", (3,))), class_names=("a", "b", "c"))


def _model(backbone: str = "sequence", calibration: bool = True) -> MultimodalModel:
    torch.manual_seed(0)
    return MultimodalModel(SCHEMA, ModelConfig(backbone=backbone, calibration=calibration, dim=16, shared_dim=8,
                                               fusion_layers=1, heads=2, head_hidden=16, unimodal_heads=True))


def _batch(b: int = 6) -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch({"acc": torch.randn(b, 10, 3, generator=g), "gyro": torch.randn(b, 10, 3, generator=g)},
                 labels=torch.arange(b) % 3)


@pytest.mark.parametrize("backbone", ["sequence", "conv", "late"])
def test_side_heads_answer_in_training_and_never_touch_the_prediction(backbone):
    model = _model(backbone)
    batch = _batch()
    out = model.train()(batch)
    assert set(out.unimodal_logits) == {"acc", "gyro"}
    assert all(v.shape == (6, 3) for v in out.unimodal_logits.values())
    model.eval()
    with torch.no_grad():
        before = model(batch)
        assert before.unimodal_logits == {}
        for head in model.unimodal_heads.values():
            head.weight.add_(5.0)
        torch.testing.assert_close(model(batch).logits, before.logits)


def test_without_the_option_there_are_no_side_heads():
    model = MultimodalModel(SCHEMA, ModelConfig(dim=16, shared_dim=8, fusion_layers=1, heads=2, head_hidden=16))
    assert len(model.unimodal_heads) == 0 and model.train()(_batch()).unimodal_logits == {}


def test_loss_uses_only_present_own_rows():
    model = _model().train()
    batch = _batch()
    present = torch.tensor([True, True, False, True, True, True])
    batch = batch.with_modality("gyro", values=batch.inputs["gyro"], present=present)
    out = model(batch)
    swapped = torch.zeros(6, 2, dtype=torch.bool)
    swapped[4, 0] = True  # acc of row 4 came from another sample
    loss = unimodal_loss(out, model.modalities, batch.labels, swapped, "classification", 0.0)
    acc_rows, gyro_rows = [0, 1, 2, 3, 5], [0, 1, 3, 4, 5]
    expected = (F.cross_entropy(out.unimodal_logits["acc"][acc_rows], batch.labels[acc_rows])
                + F.cross_entropy(out.unimodal_logits["gyro"][gyro_rows], batch.labels[gyro_rows])) / 2
    torch.testing.assert_close(loss, expected)
    # gradients reach the encoders through the summaries: the loss trains the encoders themselves
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoders["acc"].parameters()
               if p.requires_grad and p.dim() > 1)


def test_cli_trains_with_the_loss_for_both_calibration_settings_and_round_trips(tmp_path: Path):
    for cal in ("on", "off"):
        out = tmp_path / cal
        assert cli_main(["train", "--data", str(UTD), "--modalities", "inertial", "skeleton", "--length", "inertial=16",
                         "--length", "skeleton=8", "--epochs", "1", "--dim", "8", "--shared-dim", "4",
                         "--calibration", cal, "--unimodal-loss", "0.5", "--swap-augment", "0.5",
                         "--out", str(out), "--quiet"]) == 0
        stored = json.loads((out / "config.json").read_text())
        assert stored["training"]["unimodal_loss"] == 0.5 and stored["model"]["unimodal_heads"] is True
        ckpt = load_checkpoint(out)
        assert set(ckpt.model.unimodal_heads) == {"inertial", "skeleton"}
