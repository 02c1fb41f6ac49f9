"""``precal precompute`` (dashboard/precompute.py): it fills exactly the caches the pages read, so
that the pages afterwards compute nothing; its bad input is one line. On the tiny fixture pair of
:mod:`tests.dashboard.fixtures`, with the caches in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from precal.cli import main
from precal.dashboard import precompute, settings
from precal.dashboard.backend import robustness as rob
from precal.dashboard.backend import running
from precal.dashboard.backend.data import data_mtime, split_batches
from precal.dashboard.backend.embeddings import FUSED, pre_post_features, projection_key, split_projection
from precal.dashboard.backend.pairs import load_checkpoints, pair_checkpoints
from precal.data.storage import load_dataset
from precal.projection import cache as projection_cache
from precal.projection import clear_memory_cache
from tests.dashboard.fixtures import tiny_checkpoints

FAST = dict(methods=["pca", "tsne"], corruptions=["gaussian_noise"], severities=[3], progress=False,
            say=lambda _line: None)


@pytest.fixture(scope="module")
def tiny():
    return tiny_checkpoints()


@pytest.fixture(scope="module")
def filled(tiny, tmp_path_factory):
    """The caches of the tiny pair, filled once (PCA and t-SNE, a one-level sweep)."""
    cache = tmp_path_factory.mktemp("cache")
    lines = precompute.run([str(tiny["on"]), str(tiny["off"])], data=str(tiny["data"]), cache_dir=cache, **FAST)
    return cache, lines


def _nothing_computed(monkeypatch) -> None:
    """From here on, a prediction, a fit or a sweep is a test failure: only the caches may answer."""
    def refuse(what):
        def fail(*_args, **_kwargs):
            raise AssertionError(f"{what} was computed, not read from the cache")
        return fail

    monkeypatch.setattr(running, "predict_view", refuse("a prediction"))
    monkeypatch.setattr(projection_cache, "fit_projection", refuse("a projection"))
    monkeypatch.setattr(rob, "robustness_sweep", refuse("a sweep"))
    clear_memory_cache()


def test_precompute_stores_the_start_pages_first_paint(filled, tiny, monkeypatch):
    """Even a server's first start then draws the start page at once: the first paint is stored for
    exactly the inputs ``precal dashboard --checkpoint … --data …`` gives the app, and a session
    opened while the server imports torch is drawn from it."""
    pytest.importorskip("streamlit.testing.v1")
    from streamlit.testing.v1 import AppTest

    from precal.dashboard import head_start
    from precal.dashboard.backend import first_paint
    from tests.dashboard.test_app import APP, TIMEOUT, _env, _restore

    cache, lines = filled
    assert "the start page's first paint" in lines[-1]
    args = settings.DashboardArgs((str(tiny["on"]), str(tiny["off"])), str(tiny["data"]), None, None)
    assert first_paint.load(args, cache / "first_paint") is not None
    assert settings.CACHE_DIR != cache  # the dashboard's own folder is the user's again
    monkeypatch.setattr(settings, "CACHE_DIR", cache)
    old = _env([tiny["on"], tiny["off"]], str(tiny["data"]))
    head_start.STARTED.set()
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        assert not at.exception and "_ctx" not in at.session_state  # drawn from the first paint
        assert [t.value for t in at.main.title] == ["Pre-fusion calibration in one minute"]
    finally:
        head_start.STARTED.clear()
        _restore(old)


def test_precompute_fills_every_cache_the_pages_read(filled, tiny):
    cache, lines = filled
    assert len(lines) == 2 and "3 predictions" in lines[0] and "a sweep" in lines[0]  # one pair + the first paint
    # calibrated, the uncalibrated checkpoint, the calibrated one switched off: one file per weights
    # and switch (the fixture's uncalibrated model has the calibrated one's weights)
    ckpts, _ = load_checkpoints([tiny["on"], tiny["off"]])
    runs = {(c.fingerprint, bool(c.config.calibration)) for c in ckpts} | {(ckpts[0].fingerprint, False)}
    # + the start page's example: the calibrated and the uncalibrated model on the split with a modality swapped
    assert len(list((cache / "predictions").glob("predictions-*.npz"))) == len(runs) + 2
    assert len(list((cache / "projections").glob("projection-pca-*.npz"))) == 4  # fused + 3 modalities
    assert len(list((cache / "projections").glob("projection-tsne-*.npz"))) == 4
    assert len(list((cache / "sweeps").glob("sweep-*.csv"))) == 1


def test_the_backend_calls_of_the_pages_are_cache_hits(filled, tiny, monkeypatch):
    """What the embeddings, lab and robustness pages ask for, with the keys they build, is found."""
    cache, _ = filled
    ckpts, _ = load_checkpoints([tiny["on"], tiny["off"]])
    pair = pair_checkpoints(ckpts)[0]
    # the dashboard names the data by another path to the same folder: the keys still agree
    data_path = Path(os.path.relpath(tiny["data"]))
    splits = split_batches(pair, load_dataset(data_path), "test")
    _nothing_computed(monkeypatch)
    parts = running.prediction_parts(data_path, data_mtime(data_path), "test")
    views = pair.views()
    gated = views[0]
    post = running.cached_predict(gated, splits.batch_for(gated.checkpoint), parts, cache / "predictions")
    off = precompute.predicted_views(views)[-1]
    assert off.checkpoint is gated.checkpoint and not off.calibration
    pre = running.cached_predict(off, splits.batch_for(off.checkpoint), parts, cache / "predictions")
    running.cached_predict(views[1], splits.batch_for(views[1].checkpoint), parts, cache / "predictions")
    for method in ("pca", "tsne"):
        key = projection_key(pair.fingerprint(gated.checkpoint), "test", FUSED)
        proj = split_projection(cache / "projections", key, *pre_post_features(FUSED, post, pre), method)
        assert proj.n == splits.size
    schema = pair.primary.schema
    frame = rob.page_sweep(views, splits, schema, data_path, list(reversed(schema.modality_names)),
                           ["gaussian_noise"], [3, 0], cache / "sweeps")
    assert set(frame["severity"]) == {0, 3}


def test_the_pages_open_on_the_filled_caches_without_computing(filled, tiny, monkeypatch):
    """The app itself (Streamlit's AppTest): the start page's prepared example, the embeddings page
    with PCA and t-SNE and the robustness page's sweep come from what precompute stored."""
    pytest.importorskip("streamlit.testing.v1")
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.dashboard.test_app import APP, TIMEOUT, _clean, _env, _restore

    cache, _ = filled
    monkeypatch.setattr(settings, "CACHE_DIR", cache)
    st.cache_data.clear()
    st.cache_resource.clear()
    old = _env([tiny["on"], tiny["off"]], str(tiny["data"]))
    try:
        _nothing_computed(monkeypatch)
        app = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()  # the start page and its example
        _clean(app, "start")
        assert any("swapped in from a sample of another class" in m.value for m in app.markdown)
        app.switch_page("views/embeddings.py").run()
        _clean(app, "embeddings, pca")
        app.radio(key="emb_method").set_value("tsne").run()
        _clean(app, "embeddings, t-SNE")
        app.switch_page("views/robustness.py").run()
        app.multiselect(key="rob_corrs").set_value(["gaussian_noise"])
        app.multiselect(key="rob_sevs").set_value([0, 3])
        app.button[0].click().run()
        _clean(app, "robustness")
        assert any("Computed sweep" in c.value for c in app.caption)
    finally:
        _restore(old)
        st.cache_data.clear()
        st.cache_resource.clear()
        clear_memory_cache()


def test_precompute_errors_are_one_line(tiny, tmp_path, capsys):
    cases = [
        (["precompute", str(tmp_path / "nope"), "--data", str(tiny["data"])], "does not exist"),
        (["precompute", str(tiny["on"]), "--data", str(tmp_path / "nodata")], "data folder"),
        (["precompute", str(tiny["on"]), "--methods", "pca,isomap"], "--methods: unknown method 'isomap'"),
        (["precompute", str(tiny["on"]), "--data", str(tiny["data"]), "--split", "dev"], "--split:"),
        (["precompute", str(tiny["on"]), "--data", str(tiny["data"]), "--features", "smell"], "--features:"),
        (["precompute", str(tiny["on"]), "--corruptions", "fog"], "--corruptions: unknown corruption 'fog'"),
        (["precompute", str(tiny["on"]), "--severities", "9"], "--severities: severity must be an integer from 0 (clean) to 5, got 9"),
        (["precompute"], "name a CHECKPOINT"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("precal precompute: error: ") and message in err and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())  # nothing written for a refused command


def test_options_take_commas_and_spaces():
    assert precompute.names(["pca,tsne", "umap", "pca"]) == ["pca", "tsne", "umap"]
    assert precompute.names(None) is None


def test_own_model_without_a_checkpoint(tiny, tmp_path):
    """``--model F --data DIR`` as in ``precal dashboard``: the model itself, its caches filled."""
    from tests.own_models import FACTORY

    lines = precompute.run([], data=str(tiny["data"]), model=FACTORY, cache_dir=tmp_path,
                           **{**FAST, "methods": ["pca"]})
    assert len(lines) == 1 and "4 maps (pca)" in lines[0]
    assert list((tmp_path / "projections").glob("projection-pca-*.npz"))
    with pytest.raises(ValueError, match="--model without a CHECKPOINT needs --data"):
        precompute.run([], model=FACTORY, cache_dir=tmp_path, **FAST)
