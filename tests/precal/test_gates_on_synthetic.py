"""Trained on the synthetic benchmark, the gates damp the modalities that were really swapped in, on
every backbone, with `precal train`'s defaults; the self-gate control, which cannot compare
modalities, does not.

These tests train real models (small: a few hundred samples, a few epochs) and score them against
the ground truth that the generator recorded; nothing here is a stub.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from precal.data.dataset import MultimodalDataset
from precal.data.synthetic import SyntheticSpec, generate
from precal.gate_truth import truth_table
from precal.inference import predict
from precal.training import TrainConfig, train

SPEC = SyntheticSpec(kinds=("time_series", "vector", "token_sequence"), samples=600, classes=4, seed=11,
                     corrupt_fraction=0.4)


@pytest.fixture(scope="module")
def data():
    return generate(SPEC)


def gate_table(data, backbone: str, gate: str = "monotone", epochs: int = 12):
    torch.set_num_threads(1)
    cfg = TrainConfig(data="<synthetic>", backbone=backbone, gate=gate, epochs=epochs, dim=32, seed=0)
    result = train(cfg, progress=False, data=data)
    test = MultimodalDataset(data, data.split("test"), result.preprocessor, result.model.modalities)
    table = truth_table(predict(result.model, test.full_batch()), data)
    return table, result


def swap_rows(table):
    return table[table["corruption"] == "swap"]


def test_defaults_train_with_swaps() -> None:
    assert TrainConfig(data="x").swap_augment > 0 and TrainConfig(data="x").gate == "monotone"


@pytest.mark.parametrize("backbone", ["late"])
def test_gates_damp_swapped_modalities(data, backbone) -> None:
    table, result = gate_table(data, backbone)
    swaps = swap_rows(table)
    assert len(swaps) == 3  # every modality has swapped test samples
    assert (swaps["auroc_alpha"] > 0.8).all(), swaps
    assert (swaps["alpha_corrupted"] < swaps["alpha_clean"]).all()
    # The direction holds in the learned weights too: support and peers >= 0, conflict <= 0.
    weights = result.model.calibrator.alpha_weights().detach()
    assert (weights[:, 0] >= 0).all() and (weights[:, 1] <= 0).all() and (weights[:, 2:] >= 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["sequence", "conv", "score"])
def test_gates_damp_swapped_modalities_on_every_backbone(data, backbone) -> None:
    test_gates_damp_swapped_modalities(data, backbone)


@pytest.mark.slow
def test_the_self_gate_control_cannot_find_swaps(data) -> None:
    """A swapped-in modality is a real sample of another class: nothing in its own summary gives it
    away, so gates made from the own summary alone stay near chance where the calibrator's do not."""
    calibrated, _ = gate_table(data, "late")
    control, _ = gate_table(data, "late", gate="self")
    assert swap_rows(control)["auroc_alpha"].mean() < 0.7
    assert swap_rows(calibrated)["auroc_alpha"].mean() > swap_rows(control)["auroc_alpha"].mean() + 0.2


def noise_rows(table):
    return table[table["corruption"] == "noise"]


@pytest.mark.slow
def test_the_atypicality_cue_finds_noise_that_the_comparison_misses(data) -> None:
    """A modality drowned in noise can still agree with the others; its own summary then lies far from
    every training summary, and the atypicality cue damps it (swaps are still found)."""
    torch.set_num_threads(1)
    plain, _ = gate_table(data, "late")
    cfg = TrainConfig(data="<synthetic>", backbone="late", epochs=12, dim=32, seed=0, typicality=True)
    result = train(cfg, progress=False, data=data)
    test = MultimodalDataset(data, data.split("test"), result.preprocessor, result.model.modalities)
    typical = truth_table(predict(result.model, test.full_batch()), data)
    assert noise_rows(typical)["auroc_alpha"].mean() > noise_rows(plain)["auroc_alpha"].mean() + 0.05
    assert (swap_rows(typical)["auroc_alpha"] > 0.8).all(), swap_rows(typical)
    assert (result.model.calibrator.alpha_weights()[:, -1] <= 0).all()
