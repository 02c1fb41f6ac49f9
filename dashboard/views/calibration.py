"""Probability calibration (not the pre-fusion calibrator): do the models' predicted probabilities
match how often they are right? Reliability diagram and ECE, clean and under a corruption."""

import pandas as pd
import streamlit as st

from precal.dashboard.backend import svg
from precal.dashboard.backend.lab import LabSetting
from precal.dashboard.backend.lab_batch import run_on_rows
from precal.dashboard.backend.url_state import corruption_words
from precal.dashboard.backend.probability import bins_by_model, calibration_table, labelled, reliability_frame
from precal.dashboard.charts.calibration import reliability_chart
from precal.dashboard.ui import url_state
from precal.dashboard.ui.context import context, guard
from precal.dashboard.ui.exports import download_csv, download_svg, safe_name
from precal.robustness.corruptions import corruptions_for, get_corruption

ctx = context()
ctx.require_data()
url_state.restore_page("calibration")
schema = ctx.schema
st.title("Probability calibration")
st.caption("How well each model's predicted probabilities match how often it is right: a model that says 0.8 "
           "should be right 8 times in 10. Not to be confused with the pre-fusion calibrator (the gates): this is "
           "about the probabilities of the output. ECE: expected calibration error, the count-weighted gap between "
           "confidence and accuracy over 10 bins (0 = perfectly calibrated).")

NONE = "none"


@st.cache_data(show_spinner="Running both models on the corrupted split…", max_entries=16)
def _corrupted(key: str, split: str, modality: str, corruption: str, severity: int, _views, _splits, _clean):  # noqa: ARG001
    settings = {modality: LabSetting(None if corruption in ("remove_absent", "swap") else corruption, severity,
                                     corruption == "remove_absent", corruption == "swap")}
    return run_on_rows(_views, _splits, settings, 0, None, _clean).corrupted


def _model_and_input(table: pd.DataFrame) -> pd.DataFrame:
    """The model and its input in two columns: "calibrated (avletters_conv_calon) · audio: Gaussian
    noise, 5 dB SNR" in one cell was cut off mid-name in the table."""
    model, _, what = table["model"].astype(str).str.partition(" · ").T.values
    out = table.assign(model=model)
    out.insert(1, "input", what)
    return out


with guard("probability calibration"):
    if schema.task != "classification":
        st.info("Probability calibration needs class probabilities: this data set is a regression.")
        url_state.stop("calibration")
    clean = {v.role: ctx.predictions(v) for v in ctx.views}
    c1, c2, c3 = st.columns(3)
    mods = list(schema.modality_names)
    if st.session_state.get("pc_mod") not in mods:
        st.session_state["pc_mod"] = mods[0]
    m = c1.selectbox("Corrupt modality", mods, key="pc_mod")
    options = [NONE] + [c.name for c in corruptions_for(schema.modality(m).kind)]
    if st.session_state.get("pc_corr") not in options:
        st.session_state["pc_corr"] = NONE
    corr = c2.selectbox("Corruption (as in the sweep and the lab)", options, key="pc_corr",
                        format_func=lambda c: "none: clean only" if c == NONE else get_corruption(c).title)
    sev = 0
    if corr != NONE:
        c = get_corruption(corr)
        st.session_state.setdefault("pc_sev", 3)
        sev = c3.select_slider("Severity", options=[1, 2, 3, 4, 5], key="pc_sev",
                               format_func=lambda s, c=c: c.level_label(s))
    models = labelled([(v.label, clean[v.role]) for v in ctx.views], "clean")
    what = "clean"
    if corr != NONE:
        cor = _corrupted(ctx.pair.cache_key, ctx.split, m, corr, int(sev), list(ctx.views), ctx.splits, clean)
        what = f"{m}: {corruption_words(corr, int(sev))}"
        models.update(labelled([(v.label, cor[v.role]) for v in ctx.views], what))
    table = calibration_table(models)
    st.subheader(f"ECE per model · {ctx.split} ({ctx.splits.size} samples)")
    st.dataframe(_model_and_input(table), hide_index=True, width="stretch",
                 column_config={"model": st.column_config.TextColumn(width=270),
                                "input": st.column_config.TextColumn(width=190),
                                **{k: st.column_config.NumberColumn(format="%.3f")
                                   for k in ("accuracy", "mean confidence", "ECE")}})
    frame = reliability_frame(models)
    left, right = st.columns([3, 2])
    with left:
        st.vega_lite_chart(spec=reliability_chart(frame, f"reliability diagram · {ctx.split}"), key="pc_chart")
    with right:
        st.markdown("**Reading it.** Each point is a bin of samples with similar confidence; its height is how "
                    "many of them the model got right. Points below the dashed diagonal: the model is "
                    "over-confident there; above: under-confident. Point size: samples in the bin.")
        if corr != NONE:
            st.markdown(f"Corrupted: **{what}**, the whole split, seed 0 (the sweep's corruption).")
    c1, c2, c3, _ = st.columns([1, 1, 1, 2])
    download_csv(_model_and_input(table), f"precal-ece-{safe_name(ctx.split)}.csv", "pc_csv", "ECE table (CSV)", where=c1)
    download_csv(frame, f"precal-reliability-{safe_name(ctx.split)}.csv", "pc_bins_csv", "Bins (CSV)", where=c2)
    download_svg(lambda: svg.reliability_diagram(bins_by_model(models), f"reliability diagram · {ctx.split}"),
                 f"precal-reliability-{safe_name(ctx.split)}.svg", "pc_svg", "Diagram (SVG)", where=c3)
