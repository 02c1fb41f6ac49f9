"""Overview / model card: data set, modalities, backbone, parameters, metrics, gates, confusion."""

import numpy as np
import streamlit as st

from precal.dashboard.backend.formatting import delta_style, fmt_count, fmt_pct, points_text
from precal.dashboard.backend.overview import (alpha_frame, live_metrics, metrics_table, modality_table,
                                               parameter_table, seed_groups, seed_summary, training_summary)
from precal.dashboard.backend.pairs import ModelView
from precal.dashboard.ui.exports import download_csv, safe_name
from precal.dashboard.charts import figures as charts, overview as overview_charts
from precal.dashboard.ui.context import context, guard
from precal.dashboard.ui.model_notes import show_page_notes
from precal.metrics import primary_metric
from precal.models.model import CALIBRATED, role_name

ctx = context()
pair = ctx.pair
schema = ctx.schema
st.title(f"Overview · {schema.name}")
show_page_notes(ctx, "overview")
st.caption(schema.description or "")

ckpt = pair.primary
params, cal_pct = parameter_table(pair.calibrated or ckpt)
cols = st.columns(5)
cols[0].metric("Data set", schema.name)
cols[1].metric("Classes" if schema.task == "classification" else "Task",
               len(schema.class_names) if schema.task == "classification" else schema.task)
cols[2].metric("Backbone", pair.backbone)
cols[3].metric("Parameters", fmt_count(int(params["parameters"].sum())))
cols[4].metric("Calibrator / backbone", f"{cal_pct:.1f}%",
               help="Calibrator parameters as a share of the rest of the model (encoders + fusion + head).")

st.subheader("Modalities")
mods = modality_table(ckpt)
st.dataframe(mods.drop(columns=["description"]), hide_index=True, width="stretch")
with st.expander("What each modality is"):
    for _, r in mods.iterrows():
        st.markdown(f"**{r['modality']}**: {r['description']}")
left, right = st.columns([1, 1])
with left:
    st.subheader("Parameters per part")
    st.dataframe(params.assign(share=lambda d: (100 * d["parameters"] / d["parameters"].sum()).round(1))
                 .rename(columns={"share": "share of model (%)"}), hide_index=True, width="stretch")
with right:
    st.subheader("Training")
    st.markdown("\n".join(f"- **{k}**: {v}" for k, v in training_summary(pair.calibrated or ckpt))
                or "no training record")
if schema.citation:
    with st.expander("Citation"):
        st.write(schema.citation)

st.subheader("Clean metrics: " + (" vs ".join(v.label.split(":")[0] for v in ctx.views) if ctx.comparing
                                  else "calibrated vs uncalibrated"))
if ctx.data is None or ctx.splits is None:
    st.dataframe(metrics_table(ctx.views, {}, "test"), hide_index=True, width="stretch")
    ctx.require_data()

with guard("metrics"):
    preds = {v.role: ctx.predictions(v) for v in ctx.views}
    live = {role: live_metrics(p, schema) for role, p in preds.items()}
    table = metrics_table(ctx.views, live, ctx.split)
    mcols = st.columns(max(1, len(ctx.views)))
    main = primary_metric(schema.task)
    first = ctx.views[0]
    base = live.get(ctx.views[1].role, {}).get(main) if len(ctx.views) > 1 else None
    for col, v in zip(mcols, ctx.views):
        value = live[v.role].get(main)
        delta, colour, arrow = None, "normal", "auto"
        if v is first and base is not None:
            other = "uncalibrated" if v.role == CALIBRATED else "model B"
            delta = f"{points_text(value - base)} vs {other}"
            colour, arrow = delta_style(value - base)
        col.metric(f"{main} · {v.label} · {ctx.split} (live)", fmt_pct(value), delta, delta_color=colour,
                   delta_arrow=arrow)
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={k: st.column_config.NumberColumn(k, format="%.3f")
                                for k in table.columns if k not in ("model", "source")})

    download_csv(table, f"precal-metrics-{safe_name(ctx.split)}.csv", "ov_metrics_csv", "Metrics as CSV")

    # ---- several seeds of one configuration: mean ± std
    everything = [c for p in ctx.pairs for c in p.checkpoints] + list(pair.checkpoints)
    shown = {id(v.checkpoint) for v in ctx.views}
    groups = [g for g in seed_groups(everything) if any(id(c) in shown for c in g)]
    if groups:
        st.subheader("Over seeds: mean ± std of each configuration shown")
        keys = ["accuracy", "macro_f1"] if schema.task == "classification" else ["acc2_non0", "mae", "corr"]
        rows = []
        for g in groups:
            metrics = [live_metrics(ctx.predictions_elsewhere(ModelView(role_name(c.config.calibration), c,
                                                                        bool(c.config.calibration), c.name)), schema)
                       for c in g]
            name = f"{g[0].name.split('_s')[0]} · {role_name(g[0].config.calibration)} · seeds " + \
                   ", ".join(str(c.training.get("seed", 0)) for c in g)
            rows.append(seed_summary(name, metrics, keys))
        import pandas as pd

        seeds = pd.DataFrame(rows)
        st.dataframe(seeds[[c for c in seeds.columns if not c.endswith(("(mean)", "(std)"))]], hide_index=True,
                     width="stretch")
        st.caption(f"Live on {ctx.split}, one number per seed; ± is the standard deviation over seeds (ddof 1). "
                   "A configuration: the same recipe apart from the seed (read from the configs).")
        download_csv(seeds, f"precal-seeds-{safe_name(ctx.split)}.csv", "ov_seeds_csv", "Seeds as CSV")

    cal = ctx.gated()
    st.subheader("Instance gate alpha per modality" + (f" · {cal.label}" if ctx.comparing and cal else ""))
    if cal is None:
        st.info("No model shown has gates that act, so there are no gates to show.")
    else:
        frame = alpha_frame(preds[cal.role], schema.class_names)
        frame = frame[frame["present"]]
        colours = charts.modality_colours(list(schema.modality_names))
        # Up to three violins fit beside the statistics; more get the page's width.
        narrow = len(schema.modality_names) <= 3
        c1, c2 = st.columns([1, 2]) if narrow else (st.container(), st.container())
        with c1:
            st.vega_lite_chart(spec=overview_charts.alpha_violins(
                frame, schema.modality_names, colours,
                f"alpha per modality ({ctx.split}, {len(preds[cal.role].alpha)} samples)",
                total_width=220 if narrow else 620), key="ov_alpha")
        with c2:
            summary = (frame.groupby("modality")["alpha"].describe()[["mean", "std", "min", "25%", "50%", "75%", "max"]]
                       .reindex([m for m in schema.modality_names if m in set(frame["modality"])]))
            st.markdown("**alpha statistics per modality** (1 = unchanged, < 1 damped, > 1 amplified)")
            st.dataframe(summary.round(4), width="stretch")
            st.caption("alpha = 2·sigmoid(logit) multiplies all of a modality's features for one sample; "
                       "values below 1 mean the calibrator trusted that modality less for that sample. "
                       "Violins: density of alpha over the samples, from the smallest to the largest gate; "
                       "black line: median; dashed line: alpha = 1. A modality whose gates are all equal is "
                       "a single coloured line at that value.")
        if schema.task == "classification":  # per true class: needs classes
            st.vega_lite_chart(spec=overview_charts.alpha_by_class(
                frame, schema.modality_names, colours, schema.class_names,
                "alpha per true class and modality (bar: 25–75 %, black line: median)"), key="ov_alpha_class")

    if schema.task == "classification":
        st.subheader(f"Confusion matrices ({ctx.split})")
        tabs = st.tabs([v.label for v in ctx.views])
        for tab, v in zip(tabs, ctx.views):
            with tab:
                cm = np.asarray(live[v.role]["confusion_matrix"])
                st.vega_lite_chart(spec=overview_charts.confusion_chart(
                    cm, schema.class_names,
                    f"confusion matrix · {v.label} · accuracy {fmt_pct(live[v.role]['accuracy'])}"),
                    key=f"ov_cm_{v.role.replace(' ', '_')}")
