"""Crop-and-stretch in time (`--time-augment`), training on several splits and last-epoch selection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from precal.cli import main as cli_main
from precal.data.batch import Batch
from precal.data.dataset import Preprocessor
from precal.data.storage import load_dataset
from precal.describe import describe_checkpoint
from precal.training.augment import time_augment
from precal.training.loop import TrainConfig, check_selection, train

ROOT = Path(__file__).resolve().parents[2]
UTD = ROOT / "sample_data" / "utd_mhad"
KINDS = {"acc": "time_series", "cam": "frame_sequence", "meta": "vector"}


def ramp_batch(rows: int = 6, steps: int = 12, frames: int = 5, short_row: int | None = None,
               short: int = 7) -> Batch:
    """Every stream's value at a step is that step's index, so a resampled stream shows where it read."""
    acc = torch.arange(steps, dtype=torch.float32)[None, :, None].repeat(rows, 1, 3)
    cam = torch.arange(frames, dtype=torch.float32)[None, :, None, None].repeat(rows, 1, 4, 5)
    pad = {"acc": torch.ones(rows, steps, dtype=torch.bool), "cam": torch.ones(rows, frames, dtype=torch.bool)}
    if short_row is not None:
        pad["acc"][short_row, short:] = False
        acc[short_row, short:] = 0
    meta = torch.randn(rows, 2, generator=torch.Generator().manual_seed(0))
    return Batch(inputs={"acc": acc, "cam": cam, "meta": meta}, padding_mask=pad,
                 labels=torch.arange(rows) % 2)


def test_a_crop_stretches_a_window_of_the_recording_over_every_step() -> None:
    batch = ramp_batch()
    out = time_augment(batch, 1.0, torch.Generator().manual_seed(1), KINDS, max_crop=0.3)
    acc = out.inputs["acc"][..., 0]
    last = batch.inputs["acc"].shape[1] - 1
    steps = acc[:, 1:] - acc[:, :-1]
    assert torch.allclose(steps, steps[:, :1].expand_as(steps), atol=1e-5)  # a ramp stays an even ramp
    span = acc[:, -1] - acc[:, 0]
    assert torch.all(span >= 0.7 * last - 1e-4) and torch.all(span <= last + 1e-4)  # at most 30% cut
    assert torch.all(acc[:, 0] >= 0) and torch.all(acc[:, -1] <= last + 1e-5)  # inside the recording
    assert (span < last - 1e-3).sum() >= 4  # p = 1: (almost) every row is cropped
    # the three channels of a step move together
    assert torch.equal(out.inputs["acc"][..., 0], out.inputs["acc"][..., 2])


def test_every_modality_of_a_sample_gets_the_same_window() -> None:
    batch = ramp_batch(steps=41, frames=9)
    out = time_augment(batch, 1.0, torch.Generator().manual_seed(2), KINDS, max_crop=0.5)
    acc = out.inputs["acc"][..., 0] / 40  # fraction of the recording each step reads
    cam = out.inputs["cam"][:, :, 0, 0] / 8
    # frames take the nearest frame: at most half a frame (1/16 of the recording) from the stream
    assert torch.all((acc[:, ::5] - cam).abs() <= 1 / 16 + 1e-5)


def test_frames_are_never_blended_and_vectors_are_left_alone() -> None:
    batch = ramp_batch()
    out = time_augment(batch, 1.0, torch.Generator().manual_seed(3), KINDS, max_crop=0.5)
    cam = out.inputs["cam"]
    assert torch.equal(cam, cam.round())  # every frame is one of the input frames
    assert torch.equal(cam, cam[:, :, :1, :1].expand_as(cam))  # whole frames, not pixels
    assert torch.equal(out.inputs["meta"], batch.inputs["meta"])


def test_padding_stays_zero_and_a_short_row_reads_only_its_real_steps() -> None:
    batch = ramp_batch(short_row=2, short=7)
    out = time_augment(batch, 1.0, torch.Generator().manual_seed(4), KINDS, max_crop=0.4)
    row = out.inputs["acc"][2, :, 0]
    assert torch.all(row[7:] == 0)
    assert torch.all(row[:7] <= 6 + 1e-5) and row[6] - row[0] >= 0.6 * 6 - 1e-4
    assert torch.equal(out.padding_mask["acc"], batch.padding_mask["acc"])


def test_off_draws_nothing_and_on_is_seeded() -> None:
    batch = ramp_batch()
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    assert time_augment(batch, 0.0, gen, KINDS) is batch
    assert torch.equal(gen.get_state(), state)  # runs without the option stay bit-identical
    a = time_augment(batch, 0.5, torch.Generator().manual_seed(6), KINDS)
    b = time_augment(batch, 0.5, torch.Generator().manual_seed(6), KINDS)
    assert torch.equal(a.inputs["acc"], b.inputs["acc"])
    untouched = (a.inputs["acc"] == batch.inputs["acc"]).all(dim=2).all(dim=1)
    assert 0 < int(untouched.sum()) < batch.size  # p = 0.5: some rows kept, some cropped


def test_splits_joined_by_plus_are_their_union_in_order() -> None:
    data = load_dataset(UTD)
    both = data.split("train+val")
    assert both.tolist() == data.split("train").tolist() + data.split("val").tolist()
    assert data.split("train+train").tolist() == data.split("train").tolist()  # no repeats
    with pytest.raises(KeyError, match="'dev' not found"):
        data.split("train+dev")


def test_selection_refuses_to_choose_on_data_it_trained_on() -> None:
    with pytest.raises(ValueError, match="also trained on"):
        check_selection(TrainConfig(data="x", train_split="train+val"))
    with pytest.raises(ValueError, match="average"):
        check_selection(TrainConfig(data="x", selection="last", average_epochs=3))
    with pytest.raises(ValueError, match="unknown selection"):
        check_selection(TrainConfig(data="x", selection="first"))
    check_selection(TrainConfig(data="x", train_split="train+val", selection="last"))


def test_cli_refuses_validation_inside_training_and_leaves_no_output(tmp_path: Path, capsys) -> None:
    out = tmp_path / "ck"
    assert cli_main(["train", "--data", str(UTD), "--train-split", "train+val", "--epochs", "1",
                     "--out", str(out), "--quiet"]) == 2
    assert "use selection 'last'" in capsys.readouterr().err  # the message names the way out
    assert not out.exists()


@pytest.mark.slow
def test_training_on_train_and_val_keeps_the_last_epoch(tmp_path: Path) -> None:
    data = load_dataset(UTD)
    cfg = TrainConfig(data=str(UTD), modalities=["inertial", "skeleton"], lengths={"inertial": 48, "skeleton": 24},
                      epochs=3, dim=16, seed=2, train_split="train+val", selection="last", time_augment=0.5,
                      point_encoder="joints")
    result = train(cfg, out=tmp_path / "ck", progress=False, data=data)
    assert result.metrics["selected_epoch"] == 3 and result.metrics["selection_metric"] == "last_epoch"
    training = json.loads((tmp_path / "ck" / "config.json").read_text())["training"]
    assert training["train_split"] == "train+val" and training["time_augment"] == 0.5
    # trained on both splits: the normalisation statistics come from both
    both = Preprocessor(lengths=dict(cfg.lengths)).fit(data, data.split("train+val"))
    alone = Preprocessor(lengths=dict(cfg.lengths)).fit(data, data.split("train"))
    assert np.allclose(result.preprocessor.mean["inertial"], both.mean["inertial"])
    assert not np.allclose(both.mean["inertial"], alone.mean["inertial"])
    info = describe_checkpoint(tmp_path / "ck")  # `precal info` says what was trained on and kept
    assert "options: train_split train+val, time_augment 0.5" in info
    assert "final epoch 3: a fixed budget" in info and "points joints" in info
