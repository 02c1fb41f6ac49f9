"""Robustness: metric and mean alpha of the corrupted modality vs severity, calibrated vs uncalibrated."""

import pandas as pd
import streamlit as st

from precal.dashboard import settings

from precal.dashboard.backend.robustness import (DEFAULT_SEVERITIES, POINTS_ONLY, SWEEP_SEED,
                                                 available_corruptions, by_column, comparison_summary,
                                                 computed_summary, default_corruptions, find_robustness_tables,
                                                 gated_alpha, page_sweep, read_robustness_tables,
                                                 robustness_summary, severity_facets, summary_for_display)
from precal.dashboard.charts import figures as charts
from precal.dashboard.ui.context import context, guard
from precal.dashboard.ui.model_notes import show_page_notes
from precal.dashboard.ui.exports import download_csv, safe_name
from precal.dashboard.ui.widgets import PLOTLY_CONFIG
from precal.errors import USER_ERRORS, error_line
from precal.dashboard.backend.robustness import corruption_titles

ctx = context()
schema = ctx.schema
st.title("Robustness to corruptions")
show_page_notes(ctx, "robustness")


def _sweep(weights: str, data_path: str, split: str, reference: str, modalities: tuple, corruptions: tuple,  # noqa: ARG001
           severities: tuple, seed: int, _views, _splits, _schema, _progress) -> pd.DataFrame:
    """The sweep from the disk cache (filled by an earlier run or ``precal precompute``), else computed
    with the progress bar. Not an ``st.cache_data``: a cached call that drew a progress bar cannot be
    replayed in another session."""
    return page_sweep(_views, _splits, _schema, data_path, modalities, corruptions, severities,
                      settings.cache_folder("sweeps"), seed=seed, progress=_progress)


def show_summary(summary: pd.DataFrame, modality: str) -> None:
    names = tuple(v.role for v in ctx.views[:2]) if ctx.comparing and len(ctx.views) > 1 else None
    table = summary_for_display(summary, modality, names)
    if table.empty:
        return
    first, second = names or ("the calibrated model", "the uncalibrated one")
    st.markdown(f"**Summary when {modality} is corrupted**")
    st.caption("RR: relative robustness, the area under the accuracy-vs-severity curve (MultiBench). ER: "
               f"effective robustness of {first} against {second} (> 0: it keeps more "
               f"than its clean-accuracy difference explains). AUROC: how well {first}'s own "
               f"signals for {modality} (low support, high conflict, low alpha) flag that {modality} was corrupted, "
               "against clean samples; 0.5 = chance, 1 = perfect. n/a: a missing modality has no gate and no cues, "
               "hence no AUROC.")
    st.dataframe(table, hide_index=True, width="stretch")


def _alpha_panel(sub: pd.DataFrame, m: str, gated, facets) -> None:
    """Mean alpha of ``m`` against severity for one gated model. Every gated model gets its own
    panel: with two calibrated checkpoints (A vs B) the second's gates are as much the point."""
    cal = sub[(sub["role"] == gated.role) & sub["alpha_mean"].notna()]
    cal = cal[~cal["corruption"].isin(POINTS_ONLY) | (cal["severity"] == 0)]
    cal = cal[cal.groupby("corruption")["severity"].transform("size") > 1]
    if not len(cal):
        return
    who = gated.label.split(" (")[0] if ctx.comparing else gated.label  # A vs B: the full label ran into the legend
    st.plotly_chart(charts.robustness_figure(cal, "alpha_mean", f"mean alpha of {m} ({who}) vs severity",
                                             f"mean alpha of {m} (1 = unchanged)", facets, reference=1.0),
                    config=PLOTLY_CONFIG, key=f"rob_alpha_{m}_{gated.role}")
    st.caption(f"A removed {m} has no gate, so removals are left out of this grid.")


def show(frame: pd.DataFrame, source: str, summary: pd.DataFrame | None = None) -> None:
    st.caption(source)
    metric = frame["metric"].iloc[0] if len(frame) else "accuracy"
    scores = {metric: "value", **({"macro_f1": "macro_f1"} if frame.get("macro_f1", pd.Series(dtype=float)).notna().any()
                                  and metric != "macro_f1" else {})}
    if len(scores) > 1:
        metric = st.selectbox("Metric", list(scores), key="rob_metric")
    frame = frame.assign(score=frame[scores[metric]], alpha_mean=gated_alpha(frame, ctx.views))
    facets = severity_facets(list(frame["corruption"].unique()))
    mods = [m for m in schema.modality_names if m in set(frame["modality"])] or sorted(frame["modality"].unique())
    st.caption("Each panel's axis is its corruption's own scale (severity 1–5 of the catalogue, in its unit); "
               "\"Missing\" and \"Blanked\" remove the modality at every severity, so they are points, not lines. "
               "The vertical axis spans the values shown, to make the difference between the models visible.")
    tabs = st.tabs([f"corrupting {m}" for m in mods])
    for tab, m in zip(tabs, mods):
        with tab:
            sub = frame[frame["modality"] == m]
            unit = "(0–1)" if metric not in ("mae", "corr") else ""
            st.plotly_chart(charts.robustness_figure(sub, "score", f"{metric} vs severity when {m} is corrupted",
                                                     f"{metric} {unit}".strip(), facets, points_only=POINTS_ONLY),
                            config=PLOTLY_CONFIG, key=f"rob_metric_{m}")
            for gated in [v for v in ctx.views if v.calibration]:
                _alpha_panel(sub, m, gated, facets)
            if summary is not None:
                show_summary(summary, m)
    with st.expander("Table"):
        st.dataframe(frame.drop(columns=["score", "alpha_mean"]), hide_index=True, width="stretch")
    download_csv(frame.drop(columns=["score", "alpha_mean"]), f"precal-sweep-{safe_name(ctx.pair.name)}.csv",
                 "rob_csv", "Sweep as CSV")


with guard("robustness"):
    stored = find_robustness_tables(ctx.pair)
    stored_frame = None
    if stored:
        try:
            stored_frame = read_robustness_tables(stored, ctx.pair)
        except USER_ERRORS as exc:
            st.warning(f"stored sweep {', '.join(f'{p.parent.name}/{p.name}' for p in stored)} could not be read "
                       f"({error_line(exc)}); compute one below.")
    if stored_frame is not None and ctx.comparing:
        stored_frame = by_column(stored_frame, ctx.views)
        if stored_frame["role"].nunique() < len(ctx.views):
            stored_frame = None  # the stored sweep does not hold both models: compute one below
    if stored_frame is not None and len(stored_frame):
        show(stored_frame, f"Stored sweep: {', '.join(f'`{p.parent.name}/{p.name}`' for p in stored)} "
                           f"({len(stored_frame)} rows).",
             comparison_summary(stored_frame, ctx.views) if ctx.comparing
             else robustness_summary(stored_frame, ctx.pair))
    else:
        ctx.require_data()
        st.info(("No stored sweep (robustness.csv) holding both models." if ctx.comparing and stored else
                 "No stored sweep (robustness.csv) next to this checkpoint.") + " Compute one here: every setting "
                f"corrupts the whole {ctx.split} split ({ctx.splits.size} samples) at once, with the same seeded "
                "corruptions as the lab.")
        with st.form("rob_form"):
            c1, c2 = st.columns(2)
            c3 = st.container()
            mods = c1.multiselect("Modalities", schema.modality_names, default=schema.modality_names, key="rob_mods")
            corrs = c2.multiselect("Corruptions", available_corruptions(schema), default=default_corruptions(schema),
                                   format_func=corruption_titles().get, key="rob_corrs")
            sevs = c3.multiselect("Severities", [0, 1, 2, 3, 4, 5], default=list(DEFAULT_SEVERITIES), key="rob_sevs",
                                  help="0 is the clean input (always included); 1-5 are each corruption's levels.")
            submitted = st.form_submit_button("Compute sweep", type="primary")
        key = (ctx.pair.cache_key, str(ctx.data_path), ctx.split, ctx.reference or "", tuple(mods), tuple(corrs),
               tuple(sorted(set(sevs) | {0})), SWEEP_SEED)
        if submitted:
            st.session_state["rob_last"] = key
        if st.session_state.get("rob_last") == key and mods and corrs and sevs:
            bar = st.progress(0.0, text="starting…")

            def progress(fraction: float, text: str) -> None:
                bar.progress(min(max(fraction, 0.0), 1.0), text=text)

            frame = _sweep(*key, ctx.views, ctx.splits, schema, progress)
            bar.empty()
            if ctx.comparing:
                frame = by_column(frame, ctx.views)
            show(frame, f"Computed sweep on the whole {ctx.split} split ({int(frame['n'].max()) if len(frame) else 0} "
                        "samples, seed 0), cached for these weights and settings.",
                 comparison_summary(frame, ctx.views) if ctx.comparing else computed_summary(frame, ctx.views))
        elif submitted:
            st.warning("Pick at least one modality, corruption and severity.")
