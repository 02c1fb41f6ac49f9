"""The dashboard's backend (dashboard/backend/): loading pairs, sample views, the lab, the mini
robustness sweep, embeddings inputs, training history and safe uploads, on the fixture checkpoints
of :mod:`tests.dashboard.fixtures`."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from precal.checkpoint import CheckpointError, load_checkpoint
from precal.dashboard.backend import uploads
from precal.dashboard.backend.data import split_batches
from precal.dashboard.backend.embeddings import (FUSED, arrow_segments, corrupt_fraction, neighbourhood_table,
                                                 pre_post_features)
from precal.dashboard.backend.inputs import frame_picks, input_view_kind, model_input, time_axis
from precal.dashboard.backend.lab import LabSetting, lab_update
from precal.dashboard.backend.overview import (TRAINING_KEYS, alpha_frame, history_fit_note, history_frames,
                                               live_metrics, metrics_table, modality_table, parameter_table,
                                               split_label, trained_splits, training_summary)
from precal.dashboard.backend.formatting import fmt_setting
from precal.dashboard.backend.pairs import REFERENCE_SWITCHED_OFF, ModelView, load_checkpoints, pair_checkpoints
from precal.dashboard.backend.robustness import (SUMMARY_COLUMNS, read_robustness_table, robustness_summary,
                                                 robustness_sweep)
from precal.dashboard.backend.running import forward_views, predict_view
from precal.dashboard.backend.samples import sample_outputs, sample_table, suppressed_table
from precal.dashboard.backend.uploads import load_uploaded_checkpoint
from precal.dashboard.launcher import APP_PATH
from precal.dashboard.settings import ENV_CHECKPOINTS, ENV_DATA, DashboardArgs, parse_dashboard_args
from precal.data.skeleton import skeleton_bones
from precal.data.storage import load_dataset
from precal.evaluation import resolve_data_dir
from precal.models.model import CALIBRATED, UNCALIBRATED
from tests.dashboard.fixtures import AV_SOURCE, LENGTHS, ROOT, tiny_checkpoints


@pytest.fixture(scope="module")
def tiny():
    return tiny_checkpoints()


@pytest.fixture(scope="module")
def pair(tiny):
    ckpts, problems = load_checkpoints([tiny["on"], tiny["off"]])
    assert not problems
    pairs = pair_checkpoints(ckpts)
    assert len(pairs) == 1
    return pairs[0]


@pytest.fixture(scope="module")
def data(tiny):
    return load_dataset(tiny["data"])


@pytest.fixture(scope="module")
def splits(pair, data):
    return split_batches(pair, data, "test")


# --------------------------------------------------------------------------------------------------
# Arguments, loading, pairing
# --------------------------------------------------------------------------------------------------


def test_args_from_argv_win_over_environment():
    env = {ENV_CHECKPOINTS: "a:b".replace(":", __import__("os").pathsep), ENV_DATA: "d"}
    assert parse_dashboard_args([], env) == DashboardArgs(("a", "b"), "d")
    args = parse_dashboard_args(["--checkpoint", "x", "--checkpoint=y", "--data", "z"], env)
    assert args == DashboardArgs(("x", "y"), "z")
    with pytest.raises(ValueError):
        parse_dashboard_args(["--checkpoint"], {})


def test_pairs_group_calon_and_caloff(pair, tiny):
    assert pair.key == "tiny_sequence"
    assert pair.calibrated.path == tiny["on"] and pair.uncalibrated.path == tiny["off"]
    assert pair.backbone == "sequence" and pair.dataset == "utd-mhad"
    views = pair.views()
    assert [v.role for v in views] == [CALIBRATED, UNCALIBRATED]
    assert views[1].checkpoint is pair.uncalibrated
    off = pair.views(REFERENCE_SWITCHED_OFF)
    assert off[1].checkpoint is pair.calibrated and off[1].calibration is False


def test_single_checkpoint_pairs_alone(tiny):
    ckpts, _ = load_checkpoints([tiny["on"]])
    (p,) = pair_checkpoints(ckpts)
    assert p.uncalibrated is None
    assert p.reference_options() == [REFERENCE_SWITCHED_OFF]
    assert [v.calibration for v in p.views()] == [True, False]


def test_bad_paths_become_problems_not_exceptions(tmp_path, tiny):
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    (bad / "model.safetensors").write_bytes(b"junk")
    ckpts, problems = load_checkpoints([tiny["on"], tmp_path / "missing", bad])
    assert len(ckpts) == 1
    assert len(problems) == 2
    assert "does not exist" in problems[0].message
    assert "not valid JSON" in problems[1].message
    assert all("\n" not in p.message for p in problems)


def test_resolve_data_dir(pair, tiny, tmp_path):
    assert resolve_data_dir(pair.primary) == tiny["data"]
    assert resolve_data_dir(pair.primary, tiny["data"].parent) == tiny["data"]  # a folder of data sets
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_data_dir(pair.primary, tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no data set named"):
        resolve_data_dir(pair.primary, tmp_path)


# --------------------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------------------


def test_sample_outputs_match_batched_predictions(pair, splits):
    views = pair.views()
    index = int(splits.indices[2])
    outs = sample_outputs(views, splits, index)
    for v in views:
        batched = predict_view(v, splits.batch_for(v.checkpoint))
        o = outs[v.role]
        np.testing.assert_allclose(o.logits, batched.logits[2], atol=1e-4)
        np.testing.assert_allclose(o.alpha, batched.alpha[2], atol=1e-5)
        assert abs(o.probabilities.sum() - 1) < 1e-6
        top = o.top(5)
        assert list(top.columns) == ["class", "probability", "rank"] and len(top) == 5
        assert top["probability"].is_monotonic_decreasing
    cal = outs[CALIBRATED]
    assert not np.allclose(cal.alpha, 1.0)  # the fixture's gates are active
    np.testing.assert_allclose(outs[UNCALIBRATED].alpha, 1.0)
    mat, mods = cal.beta_matrix()
    assert mat.shape == (3, 16) and mods == ["inertial", "skeleton", "depth"]
    expl = cal.explain("depth")
    assert expl.sentence and abs(expl.baseline + sum(v for _, v in expl.contributions) - expl.logit) < 1e-4


def test_sample_and_suppressed_tables(pair, splits, data):
    preds = predict_view(pair.views()[0], splits.batch_for(pair.calibrated))
    table = sample_table(data, splits, preds)
    assert len(table) == splits.size and {"sample id", "class", "correct (calibrated)"} <= set(table.columns)
    ids = table["sample id"].tolist()  # UTD-MHAD's groups come with every sample: a<action>_s<subject>_t<trial>
    assert table["subject"].tolist() == [i.split("_")[1] for i in ids] and set(data.groups) <= set(table.columns)
    sup = suppressed_table(data, splits, preds, limit=5)
    assert len(sup) == 5 and sup["alpha"].is_monotonic_increasing
    assert set(sup["sample id"]) <= set(table["sample id"])


def test_native_inputs(pair, splits, data):
    schema = pair.primary.schema
    kinds = {m: input_view_kind(schema.modality(m), schema.extra) for m in schema.modality_names}
    assert kinds == {"inertial": "imu", "skeleton": "skeleton", "depth": "frames"}
    bones = skeleton_bones(schema.extra["joint_names"])
    assert len(bones) == 19 and all(0 <= a < 20 and 0 <= b < 20 for a, b in bones)
    # every joint is on some bone: the stick figure is connected
    assert {j for bone in bones for j in bone} == set(range(20))
    row = 0
    batch = splits.batch_for(pair.calibrated)
    spec = schema.modality("depth")
    x = model_input(batch, row, spec, pair.calibrated.preprocessor)
    assert x.shape == (LENGTHS["depth"], 30, 40)
    raw = data.sequence("depth", int(splits.indices[row]))
    # de-normalised model input is in millimetres like the raw frames (frames are picked, not blended)
    assert abs(float(np.median(x)) - float(np.median(raw))) < 300
    t, label = time_axis(4, spec, original_steps=len(raw))
    assert label == "time (s)" and t[-1] == pytest.approx((len(raw) - 1) / 30.0)
    assert list(frame_picks(40, 8)) == [0, 6, 11, 17, 22, 28, 33, 39]
    assert schema.feature_names("inertial")[:2] == ["acc_x", "acc_y"]


# --------------------------------------------------------------------------------------------------
# Corruption lab
# --------------------------------------------------------------------------------------------------


def test_lab_clean_settings_change_nothing(pair, splits):
    index = int(splits.indices[0])
    res = lab_update(pair.views(), splits, index, {m: LabSetting() for m in ("inertial", "skeleton", "depth")})
    for role in (CALIBRATED, UNCALIBRATED):
        np.testing.assert_allclose(res.clean[role].logits, res.corrupted[role].logits, atol=1e-5)
    assert res.notes == []
    assert (res.delta_frame()["change"].abs() < 1e-5).all()


def test_lab_removal_changes_gates_and_logits(pair, splits):
    index = int(splits.indices[1])
    res = lab_update(pair.views(), splits, index, {"depth": LabSetting(remove=True)})
    cal_clean, cal_cor = res.clean[CALIBRATED], res.corrupted[CALIBRATED]
    d = cal_clean.modalities.index("depth")
    assert cal_clean.present[d] and not cal_cor.present[d]
    assert cal_cor.alpha[d] == pytest.approx(1.0)  # an absent modality passes through
    others = [i for i in range(3) if i != d]
    assert not np.allclose(cal_clean.alpha[others], cal_cor.alpha[others])  # peers lost a context member
    for role in (CALIBRATED, UNCALIBRATED):
        assert not np.allclose(res.clean[role].logits, res.corrupted[role].logits)
    delta = res.delta_frame()
    assert set(delta["role"]) == {CALIBRATED, UNCALIBRATED}
    assert delta.loc[(delta["role"] == CALIBRATED) & (delta["quantity"] == "alpha"), "change"].abs().max() > 1e-3
    # the lab's small table says the same as the long frame, modality by modality
    table = res.change_table(CALIBRATED, ["depth", "inertial", "skeleton"])
    assert list(table.index) == ["depth", "inertial", "skeleton"] and list(table.columns) == ["alpha", "support", "conflict"]
    long = delta[delta["role"] == CALIBRATED].set_index(["modality", "quantity"])["change"]
    for m in table.index:
        for q in table.columns:
            assert table.loc[m, q] == pytest.approx(long[(m, q)], nan_ok=True)
    assert table.loc["depth"].isna().all()  # removed: no number for it, the notes say why
    notes = res.cell_notes(CALIBRATED, ["depth", "inertial", "skeleton"])
    assert (notes.loc["depth"] == "n/a (absent)").all() and (notes.loc["inertial"] == "").all()
    assert (res.cell_notes(UNCALIBRATED, ["inertial"]).loc["inertial", "alpha"]) == "fixed at 1"


def test_a_modality_left_without_peers_shows_no_cue_numbers(pair, splits):
    """With its peers removed a modality has nothing to be compared with: the model reports its cues as
    0 and passes it through. The lab must not show that 0 as a change of support or conflict (it
    once drew "Δ conflict -1.04" as a move towards trust); its alpha is real (the pass-through)."""
    index = int(splits.indices[0])
    res = lab_update(pair.views(), splits, index, {"skeleton": LabSetting(remove=True), "depth": LabSetting(remove=True)})
    table = res.change_table(CALIBRATED, ["inertial"])
    notes = res.cell_notes(CALIBRATED, ["inertial"])
    assert table.loc["inertial", ["support", "conflict"]].isna().all()
    assert (notes.loc["inertial", ["support", "conflict"]] == "n/a (no peer)").all()
    assert np.isfinite(table.loc["inertial", "alpha"]) and notes.loc["inertial", "alpha"] == ""
    delta = res.delta_frame().set_index(["role", "modality", "quantity"])
    assert np.isnan(delta.loc[(CALIBRATED, "inertial", "conflict"), "corrupted"])
    assert np.isfinite(delta.loc[(CALIBRATED, "inertial", "conflict"), "clean"])


def test_lab_shows_atypicality_for_a_model_trained_with_it(tiny, data, tmp_path):
    """A model trained with ``--typicality on`` has a fourth cue: the lab draws it and its change, and
    drowning a modality in noise moves it up (less trusted); the uncalibrated model beside it, which
    has no such cue, says so in its cells rather than showing a number."""
    from precal.checkpoint import save_checkpoint
    from precal.dashboard.charts.lab import cue_chart
    from precal.data.dataset import MultimodalDataset
    from precal.models.model import ModelConfig, MultimodalModel
    from tests.dashboard.fixtures import spread_gates

    base = load_checkpoint(tiny["on"])
    torch.manual_seed(0)
    cfg = dataclasses.replace(base.config, typicality=True)
    model = MultimodalModel(data.schema, cfg)
    spread_gates(model, MultimodalDataset(data, data.split("train"), base.preprocessor, model.modalities).full_batch())
    path = save_checkpoint(tmp_path / "tiny_sequence_calon", model, base.preprocessor,
                           training={"data": str(tiny["data"]), "backbone": "sequence", "calibration": True,
                                     "typicality": True, "epochs": 3, "lengths": dict(LENGTHS)},
                           metrics={"test": {"accuracy": 0.25}})
    ckpts, problems = load_checkpoints([path, tiny["off"]])
    assert not problems
    typ_pair = pair_checkpoints(ckpts)[0]
    typ_splits = split_batches(typ_pair, data, "test")
    index = int(typ_splits.indices[0])
    res = lab_update(typ_pair.views(), typ_splits, index, {"inertial": LabSetting("gaussian_noise", 5)})
    assert res.quantities() == ("alpha", "support", "conflict", "atypicality")
    assert res.quantities([UNCALIBRATED]) == ("alpha", "support", "conflict")
    delta = res.delta_frame()
    rows = delta[(delta["role"] == CALIBRATED) & (delta["quantity"] == "atypicality")].set_index("modality")
    # noise moves the noisy modality's own summary away from the typical ones; the others' own
    # summaries are untouched (atypicality is not a comparison with the peers)
    assert rows.loc["inertial", "change"] > 0.05
    assert rows.loc[["skeleton", "depth"], "change"].abs().max() < 1e-5
    assert delta[(delta["role"] == UNCALIBRATED) & (delta["quantity"] == "atypicality")].empty
    shown = res.quantities()
    table = res.change_table(CALIBRATED, ["inertial", "skeleton"], shown)
    assert table.loc["inertial", "atypicality"] == pytest.approx(rows.loc["inertial", "change"])
    off = res.change_table(UNCALIBRATED, ["inertial"], shown)
    assert np.isnan(off.loc["inertial", "atypicality"])
    assert res.cell_notes(UNCALIBRATED, ["inertial"], shown).loc["inertial", "atypicality"] == "no such cue"
    frame = delta[delta["role"] == CALIBRATED].melt(id_vars=["modality", "quantity"],
                                                   value_vars=["clean", "corrupted"], var_name="input")
    spec = cue_chart(frame, "t", "input", {"clean": "#999", "corrupted": "#d62728"})
    titles = [c["layer"][0]["encoding"]["y"]["axis"]["title"] for c in spec["hconcat"]]
    assert len(titles) == 4 and titles[-1].startswith("atypicality")
    # four panels side by side still fit the lab's ~1,100 px (each panel's axis takes ~60 px more)
    assert sum(c["width"] + 60 for c in spec["hconcat"]) + 3 * spec["spacing"] <= 1100


def test_lab_corruption_matches_batched_sweep(pair, splits):
    """One sample corrupted in the lab == the same sample inside a whole-split corruption."""
    from precal.robustness.corruptions import apply_corruption

    row = 2
    index = int(splits.indices[row])
    setting = {"inertial": LabSetting("gaussian_noise", 5)}
    res = lab_update(pair.views()[:1], splits, index, setting, seed=3)
    batch = splits.batch_for(pair.calibrated)
    whole = apply_corruption(batch, "inertial", "time_series", "gaussian_noise", 5, 3).batch
    lab_batch = res.corrupted_batches[str(pair.calibrated.path)]
    torch.testing.assert_close(lab_batch.inputs["inertial"][0], whole.inputs["inertial"][row])
    assert not torch.equal(lab_batch.inputs["inertial"][0], batch.inputs["inertial"][row])
    preds = predict_view(pair.views()[0], whole)
    np.testing.assert_allclose(res.corrupted[CALIBRATED].logits, preds.logits[row], atol=1e-4)


def test_lab_swap_takes_a_different_class_donor(pair, splits, data):
    index = int(splits.indices[0])
    res = lab_update(pair.views(), splits, index, {"skeleton": LabSetting(swap=True)}, seed=0)
    (note,) = res.notes
    assert note.donor_index is not None and data.labels[note.donor_index] != data.labels[index]
    assert not np.allclose(res.clean[CALIBRATED].support, res.corrupted[CALIBRATED].support)


def test_lab_extra_views_keyed_by_view(pair, splits):
    off = ModelView(UNCALIBRATED, pair.calibrated, False, "switched off")
    index = int(splits.indices[0])
    res = lab_update(pair.views(), splits, index, {"depth": LabSetting("blur", 4)}, extra_views=[off])
    assert off.key in res.by_view and set(res.clean) == {CALIBRATED, UNCALIBRATED}
    clean, cor = res.by_view[off.key]
    np.testing.assert_allclose(clean.alpha, 1.0)


def test_views_of_one_checkpoint_share_the_encoder_pass_without_changing_results(pair, splits):
    """forward_views runs the encoders once for the calibrated view and the switched-off one; every
    output must equal that view's own forward pass."""
    on = ModelView(CALIBRATED, pair.calibrated, True, "on")
    off = ModelView(UNCALIBRATED, pair.calibrated, False, "switched off")
    batch = splits.batch_for(pair.calibrated).select([0, 1, 2])
    shared = forward_views([on, off], batch)
    model = pair.calibrated.model
    was = model.training
    model.eval()
    try:
        for view, (outputs, report) in zip((on, off), shared):
            with torch.inference_mode(), model.calibration(view.calibration):
                alone = model(batch)  # the model's own forward pass, calibrator switched as the view says
            torch.testing.assert_close(torch.from_numpy(outputs.logits), alone.logits)
            torch.testing.assert_close(torch.from_numpy(outputs.fused), alone.fused)
            torch.testing.assert_close(report.alpha, alone.report.alpha)
            torch.testing.assert_close(report.support, alone.report.support)
    finally:
        model.train(was)
    assert not np.allclose(shared[0][0].logits, shared[1][0].logits)  # the switch does change the prediction
    with pytest.raises(ValueError, match="one checkpoint"):
        forward_views([on, ModelView(UNCALIBRATED, pair.uncalibrated, False, "other")], batch)


# --------------------------------------------------------------------------------------------------
# Overview, embeddings, robustness, history
# --------------------------------------------------------------------------------------------------


def test_overview_tables(pair, splits):
    mods = modality_table(pair.primary)
    assert list(mods["modality"]) == ["inertial", "skeleton", "depth"]
    assert list(mods["rate"]) == ["50 Hz", "30 Hz", "30 Hz"]
    params, pct = parameter_table(pair.calibrated)
    assert 0 < pct < 100 and "calibrator" in set(params["part"])
    views = pair.views()
    live = {v.role: live_metrics(predict_view(v, splits.batch_for(v.checkpoint)), pair.primary.schema)
            for v in views}
    table = metrics_table(views, live, "test")
    assert len(table) == 4 and set(table["source"]) == {"stored metrics.json (test)", "live (test)"}
    preds = predict_view(views[0], splits.batch_for(pair.calibrated))
    frame = alpha_frame(preds, pair.primary.schema.class_names)
    assert len(frame) == 3 * splits.size and set(frame["modality"]) == {"inertial", "skeleton", "depth"}


def test_training_summary_lists_the_recipe_and_the_weights_held(pair):
    ckpt = pair.calibrated
    rows = dict(training_summary(ckpt))
    assert rows["epochs"] == str(ckpt.training["epochs"])
    assert all(rows[k.replace("_", " ")] == fmt_setting(ckpt.training[k]) for k in TRAINING_KEYS if k in ckpt.training)
    assert "scale" not in rows and "rotate augment" not in rows and "average epochs" not in rows  # off: not listed
    assert not any(v.startswith(("{", "[")) for v in rows.values())  # words, not Python reprs
    assert rows["weights"] == f"selected epoch {ckpt.metrics['selected_epoch']}"
    assert training_summary(ckpt)[-1][0] == "weights"
    # how the gates read their evidence is said for a calibrated model, not for its baseline
    assert rows["calibrator"] == f"monotone gates, {ckpt.config.evidence} evidence, no atypicality cue"
    assert "calibrator" not in dict(training_summary(pair.uncalibrated))
    averaged = dataclasses.replace(
        ckpt, training={**ckpt.training, "rotate_augment": {"inertial": 30.0}, "average_epochs": 20},
        metrics={**ckpt.metrics, "weight_average": {"epochs": [41, 60], "selected": True}})
    rows = dict(training_summary(averaged))
    assert rows["rotate augment"] == "inertial: 30" and rows["average epochs"] == "20"
    assert rows["weights"].startswith("weights averaged over epochs 41-60")


def test_embedding_inputs_and_scores(pair, splits):
    views = pair.views(REFERENCE_SWITCHED_OFF)
    on = predict_view(views[0], splits.batch_for(pair.calibrated))
    off = predict_view(views[1], splits.batch_for(pair.calibrated))
    pre, post = pre_post_features(FUSED, on, off)
    assert pre.shape == post.shape and not np.allclose(pre, post)
    pre_m, post_m = pre_post_features("depth", on, off)
    assert pre_m.shape == (splits.size, 16)
    with pytest.raises(KeyError):
        pre_post_features("nope", on, off)
    scores = neighbourhood_table(pre, post, on.labels, k=3)
    assert list(scores["score"]) == ["knn_purity", "silhouette"]
    xs, ys = arrow_segments(np.zeros((2, 2)), np.ones((2, 2)))
    assert len(xs) == 6 and np.isnan(xs[2])


def test_maps_above_the_cap_are_fitted_on_a_subsample_and_say_so(pair, splits, tmp_path, monkeypatch):
    """The page's map (split_projection) fits t-SNE on a subsample above the cap and places every
    other sample; fit_note is the sentence the page shows then (none below the cap)."""
    from precal.dashboard.backend import embeddings
    from precal.projection import clear_memory_cache

    views = pair.views(REFERENCE_SWITCHED_OFF)
    on = predict_view(views[0], splits.batch_for(pair.calibrated))
    off = predict_view(views[1], splits.batch_for(pair.calibrated))
    pre, post = pre_post_features(FUSED, on, off)
    key = embeddings.projection_key(pair.fingerprint(pair.calibrated), "test", FUSED)
    whole = embeddings.split_projection(tmp_path, key, pre, post, "tsne")
    assert not whole.subsampled and embeddings.fit_note(whole) is None
    monkeypatch.setattr(embeddings, "MAX_FIT_SAMPLES", 6)
    clear_memory_cache()
    capped = embeddings.split_projection(tmp_path, key, pre, post, "tsne")
    assert capped.fit_samples == 6 and capped.pre_xy.shape == (splits.size, 2) and np.isfinite(capped.xy).all()
    note = embeddings.fit_note(capped)
    assert note.startswith(f"t-SNE was fitted on a seeded subsample of 6 of the {splits.size} samples")
    assert len(list(tmp_path.glob("projection-tsne-*.npz"))) == 2  # the capped map is a cache entry of its own


def test_selected_rows_are_the_ids_rows_sorted_and_unique():
    from precal.dashboard.backend.embeddings import selected_rows

    ids = np.asarray(["a", "b", "c", "d"], dtype=object)
    assert selected_rows(ids, ["d", "b", "d", "zz"]).tolist() == [1, 3]
    assert selected_rows(ids, []).tolist() == []


def test_corrupt_fraction_marks_rows(pair, splits):
    batch = splits.batch_for(pair.calibrated)
    mixed, rows = corrupt_fraction(batch, pair.primary.schema, "inertial", "gaussian_noise", 5, seed=0, fraction=0.5)
    assert rows.dtype == bool and 0 < rows.sum() < len(rows)
    changed = ~torch.isclose(mixed.inputs["inertial"], batch.inputs["inertial"]).flatten(1).all(dim=1)
    assert np.array_equal(changed.numpy(), rows)


def test_sweep_matches_full_predictions(pair, splits):
    """The encoder-reusing sweep gives the same score as corrupting and predicting from scratch."""
    from precal.robustness.corruptions import apply_corruption
    from precal.metrics import compute_metrics
    from precal.robustness.table import corrupted_alpha

    views = pair.views()
    frame = robustness_sweep(views, splits, pair.primary.schema, modalities=["skeleton"],
                                corruptions=["gaussian_noise"], severities=(4,), seed=2)
    for v in views:
        batch = splits.batch_for(v.checkpoint)
        cor = apply_corruption(batch, "skeleton", "time_series", "gaussian_noise", 4, 2, pool=batch).batch
        p = predict_view(v, cor)
        acc = compute_metrics("classification", p.labels, p.logits, pair.primary.schema.class_names)["accuracy"]
        got = frame[(frame["role"] == v.role)]
        assert len(got) == 1 and got["value"].iloc[0] == pytest.approx(acc)
        if v.calibration:
            assert corrupted_alpha(got)[0] == pytest.approx(float(p.alpha[:, 1].mean()), abs=1e-5)


def test_robustness_sweep_shape(pair, splits):
    from precal.robustness.table import columns, corrupted_alpha

    calls = []
    frame = robustness_sweep(pair.views(), splits, pair.primary.schema, modalities=["inertial", "depth"],
                                corruptions=["gaussian_noise", "remove_absent"], severities=(0, 1, 5),
                                progress=lambda f, t: calls.append(f))
    # 2 modalities x 2 corruptions x 3 severities x 2 models
    assert len(frame) == 24 and list(frame.columns) == columns(pair.primary.schema.modality_names)
    assert set(frame["role"]) == {CALIBRATED, UNCALIBRATED}
    assert frame["value"].between(0, 1).all() and (frame["n"] == splits.size).all()
    assert calls and calls[-1] == pytest.approx(1.0) and calls == sorted(calls)
    frame = frame.assign(alpha_mean=corrupted_alpha(frame))
    cal = frame[frame["role"] == CALIBRATED]
    removed = (cal["corruption"] == "remove_absent") & (cal["severity"] > 0)
    assert cal.loc[~removed, "alpha_mean"].notna().all()
    assert cal.loc[removed, "alpha_mean"].isna().all()  # a missing modality has no gate to average
    assert frame.loc[frame["role"] == UNCALIBRATED, "alpha_mean"].isna().all()
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
    frame = read_robustness_table(tidy, pair)
    assert set(frame["checkpoint"]) == {pair.calibrated.name, pair.uncalibrated.name} and len(frame) == 3
    assert list(frame["role"]) == [CALIBRATED, CALIBRATED, UNCALIBRATED]
    from precal.robustness.table import corrupted_alpha

    assert list(corrupted_alpha(frame)[:2]) == [1.2, 0.7] and np.isnan(corrupted_alpha(frame)[2])
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("modality,corruption,severity,accuracy\ndepth,blur,1,0.5\n")
    with pytest.raises(ValueError, match="not a table precal robustness wrote"):
        read_robustness_table(foreign, pair)


def test_robustness_summary_from_a_precal_table(pair, tmp_path):
    on, off = pair.calibrated.name, pair.uncalibrated.name
    path = tmp_path / "robustness.csv"
    # calibrated keeps 0.8 -> 0.6, baseline 0.8 -> 0.4 over severities 0, 5; swap detection by support only
    path.write_text("checkpoint,role,modality,corruption,severity,value,auroc_conflict,auroc_support,auroc_alpha\n"
                    f"{on},calibrated,depth,swap,0,0.8,,,\n{on},calibrated,depth,swap,5,0.6,0.55,0.95,0.7\n"
                    f"{off},uncalibrated,depth,swap,0,0.8,,,\n{off},uncalibrated,depth,swap,5,0.4,0.5,0.5,0.5\n"
                    "someone_else_calon,calibrated,depth,swap,5,0.1,0.1,0.1,0.1\n")
    summary = robustness_summary(read_robustness_table(path, pair), pair)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    row = summary.iloc[0]
    assert (row["modality"], row["corruption"]) == ("depth", "swap") and len(summary) == 1
    assert row["rr_calibrated"] > row["rr_uncalibrated"]  # the calibrated curve lies above
    assert row["effective_robustness"] == pytest.approx(0.2)  # sum of (0.6 - 0.4) beyond the clean point
    assert (row["auroc_support"], row["auroc_conflict"], row["auroc_alpha"]) == (0.95, 0.55, 0.7)
    assert robustness_summary(read_robustness_table(path, pair).iloc[2:], pair) is None  # no calibrated rows


def test_history_frames(pair):
    scalars, dyn = history_frames(pair.calibrated.history)
    assert list(scalars["epoch"]) == [1, 2, 3] and "val_accuracy" in scalars
    assert {"alpha", "beta", "support", "conflict", "probe_accuracy", "grad_norm"} <= set(dyn["quantity"])
    assert len(dyn[(dyn["quantity"] == "alpha") & (dyn["modality"] == "depth")]) == 3


# --------------------------------------------------------------------------------------------------
# Launcher
# --------------------------------------------------------------------------------------------------


def test_launcher_command_and_environment(tmp_path):
    from precal.dashboard import launcher as dl

    cmd = dl.build_command([str(tmp_path / "a")], str(tmp_path / "d"), 8765, "127.0.0.1")
    assert Path(cmd[1]).name == "server.py" and Path(cmd[1]).is_file()
    assert cmd[2] == "run" and Path(cmd[3]) == APP_PATH
    assert APP_PATH.is_file()
    for flag, value in (("--server.address", "127.0.0.1"), ("--server.port", "8765"), ("--server.headless", "true"),
                        ("--browser.gatherUsageStats", "false"), ("--runner.postScriptGC", "false")):
        assert cmd[cmd.index(flag) + 1] == value
    tail = cmd[cmd.index("--") + 1:]
    assert tail == ["--checkpoint", str((tmp_path / "a").resolve()), "--data", str((tmp_path / "d").resolve())]
    assert parse_dashboard_args(tail, {}) == DashboardArgs((str((tmp_path / "a").resolve()),),
                                                                 str((tmp_path / "d").resolve()))
    env = dl.build_env(["x", "y"], None, base={ENV_DATA: "stale"})
    assert env[ENV_CHECKPOINTS].split(__import__("os").pathsep) == [str(Path("x").resolve()), str(Path("y").resolve())]
    assert ENV_DATA not in env
    with pytest.raises(ValueError, match="port"):
        dl.launch([], None, port=0, headless=True)
    import precal

    assert env["PYTHONPATH"].split(__import__("os").pathsep)[0] == str(Path(precal.__file__).resolve().parent.parent)


def test_head_start_waits_on_the_port_the_launcher_gives(tmp_path):
    """The server's head start (torch and precal imported in the background) waits until the server
    listens where the launcher's own command line says: waiting on another address would hold it
    back for the whole timeout, and the first page would import torch itself."""
    import http.server
    import os
    import socket
    import threading
    import time

    from precal.dashboard import launcher as dl
    from precal.dashboard.server import HEALTH_GRACE_S, server_address, wait_for_server

    cmd = dl.build_command([], None, 8765, "0.0.0.0")
    assert server_address(cmd[2:]) == ("127.0.0.1", 8765)  # a wildcard address is reached on the loopback
    assert server_address(["run", "app.py", "--server.port=9001", "--server.address=10.1.2.3"]) == ("10.1.2.3", 9001)
    assert server_address(["run", "app.py", "--server.address", "[::1]", "--server.port"]) == ("::1", 8501)
    assert server_address(["run", "app.py", "--", "--server.port", "1"]) == ("127.0.0.1", 8501)  # the app's args
    sock_path = tmp_path / "s.sock"
    assert server_address(["run", "app.py", f"--server.address=unix://{sock_path}"]) == (f"unix://{sock_path}", 0)

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            self.send_response(200 if self.path == "/_stcore/health" else 404)
            self.end_headers()

        def log_message(self, *args):  # quiet
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        os.environ["http_proxy"] = "http://127.0.0.1:9"  # a proxy in the environment is not asked
        start = time.monotonic()
        assert wait_for_server("127.0.0.1", port, timeout=5.0)
        assert time.monotonic() - start < HEALTH_GRACE_S  # the health check answered, no grace needed
    finally:
        os.environ.pop("http_proxy", None)
        httpd.shutdown()
        httpd.server_close()
    assert not wait_for_server("127.0.0.1", port, timeout=0.2)  # nobody listens: gives up after the timeout
    with socket.socket() as listener:  # listening but never answering plain HTTP (TLS, a base URL path)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert wait_for_server("127.0.0.1", listener.getsockname()[1], timeout=5.0)
    with socket.socket(socket.AF_UNIX) as unix:
        unix.bind(str(sock_path))
        unix.listen()
        assert wait_for_server(f"unix://{sock_path}", 0, timeout=5.0)


def test_precal_dashboard_reaches_the_launcher(capsys):
    """The command line finds the app's launcher (a bad port is refused there, in one line)."""
    from precal.cli import main

    assert main(["dashboard", "--port", "70000", "--headless"]) == 2
    assert "--port must be between 1 and 65535" in capsys.readouterr().err


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
    ckpt = load_uploaded_checkpoint(payload, tmp_path)
    assert ckpt.path.name == "mymodel" and tmp_path.resolve() in ckpt.path.resolve().parents
    assert ckpt.fingerprint == load_checkpoint(folder).fingerprint


@pytest.mark.parametrize("entries, message", [
    ([("../evil/config.json", "{}")], "unsafe path"),
    ([("/abs/config.json", "{}")], "unsafe path"),
    ([("a/model.safetensors", "x")], "no config.json"),
])
def test_upload_rejects_unsafe_archives(tmp_path, entries, message):
    with pytest.raises(CheckpointError, match=message):
        uploads.extract_checkpoint_zip(_zip(entries), tmp_path / "up")
    assert not (tmp_path / "evil").exists() and not Path("/abs").exists()


def test_upload_rejects_symlinks_size_and_garbage(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("ck/config.json")
        info.external_attr = (0o120777 << 16)  # a symlink entry
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(CheckpointError, match="not a regular file"):
        uploads.extract_checkpoint_zip(buf.getvalue(), tmp_path)
    with pytest.raises(CheckpointError, match="limit"):
        uploads.extract_checkpoint_zip(b"x" * 100, tmp_path, max_bytes=10)
    with pytest.raises(CheckpointError, match="not a zip"):
        uploads.extract_checkpoint_zip(b"definitely not a zip", tmp_path)
    bomb = _zip([("ck/config.json", "{}"), ("ck/big.bin", b"\0" * 200_000)])
    with pytest.raises(CheckpointError, match="unpacks to more"):
        uploads.extract_checkpoint_zip(bomb, tmp_path, max_uncompressed=100_000)


def test_upload_of_a_bad_checkpoint_is_one_line(tmp_path):
    payload = _zip([("ck/config.json", json.dumps({"format": "other"})), ("ck/model.safetensors", b"\0" * 16)])
    with pytest.raises(CheckpointError) as err:
        load_uploaded_checkpoint(payload, tmp_path)
    assert "format" in str(err.value) and "\n" not in str(err.value)


def _validation_held_out(ckpt):
    """The checkpoint as a run that held its validation split out for selection (the shipped
    models all train on train+val)."""
    return dataclasses.replace(ckpt, training={**ckpt.training, "train_split": "train", "selection": "best"})


def test_the_split_selector_warns_about_splits_the_models_trained_on():
    shipped = [load_checkpoint(ROOT / "checkpoints" / n) for n in ("avletters_sequence_calon", "utd_mhad_sequence_calon")]
    avletters = load_dataset(AV_SOURCE)
    trained = trained_splits(shipped[:1])  # the shipped models fit on train+val
    assert trained == {"train", "val"}
    assert split_label(avletters, "val", trained) == f"val ({len(avletters.splits['val'])} samples, trained on)"
    assert split_label(avletters, "test", trained) == f"test ({len(avletters.splits['test'])} samples)"
    assert trained_splits(shipped[1:]) == {"train", "val"}
    assert trained_splits([_validation_held_out(shipped[1])]) == {"train"}  # selects on val: not trained on


def test_the_training_page_warns_when_its_validation_curves_are_training_data():
    avl = [load_checkpoint(ROOT / "checkpoints" / n) for n in ("avletters_conv_calon", "avletters_conv_caloff")]
    note = history_fit_note(avl)
    assert note is not None and "avletters_conv_calon and avletters_conv_caloff" in note
    assert "'val' split" in note and "fit, not generalisation" in note
    utd = [_validation_held_out(load_checkpoint(ROOT / "checkpoints" / n))
           for n in ("utd_mhad_conv_calon", "utd_mhad_conv_caloff")]
    assert history_fit_note(utd) is None  # validation held out: its curves are generalisation
    assert "avletters_conv_calon trained" in history_fit_note([avl[0], utd[1]])  # only the one that did


# --------------------------------------------------------------------------------------------------
# The start page's demo: the prepared example and what is said about it
# --------------------------------------------------------------------------------------------------


def test_top_margin_is_the_lead_of_the_top_class():
    from precal.dashboard.backend.demo import top_margin

    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.34, 0.33, 0.33]]))
    prob, margin = top_margin(logits)
    np.testing.assert_allclose(prob, [0.7, 0.34])
    np.testing.assert_allclose(margin, [0.5, 0.01])


def test_prepared_example_reports_what_the_swap_did_to_that_sample(pair, splits):
    """Its margin and gates are those of the same sample in a swap of the whole split (the sweep's,
    same seed): the start page's sentence describes what the lab will show."""
    from precal.dashboard.backend.demo import prepared_example, top_margin
    from precal.robustness.corruptions import apply_corruption

    views = [ModelView(CALIBRATED, pair.calibrated, True, "on"), ModelView(UNCALIBRATED, pair.uncalibrated, False, "off")]
    ex = prepared_example(views, splits, "skeleton", chunk_size=3)
    assert ex is not None
    batch = splits.batch_for(pair.calibrated)
    swapped = apply_corruption(batch, "skeleton", pair.calibrated.schema.modality("skeleton").kind, "swap", 5, 0,
                               pool=batch)
    p = predict_view(views[0], swapped.batch)
    clean = predict_view(views[0], batch)
    _, margin = top_margin(p.logits)
    m = list(clean.modalities).index("skeleton")
    row = int(np.flatnonzero(splits.indices == ex.index)[0])
    assert ex.margin == pytest.approx(float(margin[row]), abs=1e-5)
    assert ex.alpha_clean == pytest.approx(float(clean.alpha[row, m]), abs=1e-5)
    assert ex.alpha_swapped == pytest.approx(float(p.alpha[row, m]), abs=1e-5)


def test_candidate_chunks_cover_the_split_once_each_spread_over_it():
    from precal.dashboard.backend.demo import candidate_chunks

    assert [c.tolist() for c in candidate_chunks(5, 64)] == [[0, 1, 2, 3, 4]]
    chunks = candidate_chunks(430, 64)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(430))
    assert all(len(c) <= 64 for c in chunks) and len(chunks) == 7
    assert all(c[0] < 7 and c[-1] > 430 - 8 for c in chunks)  # each from the start to the end of the split


def _counting(seen):
    from precal.dashboard.backend.demo import _predict_now

    def predict(view, batch, variant):
        seen.append((view.key, variant, batch.size))
        return _predict_now(view, batch, variant)
    return predict


def test_prepared_example_looks_no_further_than_the_first_chunk_that_shows_everything():
    """Its cost does not grow with the split: on the shipped UTD-MHAD pair the search stops at the
    first chunk holding a sample that shows everything, and the lab, swapping that one sample
    against the whole split, shows the very gate drop the start page promised."""
    from precal.dashboard.backend.demo import EXAMPLE_CANDIDATES, candidate_chunks, prepared_example

    ckpts, problems = load_checkpoints([ROOT / "checkpoints" / f"utd_mhad_sequence_{s}" for s in ("calon", "caloff")])
    assert not problems
    shipped = pair_checkpoints(ckpts)[0]
    split = split_batches(shipped, load_dataset(ROOT / "sample_data" / "utd_mhad"), "test")
    views = shipped.views(None)
    seen = []
    ex = prepared_example(views, split, "skeleton", predict=_counting(seen))
    assert ex is not None and ex.shows_everything
    chunks = candidate_chunks(split.size)
    assert len(chunks) > 1 and len(seen) == 3  # one chunk: three passes (calibrated clean and swapped, uncalibrated)
    assert all(n <= EXAMPLE_CANDIDATES for *_, n in seen) and len({(k, v) for k, v, _ in seen}) == 3  # a cache key each
    assert ex.index in split.indices[chunks[0]]
    lab = lab_update(views, split, ex.index, {"skeleton": LabSetting(swap=True)})
    m = lab.clean[CALIBRATED].modalities.index("skeleton")
    assert lab.clean[CALIBRATED].alpha[m] == pytest.approx(ex.alpha_clean, abs=1e-4)
    assert lab.corrupted[CALIBRATED].alpha[m] == pytest.approx(ex.alpha_swapped, abs=1e-4)


def test_without_a_sample_that_shows_everything_the_search_stops_after_max_chunks(pair, splits):
    """The tiny, barely trained pair has no such sample: the first max_chunks chunks are looked at
    and no more (a large split must not cost a pass over all of it), the example is the best of
    those, as one pass over the same rows would choose."""
    from precal.dashboard.backend.demo import candidate_chunks, prepared_example

    views = [ModelView(CALIBRATED, pair.calibrated, True, "on"), ModelView(UNCALIBRATED, pair.uncalibrated, False, "off")]
    chunks = candidate_chunks(splits.size, 2)
    assert len(chunks) > 3
    seen = []
    ex = prepared_example(views, splits, "skeleton", predict=_counting(seen), chunk_size=2, max_chunks=3)
    assert ex is not None and not ex.shows_everything
    assert len(seen) == 3 * 3
    assert ex.index in splits.indices[np.concatenate(chunks[:3])]
    everything = prepared_example(views, splits, "skeleton", chunk_size=splits.size)
    assert everything is not None and not everything.shows_everything
    if everything.index in splits.indices[np.concatenate(chunks[:3])]:  # the best overall was among those looked at
        assert ex.index == everything.index


def test_the_start_page_says_why_it_shows_the_pair_without_claiming_a_choice_nobody_made():
    from precal.dashboard.backend.demo import why_shown

    assert "stored results" in why_shown(True, True)
    opened = why_shown(True, False)  # the default pair of models without stored sweeps
    assert "sidebar" not in opened and "stored results show" not in opened and "no pair has a stored" in opened
    assert "sidebar" in why_shown(False, True) and "sidebar" in why_shown(False, False)


def test_example_sentence_says_only_what_the_example_shows():
    from precal.dashboard.backend.demo import PreparedExample, example_sentence

    held = PreparedExample(0, "audio", 1.37, 0.12, True, False, probability=0.81, margin=0.7)
    guess = dataclasses.replace(held, probability=0.054, margin=0.004)
    flat = dataclasses.replace(held, alpha_clean=1.0, alpha_swapped=1.0)
    assert "watch its gate drop (alpha 1.37 → 0.12) and the calibrated prediction hold" in example_sentence(held, "audio", "test")
    text = example_sentence(guess, "audio", "test")
    assert "hold" not in text and "only just (probability 0.05" in text
    text = example_sentence(flat, "audio", "test")
    assert "drop" not in text and "does not react" in text
    wrong = dataclasses.replace(held, calibrated_correct=False)
    assert "wrong all the same" in example_sentence(wrong, "audio", "test")


def test_a_zero_or_negative_difference_is_not_shown_as_a_gain():
    from precal.dashboard.backend.formatting import delta_style, points_text

    assert points_text(0.0) == points_text(-0.0001) == "±0.0 pts"
    assert delta_style(0.0) == delta_style(0.0004) == ("off", "off")
    assert points_text(0.012) == "+1.2 pts" and delta_style(0.012) == ("normal", "auto")
    assert points_text(-0.05) == "-5.0 pts" and delta_style(-0.05) == ("normal", "auto")  # red, arrow down


def test_choose_example_prefers_a_dropped_gate_then_a_clear_lead_to_a_bigger_gate_drop():
    from precal.dashboard.backend.demo import choose_example

    affected = np.array([True, True, True, False])
    drop = np.array([1.2, 0.3, 1.5, 1.9])
    ok = np.array([True, True, False, True])
    margin = np.array([0.004, 0.5, 0.9, 0.9])  # row 0: right at chance level over many classes
    assert choose_example(affected, drop, ok, margin, None) == 1
    assert choose_example(affected, drop, ok, margin, np.array([True, True, False, False])) == 1
    # no clear lead anywhere: right at all, then the drop
    assert choose_example(affected, drop, ok, np.full(4, 0.01), None) == 0
    assert choose_example(np.zeros(4, bool), drop, ok, margin, None) is None
    # a gate that does not react shows nothing of the calibrator, however well the prediction holds
    assert choose_example(affected, np.array([0.01, 0.3, 0.0, 0.0]), np.array([True, False, True, True]),
                          np.array([0.9, 0.01, 0.9, 0.9]), None) == 1


def test_varying_groups_leave_out_a_group_with_one_value_on_the_split():
    from precal.dashboard.backend.data import varying_groups

    groups = {"speaker": np.array(["a", "b", "a", "c"]), "repetition": np.array(["1", "1", "1", "2"])}
    assert varying_groups(groups, np.array([0, 1, 2, 3])) == ["speaker", "repetition"]
    assert varying_groups(groups, np.array([0, 1, 2])) == ["speaker"]


def test_selection_accuracy_headers_are_short(pair, splits):
    from precal.dashboard.backend.embeddings import selection_summary

    p = predict_view(ModelView(CALIBRATED, pair.calibrated, True, "on"), splits.batch_for(pair.calibrated))
    summary = selection_summary(np.arange(3), ["c"] * len(p.labels), [("calibrated (a long model name)", p)], p)
    assert list(summary["accuracy"].columns) == ["model", "selection", "whole split"]


def test_corruption_words_use_the_catalogue_titles_and_units():
    from precal.dashboard.backend.url_state import ModalityControls, corruption_words

    assert corruption_words("gaussian_noise", 5) == "Gaussian noise, −5 dB SNR"
    assert corruption_words("temporal_mask", 4) == "Gap in time, 60% of steps"
    assert corruption_words("no_such", 2) == "no_such s2"
    assert ModalityControls("gaussian_noise", 5).words() == "Gaussian noise, −5 dB SNR"


def test_long_robustness_panel_titles_break_before_their_unit():
    from precal.dashboard.backend.robustness import severity_facets

    titles = dict((n, t) for n, t, _ in severity_facets(["gaussian_noise", "swap"]))
    assert titles["gaussian_noise"] == "Gaussian noise (dB SNR)"
    assert titles["swap"] == "Swapped with another sample<br>(% of samples)"


def test_gated_alpha_reads_gates_only_of_models_that_have_them():
    """In a comparison the table's roles are the views' names: alpha counts for the gated view (and
    a stored sweep's own calibrated rows), never for a model without gates."""
    from precal.dashboard.backend.robustness import gated_alpha

    frame = pd.DataFrame({"role": ["model A", "model B", CALIBRATED, UNCALIBRATED], "modality": ["depth"] * 4,
                          "alpha_depth": [0.6, 1.0, 0.8, 1.0]})
    views = [ModelView("model A", None, True, "A"), ModelView("model B", None, False, "B")]
    got = gated_alpha(frame, views)
    assert list(got[[0, 2]]) == [0.6, 0.8] and np.isnan(got[1]) and np.isnan(got[3])
