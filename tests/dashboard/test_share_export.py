"""Issue 24 under ``streamlit.testing.v1.AppTest``: a view lives in its URL and is restored from it;
exports contain what the page shows; any two checkpoints compare; slices per group; vector
modalities get real corruptions in the lab; probability calibration; the lab's donor, history and
whole-split run."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.dashboard.fixtures import variant, vector_checkpoint  # noqa: E402
from tests.dashboard.test_app import APP, TIMEOUT, _clean, _env, _restore, _texts, _vega_charts  # noqa: E402
from tests.dashboard.test_app import app, tiny  # noqa: E402,F401 (the fixtures: the tiny pair in the app)


def _prediction_cards(at: AppTest) -> list:
    """The predicted class names of the lab's prediction cards, in column order."""
    out = []
    for m in at.markdown:
        text = str(m.value)
        if "prediction on the corrupted input" in text:
            out.append(text.split("line-height:1.3;margin:0.2rem 0 0.4rem 0'>", 1)[1].split("</div>", 1)[0])
    return out


def _export(at: AppTest, key: str):
    """The file the download button ``key`` gives when clicked (its maker, kept by the page)."""
    data = at.session_state["_exports"][key]()
    return data.decode("utf-8") if isinstance(data, bytes) else data


# ---- 1. a view in its URL ------------------------------------------------------------------------


def test_lab_writes_its_state_to_the_url_and_a_fresh_session_restores_it(app, tiny):
    app.switch_page("views/lab.py").run()
    app.selectbox(key="lab_sample").set_value(app.selectbox(key="lab_sample").options[3]).run()
    app.selectbox(key="lab_corr_depth").set_value("dead_pixels").run()
    next(s for s in app.select_slider if s.key.startswith("lab_sev_depth")).set_value(5).run()
    app.radio(key="lab_input_skeleton").set_value("swap").run()
    app.number_input(key="lab_seed").set_value(7).run()
    _clean(app, "lab with controls")
    params = dict(app.query_params)
    assert params["c.depth"] == "dead_pixels:5"
    assert params["in.skeleton"] == "swap"
    assert params["seed"] == "7"
    assert params["sample"] == app.selectbox(key="lab_sample").value
    assert params["pair"] and params["split"] == "test"
    shown = _texts(app)
    cards = _prediction_cards(app)
    assert len(cards) == 2

    fresh = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    fresh.query_params.update(params)
    fresh.run()
    fresh.switch_page("views/lab.py").run()
    _clean(fresh, "lab restored from its URL")
    assert fresh.selectbox(key="lab_corr_depth").value == "dead_pixels"
    assert next(s for s in fresh.select_slider if s.key.startswith("lab_sev_depth")).value == 5
    assert fresh.radio(key="lab_input_skeleton").value == "swap"
    assert fresh.number_input(key="lab_seed").value == 7
    assert fresh.selectbox(key="lab_sample").value == params["sample"]
    assert _prediction_cards(fresh) == cards
    line = next(t for t in shown.splitlines() if t.startswith("**Sample"))
    assert line.split(" · update took")[0] in _texts(fresh)  # the same sample, corruption and donor
    assert {k: v for k, v in fresh.query_params.items()} == params


def test_a_link_with_values_that_do_not_fit_opens_the_defaults(app):
    fresh = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    fresh.query_params.update({"c.depth": "no_such_corruption:9", "in.inertial": "explode", "sample": "nobody",
                               "split": "nowhere", "pair": "nothing", "seed": "-3"})
    fresh.run()
    fresh.switch_page("views/lab.py").run()
    _clean(fresh, "lab from a bad link")
    assert fresh.selectbox(key="lab_corr_depth").value == "none"
    assert fresh.radio(key="lab_input_inertial").value == "keep"
    assert fresh.number_input(key="lab_seed").value == 0


def test_embeddings_method_and_colouring_live_in_the_url(app):
    app.switch_page("views/embeddings.py").run()
    app.radio(key="emb_method").set_value("tsne").run()
    app.selectbox(key="emb_colour").set_value("correctness").run()
    _clean(app, "embeddings")
    params = dict(app.query_params)
    assert params["method"] == "tsne" and params["colour"] == "correctness"
    fresh = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    fresh.query_params.update(params)
    fresh.run()
    fresh.switch_page("views/embeddings.py").run()
    _clean(fresh, "embeddings restored")
    assert fresh.radio(key="emb_method").value == "tsne"
    assert fresh.selectbox(key="emb_colour").value == "correctness"


# ---- 2. exports ------------------------------------------------------------------------------------


def test_lab_report_and_csv_contain_what_the_lab_shows(app):
    app.switch_page("views/lab.py").run()
    app.radio(key="lab_input_depth").set_value("remove").run()
    _clean(app, "lab removal")
    report = _export(app, "lab_report")
    sid = app.selectbox(key="lab_sample").value
    assert report.startswith("<!DOCTYPE html>") and sid in report
    for name in _prediction_cards(app):
        assert f"<div class=big>{name}</div>" in report
    assert "depth: removed" in report  # the controls, in words
    assert "n/a (absent)" in report  # the removed modality's gate, as on the page
    sentences = [line[2:] for t in (str(m.value) for m in app.markdown) if "Why the calibrated model" in t
                 for line in t.splitlines()[1:]]
    assert sentences and all(s.split(" (clean input:")[0].replace("**changed here** · ", "") in report
                             for s in sentences)
    assert "<script" not in report
    assert "http://" not in report.replace("http://www.w3.org/2000/svg", "").split("link to this view")[0]
    assert "<svg" in report and "data:image/png;base64," in report  # inline figures, no files beside it
    table = pd.read_csv(io.StringIO(_export(app, "lab_changes_csv")))
    changes = _vega_charts(app)["change from the clean input, per model"][1]["changes"]
    mine = changes[(changes["role"] == "calibrated") & changes["change"].notna()]
    csv = table[table["role"] == "calibrated"].set_index(["modality", "quantity"])["change"]
    for _, r in mine.iterrows():
        assert csv[(r["modality"], r["quantity"].replace("Δ ", ""))] == pytest.approx(r["change"], abs=1e-6)


def test_explorer_report_names_the_sample_models_and_explanation(app):
    app.switch_page("views/explorer.py").run()
    _clean(app, "explorer")
    report = _export(app, "ex_report")
    sid = str(app.session_state["sample_id"])
    assert sid in report
    assert all(v.label in report for v in app.session_state["_ctx"].views)
    assert any(i.value in report for i in app.info)  # the explanation sentence shown on the page
    assert "model sees" not in report  # the explorer draws the recording itself
    assert "no gates: alpha fixed at 1, cues unused" in report  # the uncalibrated model's cues, with the caveat
    assert "link to this view" not in report or "http" in report.split("link to this view")[1][:40]
    # the way back to this view: the page's parameters, taken while the page ran (AppTest has no address)
    assert "view parameters" in report and f"sample={sid}" in report and "/explorer?" in report


def test_lab_report_names_its_charts_and_keeps_legends_whole(app):
    app.switch_page("views/lab.py").run()
    app.selectbox(key="lab_corr_inertial").set_value("gaussian_noise").run()
    report = _export(app, "lab_report")
    assert "class probabilities on the corrupted input" in report and "class probabilities on the clean input" in report
    for v in app.session_state["_ctx"].views:  # whole model labels in the legends
        assert report.count(f">{v.label}</text>") >= 2
    assert "inertial: Gaussian noise, 5 dB SNR" in report
    assert "href='/lab" not in report and ">/lab?" not in report  # no relative link: useless from a file
    assert "view parameters" in report or "link to this view" in report


def test_report_heatmap_has_coefficient_labels_time_and_colour_scale():
    import numpy as np

    from precal.dashboard.backend import svg

    bar = "data:image/png;base64,AAAA"
    out = svg.heatmap([("clean", bar), ("model sees", bar)], "audio", [(0.05, "c1"), (0.95, "ΔlogE")],
                      [(0.0, "0.00"), (1.0, "1.30")], "time (s)", "MFCC / energy coefficient",
                      (bar, -2.0, 3.0, "coefficient value"))
    for text in (">c1<", ">ΔlogE<", ">1.30<", ">time (s)<", ">coefficient value<", ">3<", ">-2<"):
        assert text in out
    assert np.isfinite(len(out))


def test_view_link_is_absolute_when_the_server_address_is_known(monkeypatch):
    from precal.dashboard.backend.report import link_facts
    from precal.dashboard.ui import exports

    monkeypatch.setattr(exports, "_served_from", lambda: "http://127.0.0.1:8622")
    link = exports.view_link("lab", {"pair": "a b", "c.depth": "blur:3"})
    assert link == "http://127.0.0.1:8622/lab?pair=a+b&c.depth=blur%3A3"
    assert link_facts(link) == [("link to this view", link)]
    monkeypatch.setattr(exports, "_served_from", lambda: "")
    facts = dict(link_facts(exports.view_link("lab", {"pair": "x"})))
    assert facts["view parameters"] == "pair=x" and "link to this view" not in facts


def test_computed_sweep_downloads_as_csv(app):
    app.switch_page("views/robustness.py").run()
    app.multiselect(key="rob_mods").set_value(["depth"])
    app.multiselect(key="rob_sevs").set_value([0, 5])
    app.button[0].click().run()
    _clean(app, "robustness computed")
    table = pd.read_csv(io.StringIO(_export(app, "rob_csv")))
    assert set(table["modality"]) == {"depth"} and {"calibrated", "uncalibrated"} <= set(table["role"])
    assert set(table["severity"]) == {0, 5}


# ---- 3. any two checkpoints ----------------------------------------------------------------------------


def test_two_arbitrary_checkpoints_compare_on_every_page(tiny, tmp_path):
    variant(tiny["on"], tmp_path / "tiny_s1_calon", {"seed": 1})
    variant(tiny["on"], tmp_path / "tiny_s2_calon", {"seed": 2})
    old = _env([tiny["on"], tiny["off"], tmp_path])
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        at.radio(key="compare_mode").set_value("compare").run()
        _clean(at, "compare mode")
        at.selectbox(key="cmp_a").set_value("tiny_s1_calon").run()
        at.selectbox(key="cmp_b").set_value("tiny_s2_calon").run()
        _clean(at, "A vs B")
        views = at.session_state["_ctx"].views
        assert [v.role for v in views] == ["model A", "model B"]
        assert views[0].label.startswith("A: tiny_s1_calon") and views[1].label.startswith("B: tiny_s2_calon")
        for page in ("views/overview.py", "views/explorer.py", "views/lab.py", "views/embeddings.py",
                     "views/slices.py", "views/calibration.py", "views/robustness.py", "views/training.py"):
            at.switch_page(page).run()
            _clean(at, f"A vs B: {page}")
        at.switch_page("views/lab.py").run()
        charts = _vega_charts(at)
        panels = charts["class probabilities: clean vs corrupted input"][1]["probabilities"]
        assert set(panels["role"]) == {"model A", "model B"}
        assert any("A: tiny_s1_calon" in str(m.value) for m in at.markdown)
        at.switch_page("views/overview.py").run()
        seeds = [d.value for d in at.dataframe if "configuration" in d.value.columns]
        assert seeds and seeds[0]["seeds"].max() == 3  # seeds 0, 1, 2 of the calibrated configuration
        assert seeds[0]["accuracy"].str.contains("±").all()
        assert dict(at.query_params)["a"] == "tiny_s1_calon" and dict(at.query_params)["cmp"] == "1"
    finally:
        _restore(old)


def test_a_model_against_its_own_calibrator_switched_off(app):
    app.radio(key="compare_mode").set_value("compare").run()
    a = app.selectbox(key="cmp_a").value
    app.selectbox(key="cmp_b").set_value(a + "@off").run()
    _clean(app, "A vs A@off")
    app.switch_page("views/lab.py").run()
    _clean(app, "lab A vs A switched off")
    assert any("Its alpha is fixed at 1" in c.value for c in app.caption)


# ---- 5. slices ----------------------------------------------------------------------------------------


def test_slice_table_per_group_opens_its_samples(app):
    app.switch_page("views/slices.py").run()
    _clean(app, "slices")
    assert app.radio(key="sl_group").value == "trial"  # the test split holds one subject: not offered
    assert "Not offered: subject" in "\n".join(str(c.value) for c in app.caption)
    table = next(d.value for d in app.dataframe if "trial" in d.value.columns)
    ctx = app.session_state["_ctx"]
    assert table["samples"].sum() == ctx.splits.size
    assert {"accuracy · " + v.role for v in ctx.views} <= set(table.columns)
    assert any(c.startswith("alpha ") for c in table.columns)
    trial = str(table["trial"].iloc[0])
    app.session_state["sl_value"] = trial
    app.run()
    _clean(app, "slice opened")
    assert dict(app.query_params)["slice"] == trial
    members = next(d.value for d in app.dataframe if "sample id" in d.value.columns)
    assert len(members) == int(table["samples"].iloc[0])
    csv = pd.read_csv(io.StringIO(_export(app, "sl_csv")))
    assert list(csv["samples"]) == list(table["samples"])
    assert _export(app, "sl_svg").startswith("<svg")
    app.radio(key="sl_group").set_value("class").run()
    _clean(app, "slices by class")


# ---- 6. the lab: donor, history, many samples -------------------------------------------------------------


def test_lab_named_and_most_conflicting_donors(app):
    app.switch_page("views/lab.py").run()
    app.radio(key="lab_input_skeleton").set_value("swap").run()
    options = app.selectbox(key="lab_donor_skeleton").options
    named = options[3]
    app.selectbox(key="lab_donor_skeleton").set_value(named.split(" · ")[0]).run()
    _clean(app, "named donor")
    assert f"(donor {named.split(' · ')[0]}," in _texts(app)
    assert dict(app.query_params)["d.skeleton"] == named.split(" · ")[0]
    app.selectbox(key="lab_donor_skeleton").set_value("conflict").run()
    _clean(app, "most conflicting donor")
    assert "skeleton: swapped (donor" in _texts(app)


def test_lab_history_steps_back(app):
    app.switch_page("views/lab.py").run()
    app.radio(key="lab_input_depth").set_value("remove").run()
    app.selectbox(key="lab_corr_inertial").set_value("gaussian_noise").run()
    assert "inertial: Gaussian noise, 5 dB SNR" in _texts(app)
    app.button(key="lab_back").click().run()
    _clean(app, "stepped back")
    assert app.selectbox(key="lab_corr_inertial").value == "none"
    assert app.radio(key="lab_input_depth").value == "remove"
    assert "depth: removed" in _texts(app) and "Gaussian noise" not in _texts(app)


def test_lab_history_holds_only_states_that_change_the_input(app):
    """Drawing another input is a change of view, not of the model's input: no history entry, so
    the first step back undoes the last real change."""
    app.switch_page("views/lab.py").run()
    app.selectbox(key="lab_corr_inertial").set_value("gaussian_noise").run()
    drawn = app.radio(key="lab_draw")
    drawn.set_value(next(o for o in drawn.options if o != drawn.value)).run()
    history = app.session_state["lab_history"]
    assert len(history) == 2 and len({h for h in history}) == 2
    labels = [str(b.label) for b in app.button if str(b.key or "").startswith("lab_hist_")]
    assert labels and all("gaussian_noise" not in t for t in labels)
    app.button(key="lab_back").click().run()
    _clean(app, "stepped back")
    assert app.selectbox(key="lab_corr_inertial").value == "none"


def test_lab_corruption_on_the_whole_split_and_on_a_slice(app):
    app.switch_page("views/lab.py").run()
    app.radio(key="lab_input_depth").set_value("remove").run()
    app.button(key="lab_many_go").click().run()
    _clean(app, "whole split")
    table = next(d.value for d in app.dataframe if "input" in d.value.columns and "accuracy" in d.value.columns)
    n = app.session_state["_ctx"].splits.size
    assert set(table["samples"]) == {n} and set(table["input"]) == {"clean", "corrupted"}
    cal = table[table["model"].str.startswith("calibrated")].set_index("input")
    assert cal.loc["corrupted", "alpha depth"] == "n/a (absent)" and cal.loc["clean", "alpha depth"][0].isdigit()
    assert cal.loc["clean", "alpha inertial"] != cal.loc["corrupted", "alpha inertial"]
    uncal = table[table["model"].str.startswith("uncalibrated")]
    alphas = [c for c in table.columns if c.startswith("alpha ")]
    assert (uncal[alphas] == "n/a (no gates)").all().all()  # never "None" for a model without gates
    for frame in [d.value for d in app.dataframe if "model" in d.value.columns]:
        assert not frame.isna().any().any()
    csv = pd.read_csv(io.StringIO(_export(app, "lab_many_csv")))
    assert not csv.isna().any().any() and set(csv.loc[csv["model"].str.startswith("uncalibrated"), alphas].stack()) \
        == {"n/a (no gates)"}
    app.selectbox(key="lab_many_scope").set_value("class").run()
    app.button(key="lab_many_go").click().run()
    _clean(app, "one class")
    table = next(d.value for d in app.dataframe if "input" in d.value.columns and "accuracy" in d.value.columns)
    assert table["samples"].max() < n


# ---- 7. vector modalities --------------------------------------------------------------------------------


def test_vector_corruptions_change_a_vector_modality_in_the_lab():
    vec = vector_checkpoint()
    old = _env([vec["vec_on"]])
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        at.switch_page("views/lab.py").run()
        _clean(at, "vector lab")
        captions = "\n".join(str(c.value) for c in at.caption)
        assert "as the model sees it now" in captions and "resampled" not in captions  # a vector has no length
        options = at.selectbox(key="lab_corr_vector_1").options
        assert len(options) >= 4  # none + noise, dropout, gain errors (+ blanking)
        for corruption, unit in (("gaussian_noise", "dB"), ("element_dropout", "%"), ("feature_scaling", "%")):
            at.selectbox(key="lab_corr_vector_1").set_value(corruption).run()
            _clean(at, f"vector {corruption}")
            slider = next(s for s in at.select_slider if s.key.startswith(f"lab_sev_vector_1_{corruption}"))
            assert unit in slider.format_func(3)  # labelled in the corruption's unit
            slider.set_value(5).run()
            from precal.dashboard.backend.url_state import corruption_words

            assert f"vector_1: {corruption_words(corruption, 5)}" in _texts(at)
            assert at.radio(key="lab_draw").value == "vector_1"
            frame = next(d["vector"] for _, d in _vega_charts(at).values() if "vector" in d)
            clean = frame[frame["input"] == "clean"]["value"].to_numpy()
            now = frame[frame["input"] == "corrupted"]["value"].to_numpy()
            assert len(clean) == len(now) > 0 and (abs(clean - now) > 1e-6).any()  # the input itself changed
            assert _delta_any(at)  # and the models see it: some gate or cue moved
    finally:
        _restore(old)


def _delta_any(at: AppTest) -> bool:
    changes = _vega_charts(at)["change from the clean input, per model"][1]["changes"]
    return bool((changes["change"].abs() > 1e-6).any())


# ---- 8. probability calibration --------------------------------------------------------------------------


def test_probability_calibration_clean_and_corrupted(app):
    app.switch_page("views/calibration.py").run()
    _clean(app, "probability calibration")
    table = next(d.value for d in app.dataframe if "ECE" in d.value.columns)
    assert len(table) == 2 and table["ECE"].between(0, 1).all()
    app.selectbox(key="pc_corr").set_value("gaussian_noise").run()
    _clean(app, "calibration under noise")
    table = next(d.value for d in app.dataframe if "ECE" in d.value.columns)
    assert len(table) == 4 and table["input"].str.contains("Gaussian noise").sum() == 2
    # the model's name stands alone in its column (one cell with both was cut off mid-name)
    views = app.session_state["_ctx"].views
    assert set(table["model"]) == {v.label for v in views}
    assert "clean" in set(table["input"]) and table["input"].str.contains(" dB SNR").sum() == 2
    assert "reliability diagram · test" in _vega_charts(app)
    assert "<svg" in _export(app, "pc_svg") and "ECE" in _export(app, "pc_csv")
    assert any("not to be confused with the pre-fusion calibrator" in c.value.lower() for c in app.caption)


def test_slices_writes_its_url_when_no_row_is_selected(app):
    """Opened from the sidebar, the page stops early (no row selected); the address must still
    carry the models, the split and the grouping."""
    app.switch_page("views/slices.py").run()
    _clean(app, "slices")
    params = dict(app.query_params)
    assert params.get("by") == app.radio(key="sl_group").value
    assert {"pair", "split"} <= set(params)


def test_slices_offers_no_grouping_with_a_single_value_on_the_split(app):
    from precal.dashboard.backend.slices import BY_CLASS, grouping_choices, slice_labels

    app.switch_page("views/slices.py").run()
    ctx = app.session_state["_ctx"]
    offered, single = grouping_choices(ctx.data, ctx.splits)
    assert offered[-1] == BY_CLASS
    for g in offered[:-1]:
        assert len(set(slice_labels(ctx.data, ctx.splits, g))) > 1
    assert app.radio(key="sl_group").options == [("class (true label)" if g == BY_CLASS else g) for g in offered]
    assert app.radio(key="sl_group").value == offered[0]


def test_grouping_choices_leave_out_a_group_with_one_value():
    """AVLetters' test split is all repetition r3: the default grouping is the next group."""
    import numpy as np

    from precal.dashboard.backend.slices import BY_CLASS, grouping_choices

    class Schema:
        task = "classification"

    class Data:
        schema = Schema()
        groups = {"repetition": np.array(["r1", "r3", "r3", "r3"]), "speaker": np.array(["a", "b", "a", "b"])}

    class Splits:
        indices = np.array([1, 2, 3])

    assert grouping_choices(Data(), Splits()) == (["speaker", BY_CLASS], ["repetition"])


def _stored_sweep(folder: Path, name: str) -> None:
    """A small ``robustness.csv`` of one calibrated checkpoint next to its weights."""
    rows = ["checkpoint,role,modality,corruption,severity,metric,value,n,alpha_depth,alpha_inertial,alpha_skeleton,"
            "auroc_conflict,auroc_support,auroc_alpha"]
    for sev, acc, alpha in ((0, 0.8, 1.2), (3, 0.6, 0.7), (5, 0.4, 0.3)):
        aurocs = ",," if sev == 0 else "0.6,0.7,0.8"
        rows.append(f"{name},calibrated,depth,gaussian_noise,{sev},accuracy,{acc},12,{alpha},1.0,1.0,{aurocs}")
    (folder / "robustness.csv").write_text("\n".join(rows) + "\n")


def _a_vs_b(tiny, folder: Path, page: str, stored_sweeps: bool = False) -> AppTest:
    """The app comparing two calibrated seeds of the tiny model (A: seed 1, B: seed 2) on ``page``;
    call inside ``_env``. With ``stored_sweeps`` each has a ``robustness.csv`` beside it."""
    for name, seed in (("tiny_s1_calon", 1), ("tiny_s2_calon", 2)):
        made = variant(tiny["on"], folder / name, {"seed": seed})
        if stored_sweeps:
            _stored_sweep(made, name)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.radio(key="compare_mode").set_value("compare").run()
    at.selectbox(key="cmp_a").set_value("tiny_s1_calon").run()
    at.selectbox(key="cmp_b").set_value("tiny_s2_calon").run()
    return at.switch_page(f"views/{page}.py").run()


def test_a_vs_b_robustness_reads_both_stored_sweeps_and_names_the_models(tiny, tmp_path):
    old = _env([tiny["on"], tiny["off"], tmp_path])
    try:
        at = _a_vs_b(tiny, tmp_path, "robustness", stored_sweeps=True)
        _clean(at, "A vs B robustness")
        assert not any("No stored sweep" in str(i.value) for i in at.info)
        summary = next(d.value for d in at.dataframe if any(str(c).startswith("RR ") for c in d.value.columns))
        assert {"RR model A", "RR model B", "ER of model A against model B"} <= set(summary.columns)
        assert not any("calibrated" in str(c) for c in summary.columns)
        alpha_charts = [c for c in at.get("plotly_chart") if "mean alpha of depth" in c.proto.spec]
        assert len(alpha_charts) == 2  # one per gated model
        assert any("A: tiny_s1_calon" in c.proto.spec for c in alpha_charts)
        assert any("B: tiny_s2_calon" in c.proto.spec for c in alpha_charts)
    finally:
        _restore(old)


def test_a_vs_b_lab_shows_the_gates_of_both_gated_models(tiny, tmp_path):
    old = _env([tiny["on"], tiny["off"], tmp_path])
    try:
        at = _a_vs_b(tiny, tmp_path, "lab")
        _clean(at, "A vs B lab")
        titles = list(_vega_charts(at))
        cues = [t for t in titles if t.endswith("gates and cues, clean vs corrupted")]
        assert len(cues) == 2 and cues[0].startswith("A: tiny_s1_calon") and cues[1].startswith("B: tiny_s2_calon")
        assert len([t for t in titles if "clean (●) → corrupted (✕)" in t]) == 2  # a map per gated model
        why = [str(m.value) for m in at.markdown if str(m.value).startswith("**Why ")]
        assert len(why) == 2 and "A: tiny_s1_calon" in why[0] and "B: tiny_s2_calon" in why[1]
    finally:
        _restore(old)
