"""Sample explorer: one sample's inputs, both models' predictions, gates, cues and why a modality
was damped or amplified."""

import numpy as np
import pandas as pd
import streamlit as st

from precal.dashboard.backend.lab import uncalibrated_cues_note
from precal.dashboard.backend.samples import (absent_as_notes, explanation_heading, sample_outputs, sample_table,
                                              suppressed_table)
from precal.dashboard.backend.report import input_svg, sample_report
from precal.dashboard.charts import figures as charts
from precal.dashboard.ui import url_state
from precal.dashboard.ui.context import context, guard, select_sample
from precal.dashboard.ui.exports import download, safe_name, view_link
from precal.dashboard.ui.plotly_inputs import render_modality
from precal.dashboard.ui.widgets import PLOTLY_CONFIG, prediction_card, role_colour_map

ctx = context()
ctx.require_data()
url_state.restore_page("explorer")
schema = ctx.schema
data = ctx.data
st.title("Sample explorer")

with guard("sample explorer"):
    preds = {v.role: ctx.predictions(v) for v in ctx.views}
    gated = ctx.gated()
    cal_preds = preds.get(gated.role) if gated is not None else None
    others = [preds[v.role] for v in ctx.views if gated is None or v.role != gated.role]
    ref_preds = others[0] if others else None
    table = sample_table(data, ctx.splits, cal_preds if cal_preds is not None else ref_preds,
                            ref_preds if cal_preds is not None else None)
    if ctx.comparing:
        names = {"calibrated": "A" if ctx.views[0] is gated or gated is None else "B",
                 "uncalibrated": "B" if ctx.views[0] is gated or gated is None else "A"}
        table = table.rename(columns=lambda c: c.replace("(calibrated)", f"({names['calibrated']})")
                             .replace("(uncalibrated)", f"({names['uncalibrated']})"))

    modes = ["sample id", "class", "misclassified", "most suppressed modality"]
    mode = st.radio("Pick a sample by", modes, horizontal=True, key="ex_mode")
    if mode == "sample id":
        select_sample(ctx, "ex_id")
    elif mode == "class":
        names = list(dict.fromkeys(table["class"]))
        c1, c2 = st.columns(2)
        cls = c1.selectbox("Class", names, key="ex_class")
        ids = table.loc[table["class"] == cls, "sample id"].tolist()
        current = st.session_state.get("sample_id")
        pick = c2.selectbox("Sample of that class", ids, index=ids.index(current) if current in ids else 0,
                            key=f"ex_class_pick_{cls}")
        st.session_state["sample_id"] = pick
    elif mode == "misclassified":
        col = next((c for c in table.columns if c.startswith("correct")), None)
        if col is None:
            st.info("Misclassification needs a classification task.")
        else:
            wrong = table[~table[col]]
            st.caption(f"{len(wrong)} of {len(table)} samples of {ctx.split} are misclassified by the "
                       f"{col[len('correct ('):-1]} model.")
            if len(wrong):
                event = st.dataframe(wrong, hide_index=True, width="stretch", height=220, on_select="rerun",
                                     selection_mode="single-row", key="ex_wrong_table")
                rows = event.selection.rows if event is not None else []
                if rows:
                    st.session_state["sample_id"] = str(wrong.iloc[rows[0]]["sample id"])
                elif st.session_state.get("sample_id") not in set(wrong["sample id"]):
                    st.session_state["sample_id"] = str(wrong.iloc[0]["sample id"])
    else:
        if cal_preds is None:
            st.info("Needs a model whose gates act (an uncalibrated model has none).")
        else:
            sup = suppressed_table(data, ctx.splits, cal_preds, limit=50)
            st.caption("The 50 (sample, modality) pairs with the smallest instance gate alpha. Select a row.")
            event = st.dataframe(sup, hide_index=True, width="stretch", height=220, on_select="rerun",
                                 selection_mode="single-row", key="ex_sup_table",
                                 column_config={"alpha": st.column_config.NumberColumn(format="%.3f")})
            rows = event.selection.rows if event is not None else []
            if rows:
                st.session_state["sample_id"] = str(sup.iloc[rows[0]]["sample id"])
                st.session_state["ex_why"] = str(sup.iloc[rows[0]]["modality"])
            elif len(sup) and st.session_state.get("sample_id") not in set(sup["sample id"]):
                st.session_state["sample_id"] = str(sup.iloc[0]["sample id"])
                st.session_state["ex_why"] = str(sup.iloc[0]["modality"])

    index = ctx.current_index()
    sid = str(data.sample_ids[index])
    true_name = data.label_name(index)
    outs = sample_outputs(ctx.views, ctx.splits, index)
    st.subheader(f"Sample {sid} · true class: {true_name}")

    # ---- predictions side by side
    cols = st.columns(len(outs))
    for col, v in zip(cols, ctx.views):
        o = outs[v.role]
        with col:
            prediction_card(f"prediction · {v.label}", o.predicted_name, o.predicted_name == true_name,
                               o.confidence)
    frames = []
    for v in ctx.views:
        frames.append(outs[v.role].top(5).assign(model=v.label))
    top = pd.concat(frames, ignore_index=True)
    st.plotly_chart(charts.top_k_figure(top, "top-5 class probabilities", colours=role_colour_map(ctx.views),
                                        true_class=true_name), config=PLOTLY_CONFIG, key="ex_top")

    # ---- inputs in native form
    st.subheader("Inputs")
    tabs = st.tabs(list(schema.modality_names))
    for tab, m in zip(tabs, schema.modality_names):
        with tab:
            raw = data.sequence(m, index)
            render_modality(ctx, m, raw, len(raw), key="ex")

    # ---- gates and cues
    st.subheader("Gates and cues")
    cue = pd.concat([outs[v.role].cue_frame().assign(model=v.label) for v in ctx.views], ignore_index=True)
    cue = absent_as_notes(cue)
    colours = role_colour_map(ctx.views)
    c1, c2, c3 = st.columns(3)
    c1.plotly_chart(charts.gate_bars(cue, "alpha", "instance gate alpha", "alpha (× feature scale)",
                                     colours=colours, reference=1.0, y_range=[0, 2.1]), config=PLOTLY_CONFIG, key="ex_alpha")
    c2.plotly_chart(charts.gate_bars(cue, "support", "support: cos(u, û)", "support (cosine, −1…1)",
                                     colours=colours, y_range=[-1.1, 1.2]), config=PLOTLY_CONFIG, key="ex_support")
    c3.plotly_chart(charts.gate_bars(cue, "conflict", "conflict: ‖u − û‖² / d", "conflict (mean squared distance)",
                                     colours=colours), config=PLOTLY_CONFIG, key="ex_conflict")
    for unc in ctx.ungated():
        st.caption(uncalibrated_cues_note(unc, ctx.pair))

    # the view's address now, while the page runs: the report's maker runs after the click, when the
    # address bar's parameters are no longer in reach
    link = view_link("explorer", {**url_state.sidebar_values(), **url_state.page_values("explorer")})

    def report() -> str:
        inputs = []
        for m in schema.modality_names:
            raw = data.sequence(m, index)
            if len(raw):
                inputs.append(input_svg(schema, m, raw, None, len(raw), f"{m} (as recorded)", schema.modality(m).unit))
        facts = [("data set", schema.name), ("split", str(ctx.split)), ("sample", sid), ("true class", true_name),
                 *[(f"model {k + 1}", v.label) for k, v in enumerate(ctx.views)]]
        return sample_report(f"Sample explorer · {schema.name} · sample {sid}", facts, true_name,
                             [(v.label, outs[v.role], None) for v in ctx.views], inputs,
                             outs.get(gated.role) if gated is not None else None,
                             [st.session_state.get("ex_why")] if st.session_state.get("ex_why") else [],
                             link=link)

    download("Report of this sample (HTML)", report, f"precal-sample-{safe_name(sid)}.html", "text/html",
             "ex_report", help="Inputs, both models' predictions, gates, cues and the explanation, in one file "
                               "that opens without a network.")
    cal = outs.get(gated.role) if gated is not None else None
    if cal is not None:
        c1, c2 = st.columns([1, 2])
        pairwise = np.where(np.eye(len(cal.modalities), dtype=bool), np.nan, cal.pairwise)  # no support from oneself
        c1.plotly_chart(charts.matrix_heatmap(pairwise, cal.modalities, "support from each peer",
                                              "cosine", "peer k", "modality m"), config=PLOTLY_CONFIG, key="ex_pairwise")
        c1.caption("Row m, column k: cos(u_m, g_m(u_k)), modality m's summary against what peer k predicts for it.")
        mat, mods = cal.beta_matrix()
        c2.plotly_chart(charts.beta_heatmap(mat, mods, f"dimension gate beta per channel ({gated.label})"),
                        config=PLOTLY_CONFIG, key="ex_beta")

        # ---- why damped or amplified
        st.subheader("Why its gate: damped or amplified relative to a typical sample")
        present = [m for m, p in zip(cal.modalities, cal.present) if p]
        default = st.session_state.get("ex_why")
        if default not in cal.modalities:
            default = cal.modalities[int(np.argmin(np.where(cal.present, cal.alpha, np.inf)))] if present \
                else cal.modalities[0]
            st.session_state["ex_why"] = default
        m = st.selectbox("Modality", cal.modalities, key="ex_why",
                         format_func=lambda x: f"{x} (alpha = {cal.alpha[cal.modalities.index(x)]:.3f})"
                         if cal.present[cal.modalities.index(x)] else f"{x} (n/a: absent)")
        expl = cal.explain(m)
        st.markdown(f"#### {explanation_heading(expl)}")
        st.info(expl.with_caveat)
        if expl.status not in ("absent", "disabled", "no_context"):
            from precal.explain import cue_phrase, waterfall_frame

            wf = waterfall_frame(expl)
            c1 = c2 = st.container()  # the table below the chart: its phrases need the page's width
            c1.plotly_chart(charts.waterfall_figure(wf, f"alpha logit of {m}: typical sample + evidence "
                                                        f"= {expl.logit:+.3f} → alpha = {expl.alpha:.3f}"),
                            config=PLOTLY_CONFIG, key="ex_waterfall")
            names = list(expl.evidence) or [n for n, _ in expl.contributions]
            table = pd.DataFrame({"cue": [cue_phrase(k) for k in names],
                                  "value": [expl.cue_values.get(k, np.nan) for k in names],
                                  "evidence (sd)": [expl.evidence.get(k, np.nan) if expl.gate == "monotone"
                                                    else np.nan for k in names],
                                  "measured against": [expl.basis_of(k) if expl.gate == "monotone" else ""
                                                       for k in names],
                                  "→ logit": [dict(expl.contributions).get(k, 0.0) for k in names]})
            c2.markdown("**Each cue against a typical training sample, and what it did to the gate**")
            c2.dataframe(table, hide_index=True, width="stretch",
                         column_config={"cue": st.column_config.TextColumn(width="large"),
                                        "value": st.column_config.NumberColumn(format="%.3f", width="small"),
                                        "evidence (sd)": st.column_config.NumberColumn(format="%+.1f",
                                                                                       width="medium"),
                                        "measured against": st.column_config.TextColumn(width="large"),
                                        "→ logit": st.column_config.NumberColumn(format="%+.3f", width="small")})
            c2.caption(f"A typical sample's logit (the learned bias for {m}) is {expl.baseline:+.3f}: "
                       f"alpha {expl.typical_alpha:.2f}. Every bar after it is evidence from this sample"
                       + (": more agreement can only raise the gate, more distance can only lower it."
                          if expl.gate == "monotone" else " (this checkpoint's weights are unconstrained: a "
                          "cue may move the gate either way)."))
            c2.caption("alpha = 2·sigmoid(logit): 1 leaves the modality's features unchanged, below 1 damps "
                       "them, above 1 amplifies them.")
    else:
        st.info("Neither model has gates that act: nothing to explain.")
