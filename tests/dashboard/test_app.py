"""The Streamlit app (dashboard/app.py) under ``streamlit.testing.v1.AppTest``: every page renders,
lab controls change what is shown, bad inputs give readable errors instead of tracebacks.

Arguments reach the app through PRECAL_CHECKPOINTS / PRECAL_DATA, the same variables
``precal dashboard`` sets. Checkpoints are the tiny fixture pair of tests/dashboard/fixtures.py.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd
import pytest


pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402

from precal.dashboard import settings, worker
from precal.dashboard.backend.pairs import REFERENCE_SWITCHED_OFF
from precal.dashboard.settings import ENV_CHECKPOINTS, ENV_DATA
from precal.models.model import CALIBRATED, UNCALIBRATED
from tests.dashboard.fixtures import tiny_checkpoints  # noqa: E402

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGES = ["views/start.py", "views/overview.py", "views/explorer.py", "views/lab.py", "views/embeddings.py",
         "views/robustness.py", "views/training.py"]
TIMEOUT = 120


@pytest.fixture(scope="module")
def tiny():
    return tiny_checkpoints()


def _env(checkpoints: Sequence[Path | str], data: str | None = None):
    old = {k: os.environ.get(k) for k in (ENV_CHECKPOINTS, ENV_DATA, "PRECAL_DASHBOARD_WARMUP",
                                          "PRECAL_DASHBOARD_THREADS")}
    os.environ[ENV_CHECKPOINTS] = os.pathsep.join(str(c) for c in checkpoints)
    if data is None:
        os.environ.pop(ENV_DATA, None)
    else:
        os.environ[ENV_DATA] = data
    os.environ["PRECAL_DASHBOARD_WARMUP"] = "0"  # no background numba compile competing with the tests
    os.environ["PRECAL_DASHBOARD_THREADS"] = "0"  # leave this process's torch thread count alone
    return old


def _restore(old) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def app(tiny) -> Iterator[AppTest]:
    old = _env([tiny["on"], tiny["off"]])
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        at.run()
        yield at
    finally:
        _restore(old)


def _clean(at: AppTest, where: str) -> None:
    assert not at.exception, f"{where}: {[e.value for e in at.exception]}"
    assert not at.error, f"{where}: {[e.value for e in at.error]}"


def _texts(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in at.markdown)


def _delta(at: AppTest):
    """The calibrated model's part of the lab's 'change from the clean input' chart, as a
    modality x quantity table of numbers (the chart holds both models, one panel each)."""
    changes = _vega_charts(at)["change from the clean input, per model"][1]["changes"]
    assert list(dict.fromkeys(changes["role"])) == [CALIBRATED, UNCALIBRATED]
    numbers = changes["change"].notna()
    assert (changes.loc[numbers, "label"] == changes.loc[numbers, "change"].map(lambda x: f"{x:+.3f}")).all()
    mine = changes[changes["role"] == CALIBRATED]
    return mine.pivot(index="modality", columns="quantity", values="change")


def test_every_page_renders(app):
    _clean(app, "start")
    assert any("Pre-fusion calibration in one minute" in t.value for t in app.title)
    for page in PAGES:
        app.switch_page(page).run()
        _clean(app, page)
        assert app.title, f"{page} shows no title"


def test_lab_removing_a_modality_changes_gates_and_prediction_view(app):
    app.switch_page("views/lab.py").run()
    _clean(app, "lab")
    before = _delta(app)
    assert (before.abs().max().max()) < 1e-6  # clean: no change from clean
    assert "no corruption (clean)" in _texts(app)
    app.radio(key="lab_input_depth").set_value("remove").run()
    _clean(app, "lab after removal")
    after = _delta(app)
    assert after.loc[["inertial", "skeleton"]].abs().max().max() > 1e-4  # the others' gates react
    assert after.loc["depth"].isna().all()  # removed: no number, "n/a (absent)" instead
    assert "depth: removed" in _texts(app)


def _vega_charts(at: AppTest) -> dict:
    """The page's Vega-Lite charts by title: (specification JSON, {dataset name: DataFrame})."""
    import pyarrow as pa

    charts = {}
    for element in at.get("vega_lite_chart"):
        spec = json.loads(element.proto.spec)
        data = {d.name: pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in element.proto.datasets}
        charts[spec["title"]["text"]] = (element.proto.spec, data)
    return charts


def test_lab_charts_update_their_data_not_their_specification(app):
    """A lab change must reach the Vega-Lite charts as new data under an unchanged specification
    (what lets the browser update them in place)."""
    app.switch_page("views/lab.py").run()
    app.radio(key="lab_draw").set_value("depth").run()
    before = _vega_charts(app)
    assert len(before) == 5  # probabilities, gates and cues, their change, the drawn input, projection
    app.radio(key="lab_input_depth").set_value("remove").run()
    _clean(app, "lab after removal")
    after = _vega_charts(app)
    assert set(after) == set(before)
    for title, (spec, _) in after.items():
        assert spec == before[title][0], title
    title = "calibrated model: gates and cues, clean vs corrupted"
    cues = after[title][1]["cues"].set_index(["modality", "quantity", "input"])["value"]
    clean = before[title][1]["cues"].set_index(["modality", "quantity", "input"])["value"]
    assert pd.isna(cues[("depth", "alpha", "corrupted")])  # removed: no gate, drawn as "n/a (absent)"
    assert cues[("depth", "alpha", "clean")] == pytest.approx(clean[("depth", "alpha", "clean")])
    assert cues[("depth", "alpha", "clean")] != pytest.approx(1.0)
    frames = next(data["frames"] for _, data in after.values() if "frames" in data)
    old_frames = next(data["frames"] for _, data in before.values() if "frames" in data)
    now = frames["input"] == "corrupted"
    assert (old_frames.loc[now, "url"].values == old_frames.loc[~now, "url"].values).all()  # clean: rows equal
    assert (frames.loc[~now, "url"] == old_frames.loc[~now, "url"]).all()  # the clean row stays
    assert (frames.loc[now, "url"] != old_frames.loc[now, "url"]).all()  # removed: nothing drawn


def test_lab_draws_the_modality_whose_controls_changed_last(app):
    app.switch_page("views/lab.py").run()
    assert app.radio(key="lab_draw").value == "inertial"  # the first modality until something changes
    app.selectbox(key="lab_corr_skeleton").select_index(1).run()
    _clean(app, "lab skeleton corruption")
    assert app.radio(key="lab_draw").value == "skeleton"
    assert any(title.startswith("skeleton") for title in _vega_charts(app))
    app.radio(key="lab_input_depth").set_value("remove").run()
    assert app.radio(key="lab_draw").value == "depth"
    app.radio(key="lab_draw").set_value("skeleton").run()  # the user's own choice is kept
    _clean(app, "lab drawn by choice")
    assert app.radio(key="lab_draw").value == "skeleton"


def test_lab_input_drawing_keeps_its_specification_across_severities(app):
    app.switch_page("views/lab.py").run()
    app.selectbox(key="lab_corr_depth").set_value("dead_pixels").run()
    _clean(app, "lab dead pixels")
    before = _vega_charts(app)
    assert len(before) == 5  # the four lab charts and the corrupted depth frames
    slider = next(s for s in app.select_slider if s.key.startswith("lab_sev_depth"))
    slider.set_value(5).run()
    _clean(app, "lab dead pixels s5")
    after = _vega_charts(app)
    assert set(after) == set(before)
    for title, (spec, data) in after.items():
        assert spec == before[title][0], title
    frames = next(data["frames"] for _, data in after.values() if "frames" in data)
    old_frames = next(data["frames"] for _, data in before.values() if "frames" in data)
    corrupted = frames["input"] == "corrupted"
    assert (frames.loc[~corrupted, "url"] == old_frames.loc[~corrupted, "url"]).all()  # clean row unchanged
    assert (frames.loc[corrupted, "url"] != old_frames.loc[corrupted, "url"]).any()  # more dead pixels


def test_lab_corruption_and_severity_update(app):
    app.switch_page("views/lab.py").run()
    app.selectbox(key="lab_corr_inertial").select_index(1).run()  # first corruption for a time series
    _clean(app, "lab corruption")
    text = _texts(app)
    assert "inertial: Gaussian noise, 5 dB SNR" in text
    slider = next(s for s in app.select_slider if s.key.startswith("lab_sev_inertial"))
    first = _delta(app)
    slider.set_value(5).run()
    _clean(app, "lab severity")
    assert "Gaussian noise, −5 dB SNR" in _texts(app)
    assert not first.equals(_delta(app))


def test_lab_frames_corruption(app):
    app.switch_page("views/lab.py").run()
    app.selectbox(key="lab_corr_depth").set_value("dead_pixels").run()
    _clean(app, "lab dead pixels")
    assert "depth: Dead pixels, 10% of pixels" in _texts(app)
    assert _delta(app).abs().max().max() > 0


def test_audio_and_lip_data_set(tiny):
    """The other data set (MFCC heatmap, lip frames) through explorer and lab."""
    old = _env([tiny["av_on"], tiny["av_off"], tiny["on"]])
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        keys = at.selectbox(key="pair_key").options
        assert len(keys) == 2
        at.selectbox(key="pair_key").set_value("tinyav_sequence").run()
        _clean(at, "avletters start")
        at.switch_page("views/overview.py").run()
        _clean(at, "avletters overview")
        assert any("avletters" in t.value for t in at.title)
        for page in ("views/explorer.py", "views/lab.py"):
            at.switch_page(page).run()
            _clean(at, page)
        at.selectbox(key="lab_corr_audio").set_value("temporal_mask").run()
        at.selectbox(key="lab_corr_lips").set_value("blur").run()
        _clean(at, "avletters lab")
        assert "audio: Gap in time, 40% of steps" in _texts(at) and "lips: Blur, 1.5 px blur sigma" in _texts(at)
    finally:
        _restore(old)


def test_lab_swap_names_the_donor(app):
    app.switch_page("views/lab.py").run()
    app.radio(key="lab_input_skeleton").set_value("swap").run()
    _clean(app, "lab swap")
    assert "skeleton: swapped (donor" in _texts(app)


def test_reference_switch_and_explorer_modes(app):
    app.radio(key="reference").set_value(REFERENCE_SWITCHED_OFF).run()
    app.switch_page("views/explorer.py").run()
    _clean(app, "explorer switched off")
    assert "calibrator off (same weights" in _texts(app)
    for mode in ("class", "misclassified", "most suppressed modality"):
        app.radio(key="ex_mode").set_value(mode).run()
        _clean(app, f"explorer {mode}")
    # the explanation sentence is shown
    assert any("damped" in i.value or "amplified" in i.value or "typical" in i.value for i in app.info)


def test_embeddings_methods_and_colours(app):
    app.switch_page("views/embeddings.py").run()
    _clean(app, "embeddings")
    assert len(app.metric) == 2
    app.radio(key="emb_method").set_value("tsne").run()
    _clean(app, "tsne")
    app.selectbox(key="emb_colour").set_value("corruption").run()
    _clean(app, "colour by corruption")
    app.selectbox(key="emb_colour").set_value("alpha").run()
    _clean(app, "colour by alpha")
    app.selectbox(key="emb_space").set_value("skeleton").run()
    _clean(app, "skeleton space")


def test_embeddings_search_hint_and_groups_follow_the_split(app, tiny):
    """The search's example id is one of the loaded split (it finds a sample), and a group with a
    single value on the split is not offered as a colouring."""
    from precal.dashboard.backend.data import varying_groups
    from precal.data.storage import load_dataset

    app.switch_page("views/embeddings.py").run()
    _clean(app, "embeddings")
    data = load_dataset(tiny["data"])
    rows = data.split("test")
    options = app.selectbox(key="emb_colour").options
    assert [o.split(": ", 1)[1] for o in options if o.startswith("group: ")] == varying_groups(data.groups, rows)
    hint = app.text_input(key="emb_find").placeholder
    assert hint.startswith("e.g. ") and hint[len("e.g. "):] in set(data.sample_ids[rows].astype(str))
    app.text_input(key="emb_find").set_value(hint[len("e.g. "):]).run()
    _clean(app, "search by the hinted id")
    assert not any("No sample id" in str(c.value) for c in app.caption)


def test_umap_maps_are_fitted_by_the_projection_worker(app, tmp_path, monkeypatch):
    """The dashboard sends UMAP fits (and only those) to the worker process: here a stand-in that
    records its calls, so the test does not pay for UMAP's compile (the slow test below does)."""
    import precal.projection as P

    calls = []

    class Recorder:
        def pause_warm_up(self, seconds: float = 2.0) -> bool:
            return False

        def fit(self, pre, post, method, seed=0, **params):
            calls.append(method)
            return P.fit_projection(pre, post, "pca", seed)

    monkeypatch.setattr(worker, "shared_worker", lambda: Recorder())
    monkeypatch.setattr(settings, "CACHE_DIR", tmp_path)  # the stand-in's map must not reach the real cache
    _forget_projections()
    try:
        app.switch_page("views/embeddings.py").run()
        app.radio(key="emb_method").set_value("tsne").run()
        _clean(app, "tsne")
        assert calls == []  # PCA and t-SNE are fitted in the server process
        app.radio(key="emb_method").set_value("umap").run()
        _clean(app, "umap")
        assert calls == ["umap"]
        app.switch_page("views/lab.py").run()  # the lab's projection uses the same cached map
        _clean(app, "lab with the umap map")
        assert calls == ["umap"]
    finally:
        _forget_projections()  # nor any later test


def _forget_projections() -> None:
    """Drop every projection a test could find: Streamlit's resource cache and precal's in-memory
    LRU (its disk cache is the test's CACHE_DIR)."""
    import streamlit as st

    from precal.projection import clear_memory_cache

    st.cache_resource.clear()
    clear_memory_cache()


@pytest.mark.slow
def test_umap_map_is_fitted_in_the_worker_process(app, tmp_path, monkeypatch):
    """UMAP (a minute of numba compile on first use) is fitted in the projection worker process:
    the map appears, and it places new points by kNN (its fitted model stays in the worker)."""
    from precal.dashboard.worker import shared_worker

    monkeypatch.setattr(settings, "CACHE_DIR", tmp_path)  # fitted here, not found in a cache
    _forget_projections()
    app.switch_page("views/embeddings.py").run()
    app.radio(key="emb_method").set_value("umap").run(timeout=600)
    _clean(app, "umap")
    assert shared_worker().pid is not None and shared_worker().pid != os.getpid()
    assert any("Point placement for new points: knn" in c.value for c in app.caption)
    assert len(app.metric) == 2


def test_robustness_sweep_on_demand(app):
    app.switch_page("views/robustness.py").run()
    _clean(app, "robustness")
    assert any("No stored sweep" in i.value for i in app.info)
    app.multiselect(key="rob_mods").set_value(["depth"])
    app.multiselect(key="rob_sevs").set_value([0, 5])
    app.button[0].click().run()  # the form's submit button
    _clean(app, "robustness computed")
    assert any("Computed sweep" in c.value for c in app.caption)


def test_bad_checkpoint_is_an_error_not_a_traceback(tiny, tmp_path):
    broken = tmp_path / "broken_calon"
    broken.mkdir()
    (broken / "config.json").write_text("{oops")
    (broken / "model.safetensors").write_bytes(b"\0" * 8)
    old = _env([tiny["on"], tmp_path / "nowhere", broken])
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        assert not at.exception
        errors = [e.value for e in at.error]
        assert any("does not exist" in e for e in errors)
        assert any("not valid JSON" in e for e in errors)
        for page in PAGES:  # the good checkpoint still works everywhere
            at.switch_page(page).run()
            assert not at.exception, page
    finally:
        _restore(old)


def test_no_loadable_checkpoint_and_bad_data(tiny, tmp_path):
    old = _env([tmp_path / "nowhere"])
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        assert not at.exception
        assert any("No checkpoint could be loaded" in e.value for e in at.error)
    finally:
        _restore(old)
    old = _env([tiny["on"], tiny["off"]], data=str(tmp_path / "no_data"))
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        assert not at.exception
        assert any("does not exist" in e.value for e in at.error)
        at.switch_page("views/training.py").run()  # needs no data: still works
        assert not at.exception and not at.error
        at.switch_page("views/lab.py").run()
        assert not at.exception and any("does not exist" in e.value for e in at.error)
    finally:
        _restore(old)


def test_upload_good_and_bad_checkpoint(app, tiny):
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../escape/config.json", "{}")
    app.file_uploader[0].set_value(("bad.zip", bad.getvalue(), "application/zip")).run()
    assert not app.exception
    assert any("upload refused" in e.value and "unsafe path" in e.value for e in app.error)

    good = io.BytesIO()
    with zipfile.ZipFile(good, "w") as zf:
        for p in tiny["on"].iterdir():
            zf.write(p, f"uploaded_calon/{p.name}")
    app.file_uploader[0].set_value(("good.zip", good.getvalue(), "application/zip")).run()
    assert not app.exception
    assert any("loaded uploaded_calon" in s.value for s in app.success)
    labels = app.selectbox(key="pair_key").options
    assert len(labels) == 2  # the fixture pair + the uploaded checkpoint on its own


# ---- issue 22: correct on every pair, honest on every page ------------------------------------------


def _all_text(at: AppTest) -> str:
    return "\n".join([str(m.value) for m in at.markdown] + [str(c.value) for c in at.caption]
                     + [str(i.value) for i in at.info])


def test_several_seeds_show_distinct_labels_and_a_folder_of_checkpoints_loads(tiny, tmp_path):
    from tests.dashboard.fixtures import variant

    for seed in (1, 2):
        variant(tiny["on"], tmp_path / f"tiny_s{seed}_calon", {"seed": seed})
        variant(tiny["off"], tmp_path / f"tiny_s{seed}_caloff", {"seed": seed})
    variant(tiny["on"], tmp_path / "tiny_noswap_calon", {"swap_augment": 0.0})
    variant(tiny["off"], tmp_path / "tiny_noswap_caloff", {"swap_augment": 0.0})
    old = _env([tiny["on"], tiny["off"], tmp_path])  # the last one: a folder of checkpoints
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        _clean(at, "start")
        labels = at.selectbox(key="pair_key").options
        assert len(labels) == 4 and len(set(labels)) == 4, labels
        assert any("seed 1" in label for label in labels) and any("seed 2" in label for label in labels)
        for key in ("tiny_s2", "tiny_noswap"):  # each is reachable, and is what it says
            at.selectbox(key="pair_key").set_value(key).run()
            _clean(at, key)
            assert any(str(c.value).startswith(key + " (") for c in at.sidebar.caption)  # its label, in full
            at.switch_page("views/overview.py").run()
            _clean(at, f"{key} overview")
            assert any(key in str(t.label) for t in at.tabs)  # the confusion matrices name its checkpoints
    finally:
        _restore(old)


def test_lab_absent_modality_shows_no_number_and_says_what_uncalibrated_cues_are(app):
    app.switch_page("views/lab.py").run()
    app.radio(key="lab_input_depth").set_value("remove").run()
    _clean(app, "lab removed depth")
    changes = _vega_charts(app)["change from the clean input, per model"][1]["changes"]
    depth = changes[changes["modality"] == "depth"]
    assert (depth["label"] == "n/a (absent)").all() and depth["change"].isna().all()
    cues = _vega_charts(app)["calibrated model: gates and cues, clean vs corrupted"][1]["cues"]
    gone = cues[(cues["modality"] == "depth") & (cues["input"] == "corrupted")]
    assert gone["value"].isna().all() and (gone["note"] == "n/a (absent)").all()
    unc = changes[(changes["role"] == UNCALIBRATED) & (changes["quantity"] == "Δ alpha") & (changes["modality"] != "depth")]
    assert (unc["label"] == "fixed at 1").all()
    assert any("Its alpha is fixed at 1" in c.value for c in app.caption)


def test_lab_explains_every_change_relative_to_a_typical_sample(app):
    app.switch_page("views/lab.py").run()
    app.radio(key="lab_input_skeleton").set_value("swap").run()
    _clean(app, "lab swap")
    text = _texts(app)
    assert "relative to a typical sample" in text
    assert "**changed here** · skeleton" in text
    assert "a typical sample gets" in text or "close to a typical sample" in text


def test_explorer_heading_says_damped_or_amplified_and_two_modalities_share_one_support_cue(tiny):
    old = _env([tiny["av_on"], tiny["av_off"]])
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        at.switch_page("views/explorer.py").run()
        _clean(at, "avletters explorer")
        headings = [str(m.value) for m in at.markdown if str(m.value).startswith("#### ")]
        assert headings and any(w in headings[0] for w in ("was damped", "was amplified", "was about typical"))
        assert "a typical sample gets" in headings[0]
        cue_tables = [d.value for d in at.dataframe if "cue" in d.value.columns]
        assert cue_tables
        cues = list(cue_tables[0]["cue"])
        assert not any("what the others predict" in c and "agreement" in c for c in cues), cues
        assert not any(c.startswith("its similarity to") for c in cues), cues
        assert any(c.startswith("its agreement with what") and c.endswith("predicts") for c in cues), cues
    finally:
        _restore(old)


def test_bad_checkpoint_in_a_folder_beside_good_ones_leaves_their_pages_working(tiny, tmp_path):
    import shutil

    from tests.dashboard.fixtures import variant

    shutil.copytree(tiny["on"], tmp_path / "good_calon")
    shutil.copytree(tiny["off"], tmp_path / "good_caloff")
    variant(tiny["on"], tmp_path / "bad_calon", model={"heads": 3})
    old = _env([tmp_path])
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        assert not at.exception
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and "bad_calon" in errors[0] and "heads" in errors[0]
        for page in PAGES:
            at.switch_page(page).run()
            assert not at.exception, page
            assert [e.value for e in at.error] == errors, page  # only the bad checkpoint's line
    finally:
        _restore(old)


def test_copies_of_one_checkpoint_both_work(tiny, tmp_path):
    import shutil

    copies = [tmp_path / f"upload{k}" / tiny["on"].name for k in (1, 2)]  # the same zip uploaded twice
    for copy in copies:
        shutil.copytree(tiny["on"], copy)
    old = _env(copies)
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        keys = [k for k in at.selectbox(key="pair_key").options]
        assert len(keys) == 2 and len(set(keys)) == 2
        for k in range(2):
            at.selectbox(key="pair_key").select_index(k).run()
            for page in ("views/overview.py", "views/explorer.py", "views/lab.py"):
                at.switch_page(page).run()
                _clean(at, f"pair {k}: {page}")
    finally:
        _restore(old)


def test_robustness_sweep_uses_the_whole_split_and_summarises(app):
    app.switch_page("views/robustness.py").run()
    app.multiselect(key="rob_mods").set_value(["depth"])
    app.multiselect(key="rob_sevs").set_value([1, 5])
    app.button[0].click().run()
    _clean(app, "robustness computed")
    n = app.session_state["_ctx"].splits.size
    assert any(f"whole test split ({n} samples" in c.value for c in app.caption)
    assert any("Summary when depth is corrupted" in m.value for m in app.markdown)
    tables = [d.value for d in app.dataframe if "corruption" in d.value.columns and "ER" in d.value.columns]
    assert tables and not tables[0].isna().any().any()
    assert not (tables[0].astype(str) == "None").any().any()


def test_sidebar_shows_no_paths_or_hashes_outside_its_files_expander(app):
    files = next(e for e in app.sidebar.expander if e.label == "Files")
    inside = {str(c.value) for c in files.caption}
    assert any("sha256" in text for text in inside)
    for text in {str(c.value) for c in app.sidebar.caption} - inside:
        assert "/" not in text and "sha256" not in text, text


def test_start_page_opens_the_lab_on_a_prepared_swap(app):
    _clean(app, "start")
    assert any("calibrator" in m.value and "support" in m.value for m in app.markdown)
    app.button(key="start_lab").click().run()
    _clean(app, "lab from the start page")
    assert any("Corruption lab" in t.value for t in app.title)
    assert "swapped (donor" in _texts(app)
    swapped = [m for m in ("inertial", "skeleton", "depth") if app.radio(key=f"lab_input_{m}").value == "swap"]
    assert len(swapped) == 1


def test_lab_says_once_that_two_modalities_damped_together_have_no_culprit():
    """Shipped AVLetters pair, test sample X3_Verity with its lips swapped (the example of
    docs/calibrator.md): both gates fall, and the lab says once that the disagreement does not say
    which of the two is wrong, beside the first (changed) modality."""
    shipped = Path(__file__).resolve().parents[2] / "checkpoints"
    old = _env([shipped / "avletters_conv_calon", shipped / "avletters_conv_caloff"])
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        at.switch_page("views/lab.py").run()
        sample = next(o for o in at.selectbox(key="lab_sample").options if o.startswith("X3_Verity"))
        at.selectbox(key="lab_sample").set_value(sample).run()
        at.radio(key="lab_input_lips").set_value("swap").run()
        _clean(at, "avletters lab swap")
        why = next(str(m.value) for m in at.markdown if "Why the calibrated model" in str(m.value))
        bullets = [line for line in why.splitlines() if line.startswith("- ")]
        assert bullets[0].startswith("- **changed here** · lips was damped")
        assert bullets[1].startswith("- audio was damped")
        assert why.count("does not say which of them is wrong") == 1
        assert why.index("audio was damped too") < why.index(bullets[1])  # under the changed modality
    finally:
        _restore(old)
