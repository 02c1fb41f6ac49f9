"""Weight averaging over the last epochs: the average itself, BatchNorm re-estimation, selection."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from precal.checkpoint import load_checkpoint
from precal.data.storage import load_dataset
from precal.describe import describe_path
from precal.evaluation import evaluate
from precal.models.model import ModelConfig, MultimodalModel
from precal.training.loop import TrainConfig, prepare_data, train
from precal.training.weight_average import WeightAverage, recompute_batch_norm

UTD = Path(__file__).resolve().parents[2] / "sample_data" / "utd_mhad"
LENGTHS = {"inertial": 32, "skeleton": 16, "depth": 8}


@pytest.fixture(scope="module")
def utd():
    data = load_dataset(UTD)
    _, sets = prepare_data(data, TrainConfig(data=str(UTD), lengths=LENGTHS))
    return data, sets["train"].full_batch()


def _model(data, seed: int) -> MultimodalModel:
    torch.manual_seed(seed)
    return MultimodalModel(data.schema, ModelConfig(backbone="sequence", calibration=True))


def test_average_is_the_mean_of_the_added_weights_and_keeps_counters(utd) -> None:
    data, _ = utd
    models = [_model(data, s) for s in (0, 1, 2)]
    for i, m in enumerate(models):
        for name, buf in m.named_buffers():
            if name.endswith("num_batches_tracked"):
                buf.fill_(10 + i)
    avg = WeightAverage()
    for m in models:
        avg.add(m)
    state = avg.state_dict(models[-1])
    for key, value in models[0].state_dict().items():
        if value.is_floating_point():
            expected = torch.stack([m.state_dict()[key] for m in models]).mean(0)
            assert torch.allclose(state[key], expected, atol=1e-6), key
        else:
            assert torch.equal(state[key], models[-1].state_dict()[key])  # integers: not averaged
    assert avg.count == 3
    with pytest.raises(ValueError, match="no weights"):
        WeightAverage().state_dict(models[0])


def test_batch_norm_statistics_are_re_estimated_from_the_data(utd) -> None:
    data, batch = utd
    model = _model(data, 0)
    depth = model.encoders["depth"]
    norm = depth.net[0]  # the first layer sees the motion images themselves: its statistics are checkable
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "reference" not in k}
    reference = model.calibrator.alpha_reference
    reference.mean.fill_(123.0)  # a stale reference that must be replaced
    model.eval()
    recompute_batch_norm(model, batch, batch_size=64)
    chunks = torch.tensor_split(torch.arange(batch.size), -(-batch.size // 64))
    with torch.no_grad():
        means = [depth.motion_images(batch.select(r).inputs["depth"], batch.select(r).padding_mask.get("depth"))
                 .mean(dim=(0, 2, 3)) for r in chunks]
    assert torch.allclose(norm.running_mean, torch.stack(means).mean(0), atol=1e-4)
    assert norm.momentum == 0.1 and not model.training  # both restored
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items() if "num_batches" not in k)
    # The evidence reference was re-estimated from the same passes: support cues are cosines.
    assert reference.ready and reference.momentum is not None
    assert reference.mean[:, 0].abs().max() <= 1.0


def test_training_offers_the_average_to_validation_and_keeps_what_it_picks(tmp_path: Path, utd) -> None:
    data, _ = utd
    cfg = TrainConfig(data=str(UTD), epochs=3, batch_size=64, seed=3, lengths=LENGTHS, average_epochs=2)
    result = train(cfg, out=tmp_path / "ckpt", progress=False, data=data)
    summary = result.metrics["weight_average"]
    assert summary["epochs"] == [2, 3]
    best_epoch = max(result.history, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    picked_average = (summary["val_accuracy"], -summary["val_loss"]) > (best_epoch["val_accuracy"],
                                                                         -best_epoch["val_loss"])
    assert summary["selected"] == picked_average
    chosen = summary["val_accuracy"] if picked_average else best_epoch["val_accuracy"]
    assert result.metrics["val"]["accuracy"] == pytest.approx(chosen)
    reloaded = evaluate(load_checkpoint(tmp_path / "ckpt"), data, "val")  # what was stored is what was scored
    assert reloaded["accuracy"] == pytest.approx(result.metrics["val"]["accuracy"])
    assert ("averaged over epochs 2-3" in describe_path(tmp_path / "ckpt")) == picked_average


def test_average_span_is_checked() -> None:
    with pytest.raises(ValueError, match="average-epochs"):
        train(TrainConfig(data=str(UTD), epochs=3, average_epochs=4), progress=False)


def test_with_the_atypicality_cue_its_reference_is_read_against_the_final_summary_reference(utd) -> None:
    """Two passes: the cue reference's atypicality column is what the final summary reference gives on
    the same data (in one pass each chunk would be read against the chunks before it: a covariance
    of far too few summaries, and the cue came out shifted by more than one standard deviation)."""
    data, batch = utd
    torch.manual_seed(0)
    model = MultimodalModel(data.schema, ModelConfig(backbone="sequence", calibration=True, typicality=True))
    recompute_batch_norm(model, batch, batch_size=32)
    cal = model.calibrator
    assert cal.summary_reference.momentum is not None and cal.summary_reference.known.all()
    model.eval()
    with torch.no_grad():
        report = model(batch).report
    atypical = cal.summary_reference.atypicality([report.summaries_before[n] for n in cal.names])
    column = cal.alpha_reference.mean[:, -1]
    # the passes run in training mode (dropout, batch statistics): close, not equal (in one pass: 4.1-4.6 apart)
    assert (column - atypical.mean(dim=0)).abs().max() < 0.6
