"""Embeddings: pre- vs post-calibration features of the split in one aligned 2-D space."""

import numpy as np
import streamlit as st

from precal.dashboard.backend.embeddings import (FUSED, corrupt_fraction, feature_spaces, neighbourhood_table,
                                                 placement_note, pre_post_features, projection_key)
from precal.dashboard.backend.running import predict_view
from precal.dashboard.charts import figures as charts
from precal.dashboard.ui.background import start_warmups
from precal.dashboard.ui.context import PAGES, context, guard
from precal.dashboard.ui.model_notes import show_page_notes
from precal.dashboard.ui.loading import projection
from precal.dashboard.ui.widgets import ZOOM_CONFIG
from precal.models.model import CALIBRATED
from precal.robustness.corruptions import corruptions_for, get_corruption

ctx = context()
ctx.require_data()
schema = ctx.schema
st.title("Embeddings: before vs after calibration")
show_page_notes(ctx, "embeddings")
st.caption("Each sample appears twice in one aligned 2-D map: hollow = before calibration, filled = after; "
           "grey lines join the two. Select a point (click, or box/lasso) to open that sample in the explorer.")

METHODS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


@st.cache_data(show_spinner="Running the model over the corrupted split…", max_entries=16)
def _corruptedpredictions(key: str, modality: str, corruption: str, severity: int, seed: int,
                           _views, _batch, _schema):
    mixed, rows = corrupt_fraction(_batch, _schema, modality, corruption, severity, seed=seed)
    return {v.calibration: predict_view(v, mixed) for v in _views}, rows


cal_view = ctx.view(CALIBRATED)
pre_view = ctx.switched_off()
if cal_view is None or pre_view is None:
    st.info("This pair has no calibrated checkpoint: before and after calibration are the same features.")
    st.stop()

with guard("embeddings"):
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
    space = c1.selectbox("Features", feature_spaces(schema.modality_names), key="emb_space",
                         format_func=lambda s: s if s == FUSED else f"{s} summary (before/after its gates)")
    method = c2.radio("Method", list(METHODS), format_func=METHODS.get, horizontal=True, key="emb_method")
    colour_by = c3.selectbox("Colour by", ["class", "alpha", "correctness", "corruption"], key="emb_colour")
    arrows = c4.toggle("lines", value=True, key="emb_arrows", help="Join each sample's point before and after "
                                                                         "calibration with a line.")

    corruption_note = ""
    rows_corrupted = None
    if colour_by == "corruption":
        k1, k2, k3 = st.columns(3)
        cm = k1.selectbox("Corrupt modality", schema.modality_names, key="emb_cmod")
        options = [c.name for c in corruptions_for(schema.modality(cm).kind) if c.name != "swap"]
        corr = get_corruption(k2.selectbox("Corruption", options, format_func=lambda c: get_corruption(c).title,
                                           key=f"emb_ccorr_{cm}"))
        sev = k3.select_slider("Severity", options=[1, 2, 3, 4, 5], value=3, key=f"emb_csev_{corr.name}",
                               format_func=lambda s, c=corr: c.level_label(s))
        (preds_by_flag, rows_corrupted) = _corruptedpredictions(
            f"{ctx.pair.cache_key}|{ctx.data_path}|{ctx.split}", cm, corr.name, int(sev), 0,
            [cal_view, pre_view], ctx.splits.batch_for(cal_view.checkpoint), schema)
        post_preds, pre_preds = preds_by_flag[True], preds_by_flag[False]
        corruption_note = f"{cm}: {corr.title}, {corr.level_label(sev)} on half of the samples"
        extra = {"corruption": [cm, corr.name, int(sev), 0]}
    else:
        post_preds, pre_preds = ctx.predictions(cal_view), ctx.predictions(pre_view)
        extra = {}

    pre, post = pre_post_features(space, post_preds, pre_preds)
    parts = projection_key(ctx.pair, ctx.split, space, extra)
    warm = start_warmups()
    if method == "umap" and warm is not None and warm.is_alive():
        st.info("UMAP is still compiling in the background (once per server start); the first map may take longer.")
    proj = projection(repr(sorted(parts.items())), method, pre, post, parts)

    labels = post_preds.labels
    ids = np.asarray(ctx.sample_ids(), dtype=object)
    class_names = [ctx.data.label_name(int(i)) for i in ctx.splits.indices]
    hover = [f"{s} · {c}" for s, c in zip(ids, class_names)]
    continuous = False
    if colour_by == "class":
        colour, colour_label = np.asarray(class_names, dtype=object), "true class"
    elif colour_by == "alpha":
        am = st.selectbox("alpha of modality", schema.modality_names, key="emb_alpha_mod",
                          index=schema.modality_names.index(space) if space in schema.modality_names else 0)
        colour = post_preds.alpha[:, post_preds.modalities.index(am)]
        colour_label, continuous = f"alpha of {am}", True
        hover = [f"{h} · alpha({am}) = {a:.3f}" for h, a in zip(hover, colour)]
    elif colour_by == "correctness":
        ok = post_preds.predicted == labels
        colour, colour_label = np.where(ok, "correct", "wrong").astype(object), "calibrated prediction"
    else:
        colour = np.where(rows_corrupted, "corrupted", "clean").astype(object)
        colour_label = "input"

    title = (f"{METHODS[method]} of {space} · {ctx.split} ({len(pre)} samples)"
             + (f" · {corruption_note}" if corruption_note else ""))
    fig = charts.embedding_figure(proj.pre_xy, proj.post_xy, colour, colour_label, ids, hover, title,
                                  METHODS[method], arrows=arrows, continuous=continuous)
    event = st.plotly_chart(fig, on_select="rerun", selection_mode=("points", "box", "lasso"), config=ZOOM_CONFIG, key="emb_chart")

    if event is not None and event.selection and event.selection.get("points"):
        point = event.selection["points"][0]
        sid = point.get("customdata")
        if isinstance(sid, (list, tuple)):
            sid = sid[0]
        if sid is not None:
            st.session_state["sample_id"] = str(sid)
            st.switch_page(PAGES["explorer"])

    st.subheader("Neighbourhood quality in the full feature space")
    scores = neighbourhood_table(pre, post, labels, k=10)
    cols = st.columns(len(scores))
    names = {"knn_purity": "kNN purity (k = 10)", "silhouette": "silhouette"}
    for col, (_, r) in zip(cols, scores.iterrows()):
        before, after = float(r["before"]), float(r["after"])
        delta = None if np.isnan(before) or np.isnan(after) else \
            (f"{after - before:+.3f} vs before" if abs(after - before) >= 5e-4 else "±0.000 vs before")
        col.metric(f"{names.get(r['score'], r['score'])} after calibration",
                   "—" if np.isnan(after) else f"{after:.3f}", delta)
        col.caption(f"before calibration: {'—' if np.isnan(before) else f'{before:.3f}'}")
    st.caption("Scores use the true class labels on the standardised high-dimensional features, not the 2-D map. "
               "kNN purity: share of each point's 10 nearest neighbours with its class (1 = perfect). "
               "Silhouette: −1…1, higher = classes better separated.")
    st.caption(placement_note(proj.placement))
