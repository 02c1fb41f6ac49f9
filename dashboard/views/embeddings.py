"""Embeddings: pre- vs post-calibration features of the split in one aligned 2-D space."""

import numpy as np
import streamlit as st

from precal.dashboard.backend.embeddings import (FUSED, LINES_UP_TO, METHOD_TITLES, WEBGL_FROM, corrupt_fraction,
                                                 displacement, feature_spaces, find_rows, fit_note,
                                                 nearest_neighbours, placement_note, pre_post_features,
                                                 projection_key, selected_rows, selection_summary)
from precal.dashboard.backend.data import varying_groups
from precal.dashboard.ui import url_state
from precal.dashboard.ui.exports import download_csv, safe_name
from precal.dashboard.backend.running import predict_view
from precal.dashboard.charts import figures as charts
from precal.dashboard.ui.background import start_warmups
from precal.dashboard.ui.context import context, guard
from precal.dashboard.ui.pages import PAGES
from precal.dashboard.ui.model_notes import show_page_notes
from precal.dashboard.ui.loading import data_mtime, neighbourhoods, projection
from precal.dashboard.ui.widgets import ZOOM_CONFIG
from precal.robustness.corruptions import corruptions_for, get_corruption

ctx = context()
ctx.require_data()
url_state.restore_page("embeddings")
schema = ctx.schema
st.title("Embeddings: before vs after calibration")
show_page_notes(ctx, "embeddings")
st.caption("Each sample appears twice in one aligned 2-D map: hollow = before calibration, filled = after; "
           "grey lines join the two. Click a point to open that sample in the explorer; draw a box or a lasso "
           "(toolbar, top right) to summarise the samples inside it.")


@st.cache_data(show_spinner="Running the model over the corrupted split…", max_entries=16)
def _corruptedpredictions(key: str, modality: str, corruption: str, severity: int, seed: int,
                           _views, _batch, _schema):
    mixed, rows = corrupt_fraction(_batch, _schema, modality, corruption, severity, seed=seed)
    return {v.calibration: predict_view(v, mixed) for v in _views}, rows


def _summary(rows: np.ndarray, classes, post_preds, pre_preds) -> None:
    """What a box or lasso selection holds: class mix, both models' accuracy, mean gates and cues."""
    models = [(v.label, ctx.predictions(v)) for v in ctx.views]
    summary = selection_summary(rows, classes, models, post_preds)
    st.subheader(f"Selection: {len(rows)} samples")
    c1, c2, c3 = st.columns([2, 3, 3])
    c1.markdown("**Class mix**")
    c1.dataframe(summary["classes"], hide_index=True, width="stretch",
                 column_config={"share": st.column_config.ProgressColumn(format="%.2f", min_value=0, max_value=1)})
    c2.markdown("**Accuracy of both models**")
    c2.dataframe(summary["accuracy"], hide_index=True, width="stretch",
                 column_config={"model": st.column_config.TextColumn(width="medium"),
                                **{k: st.column_config.NumberColumn(format="%.3f", width="small")
                                   for k in summary["accuracy"].columns if k != "model"}})
    c3.markdown(f"**Mean gates and cues** ({cal_view.label})")
    c3.dataframe(summary["cues"], hide_index=True, width="stretch",
                 column_config={k: st.column_config.NumberColumn(format="%.3f") for k in ("alpha", "support",
                                                                                          "conflict")})
    chosen = ctx.splits.indices[rows]
    members = ctx.data.sample_ids[chosen].astype(str)
    download_csv(summary["cues"].assign(samples=len(rows)), f"precal-selection-{safe_name(ctx.split)}.csv",
                 "emb_sel_csv", "Selection summary (CSV)")
    st.caption("Samples: " + ", ".join(members[:40]) + (" …" if len(members) > 40 else ""))


def _neighbours(found: np.ndarray, rows: np.ndarray, dist: np.ndarray, ids, classes) -> None:
    """The first match's nearest neighbours in the high-dimensional features after calibration."""
    me = int(found[0])
    st.markdown(f"**{ids[me]}** ({classes[me]}, the red star) and its 10 nearest neighbours in the features after "
                "calibration (standardised, full dimension; black rings on the map)"
                + (f" · {len(found) - 1} more ids match" if len(found) > 1 else ""))
    import pandas as pd

    table = pd.DataFrame({"sample id": ids[rows], "class": np.asarray(classes, dtype=object)[rows],
                          "same class": np.asarray(classes, dtype=object)[rows] == classes[me], "distance": dist})
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"distance": st.column_config.NumberColumn(format="%.2f")})
    if st.button(f"Open {ids[me]} in the explorer", key="emb_open_found"):
        st.session_state["sample_id"] = str(ids[me])
        st.switch_page(PAGES["explorer"])


cal_view = ctx.gated()
pre_view = ctx.switched_off()
if cal_view is None or pre_view is None:
    st.info("No model shown has gates that act: before and after calibration are the same features.")
    url_state.stop("embeddings")

with guard("embeddings"):
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
    space = c1.selectbox("Features", feature_spaces(schema.modality_names), key="emb_space",
                         format_func=lambda s: s if s == FUSED else f"{s} summary (before/after its gates)")
    method = c2.radio("Method", list(METHOD_TITLES), format_func=METHOD_TITLES.get, horizontal=True, key="emb_method")
    colourings = ["class", "alpha", "support", "conflict", "displacement", "correctness", "corruption"] \
        + [f"group: {g}" for g in varying_groups(ctx.data.groups, ctx.splits.indices)]
    if st.session_state.get("emb_colour") not in colourings:
        st.session_state["emb_colour"] = "class"
    colour_by = c3.selectbox("Colour by", colourings, key="emb_colour",
                             help="displacement: how far each sample moves from before to after calibration "
                                  "(readable when the two points nearly coincide); group: the data's groups.")
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
    parts = projection_key(ctx.pair.fingerprint(cal_view.checkpoint), ctx.split, space, extra)
    warm = start_warmups()
    if method == "umap" and warm is not None and warm.is_alive():
        st.info("UMAP is still compiling in the background (once per server start); the first map may take longer.")
    proj = projection(repr(sorted(parts.items())), method, pre, post, parts)
    subsampled = fit_note(proj)

    labels = post_preds.labels
    ids = np.asarray(ctx.sample_ids(), dtype=object)
    class_names = [ctx.data.label_name(int(i)) for i in ctx.splits.indices]
    hover = [f"{s} · {c}" for s, c in zip(ids, class_names)]
    continuous = False
    scale = ("RdBu", 1.0)
    if colour_by == "class":
        colour, colour_label = np.asarray(class_names, dtype=object), "true class"
    elif colour_by in ("alpha", "support", "conflict"):
        if st.session_state.get("emb_alpha_mod") not in schema.modality_names:
            st.session_state["emb_alpha_mod"] = space if space in schema.modality_names else schema.modality_names[0]
        am = st.selectbox(f"{colour_by} of modality", schema.modality_names, key="emb_alpha_mod")
        i = post_preds.modalities.index(am)
        colour = np.where(post_preds.present[:, i], getattr(post_preds, colour_by)[:, i], np.nan)
        colour_label, continuous = f"{colour_by} of {am}", True
        scale = ("RdBu", 1.0) if colour_by == "alpha" else ("Viridis", None)
        hover = [f"{h} · {colour_by}({am}) = {a:.3f}" for h, a in zip(hover, colour)]
    elif colour_by == "displacement":
        colour = displacement(proj.pre_xy, proj.post_xy)
        colour_label, continuous, scale = "displacement before → after (map units)", True, ("Viridis", None)
        hover = [f"{h} · moved {d:.3f}" for h, d in zip(hover, colour)]
    elif colour_by.startswith("group: "):
        name = colour_by.split(": ", 1)[1]
        colour = np.asarray(ctx.data.groups[name][ctx.splits.indices]).astype(str).astype(object)
        colour_label = name
        hover = [f"{h} · {name} {g}" for h, g in zip(hover, colour)]
    elif colour_by == "correctness":
        ok = post_preds.predicted == labels
        colour, colour_label = np.where(ok, "correct", "wrong").astype(object), "calibrated prediction"
    else:
        colour = np.where(rows_corrupted, "corrupted", "clean").astype(object)
        colour_label = "input"

    query = st.text_input("Find a sample by id", key="emb_find", placeholder=f"e.g. {ids[0]}" if len(ids) else "",
                          help="Marks the matching samples on the map and lists the nearest neighbours of the first.")
    found = find_rows(ids, query) if query else np.zeros(0, dtype=int)
    neighbours = np.zeros(0, dtype=int)
    if query and not len(found):
        st.caption(f"No sample id of {ctx.split} contains {query!r}.")
    elif len(found):
        neighbours, dist = nearest_neighbours(post, int(found[0]), k=10)

    title = (f"{METHOD_TITLES[method]} of {space} · {ctx.split} ({len(pre)} samples)"
             + (f" · {corruption_note}" if corruption_note else ""))
    big = len(pre) >= WEBGL_FROM
    fig = charts.embedding_figure(proj.pre_xy, proj.post_xy, colour, colour_label, ids, hover, title,
                                  METHOD_TITLES[method], arrows=arrows and len(pre) <= LINES_UP_TO, continuous=continuous,
                                  colorscale=scale[0], cmid=scale[1],
                                  highlight=found[:1], neighbours=neighbours, webgl=big)
    if arrows and len(pre) > LINES_UP_TO:
        st.caption(f"Lines are not drawn above {LINES_UP_TO:,} samples; colour by displacement instead.")
    if subsampled:
        st.caption(subsampled)
    event = st.plotly_chart(fig, on_select="rerun", selection_mode=("points", "box", "lasso"), config=ZOOM_CONFIG, key="emb_chart")

    selection = event.selection if event is not None and event.selection else {}
    chosen_ids = [p.get("customdata") for p in selection.get("points", [])]
    chosen_ids = [c[0] if isinstance(c, (list, tuple)) else c for c in chosen_ids if c is not None]
    if chosen_ids and not (selection.get("box") or selection.get("lasso")):
        st.session_state["sample_id"] = str(chosen_ids[0])
        st.switch_page(PAGES["explorer"])
    if chosen_ids:
        rows = selected_rows(ids, chosen_ids)
        _summary(rows, class_names, post_preds, pre_preds)
    if len(found):
        _neighbours(found, neighbours, dist, ids, class_names)

    st.subheader("Neighbourhood quality in the full feature space")
    scores = neighbourhoods(f"{sorted(parts.items())!r}|{ctx.data_path}|{data_mtime(ctx.data_path)}", pre, post, labels)
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
