"""The robustness sweep: table structure, clean rows, the calibrator's signals, MultiBench summaries,
and that the batched sweep equals running the model on each corrupted batch directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from precal.checkpoint import load_checkpoint, save_checkpoint
from precal.data.dataset import Preprocessor
from precal.data.storage import load_dataset
from precal.evaluation import dataset_for
from precal.inference import predict
from precal.models.model import ModelConfig, MultimodalModel
from precal.robustness.corruptions import apply_corruption, corruptions_for
from precal.robustness.sweep import sweep_checkpoint
from precal.robustness.table import effective_robustness, relative_robustness, removal_drops, summarise

ROOT = Path(__file__).resolve().parents[2]
LENGTHS = {"inertial": 32, "skeleton": 16, "depth": 4}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    data = load_dataset(ROOT / "sample_data" / "utd_mhad")
    data.splits["test"] = data.splits["test"][:40]
    torch.manual_seed(0)
    model = MultimodalModel(data.schema, ModelConfig(backbone="conv", dim=16, shared_dim=8)).eval()
    with torch.no_grad():  # a non-trivial calibrator, as after training
        model.calibrator.alpha_weight.normal_(0, 1.0)
        model.calibrator.alpha_bias.normal_(0, 0.3)
        model.calibrator.beta_discrepancy.normal_(0, 0.5)
    pre = Preprocessor(lengths=LENGTHS).fit(data, data.split("train")[:60])
    path = save_checkpoint(tmp_path_factory.mktemp("ck") / "tiny_conv_calon", model, pre, training={"data": "x"})
    ckpt = load_checkpoint(path)
    table = sweep_checkpoint(ckpt, data, "test", seed=0, severities=(1, 3, 5),
                             corruptions=["gaussian_noise", "remove_absent", "swap", "occlusion"])
    return data, ckpt, table


def test_table_has_one_row_per_level(setup) -> None:
    data, ckpt, table = setup
    expected = 0
    for m in ckpt.model.modalities:
        names = {c.name for c in corruptions_for(ckpt.schema.modality(m).kind)}
        expected += len(names & {"gaussian_noise", "remove_absent", "swap", "occlusion"}) * 4
    assert len(table) == expected
    assert set(table["severity"]) == {0, 1, 3, 5}
    for col in ("value", "macro_f1", "auroc_conflict", "auroc_support", "auroc_alpha", "level",
                *[f"{k}_{m}" for k in ("alpha", "beta", "support", "conflict") for m in ckpt.model.modalities]):
        assert col in table.columns, col


def test_clean_rows_equal_the_plain_evaluation(setup) -> None:
    data, ckpt, table = setup
    preds = predict(ckpt.model, dataset_for(ckpt, data, "test").full_batch())
    clean_acc = float((preds.predicted == preds.labels).mean())
    assert np.allclose(table.loc[table["severity"] == 0, "value"], clean_acc)


def test_batched_sweep_matches_direct_model_runs(setup) -> None:
    data, ckpt, table = setup
    batch = dataset_for(ckpt, data, "test").full_batch()
    for modality, corruption in (("depth", "occlusion"), ("inertial", "gaussian_noise"), ("skeleton", "swap"),
                                 ("inertial", "remove_absent")):
        kind = ckpt.schema.modality(modality).kind
        corrupted = apply_corruption(batch, modality, kind, corruption, 3, seed=0).batch
        preds = predict(ckpt.model, corrupted)
        row = table[(table["modality"] == modality) & (table["corruption"] == corruption) & (table["severity"] == 3)]
        assert float(row["value"].iloc[0]) == pytest.approx(float((preds.predicted == preds.labels).mean()))
        i = ckpt.model.modalities.index(modality)
        keep = preds.present[:, i]
        if keep.any():
            assert float(row[f"alpha_{modality}"].iloc[0]) == pytest.approx(float(preds.alpha[keep, i].mean()), abs=1e-5)


def test_gates_in_range_and_removed_modality_has_no_gate(setup) -> None:
    _, ckpt, table = setup
    for m in ckpt.model.modalities:
        a = table[f"alpha_{m}"].dropna()
        assert ((a > 0) & (a < 2)).all()
        removed = table[(table["modality"] == m) & (table["corruption"] == "remove_absent") & (table["severity"] > 0)]
        assert removed[f"alpha_{m}"].isna().all()
        assert removed["auroc_conflict"].isna().all()


def test_auroc_in_unit_interval(setup) -> None:
    _, _, table = setup
    a = table.loc[table["severity"] > 0, ["auroc_conflict", "auroc_alpha"]].to_numpy().ravel()
    a = a[~np.isnan(a)]
    assert len(a) > 0 and ((a >= 0) & (a <= 1)).all()


def test_relative_and_effective_robustness() -> None:
    assert relative_robustness([0.8] * 6) == pytest.approx(0.8)
    assert relative_robustness([1.0, 0.0]) == pytest.approx(0.5)
    assert effective_robustness([0.9, 0.8, 0.7], [0.9, 0.8, 0.7]) == pytest.approx(0.0)
    # Same shape, lower clean accuracy: the shift removes the offset.
    assert effective_robustness([0.7, 0.6, 0.5], [0.9, 0.8, 0.7]) == pytest.approx(0.0)
    assert effective_robustness([0.9, 0.9, 0.9], [0.9, 0.8, 0.7]) == pytest.approx(0.3)


def test_summary_and_removal_drops(setup) -> None:
    _, ckpt, table = setup
    other = table.assign(checkpoint="base")
    both = pd.concat([table, other])
    summary = summarise(both, baseline="base")
    assert np.allclose(summary["effective_robustness"], 0.0)
    assert ((summary["relative_robustness"] >= 0) & (summary["relative_robustness"] <= 1)).all()
    drops = removal_drops(table)
    assert set(drops["modality"]) == set(ckpt.model.modalities)


def test_auroc_matches_scikit_learn_including_ties() -> None:
    from sklearn.metrics import roc_auc_score

    from precal.metrics import auroc as _auroc

    rng = np.random.default_rng(0)
    for trial in range(30):
        pos = rng.integers(0, 5, size=rng.integers(1, 20)).astype(float)  # many ties
        neg = rng.integers(0, 5, size=rng.integers(1, 20)).astype(float) - trial % 3
        labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        expected = roc_auc_score(labels, np.r_[pos, neg])
        assert _auroc(pos, neg) == pytest.approx(expected, abs=1e-12)
    assert np.isnan(_auroc(np.array([]), np.array([1.0])))
    assert _auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0


def test_run_sweep_restricts_corruptions_and_refuses_unknown_names(setup, tmp_path) -> None:
    from precal.robustness.engine import count_levels
    from precal.robustness.sweep import run_sweep

    data, ckpt, _ = setup
    with pytest.raises(ValueError, match="unknown corruption 'blurr'"):
        run_sweep([ckpt.path], None, "test", seed=0, corruptions=["blurr"], progress=False)
    with pytest.raises(ValueError, match="severity"):
        run_sweep([ckpt.path], None, "test", seed=0, severities=[6], progress=False)
    # swap applies to each of the three modalities, occlusion only to the frames (depth)
    assert count_levels(ckpt, (1, 3), ["swap", "occlusion"]) == (3 + 1) * 2
    assert count_levels(ckpt, (0, 5), ["swap"]) == 3  # severity 0 is the clean row, not a level


def test_marked_corrupted_reads_every_modalitys_truth() -> None:
    from precal.robustness.engine import marked_corrupted

    truth = {"a": np.array([0, 1, 0, 0, 3]), "b": np.array([0, 0, 0, 2, 0])}
    assert marked_corrupted({}, np.arange(5)) is None
    assert marked_corrupted(truth, np.array([4, 0, 3, 2])).tolist() == [True, False, True, False]


def test_samples_the_data_marks_corrupted_are_on_neither_side_of_the_auroc(setup) -> None:
    """A data set with recorded truth (the synthetic generator's) has samples it corrupted itself:
    counted as clean, a rightly damped modality reads as a missed detection. The sweep's AUROC
    columns leave them out, on both sides."""
    import dataclasses

    from precal.metrics import auroc

    data, _, _ = setup  # its test split cut to 40 samples
    ckpt = load_checkpoint(ROOT / "checkpoints" / "utd_mhad_sequence_calon")  # trained: its gates vary
    batch = dataset_for(ckpt, data, "test").full_batch()
    i = ckpt.model.modalities.index("skeleton")
    clean = predict(ckpt.model, batch)
    swapped = apply_corruption(batch, "skeleton", ckpt.schema.modality("skeleton").kind, "swap", 1, seed=0)
    out = predict(ckpt.model, swapped.batch)
    affected = swapped.affected.numpy()
    # mark the unswapped samples with the lowest skeleton gates: they make the unmarked AUROC lowest
    order = [r for r in np.argsort(clean.alpha[:, i]) if not affected[r]][:6]
    marked = np.zeros(len(affected), dtype=bool)
    marked[order] = True
    truth = {m: np.zeros(len(data.labels), dtype=np.int8) for m in data.schema.modality_names}
    truth["inertial"][batch.indices.numpy()[marked]] = 1  # any modality's truth counts
    with_truth = dataclasses.replace(data, truth=truth)
    table = sweep_checkpoint(ckpt, with_truth, "test", seed=0, severities=(1,), corruptions=["swap"])
    row = table[(table["modality"] == "skeleton") & (table["severity"] == 1)]
    everyone = auroc(1 - out.alpha[affected, i], 1 - clean.alpha[:, i])
    left_out = auroc(1 - out.alpha[affected & ~marked, i], 1 - clean.alpha[~marked, i])
    assert left_out != pytest.approx(everyone)
    assert float(row["auroc_alpha"].iloc[0]) == pytest.approx(left_out)
