"""Slices: accuracy, gates and cues per group of the split (subject, speaker, session from the data's
``groups``, or per class); each slice opens its samples."""

import streamlit as st

from precal.dashboard.backend import svg
from precal.dashboard.backend.samples import sample_table
from precal.dashboard.backend.slices import BY_CLASS, grouping_choices, slice_members, slice_table
from precal.dashboard.ui import url_state
from precal.dashboard.ui.context import context, guard
from precal.dashboard.ui.pages import PAGES
from precal.dashboard.ui.exports import download_csv, download_svg, safe_name

ctx = context()
ctx.require_data()
url_state.restore_page("slices")
data = ctx.data
st.title("Slices: results per group")
st.caption("One row per group of the split: each model's accuracy, their difference and the gated model's mean "
           "gates and cues per modality. Click a column header to sort; select a row to list its samples.")

with guard("slices"):
    options, single = grouping_choices(data, ctx.splits)
    if not options:
        st.info("This data set records no groups (subject, speaker…) with more than one value on this split and "
                "is not a classification: nothing to slice by. Groups are `group.<name>` arrays of the data "
                "format (docs/data-format.md).")
        url_state.stop("slices")
    if st.session_state.get("sl_group") not in options:
        st.session_state["sl_group"] = options[0]
    grouping = st.radio("Slice by", options, key="sl_group", horizontal=True,
                        format_func=lambda g: "class (true label)" if g == BY_CLASS else g)
    if single:
        st.caption(f"Not offered: {', '.join(single)} (one value on {ctx.split}: a single row repeating the "
                   "split's totals).")
    preds = [(v.role, ctx.predictions(v)) for v in ctx.views]  # short column names: the full labels below
    gated = ctx.gated()
    table = slice_table(data, ctx.splits, grouping, preds,
                        (gated.role, ctx.predictions(gated)) if gated is not None else None)
    number = {c: st.column_config.NumberColumn(format="%.3f") for c in table.columns if c not in (grouping, "samples")}
    event = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         key=f"sl_table_{grouping}", column_config=number)
    st.caption(f"{len(table)} {grouping} slices of {ctx.split} ({ctx.splits.size} samples). "
               + " ".join(f"{v.role}: {v.label}." for v in ctx.views) + " "
               + ("alpha, support and conflict: of " + gated.label + ", mean over the slice's samples where the "
                  "modality is present." if gated is not None else "No model with gates: accuracy only."))
    score_cols = [c for c in table.columns if c.startswith(("accuracy · ", "MAE · "))]
    c1, c2, _ = st.columns([1, 1, 4])
    download_csv(table, f"precal-slices-{safe_name(grouping)}-{safe_name(ctx.split)}.csv", "sl_csv",
                 "Table as CSV", where=c1)
    download_svg(lambda: svg.bar_chart([str(v) for v in table[grouping]],
                                       {c.split(" · ", 1)[1][:40]: list(table[c]) for c in score_cols},
                                       f"{score_cols[0].split(' · ')[0] if score_cols else ''} per {grouping} "
                                       f"({ctx.split})", "accuracy (0–1)" if "accuracy" in "".join(score_cols)
                                       else "mean absolute error", domain=(0.0, 1.0) if score_cols and
                                       score_cols[0].startswith("accuracy") else None),
                 f"precal-slices-{safe_name(grouping)}.svg", "sl_svg", "Chart as SVG", where=c2)

    rows = event.selection.rows if event is not None else []
    values = [str(v) for v in table[grouping]]
    if rows:
        st.session_state["sl_value"] = values[rows[0]]
    chosen = st.session_state.get("sl_value")
    if chosen not in values:
        st.caption("Select a row to see its samples.")
        url_state.stop("slices")
    members = slice_members(data, ctx.splits, grouping, chosen)
    by_role = {v.role: p for v, (_, p) in zip(ctx.views, preds)}
    samples = sample_table(data, ctx.splits, *[by_role[v.role] for v in ctx.views][:2])
    samples = samples[samples["index"].isin(members)].drop(columns=["index"])
    if ctx.comparing:
        samples = samples.rename(columns=lambda c: c.replace("(calibrated)", "(A)").replace("(uncalibrated)", "(B)"))
    st.subheader(f"{grouping} {chosen}: {len(samples)} samples")
    pick = st.dataframe(samples, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                        key=f"sl_members_{grouping}_{chosen}", height=260)
    download_csv(samples, f"precal-slice-{safe_name(grouping)}-{safe_name(chosen)}.csv", "sl_members_csv",
                 "Samples as CSV")
    picked = pick.selection.rows if pick is not None else []
    if picked:
        sid = str(samples.iloc[picked[0]]["sample id"])
        st.session_state["sample_id"] = sid
        c1, c2, _ = st.columns([1, 1, 3])
        if c1.button(f"Open {sid} in the explorer", key="sl_to_explorer"):
            st.switch_page(PAGES["explorer"])
        if c2.button(f"Open {sid} in the lab", key="sl_to_lab"):
            st.switch_page(PAGES["lab"])
