"""Corruption lab: damage, remove or swap modalities of one sample and watch both models react.

Everything below the title runs in an ``st.fragment``: moving a control reruns only the lab.
"""

import os
import time

import numpy as np
import pandas as pd
import streamlit as st

from precal.dashboard.backend.data import row_of
from precal.dashboard.backend.embeddings import FUSED, pre_post_features, projection_key
from precal.dashboard.backend.formatting import fmt_shape
from precal.dashboard.backend.inputs import geometry_note, model_input, model_input_unit
from precal.dashboard.backend.lab import LabSetting, lab_update
from precal.dashboard.charts import figures as charts, lab as lab_charts
from precal.dashboard.ui.background import pause_background_work
from precal.dashboard.ui.context import context, guard, select_sample
from precal.dashboard.ui.model_notes import show_page_notes
from precal.dashboard.ui.loading import projection
from precal.dashboard.ui.vega_inputs import render_lab_input
from precal.dashboard.ui.widgets import prediction_card
from precal.dashboard.backend.lab import uncalibrated_cues_note
from precal.dashboard.charts.figures import CLASS_COLOURS
from precal.models.model import CALIBRATED, UNCALIBRATED
from precal.robustness.corruptions import corruptions_for, get_corruption

ctx = context()
ctx.require_data()
st.title("Corruption lab")
show_page_notes(ctx, "lab")
st.caption("Corrupt, remove or swap modalities of one sample. Calibrated and uncalibrated models run on "
           "the same corrupted input; corruptions are seeded and identical to the robustness sweep's.")

EXCLUDED = {"remove_absent", "swap"}  # these have their own controls
LAB_PARTS = ("probabilities", "cues", "tables", "inputs", "projection")
# Profiling switch: `benchmarks/dashboard.py --breakdown` draws only some parts of the lab, to
# attribute the browser round trip to them. Unset, everything is drawn.
SHOWN = set(os.environ.get("PRECAL_LAB_PARTS", ",".join(LAB_PARTS)).split(","))


INPUT_MODES = {"keep": "as is", "remove": "remove (mark missing)", "swap": "swap with another sample"}


def _apply_preset(schema) -> None:
    """A prepared example from the start page: swap the named modality, keep the others as they are."""
    preset = st.session_state.pop("lab_preset", None)
    if not preset:
        return
    for m in schema.modality_names:
        st.session_state[f"lab_input_{m}"] = "swap" if m == preset.get("swap") else "keep"
        st.session_state[f"lab_corr_{m}"] = "none"
    st.session_state["lab_seed"] = 0
    if preset.get("swap") in schema.modality_names:
        st.session_state["lab_draw"] = preset["swap"]


def _draw(modality: str) -> None:
    """Touching a modality's controls makes it the drawn one: the user sees what they changed."""
    st.session_state["lab_draw"] = modality


def _controls(schema) -> dict:
    """One column of controls per modality: corruption, severity (with its own units) and what
    happens to the input. Few widgets on purpose: every element is redrawn on every lab change."""
    settings = {}
    cols = st.columns(len(schema.modality_names))
    for col, m in zip(cols, schema.modality_names):
        spec = schema.modality(m)
        with col:
            options = ["none"] + [c.name for c in corruptions_for(spec.kind) if c.name not in EXCLUDED]
            name = st.selectbox(f"**{m}** corruption", options, key=f"lab_corr_{m}", on_change=_draw, args=(m,),
                                format_func=lambda c: "none" if c == "none" else get_corruption(c).title,
                                help=f"{m}: {spec.kind.replace('_', ' ')} {fmt_shape(spec.step_shape)}"
                                     + (f", {spec.unit}" if spec.unit else ""))
            corr = None if name == "none" else get_corruption(name)
            if corr is not None:
                sev = st.select_slider("severity", options=list(range(6)), value=3, key=f"lab_sev_{m}_{corr.name}",
                                       on_change=_draw, args=(m,), help=corr.description,
                                       format_func=lambda s, c=corr: "0 · clean" if s == 0 else
                                       f"{s} · {c.level_label(s).split(': ', 1)[-1]}")
            else:
                sev = 0
            mode = st.radio("input", list(INPUT_MODES), key=f"lab_input_{m}", format_func=INPUT_MODES.get,
                            on_change=_draw, args=(m,), label_visibility="collapsed",
                            help="Swap: replace this modality by the same modality of a random sample of a "
                                 "different class (drawn with the seed above).")
            settings[m] = LabSetting(corr.name if corr is not None else None, int(sev), mode == "remove",
                                        mode == "swap")
    return settings


def _explanations(result, views, schema, settings) -> None:
    """Why each gate of the calibrated model moved, in words (precal.explain), for the corrupted
    input: the modalities whose controls are active first. Beside the change table, so every change
    is read with its reason."""
    cal = result.corrupted.get(CALIBRATED)
    if cal is None:
        return
    clean = result.clean[CALIBRATED]
    active = [m for m in schema.modality_names if settings[m].active]
    order = active + [m for m in schema.modality_names if m not in active]
    lines = []
    for m in order:
        if m not in cal.modalities:
            continue
        expl = cal.explain(m)
        before = clean.explain(m)
        mark = "**changed here** · " if m in active else ""
        was = (f" (clean input: alpha {before.alpha:.2f})" if expl.status != "absent" and before.status != "absent"
               else "")
        lines.append(f"- {mark}{expl.sentence}{was}")
    st.markdown("**Why the calibrated model's gates are where they are, relative to a typical sample "
                "(corrupted input)**\n" + "\n".join(lines))


@st.fragment
def lab() -> None:
    started = time.perf_counter()
    pause_background_work()  # a fragment rerun does not pass through context()
    schema = ctx.schema
    _apply_preset(schema)
    c1, c2 = st.columns([3, 1])
    with c1:
        index = select_sample(ctx, "lab")
    seed = c2.number_input("seed", min_value=0, max_value=10_000, value=0, step=1, key="lab_seed",
                           help="Seed of the random corruptions and of the swap donor.")
    true_name = ctx.data.label_name(index)
    settings = _controls(schema)
    with guard("corruption lab"):
        views = list(ctx.views)
        pre_view = ctx.switched_off()
        result = lab_update(views, ctx.splits, index, settings, seed=int(seed),
                               extra_views=[pre_view] if pre_view is not None else [])
        notes = "; ".join(f"{n.modality}: {', '.join(n.steps)}"
                          + (f" (donor {ctx.data.sample_ids[n.donor_index]}, class "
                             f"{ctx.data.label_name(n.donor_index)})" if n.donor_index is not None else "")
                          for n in result.notes)
        st.markdown(f"**Sample {ctx.data.sample_ids[index]}** · true class **{true_name}** · "
                    + (f"corrupted: {notes}" if notes else "no corruption (clean)")
                    + f" · update took {1000 * result.seconds:.0f} ms")

        # ---- predictions side by side
        cols = st.columns(len(views))
        panels = []
        for col, v in zip(cols, views):
            clean, cor = result.clean[v.role], result.corrupted[v.role]
            changed = clean.predicted != cor.predicted
            with col:
                prediction_card("prediction on the corrupted input", cor.predicted_name,
                                   cor.predicted_name == true_name, cor.confidence,
                                   f"changed (clean: {clean.predicted_name})" if changed else "same as on the clean input",
                                   heading=v.label)
            top_classes = list(dict.fromkeys(list(cor.top(5)["class"]) + list(clean.top(3)["class"])))
            names = cor.class_names
            rows = [{"class": c, "probability": float(o.probabilities[names.index(c)]) if c in names else 1.0,
                     "input": state}
                    for state, o in (("clean", clean), ("corrupted", cor)) for c in top_classes]
            panels.append((v.role, pd.DataFrame(rows)))
        if "probabilities" in SHOWN:
            st.vega_lite_chart(spec=lab_charts.probability_chart(
                panels, "class probabilities: clean vs corrupted input", "input", charts.STATE_COLOURS,
                true_class=true_name), key="lab_top")

        # ---- gates and cues, with change from clean
        st.subheader("Gates and cues: clean vs corrupted (Δ = corrupted − clean)")
        delta = result.delta_frame()
        delta = delta[delta["role"].isin([v.role for v in views])]
        if result.corrupted.get(CALIBRATED) is not None and "cues" in SHOWN:
            frame = delta[delta["role"] == CALIBRATED]
            long = frame.melt(id_vars=["modality", "quantity"], value_vars=["clean", "corrupted"], var_name="input")
            st.vega_lite_chart(spec=lab_charts.cue_chart(long, "calibrated model: gates and cues, clean vs corrupted",
                                                         "input", charts.STATE_COLOURS), key="lab_cues")
        if "tables" in SHOWN:
            st.vega_lite_chart(spec=lab_charts.change_chart(
                {v.role: result.change_table(v.role, schema.modality_names) for v in views},
                "change from the clean input, per model",
                {v.role: result.cell_notes(v.role, schema.modality_names) for v in views},
                muted=[v.role for v in views if not v.calibration]), key="lab_changes")
            unc = ctx.view(UNCALIBRATED)
            if unc is not None:
                st.caption(uncalibrated_cues_note(unc, ctx.pair))
            _explanations(result, views, schema, settings)

        # ---- one modality's input, clean and as the model sees it now. Always one chart of the
        # same specification for a modality, whether or not it is corrupted: a change then only
        # replaces the chart's data, which the browser redraws far faster than a new chart.
        st.subheader("Inputs")
        if "inputs" in SHOWN:
            drawn = st.radio("input drawn", schema.modality_names, key="lab_draw", horizontal=True,
                             help="Follows the modality whose controls you changed last.")
            ckpt = views[0].checkpoint
            spec = schema.modality(drawn)
            clean = model_input(ctx.splits.batch_for(ckpt), row_of(ctx.splits, index), spec, ckpt.preprocessor)
            shown = model_input(result.corrupted_batches[str(ckpt.path)], 0, spec, ckpt.preprocessor)
            st.caption(("Clean (grey or top row) and as the model sees it now"
                        + (": removed, nothing is drawn" if settings[drawn].remove else "")
                        + ", resampled to the model's input length, in physical units. "
                        + geometry_note(schema, ckpt.preprocessor, drawn)
                        + spec.description))
            render_lab_input(ctx, drawn, shown, clean, ctx.data.modalities[drawn].length(index), key="lab",
                                unit=model_input_unit(schema, ckpt.preprocessor, drawn))

        # ---- the sample moving in the projection
        st.subheader("Where the sample moves (fused representation)")
        if "projection" not in SHOWN:
            st.caption("Projection not drawn (PRECAL_LAB_PARTS).")
        elif pre_view is None:
            st.info("Needs a calibrated checkpoint (pre/post calibration features).")
        else:
            method = st.session_state.get("emb_method", "pca")
            method_name = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}.get(method, method)
            pre_preds = ctx.predictions(pre_view)
            post_preds = ctx.predictions(ctx.view(CALIBRATED))
            pre, post = pre_post_features(FUSED, post_preds, pre_preds)
            parts = projection_key(ctx.pair, ctx.split, FUSED)
            proj = projection(repr(sorted(parts.items())), method, pre, post, parts)
            moves = {}
            for name, view in (("after calibration", ctx.view(CALIBRATED)), ("before calibration", pre_view)):
                clean_o, cor_o = result.by_view[view.key]
                pts = proj.place(np.stack([clean_o.fused, cor_o.fused]))
                moves[name] = (pts[0], pts[1])
            classes = [ctx.data.label_name(int(i)) for i in ctx.splits.indices]
            st.vega_lite_chart(spec=lab_charts.projection_chart(
                proj.post_xy, moves, f"{method_name} of {ctx.split}: clean (●) → corrupted (✕)", method_name,
                classes, CLASS_COLOURS, list(schema.class_names) if schema.task == "classification" else None),
                key="lab_proj")
            st.caption("Small points: the split's samples after calibration, coloured by true class. The sample's "
                       "clean (●) and corrupted (✕) fused representation, with the calibrator on (black) and off "
                       "(red), placed on the same map: the region it moves into is the class it now resembles.")
        # The settings are repeated here so that this last element changes whenever the lab
        # does: the browser benchmark waits for it to know that every chart above has arrived.
        st.caption(f"lab drawn in {1000 * (time.perf_counter() - started):.0f} ms on the server "
                   f"(model update {1000 * result.seconds:.0f} ms) for: {notes or 'the clean input'}.")


lab()