"""Training dynamics from history.json: losses, validation metrics, gates and cues, probes, gradients."""

import pandas as pd
import streamlit as st

from precal.dashboard.backend.overview import history_fit_note, history_frames
from precal.dashboard.charts import figures as charts
from precal.dashboard.ui import url_state
from precal.dashboard.ui.context import context, guard
from precal.dashboard.ui.widgets import PLOTLY_CONFIG
from precal.models.model import CALIBRATED, UNCALIBRATED

ctx = context()
pair = ctx.pair
st.title("Training dynamics")
st.caption("From each checkpoint's history.json (one row per epoch, measured on the validation split). "
           "On every chart of this page, line style is the model (solid: "
           + ("model A, dashed: model B" if ctx.comparing else "calibrated, dashed: uncalibrated") + ") "
           "and colour is what is measured (split, metric or modality).")
fit_note = history_fit_note(pair.checkpoints)
if fit_note:
    st.info(fit_note)

with guard("training dynamics"):
    scalars, dynamics = [], []
    shown = ([(v.role, v.checkpoint) for k, v in enumerate(ctx.views)
              if all(v.checkpoint is not w.checkpoint for w in ctx.views[:k])] if ctx.comparing
             else [(CALIBRATED, pair.calibrated), (UNCALIBRATED, pair.uncalibrated)])
    for role, ckpt in shown:
        if ckpt is None:
            continue
        if not ckpt.history:
            st.warning(f"{ckpt.name} has no history.json (or it is empty).")
            continue
        s, d = history_frames(ckpt.history)
        scalars.append(s.assign(role=role))
        dynamics.append(d.assign(role=role))
    if not scalars:
        st.info("No training history to show.")
        url_state.stop("training")
    s = pd.concat(scalars, ignore_index=True)
    d = pd.concat(dynamics, ignore_index=True)

    st.subheader("Loss and validation metrics")
    c1, c2 = st.columns(2)
    loss_cols = [c for c in ("train_loss", "val_loss") if c in s]
    loss = s.melt(id_vars=["epoch", "role"], value_vars=loss_cols, var_name="split", value_name="loss")
    loss["split"] = loss["split"].str.replace("_loss", "")
    c1.plotly_chart(charts.curves_figure(loss, "epoch", "loss", "split",
                                         "loss per epoch (colour: split)", "epoch",
                                         "cross-entropy loss (nats)" if ctx.schema.task == "classification" else "loss"),
                    config=PLOTLY_CONFIG, key="tr_loss")
    metric_cols = [c for c in s.columns if c.startswith("val_") and c not in ("val_loss", "val_n")]
    metric_cols += [c for c in ("train_accuracy",) if c in s and s[c].notna().any()]
    if metric_cols:
        met = s.melt(id_vars=["epoch", "role"], value_vars=metric_cols, var_name="metric", value_name="value")
        c2.plotly_chart(charts.curves_figure(met, "epoch", "value", "metric",
                                             "metrics per epoch (colour: metric)", "epoch",
                                             "metric value (0–1)"), config=PLOTLY_CONFIG, key="tr_metrics")
    if "lr" in s:
        with st.expander("Learning rate"):
            st.plotly_chart(charts.curves_figure(s, "epoch", "lr", None, "learning rate per epoch",
                                                 "epoch", "learning rate"), config=PLOTLY_CONFIG, key="tr_lr")

    st.subheader("Calibrator gates and cues per modality (mean ± std over validation samples)")
    specs = [
        ("alpha", "instance gate alpha", "alpha (× feature scale)", 1.0),
        ("beta", "dimension gate beta (mean over channels)", "beta (×)", 1.0),
        ("support", "support cos(u, û)", "support (cosine, −1…1)", None),
        ("conflict", "conflict ‖u − û‖² / d", "conflict (mean squared distance)", None),
    ]
    cols = st.columns(2)
    for k, (q, title, label, ref) in enumerate(specs):
        sub = d[d["quantity"] == q]
        if len(sub):
            cols[k % 2].plotly_chart(charts.dynamics_figure(sub, title, label, reference=ref), config=PLOTLY_CONFIG, key=f"tr_{q}")

    st.caption("beta error bars: the spread of beta over channels within a sample (mean over samples).")
    st.subheader("Unimodal probes and encoder gradients")
    st.caption("Probe: the model's own head with every other modality marked absent. Gradient norm: "
               "L2 norm of the gradient of each encoder's parameters, averaged over the epoch's steps.")
    c1, c2 = st.columns(2)
    probe = d[d["quantity"].str.startswith("probe_")]
    if len(probe):
        name = probe["quantity"].iloc[0][len("probe_"):]
        c1.plotly_chart(charts.dynamics_figure(probe, f"unimodal probe {name} (one modality present)",
                                               f"validation {name} (0–1)"),
                        config=PLOTLY_CONFIG, key="tr_probe")
    grad = d[d["quantity"] == "grad_norm"]
    if len(grad):
        c2.plotly_chart(charts.dynamics_figure(grad, "gradient norm per encoder (mean over steps)",
                                               "‖∇ encoder parameters‖₂"), config=PLOTLY_CONFIG, key="tr_grad")
    with st.expander("Per-epoch table"):
        st.dataframe(s, hide_index=True, width="stretch")
