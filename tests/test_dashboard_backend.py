"""The dashboard's backend (precal/dashboard_backend.py): loading pairs, sample views, the lab,
the mini robustness sweep, embeddings inputs, training history and safe uploads.

Fixture checkpoints are built here in a second or two (a small slice of the real UTD-MHAD sample
data, a small model with its calibrator's zero-initialised gate heads set to seeded random values
so that gates actually respond to the inputs); nothing depends on /tmp or on shipped checkpoints.
:func:`tiny_checkpoints` is shared with the app and browser tests (module-level cache: built once
per test session).
"""

from __future__ import annotations

import atexit
import dataclasses
import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch

from precal import dashboard_backend as be
from precal.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from precal.data.dataset import Preprocessor, MultimodalDataset
from precal.data.storage import MultimodalData, build_ragged, load_dataset, save_dataset
from precal.models.model import ModelConfig, MultimodalModel

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "sample_data" / "utd_mhad"
LENGTHS = {"inertial": 24, "skeleton": 12, "depth": 4}
AV_SOURCE = ROOT / "sample_data" / "avletters"
AV_LENGTHS = {"audio": 24, "lips": 4}
_CACHE: Dict[str, Path] = {}


def _subset(data: MultimodalData, per_class: Dict[str, int], classes=(0, 1, 2, 3)) -> MultimodalData:
    keep = {}
    for split, n in per_class.items():
        idx = data.split(split)
        keep[split] = [int(i) for c in classes for i in idx[data.labels[idx] == c][:n]]
    order = [i for s in keep for i in keep[s]]
    pos = {i: k for k, i in enumerate(order)}
    mods = {m: build_ragged([data.modalities[m].raw(i) for i in order], data.schema.modality(m).step_shape,
                            data.modalities[m].values.dtype) for m in data.schema.modality_names}
    return MultimodalData(data.schema, data.sample_ids[order], data.labels[order], mods,
                          {s: np.array([pos[i] for i in v], dtype=np.int64) for s, v in keep.items()})


def _history(epochs: int, modalities, calibrated: bool, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for e in range(1, epochs + 1):
        mods = {m: {"alpha_mean": 1.0 + (0.1 * rng.normal() if calibrated else 0.0), "alpha_std": 0.05,
                    "beta_mean": 1.0, "beta_std": 0.01, "support_mean": float(rng.uniform(-0.5, 0.5)),
                    "support_std": 0.1, "conflict_mean": float(rng.uniform(0.5, 1.5)), "conflict_std": 0.1,
                    "probe_accuracy": float(rng.uniform(0.2, 0.6)), "grad_norm": float(rng.uniform(0.1, 1.0))}
                for m in modalities}
        out.append({"epoch": e, "lr": 1e-3, "train_loss": 2.0 / e, "train_accuracy": 0.3 * e / epochs,
                    "val_loss": 2.2 / e, "val_accuracy": 0.25 * e / epochs, "val_macro_f1": 0.2 * e / epochs,
                    "val_n": 8, "modalities": mods, "time_s": 1.0})
    return out


def _tiny_pair(source: Path, name: str, lengths: Dict[str, int], out: Path) -> Dict[str, Path]:
    data = _subset(load_dataset(source), {"train": 4, "val": 2, "test": 3})
    data_dir = save_dataset(data, out / "data" / source.name)
    pre = Preprocessor(lengths=dict(lengths)).fit(data, data.split("train"))
    paths = {"data": data_dir}
    for flag in ("on", "off"):
        torch.manual_seed(0)
        cfg = ModelConfig(backbone="sequence", calibration=flag == "on", dim=16, shared_dim=8, fusion_layers=1,
                          heads=2, head_hidden=16, dropout=0.0)
        model = MultimodalModel(data.schema, cfg)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            cal = model.calibrator
            cal.alpha_weight.copy_(torch.randn(cal.alpha_weight.shape, generator=gen) * 2.0)
            cal.alpha_bias.copy_(torch.randn(cal.alpha_bias.shape, generator=gen) * 0.5)
            cal.beta_agreement.copy_(torch.randn(cal.beta_agreement.shape, generator=gen))
            cal.beta_discrepancy.copy_(torch.randn(cal.beta_discrepancy.shape, generator=gen))
            # One training-mode pass gives the calibrator its reference of a typical training
            # sample, as training does (before it, every gate sees zero evidence).
            model.train()
            model(MultimodalDataset(data, data.split("train"), pre, model.modalities).full_batch())
        model.eval()
        training = {"data": str(data_dir), "backbone": "sequence", "calibration": flag == "on", "epochs": 3,
                    "lengths": dict(lengths)}
        metrics = {"selected_epoch": 3, "val": {"accuracy": 0.25, "macro_f1": 0.2},
                   "test": {"accuracy": 0.25, "macro_f1": 0.2}}
        paths[flag] = save_checkpoint(out / "checkpoints" / f"{name}_cal{flag}", model, pre, training=training,
                                      metrics=metrics, history=_history(3, model.modalities, flag == "on", 0))
    return paths


def build_tiny_checkpoints(out: Path) -> Dict[str, Path]:
    """Small data sets and a calibrated + uncalibrated checkpoint pair of each, in ``out``:
    UTD-MHAD (keys data, on, off) and AVLetters (keys av_data, av_on, av_off)."""
    paths = _tiny_pair(SOURCE, "tiny_sequence", LENGTHS, out)
    av = _tiny_pair(AV_SOURCE, "tinyav_sequence", AV_LENGTHS, out)
    paths.update({f"av_{k}": v for k, v in av.items()})
    return paths


def tiny_checkpoints() -> Dict[str, Path]:
    """Built once per process (shared by the backend, app and browser tests)."""
    if not _CACHE:
        tmp = Path(tempfile.mkdtemp(prefix="precal-dash-test-"))
        atexit.register(shutil.rmtree, tmp, True)
        _CACHE.update(build_tiny_checkpoints(tmp))
    return dict(_CACHE)


@pytest.fixture(scope="module")
def tiny():
    return tiny_checkpoints()


@pytest.fixture(scope="module")
def pair(tiny):
    ckpts, problems = be.load_checkpoints([tiny["on"], tiny["off"]])
    assert not problems
    pairs = be.pair_checkpoints(ckpts)
    assert len(pairs) == 1
    return pairs[0]


@pytest.fixture(scope="module")
def data(tiny):
    return be.load_data(tiny["data"])


@pytest.fixture(scope="module")
def splits(pair, data):
    return be.split_batches(pair, data, "test")


# --------------------------------------------------------------------------------------------------
# Arguments, loading, pairing
# --------------------------------------------------------------------------------------------------


def test_args_from_argv_win_over_environment():
    env = {be.ENV_CHECKPOINTS: "a:b".replace(":", __import__("os").pathsep), be.ENV_DATA: "d"}
    assert be.parse_dashboard_args([], env) == be.DashboardArgs(("a", "b"), "d")
    args = be.parse_dashboard_args(["--checkpoint", "x", "--checkpoint=y", "--data", "z"], env)
    assert args == be.DashboardArgs(("x", "y"), "z")
    with pytest.raises(ValueError):
        be.parse_dashboard_args(["--checkpoint"], {})


def test_pairs_group_calon_and_caloff(pair, tiny):
    assert pair.key == "tiny_sequence"
    assert pair.calibrated.path == tiny["on"] and pair.uncalibrated.path == tiny["off"]
    assert pair.backbone == "sequence" and pair.dataset == "utd-mhad"
    views = pair.views()
    assert [v.role for v in views] == [be.CALIBRATED, be.UNCALIBRATED]
    assert views[1].checkpoint is pair.uncalibrated
    off = pair.views(be.REFERENCE_SWITCHED_OFF)
    assert off[1].checkpoint is pair.calibrated and off[1].calibration is False


def test_single_checkpoint_pairs_alone(tiny):
    ckpts, _ = be.load_checkpoints([tiny["on"]])
    (p,) = be.pair_checkpoints(ckpts)
    assert p.uncalibrated is None
    assert p.reference_options() == [be.REFERENCE_SWITCHED_OFF]
    assert [v.calibration for v in p.views()] == [True, False]


def test_bad_paths_become_problems_not_exceptions(tmp_path, tiny):
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    (bad / "model.safetensors").write_bytes(b"junk")
    ckpts, problems = be.load_checkpoints([tiny["on"], tmp_path / "missing", bad])
    assert len(ckpts) == 1
    assert len(problems) == 2
    assert "does not exist" in problems[0].message
    assert "not valid JSON" in problems[1].message
    assert all("\n" not in p.message for p in problems)


def test_find_data_dir(pair, tiny, tmp_path):
    assert be.find_data_dir(pair.primary) == tiny["data"]
    assert be.find_data_dir(pair.primary, tiny["data"].parent) == tiny["data"]  # a folder of data sets
    with pytest.raises(CheckpointError, match="does not exist"):
        be.find_data_dir(pair.primary, tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no data set named"):
        be.find_data_dir(pair.primary, tmp_path)


# --------------------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------------------


def test_sample_outputs_match_batched_predictions(pair, splits):
    views = pair.views()
    index = int(splits.indices[2])
    outs = be.sample_outputs(views, splits, index)
    for v in views:
        batched = be.predict_view(v, splits.batch_for(v.checkpoint))
        o = outs[v.role]
        np.testing.assert_allclose(o.logits, batched.logits[2], atol=1e-4)
        np.testing.assert_allclose(o.alpha, batched.alpha[2], atol=1e-5)
        assert abs(o.probabilities.sum() - 1) < 1e-6
        top = o.top(5)
        assert list(top.columns) == ["class", "probability", "rank"] and len(top) == 5
        assert top["probability"].is_monotonic_decreasing
    cal = outs[be.CALIBRATED]
    assert not np.allclose(cal.alpha, 1.0)  # the fixture's gates are active
    np.testing.assert_allclose(outs[be.UNCALIBRATED].alpha, 1.0)
    mat, mods = cal.beta_matrix()
    assert mat.shape == (3, 16) and mods == ["inertial", "skeleton", "depth"]
    expl = cal.explain("depth")
    assert expl.sentence and abs(expl.baseline + sum(v for _, v in expl.contributions) - expl.logit) < 1e-4


def test_sample_and_suppressed_tables(pair, splits, data):
    preds = be.predict_view(pair.views()[0], splits.batch_for(pair.calibrated))
    table = be.sample_table(data, splits, preds)
    assert len(table) == splits.size and {"sample id", "class", "correct (calibrated)"} <= set(table.columns)
    sup = be.suppressed_table(data, splits, preds, limit=5)
    assert len(sup) == 5 and sup["alpha"].is_monotonic_increasing
    assert set(sup["sample id"]) <= set(table["sample id"])


def test_native_inputs(pair, splits, data):
    schema = pair.primary.schema
    kinds = {m: be.input_view_kind(schema.modality(m), schema.extra) for m in schema.modality_names}
    assert kinds == {"inertial": "imu", "skeleton": "skeleton", "depth": "frames"}
    bones = be.skeleton_bones(schema.extra["joint_names"])
    assert len(bones) == 19 and all(0 <= a < 20 and 0 <= b < 20 for a, b in bones)
    # every joint is on some bone: the stick figure is connected
    assert {j for bone in bones for j in bone} == set(range(20))
    row = 0
    batch = splits.batch_for(pair.calibrated)
    spec = schema.modality("depth")
    x = be.model_input(batch, row, spec, pair.calibrated.preprocessor)
    assert x.shape == (LENGTHS["depth"], 30, 40)
    raw = data.sequence("depth", int(splits.indices[row]))
    # de-normalised model input is in millimetres like the raw frames (frames are picked, not blended)
    assert abs(float(np.median(x)) - float(np.median(raw))) < 300
    t, label = be.time_axis(4, spec, original_steps=len(raw))
    assert label == "time (s)" and t[-1] == pytest.approx((len(raw) - 1) / 30.0)
    assert list(be.frame_picks(40, 8)) == [0, 6, 11, 17, 22, 28, 33, 39]
    assert be.feature_names(schema.modality("inertial"), schema.extra)[:2] == ["acc_x", "acc_y"]


# --------------------------------------------------------------------------------------------------
# Corruption lab
# --------------------------------------------------------------------------------------------------


def test_lab_clean_settings_change_nothing(pair, splits):
    index = int(splits.indices[0])
    res = be.lab_update(pair.views(), splits, index, {m: be.LabSetting() for m in ("inertial", "skeleton", "depth")})
    for role in (be.CALIBRATED, be.UNCALIBRATED):
        np.testing.assert_allclose(res.clean[role].logits, res.corrupted[role].logits, atol=1e-5)
    assert res.notes == []
    assert (res.delta_frame()["change"].abs() < 1e-5).all()


def test_lab_removal_changes_gates_and_logits(pair, splits):
    index = int(splits.indices[1])
    res = be.lab_update(pair.views(), splits, index, {"depth": be.LabSetting(remove=True)})
    cal_clean, cal_cor = res.clean[be.CALIBRATED], res.corrupted[be.CALIBRATED]
    d = cal_clean.modalities.index("depth")
    assert cal_clean.present[d] and not cal_cor.present[d]
    assert cal_cor.alpha[d] == pytest.approx(1.0)  # an absent modality passes through
    others = [i for i in range(3) if i != d]
    assert not np.allclose(cal_clean.alpha[others], cal_cor.alpha[others])  # peers lost a context member
    for role in (be.CALIBRATED, be.UNCALIBRATED):
        assert not np.allclose(res.clean[role].logits, res.corrupted[role].logits)
    delta = res.delta_frame()
    assert set(delta["model"]) == {be.CALIBRATED, be.UNCALIBRATED}
    assert delta.loc[(delta["model"] == be.CALIBRATED) & (delta["quantity"] == "alpha"), "change"].abs().max() > 1e-3
    # the lab's small table says the same as the long frame, modality by modality
    table = res.change_table(be.CALIBRATED, ["depth", "inertial", "skeleton"])
    assert list(table.index) == ["depth", "inertial", "skeleton"] and list(table.columns) == ["alpha", "support", "conflict"]
    long = delta[delta["model"] == be.CALIBRATED].set_index(["modality", "quantity"])["change"]
    for m in table.index:
        for q in table.columns:
            assert table.loc[m, q] == pytest.approx(long[(m, q)])


def test_lab_corruption_matches_batched_sweep(pair, splits):
    """One sample corrupted in the lab == the same sample inside a whole-split corruption."""
    from precal.robustness.corruptions import apply_corruption

    row = 2
    index = int(splits.indices[row])
    setting = {"inertial": be.LabSetting("gaussian_noise", 5)}
    res = be.lab_update(pair.views()[:1], splits, index, setting, seed=3)
    batch = splits.batch_for(pair.calibrated)
    whole = apply_corruption(batch, "inertial", "time_series", "gaussian_noise", 5, 3).batch
    lab_batch = res.corrupted_batches[str(pair.calibrated.path)]
    torch.testing.assert_close(lab_batch.inputs["inertial"][0], whole.inputs["inertial"][row])
    assert not torch.equal(lab_batch.inputs["inertial"][0], batch.inputs["inertial"][row])
    preds = be.predict_view(pair.views()[0], whole)
    np.testing.assert_allclose(res.corrupted[be.CALIBRATED].logits, preds.logits[row], atol=1e-4)


def test_lab_swap_takes_a_different_class_donor(pair, splits, data):
    index = int(splits.indices[0])
    res = be.lab_update(pair.views(), splits, index, {"skeleton": be.LabSetting(swap=True)}, seed=0)
    (note,) = res.notes
    assert note.donor_index is not None and data.labels[note.donor_index] != data.labels[index]
    assert not np.allclose(res.clean[be.CALIBRATED].support, res.corrupted[be.CALIBRATED].support)


def test_lab_extra_views_keyed_by_view(pair, splits):
    off = be.ModelView(be.UNCALIBRATED, pair.calibrated, False, "switched off")
    index = int(splits.indices[0])
    res = be.lab_update(pair.views(), splits, index, {"depth": be.LabSetting("blur", 4)}, extra_views=[off])
    assert off.key in res.by_view and set(res.clean) == {be.CALIBRATED, be.UNCALIBRATED}
    clean, cor = res.by_view[off.key]
    np.testing.assert_allclose(clean.alpha, 1.0)


def test_views_of_one_checkpoint_share_the_encoder_pass_without_changing_results(pair, splits):
    """forward_views runs the encoders once for the calibrated view and the switched-off one; every
    output must equal that view's own forward pass."""
    on = be.ModelView(be.CALIBRATED, pair.calibrated, True, "on")
    off = be.ModelView(be.UNCALIBRATED, pair.calibrated, False, "switched off")
    batch = splits.batch_for(pair.calibrated).select([0, 1, 2])
    shared = be.forward_views([on, off], batch)
    model = pair.calibrated.model
    was = model.training
    model.eval()
    try:
        for view, (logits, fused, report) in zip((on, off), shared):
            with torch.inference_mode(), model.calibration(view.calibration):
                alone = model(batch)  # the model's own forward pass, calibrator switched as the view says
            torch.testing.assert_close(logits, alone.logits)
            torch.testing.assert_close(fused, alone.fused)
            torch.testing.assert_close(report.alpha, alone.report.alpha)
            torch.testing.assert_close(report.support, alone.report.support)
    finally:
        model.train(was)
    assert not torch.allclose(shared[0][0], shared[1][0])  # the switch does change the prediction
    with pytest.raises(ValueError, match="one checkpoint"):
        be.forward_views([on, be.ModelView(be.UNCALIBRATED, pair.uncalibrated, False, "other")], batch)


# --------------------------------------------------------------------------------------------------
# Overview, embeddings, robustness, history
# --------------------------------------------------------------------------------------------------


def test_overview_tables(pair, splits):
    mods = be.modality_table(pair.primary)
    assert list(mods["modality"]) == ["inertial", "skeleton", "depth"]
    assert list(mods["rate"]) == ["50 Hz", "30 Hz", "30 Hz"]
    params, pct = be.parameter_table(pair.calibrated)
    assert 0 < pct < 100 and "calibrator" in set(params["part"])
    views = pair.views()
    live = {v.role: be.live_metrics(be.predict_view(v, splits.batch_for(v.checkpoint)), pair.primary.schema)
            for v in views}
    table = be.metrics_table(views, live, "test")
    assert len(table) == 4 and set(table["source"]) == {"stored metrics.json (test)", "live (test)"}
    preds = be.predict_view(views[0], splits.batch_for(pair.calibrated))
    frame = be.alpha_frame(preds, pair.primary.schema.class_names)
    assert len(frame) == 3 * splits.size and set(frame["modality"]) == {"inertial", "skeleton", "depth"}


def test_training_summary_lists_the_recipe_and_the_weights_held(pair):
    ckpt = pair.calibrated
    rows = dict(be.training_summary(ckpt))
    assert rows["epochs"] == str(ckpt.training["epochs"])
    assert all(rows[k] == str(ckpt.training[k]) for k in be.TRAINING_KEYS if k in ckpt.training)
    assert "scale" not in rows and "rotate_augment" not in rows and "average_epochs" not in rows  # off: not listed
    assert rows["weights"] == f"selected epoch {ckpt.metrics['selected_epoch']}"
    assert be.training_summary(ckpt)[-1][0] == "weights"
    averaged = dataclasses.replace(
        ckpt, training={**ckpt.training, "rotate_augment": {"inertial": 30.0}, "average_epochs": 20},
        metrics={**ckpt.metrics, "weight_average": {"epochs": [41, 60], "selected": True}})
    rows = dict(be.training_summary(averaged))
    assert rows["rotate_augment"] == "{'inertial': 30.0}" and rows["average_epochs"] == "20"
    assert rows["weights"].startswith("weights averaged over epochs 41-60")


def test_embedding_inputs_and_scores(pair, splits):
    views = pair.views(be.REFERENCE_SWITCHED_OFF)
    on = be.predict_view(views[0], splits.batch_for(pair.calibrated))
    off = be.predict_view(views[1], splits.batch_for(pair.calibrated))
    pre, post = be.pre_post_features(be.FUSED, on, off)
    assert pre.shape == post.shape and not np.allclose(pre, post)
    pre_m, post_m = be.pre_post_features("depth", on, off)
    assert pre_m.shape == (splits.size, 16)
    with pytest.raises(KeyError):
        be.pre_post_features("nope", on, off)
    scores = be.neighbourhood_table(pre, post, on.labels, k=3)
    assert list(scores["score"]) == ["knn_purity", "silhouette"]
    xs, ys = be.arrow_segments(np.zeros((2, 2)), np.ones((2, 2)))
    assert len(xs) == 6 and np.isnan(xs[2])


def test_corrupt_fraction_marks_rows(pair, splits):
    batch = splits.batch_for(pair.calibrated)
    mixed, rows = be.corrupt_fraction(batch, pair.primary.schema, "inertial", "gaussian_noise", 5, seed=0, fraction=0.5)
    assert rows.dtype == bool and 0 < rows.sum() < len(rows)
    changed = ~torch.isclose(mixed.inputs["inertial"], batch.inputs["inertial"]).flatten(1).all(dim=1)
    assert np.array_equal(changed.numpy(), rows)


def test_sweep_matches_full_predictions(pair, splits):
    """The encoder-reusing sweep gives the same score as corrupting and predicting from scratch."""
    from precal.robustness.corruptions import apply_corruption
    from precal.metrics import compute_metrics
    from precal.robustness.table import corrupted_alpha

    views = pair.views()
    frame = be.robustness_sweep(views, splits, pair.primary.schema, modalities=["skeleton"],
                                corruptions=["gaussian_noise"], severities=(4,), seed=2)
    for v in views:
        batch = splits.batch_for(v.checkpoint)
        cor = apply_corruption(batch, "skeleton", "time_series", "gaussian_noise", 4, 2, pool=batch).batch
        p = be.predict_view(v, cor)
        acc = compute_metrics("classification", p.labels, p.logits, pair.primary.schema.class_names)["accuracy"]
        got = frame[(frame["role"] == v.role)]
        assert len(got) == 1 and got["value"].iloc[0] == pytest.approx(acc)
        if v.calibration:
            assert corrupted_alpha(got)[0] == pytest.approx(float(p.alpha[:, 1].mean()), abs=1e-5)


def test_robustness_sweep_shape(pair, splits):
    from precal.robustness.table import columns, corrupted_alpha

    calls = []
    frame = be.robustness_sweep(pair.views(), splits, pair.primary.schema, modalities=["inertial", "depth"],
                                corruptions=["gaussian_noise", "remove_absent"], severities=(0, 1, 5),
                                progress=lambda f, t: calls.append(f))
    # 2 modalities x 2 corruptions x 3 severities x 2 models
    assert len(frame) == 24 and list(frame.columns) == columns(pair.primary.schema.modality_names)
    assert set(frame["role"]) == {be.CALIBRATED, be.UNCALIBRATED}
    assert frame["value"].between(0, 1).all() and (frame["n"] == splits.size).all()
    assert calls and calls[-1] == pytest.approx(1.0) and calls == sorted(calls)
    frame = frame.assign(alpha_mean=corrupted_alpha(frame))
    cal = frame[frame["role"] == be.CALIBRATED]
    removed = (cal["corruption"] == "remove_absent") & (cal["severity"] > 0)
    assert cal.loc[~removed, "alpha_mean"].notna().all()
    assert cal.loc[removed, "alpha_mean"].isna().all()  # a missing modality has no gate to average
    assert frame.loc[frame["role"] == be.UNCALIBRATED, "alpha_mean"].isna().all()
    # severity 0 is the clean score for every corruption
    clean = frame[frame["severity"] == 0].groupby("role")["value"].nunique()
    assert (clean == 1).all()


def test_stored_robustness_table_keeps_the_pairs_rows(pair, tmp_path):
    """A table of ``precal robustness`` (here one written before the role column: the calibrator
    switch as ``calibration``), shared by several checkpoints: the pair's rows, with their role."""
    tidy = tmp_path / "tidy.csv"
    tidy.write_text("checkpoint,dataset,calibration,modality,corruption,severity,metric,value,macro_f1,n,"
                    "alpha_inertial,alpha_depth\n"
                    f"{pair.calibrated.name},utd-mhad,True,depth,blur,0,accuracy,0.5,0.4,12,1.1,1.2\n"
                    f"{pair.calibrated.name},utd-mhad,True,depth,blur,3,accuracy,0.3,0.2,12,1.1,0.7\n"
                    f"{pair.uncalibrated.name},utd-mhad,False,depth,blur,3,accuracy,0.2,0.1,12,1.0,1.0\n"
                    "someone_else_calon,avletters,True,lips,blur,3,accuracy,0.9,0.9,12,,\n")
    frame = be.read_robustness_table(tidy, pair)
    assert set(frame["checkpoint"]) == {pair.calibrated.name, pair.uncalibrated.name} and len(frame) == 3
    assert list(frame["role"]) == [be.CALIBRATED, be.CALIBRATED, be.UNCALIBRATED]
    from precal.robustness.table import corrupted_alpha

    assert list(corrupted_alpha(frame)[:2]) == [1.2, 0.7] and np.isnan(corrupted_alpha(frame)[2])
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("modality,corruption,severity,accuracy\ndepth,blur,1,0.5\n")
    with pytest.raises(ValueError, match="not a table precal robustness wrote"):
        be.read_robustness_table(foreign, pair)


def test_robustness_summary_from_a_precal_table(pair, tmp_path):
    on, off = pair.calibrated.name, pair.uncalibrated.name
    path = tmp_path / "robustness.csv"
    # calibrated keeps 0.8 -> 0.6, baseline 0.8 -> 0.4 over severities 0, 5; swap detection by support only
    path.write_text("checkpoint,role,modality,corruption,severity,value,auroc_conflict,auroc_support,auroc_alpha\n"
                    f"{on},calibrated,depth,swap,0,0.8,,,\n{on},calibrated,depth,swap,5,0.6,0.55,0.95,0.7\n"
                    f"{off},uncalibrated,depth,swap,0,0.8,,,\n{off},uncalibrated,depth,swap,5,0.4,0.5,0.5,0.5\n"
                    "someone_else_calon,calibrated,depth,swap,5,0.1,0.1,0.1,0.1\n")
    summary = be.robustness_summary(be.read_robustness_table(path, pair), pair)
    assert list(summary.columns) == list(be.SUMMARY_COLUMNS)
    row = summary.iloc[0]
    assert (row["modality"], row["corruption"]) == ("depth", "swap") and len(summary) == 1
    assert row["rr_calibrated"] > row["rr_uncalibrated"]  # the calibrated curve lies above
    assert row["effective_robustness"] == pytest.approx(0.2)  # sum of (0.6 - 0.4) beyond the clean point
    assert (row["auroc_support"], row["auroc_conflict"], row["auroc_alpha"]) == (0.95, 0.55, 0.7)
    assert be.robustness_summary(be.read_robustness_table(path, pair).iloc[2:], pair) is None  # no calibrated rows


def test_history_frames(pair):
    scalars, dyn = be.history_frames(pair.calibrated.history)
    assert list(scalars["epoch"]) == [1, 2, 3] and "val_accuracy" in scalars
    assert {"alpha", "beta", "support", "conflict", "probe_accuracy", "grad_norm"} <= set(dyn["quantity"])
    assert len(dyn[(dyn["quantity"] == "alpha") & (dyn["modality"] == "depth")]) == 3


# --------------------------------------------------------------------------------------------------
# Launcher
# --------------------------------------------------------------------------------------------------


def test_launcher_command_and_environment(tmp_path):
    from precal import dashboard_launcher as dl

    cmd = dl.build_command([str(tmp_path / "a")], str(tmp_path / "d"), 8765, "127.0.0.1")
    assert Path(cmd[1]).name == "server.py" and Path(cmd[1]).is_file()
    assert cmd[2] == "run" and Path(cmd[3]) == be.APP_PATH
    assert be.APP_PATH.is_file()
    for flag, value in (("--server.address", "127.0.0.1"), ("--server.port", "8765"), ("--server.headless", "true"),
                        ("--browser.gatherUsageStats", "false"), ("--runner.postScriptGC", "false")):
        assert cmd[cmd.index(flag) + 1] == value
    tail = cmd[cmd.index("--") + 1:]
    assert tail == ["--checkpoint", str((tmp_path / "a").resolve()), "--data", str((tmp_path / "d").resolve())]
    assert be.parse_dashboard_args(tail, {}) == be.DashboardArgs((str((tmp_path / "a").resolve()),),
                                                                 str((tmp_path / "d").resolve()))
    env = dl.build_env(["x", "y"], None, base={be.ENV_DATA: "stale"})
    assert env[be.ENV_CHECKPOINTS].split(__import__("os").pathsep) == [str(Path("x").resolve()), str(Path("y").resolve())]
    assert be.ENV_DATA not in env
    with pytest.raises(ValueError, match="port"):
        dl.launch([], None, port=0, headless=True)


# --------------------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------------------


def _zip(entries) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, payload in entries:
            zf.writestr(name, payload)
    return buf.getvalue()


def test_upload_roundtrip(tiny, tmp_path):
    folder = tiny["on"]
    payload = _zip([(f"mymodel/{p.name}", p.read_bytes()) for p in folder.iterdir()])
    ckpt = be.load_uploaded_checkpoint(payload, tmp_path)
    assert ckpt.path.name == "mymodel" and tmp_path.resolve() in ckpt.path.resolve().parents
    assert ckpt.fingerprint == load_checkpoint(folder).fingerprint


@pytest.mark.parametrize("entries, message", [
    ([("../evil/config.json", "{}")], "unsafe path"),
    ([("/abs/config.json", "{}")], "unsafe path"),
    ([("a/model.safetensors", "x")], "no config.json"),
])
def test_upload_rejects_unsafe_archives(tmp_path, entries, message):
    with pytest.raises(CheckpointError, match=message):
        be.extract_checkpoint_zip(_zip(entries), tmp_path / "up")
    assert not (tmp_path / "evil").exists() and not Path("/abs").exists()


def test_upload_rejects_symlinks_size_and_garbage(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("ck/config.json")
        info.external_attr = (0o120777 << 16)  # a symlink entry
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(CheckpointError, match="not a regular file"):
        be.extract_checkpoint_zip(buf.getvalue(), tmp_path)
    with pytest.raises(CheckpointError, match="limit"):
        be.extract_checkpoint_zip(b"x" * 100, tmp_path, max_bytes=10)
    with pytest.raises(CheckpointError, match="not a zip"):
        be.extract_checkpoint_zip(b"definitely not a zip", tmp_path)
    bomb = _zip([("ck/config.json", "{}"), ("ck/big.bin", b"\0" * 200_000)])
    with pytest.raises(CheckpointError, match="unpacks to more"):
        be.extract_checkpoint_zip(bomb, tmp_path, max_uncompressed=100_000)


def test_upload_of_a_bad_checkpoint_is_one_line(tmp_path):
    payload = _zip([("ck/config.json", json.dumps({"format": "other"})), ("ck/model.safetensors", b"\0" * 16)])
    with pytest.raises(CheckpointError) as err:
        be.load_uploaded_checkpoint(payload, tmp_path)
    assert "format" in str(err.value) and "\n" not in str(err.value)


def _validation_held_out(ckpt):
    """The checkpoint as a run that held its validation split out for selection (the shipped
    models all train on train+val)."""
    return dataclasses.replace(ckpt, training={**ckpt.training, "train_split": "train", "selection": "best"})


def test_the_split_selector_warns_about_splits_the_models_trained_on():
    shipped = [load_checkpoint(ROOT / "checkpoints" / n) for n in ("avletters_sequence_calon", "utd_mhad_sequence_calon")]
    avletters = load_dataset(AV_SOURCE)
    trained = be.trained_splits(shipped[:1])  # the shipped models fit on train+val
    assert trained == {"train", "val"}
    assert be.split_label(avletters, "val", trained) == f"val ({len(avletters.splits['val'])} samples, trained on)"
    assert be.split_label(avletters, "test", trained) == f"test ({len(avletters.splits['test'])} samples)"
    assert be.trained_splits(shipped[1:]) == {"train", "val"}
    assert be.trained_splits([_validation_held_out(shipped[1])]) == {"train"}  # selects on val: not trained on


def test_the_training_page_warns_when_its_validation_curves_are_training_data():
    avl = [load_checkpoint(ROOT / "checkpoints" / n) for n in ("avletters_conv_calon", "avletters_conv_caloff")]
    note = be.history_fit_note(avl)
    assert note is not None and "avletters_conv_calon and avletters_conv_caloff" in note
    assert "'val' split" in note and "fit, not generalisation" in note
    utd = [_validation_held_out(load_checkpoint(ROOT / "checkpoints" / n))
           for n in ("utd_mhad_conv_calon", "utd_mhad_conv_caloff")]
    assert be.history_fit_note(utd) is None  # validation held out: its curves are generalisation
    assert "avletters_conv_calon trained" in be.history_fit_note([avl[0], utd[1]])  # only the one that did
