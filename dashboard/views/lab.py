"""Corruption lab: damage, remove or swap modalities of one sample and watch both models react.

Everything below the title runs in an ``st.fragment``: moving a control reruns only the lab.
"""

import os
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from precal.dashboard.backend.data import row_of
from precal.dashboard.backend.embeddings import FUSED, METHOD_TITLES, pre_post_features, projection_key
from precal.dashboard.backend.formatting import fmt_shape
from precal.dashboard.backend.inputs import geometry_note, input_view_kind, model_input, model_input_unit
from precal.dashboard.backend.lab import LabSetting, donor_candidates, lab_update, most_conflicting_donor
from precal.dashboard.backend.pairs import switched_off
from precal.dashboard.backend.lab_batch import readable, run_changes, run_on_rows, run_table
from precal.dashboard.backend.report import input_svg, sample_report
from precal.dashboard.backend.slices import groupings, slice_labels, slice_members
from precal.dashboard.backend.url_state import (DONOR_CONFLICT, DONOR_RANDOM, LabState, ModalityControls,
                                                lab_params, parse_lab_params)
from precal.dashboard.ui import url_state
from precal.dashboard.ui.exports import download, download_csv, safe_name, view_link
from precal.dashboard.charts import figures as charts, lab as lab_charts
from precal.dashboard.ui.background import pause_background_work
from precal.dashboard.ui.context import context, guard, select_sample
from precal.dashboard.ui.model_notes import show_page_notes
from precal.dashboard.ui.loading import projection
from precal.dashboard.ui.vega_inputs import render_lab_input
from precal.dashboard.ui.widgets import prediction_card
from precal.dashboard.backend.lab import uncalibrated_cues_note
from precal.dashboard.charts.figures import CLASS_COLOURS
from precal.models.model import CALIBRATED
from precal.robustness.corruptions import corruptions_for, get_corruption

ctx = context()
ctx.require_data()
st.title("Corruption lab")
show_page_notes(ctx, "lab")
st.caption("Corrupt, remove or swap modalities of one sample. "
           + ("Model A and model B" if ctx.comparing else "Calibrated and uncalibrated models")
           + " run on the same corrupted input; corruptions are seeded and identical to the robustness sweep's. "
             "The address bar holds every control: copy it to share this view.")

EXCLUDED = {"remove_absent", "swap"}  # these have their own controls
LAB_PARTS = ("probabilities", "cues", "tables", "inputs", "projection")
# Profiling switch: `benchmarks/dashboard.py --breakdown` draws only some parts of the lab, to
# attribute the browser round trip to them. Unset, everything is drawn.
SHOWN = set(os.environ.get("PRECAL_LAB_PARTS", ",".join(LAB_PARTS)).split(","))


INPUT_MODES = {"keep": "as is", "remove": "remove (mark missing)", "swap": "swap with another sample"}


HISTORY = "lab_history"
HISTORY_LENGTH = 12


def _options(schema, m: str) -> list:
    return ["none"] + [c.name for c in corruptions_for(schema.modality(m).kind) if c.name not in EXCLUDED]


def _write_state(schema, state: LabState) -> None:
    """Put a lab state into the widgets' session keys (before they are drawn, or from a callback):
    how a shared link, the start page's example and a step back in the history reach the controls."""
    for m in schema.modality_names:
        c = state.control(m)
        corr = c.corruption if c.corruption in _options(schema, m) else "none"
        st.session_state[f"lab_corr_{m}"] = corr
        if corr != "none":
            st.session_state[f"lab_sev_{m}_{corr}"] = int(c.severity)
        st.session_state[f"lab_input_{m}"] = c.mode
        st.session_state[f"lab_donor_{m}"] = c.donor
    st.session_state["lab_seed"] = int(state.seed)
    if state.sample:
        st.session_state["sample_id"] = state.sample
    if state.draw in schema.modality_names:
        st.session_state["lab_draw"] = state.draw


def _read_state(schema) -> LabState:
    """The lab state the widgets hold now."""
    controls = []
    for m in schema.modality_names:
        corr = st.session_state.get(f"lab_corr_{m}", "none")
        corr = None if corr in (None, "none") else corr
        sev = int(st.session_state.get(f"lab_sev_{m}_{corr}", 3)) if corr else 3
        controls.append((m, ModalityControls(corr, sev, st.session_state.get(f"lab_input_{m}", "keep"),
                                             str(st.session_state.get(f"lab_donor_{m}", DONOR_RANDOM)))))
    return LabState(st.session_state.get("sample_id"), int(st.session_state.get("lab_seed", 0)), tuple(controls),
                    st.session_state.get("lab_draw"))


def _apply_link(schema) -> None:
    """A shared link's lab controls (pending since the session opened it) become the lab's state."""
    names = [n for n in url_state.pending() if n in ("seed", "draw") or n.split(".", 1)[0] in ("c", "in", "d")]
    if not names:
        return
    params = {n: url_state.take(n) for n in names}
    state = parse_lab_params(params, schema.modality_names, lambda m: _options(schema, m),
                             sample=st.session_state.get("sample_id"))
    _write_state(schema, state)


def _apply_preset(schema) -> None:
    """A prepared example from the start page: swap the named modality, keep the others as they are."""
    preset = st.session_state.pop("lab_preset", None)
    if not preset:
        return
    for m in schema.modality_names:
        st.session_state[f"lab_input_{m}"] = "swap" if m == preset.get("swap") else "keep"
        st.session_state[f"lab_corr_{m}"] = "none"
        st.session_state[f"lab_donor_{m}"] = DONOR_RANDOM
    st.session_state["lab_seed"] = 0
    if preset.get("swap") in schema.modality_names:
        st.session_state["lab_draw"] = preset["swap"]


def _remember(state: LabState) -> None:
    """Push the state onto the short history (a state equal to the last one is not repeated). Only
    what changes the model's input makes a state: which input is drawn is left out, or a step back
    would first undo a mere change of view and the list would show the current state again."""
    state = replace(state, draw=None)
    history = st.session_state.setdefault(HISTORY, [])
    if not history or history[-1] != state:
        history.append(state)
        del history[:-HISTORY_LENGTH]


def _step_back(schema, to: int) -> None:
    """Return to history entry ``to`` (a button's callback: it runs before the widgets are drawn)."""
    history = st.session_state.get(HISTORY, [])
    if 0 <= to < len(history):
        _write_state(schema, history[to])
        del history[to + 1:]


def _draw(modality: str) -> None:
    """Touching a modality's controls makes it the drawn one: the user sees what they changed."""
    st.session_state["lab_draw"] = modality


@st.cache_data(show_spinner="Finding the most conflicting donor…", max_entries=64)
def _conflicting_donor(key: str, split: str, index: int, modality: str, _view, _splits):  # noqa: ARG001 (cache key)
    return most_conflicting_donor(_view, _splits, index, modality)


def _donor_control(m: str, index: int) -> str:
    """Who gives the swapped modality: a random sample of another class (seeded), the most
    conflicting one (lowest support from the other modalities of the gated model), or a named one."""
    pool = ctx.splits.batch_for(ctx.views[0].checkpoint)
    ids = [str(ctx.data.sample_ids[i]) for i in donor_candidates(pool, index, m)]
    options = [DONOR_RANDOM, DONOR_CONFLICT] + ids
    key = f"lab_donor_{m}"
    if st.session_state.get(key) not in options:
        st.session_state[key] = DONOR_RANDOM
    # short: with six modalities a control column is ~110 px wide; the help says what each means
    names = {DONOR_RANDOM: "random (seed)", DONOR_CONFLICT: "most conflicting"}
    index_of = {sid: i for sid, i in zip(ctx.data.sample_ids.astype(str), range(len(ctx.data.sample_ids)))}
    return st.selectbox("donor", options, key=key, on_change=_draw, args=(m,),
                        format_func=lambda d: names.get(d) or f"{d} · {ctx.data.label_name(index_of[d])}",
                        help="The sample whose modality replaces this one. Random (seed): a sample of another class "
                             "drawn with the seed. Most conflicting: the candidate whose modality the other "
                             "modalities support least (the gated model's support). Else a named sample · its class.")


def _controls(schema, index: int) -> dict:
    """One column of controls per modality: corruption, severity (with its own units), what
    happens to the input, and the donor of a swap. Few widgets on purpose: every element is redrawn
    on every lab change."""
    settings = {}
    cols = st.columns(len(schema.modality_names))
    for col, m in zip(cols, schema.modality_names):
        spec = schema.modality(m)
        with col:
            name = st.selectbox(f"**{m}** corruption", _options(schema, m), key=f"lab_corr_{m}", on_change=_draw,
                                args=(m,), format_func=lambda c: "none" if c == "none" else get_corruption(c).title,
                                help=f"{m}: {spec.kind.replace('_', ' ')} {fmt_shape(spec.step_shape)}"
                                     + (f", {spec.unit}" if spec.unit else ""))
            corr = None if name == "none" else get_corruption(name)
            if corr is not None:
                st.session_state.setdefault(f"lab_sev_{m}_{corr.name}", 3)
                sev = st.select_slider("severity", options=list(range(6)), key=f"lab_sev_{m}_{corr.name}",
                                       on_change=_draw, args=(m,), help=corr.description,
                                       format_func=lambda s, c=corr: "0 · clean" if s == 0 else
                                       f"{s} · {c.level_label(s).split(': ', 1)[-1]}")
            else:
                sev = 0
            st.session_state.setdefault(f"lab_input_{m}", "keep")
            mode = st.radio("input", list(INPUT_MODES), key=f"lab_input_{m}", format_func=INPUT_MODES.get,
                            on_change=_draw, args=(m,), label_visibility="collapsed",
                            help="Swap: replace this modality by the same modality of another sample of a "
                                 "different class (choose the donor below).")
            donor = None
            if mode == "swap":
                choice = _donor_control(m, index)
                if choice == DONOR_CONFLICT:
                    view = ctx.gated() or ctx.views[0]
                    donor = _conflicting_donor(ctx.pair.cache_key, ctx.split, index, m, view, ctx.splits)
                elif choice != DONOR_RANDOM:
                    hits = np.nonzero(ctx.data.sample_ids.astype(str) == choice)[0]
                    donor = int(hits[0]) if len(hits) else None
            settings[m] = LabSetting(corr.name if corr is not None else None, int(sev), mode == "remove",
                                     mode == "swap", donor)
    return settings


def _history(schema) -> None:
    """The last lab states, newest last, each a button that returns to it."""
    history = st.session_state.get(HISTORY, [])
    with st.expander(f"History: the last {len(history)} lab states (step back)", expanded=False):
        if len(history) > 1:
            st.button("Step back", key="lab_back", on_click=_step_back, args=(schema, len(history) - 2),
                      icon=":material/undo:")
        for k, state in reversed(list(enumerate(history[:-1]))):
            st.button(state.words(), key=f"lab_hist_{k}", on_click=_step_back, args=(schema, k),
                      type="tertiary")
        if len(history) <= 1:
            st.caption("Each change of a control is kept here; step back to any of them.")


def _explanations(result, gated, schema, settings) -> None:
    """Why each gate of one gated model moved, in words (precal.explain), for the corrupted input:
    the modalities whose controls are active first. Beside the change table, so every change is
    read with its reason."""
    cal = result.corrupted.get(gated.role)
    if cal is None:
        return
    clean = result.clean[gated.role]
    active = [m for m in schema.modality_names if settings[m].active]
    order = active + [m for m in schema.modality_names if m not in active]
    lines, caveat_said = [], False
    for m in order:
        if m not in cal.modalities:
            continue
        expl = cal.explain(m)
        before = clean.explain(m)
        mark = "**changed here** · " if m in active else ""
        was = (f" (clean input: alpha {before.alpha:.2f})" if expl.status != "absent" and before.status != "absent"
               else "")
        # both modalities of a pair carry the caveat: said once, after the first (the changed one)
        caveat = f"  \n  {expl.caveat}" if expl.caveat and not caveat_said else ""  # a line of its own
        caveat_said = caveat_said or bool(expl.caveat)
        lines.append(f"- {mark}{expl.sentence}{was}{caveat}")
    who = "the calibrated model's" if gated.role == CALIBRATED else f"{gated.label.split(' (')[0]}:"
    st.markdown(f"**Why {who} gates are where they are, relative to a typical sample "
                "(corrupted input)**\n" + "\n".join(lines))


def _side_by_side(views: list) -> list:
    """One column per gated model when there are several (A and B both calibrated), as the
    predictions are; the page's full width for one."""
    return list(st.columns(len(views))) if len(views) > 1 else [st.container()]


def _projection(result, gated, pre_view) -> None:
    """One gated model's map of the split, with the sample's clean and corrupted fused
    representation placed on it, calibrator on and off."""
    method = st.session_state.get("emb_method", "pca")
    method_name = METHOD_TITLES.get(method, method)
    pre, post = pre_post_features(FUSED, ctx.predictions(gated), ctx.predictions(pre_view))
    parts = projection_key(ctx.pair.fingerprint(gated.checkpoint), ctx.split, FUSED)
    proj = projection(repr(sorted(parts.items())), method, pre, post, parts)
    moves = {}
    for name, view in (("after calibration", gated), ("before calibration", pre_view)):
        clean_o, cor_o = result.by_view[view.key]
        pts = proj.place(np.stack([clean_o.fused, cor_o.fused]))
        moves[name] = (pts[0], pts[1])
    classes = [ctx.data.label_name(int(i)) for i in ctx.splits.indices]
    schema = ctx.schema
    title = f"{method_name} of {ctx.split}: clean (●) → corrupted (✕)"
    if gated.role != CALIBRATED:
        title = f"{gated.role}: {title}"
    st.vega_lite_chart(spec=lab_charts.projection_chart(
        proj.post_xy, moves, title, method_name, classes, CLASS_COLOURS,
        list(schema.class_names) if schema.task == "classification" else None),
        key="lab_proj" if gated.role in (CALIBRATED, ctx.views[0].role) else f"lab_proj_{gated.role}")


@st.fragment
def lab() -> None:
    started = time.perf_counter()
    pause_background_work()  # a fragment rerun does not pass through context()
    schema = ctx.schema
    _apply_link(schema)
    _apply_preset(schema)
    c1, c2 = st.columns([3, 1])
    with c1:
        index = select_sample(ctx, "lab")
    st.session_state.setdefault("lab_seed", 0)
    seed = c2.number_input("seed", min_value=0, max_value=10_000, step=1, key="lab_seed",
                           help="Seed of the random corruptions and of the swap donor.")
    true_name = ctx.data.label_name(index)
    settings = _controls(schema, index)
    state = _read_state(schema)
    _remember(state)  # before the history is drawn, so that its buttons count this state
    with guard("corruption lab"):
        views = list(ctx.views)
        gated_views = [v for v in views if v.calibration]
        pre_views = {g.role: switched_off(g.checkpoint) for g in gated_views}
        result = lab_update(views, ctx.splits, index, settings, seed=int(seed), extra_views=list(pre_views.values()))
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
        if "cues" in SHOWN:
            # one under the other: each chart's panels (alpha and the cues) need the full width
            for k, gated in enumerate(gated_views):
                if result.corrupted.get(gated.role) is None:
                    continue
                frame = delta[delta["role"] == gated.role]
                long = frame.melt(id_vars=["modality", "quantity"], value_vars=["clean", "corrupted"],
                                  var_name="input")
                who = "calibrated model" if gated.role == CALIBRATED else gated.label.split(" (")[0]
                st.vega_lite_chart(spec=lab_charts.cue_chart(long, f"{who}: gates and cues, clean vs corrupted",
                                                             "input", charts.STATE_COLOURS),
                                   key="lab_cues" if k == 0 else f"lab_cues_{k}")
        if "tables" in SHOWN:
            quantities = result.quantities([v.role for v in views])
            st.vega_lite_chart(spec=lab_charts.change_chart(
                {v.role: result.change_table(v.role, schema.modality_names, quantities) for v in views},
                "change from the clean input, per model",
                {v.role: result.cell_notes(v.role, schema.modality_names, quantities) for v in views},
                muted=[v.role for v in views if not v.calibration]), key="lab_changes")
            for unc in ctx.ungated():
                st.caption(uncalibrated_cues_note(unc, ctx.pair))
            for col, gated in zip(_side_by_side(gated_views), gated_views):
                with col:
                    _explanations(result, gated, schema, settings)

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
            resampled = input_view_kind(spec, schema.extra) != "vector"  # a vector has no length to resample
            st.caption(("Clean (grey or top row) and as the model sees it now"
                        + (": removed, nothing is drawn" if settings[drawn].remove else "")
                        + (", resampled to the model's input length" if resampled else "")
                        + ", in physical units. "
                        + geometry_note(schema, ckpt.preprocessor, drawn)
                        + spec.description))
            render_lab_input(ctx, drawn, shown, clean, ctx.data.modalities[drawn].length(index), key="lab",
                                unit=model_input_unit(schema, ckpt.preprocessor, drawn))

        # ---- the sample moving in the projection
        st.subheader("Where the sample moves (fused representation)")
        if "projection" not in SHOWN:
            st.caption("Projection not drawn (PRECAL_LAB_PARTS).")
        elif not gated_views:
            st.info("Needs a model whose gates act (pre/post calibration features).")
        else:
            for col, gated in zip(_side_by_side(gated_views), gated_views):
                with col:
                    _projection(result, gated, pre_views[gated.role])
            st.caption("Small points: the split's samples after calibration, coloured by true class. The sample's "
                       "clean (●) and corrupted (✕) fused representation, with the calibrator on (black) and off "
                       "(red), placed on the same map: the region it moves into is the class it now resembles."
                       + (" One map per gated model: each has its own representation." if len(gated_views) > 1
                          else ""))
        _many(settings, int(seed))
        _exports(result, index, true_name, settings)
        _history(schema)
        # The settings are repeated here so that this last element changes whenever the lab
        # does: the browser benchmark waits for it to know that every chart above has arrived.
        st.caption(f"lab drawn in {1000 * (time.perf_counter() - started):.0f} ms on the server "
                   f"(model update {1000 * result.seconds:.0f} ms) for: {notes or 'the clean input'}.")

    url_state.write("lab", lab_params(state))


@st.cache_data(show_spinner="Running both models on the chosen samples…", max_entries=16)
def _run_many(key: str, split: str, settings_key: str, seed: int, rows: tuple, _views, _splits, _settings, _clean):  # noqa: ARG001
    run = run_on_rows(_views, _splits, _settings, seed, None if not rows else list(rows), _clean)
    return run_table(run, _views)


def _many(settings: dict, seed: int) -> None:
    """The current corruption on a whole split or a slice of it: accuracy and gates, clean and
    corrupted, for both models. Computed on request (a split is hundreds of forward passes)."""
    active = {m: s for m, s in settings.items() if s.active}
    with st.expander("Apply this corruption to the whole split or a slice", expanded=False):
        if not active:
            st.caption("Set a corruption, a removal or a swap above first.")
            return
        c1, c2, c3 = st.columns([2, 2, 1])
        options = ["the whole split"] + groupings(ctx.data)
        scope = c1.selectbox("samples", options, key="lab_many_scope",
                             format_func=lambda o: o if o == "the whole split" else f"one {o}")
        rows: tuple = ()
        if scope != "the whole split":
            labels = slice_labels(ctx.data, ctx.splits, scope)
            value = c2.selectbox(scope, sorted(set(labels)), key=f"lab_many_value_{scope}")
            rows = tuple(int(i) for i in slice_members(ctx.data, ctx.splits, scope, value))
        n = len(rows) or ctx.splits.size
        go = c3.button(f"Run on {n} samples", key="lab_many_go", type="primary")
        key = repr((sorted((m, vars(s)) for m, s in active.items()), seed, rows))
        if go:
            st.session_state["lab_many_last"] = key
        if st.session_state.get("lab_many_last") != key:
            st.caption("A swap draws a donor per sample with the seed (a named donor is for one sample).")
            return
        clean = {v.role: ctx.predictions(v) for v in ctx.views}
        table = _run_many(ctx.pair.cache_key, ctx.split, key, seed, rows, list(ctx.views), ctx.splits, active, clean)
        what = "; ".join(f"{m}: {_read_state(ctx.schema).control(m).words()}" for m in active)
        st.markdown(f"**{what}** on {n} samples of {ctx.split}"
                    + (f" ({scope} {value})" if scope != "the whole split" else ""))
        ungated = {v.label for v in ctx.views if not v.calibration}
        st.dataframe(readable(run_changes(table), ungated, signed=True), hide_index=True, width="stretch")
        shown = readable(table, ungated)
        st.dataframe(shown, hide_index=True, width="stretch")
        st.caption("n/a (no gates): a model without a calibrator has no alpha (its inputs are fused as they are). "
                   "n/a (absent): the modality is missing from every sample here, so it has no gate or cues. "
                   "The CSV holds the same words in those cells.")
        download_csv(shown, f"lab-many-{safe_name(ctx.split)}.csv", "lab_many_csv", "Table as CSV")


def _exports(result, index: int, true_name: str, settings: dict) -> None:
    """The lab's state as a self-contained HTML report, and its change table as CSV."""
    schema = ctx.schema
    views = list(ctx.views)
    sid = str(ctx.data.sample_ids[index])
    gated = ctx.gated()
    changed = [m for m in schema.modality_names if settings[m].active]
    state = _read_state(schema)
    link = view_link("lab", {**url_state.sidebar_values(), **lab_params(state)})  # now: the maker runs later

    def report() -> str:
        inputs = []
        for m in schema.modality_names:
            ckpt = views[0].checkpoint
            spec = schema.modality(m)
            clean = model_input(ctx.splits.batch_for(ckpt), row_of(ctx.splits, index), spec, ckpt.preprocessor)
            shown = model_input(result.corrupted_batches[str(ckpt.path)], 0, spec, ckpt.preprocessor)
            if len(clean):
                inputs.append(input_svg(schema, m, shown, clean, ctx.data.modalities[m].length(index),
                                        f"{m} (model input)", model_input_unit(schema, ckpt.preprocessor, m)))
        facts = [("data set", schema.name), ("split", str(ctx.split)), ("sample", sid), ("true class", true_name),
                 *[(f"model {k + 1}", v.label) for k, v in enumerate(views)],
                 ("controls", state.words()), ("seed", str(state.seed))]
        return sample_report(f"Corruption lab · {schema.name} · sample {sid}", facts, true_name,
                             [(v.label, result.corrupted[v.role], result.clean[v.role]) for v in views], inputs,
                             result.corrupted.get(gated.role) if gated is not None else None, changed,
                             link=link)

    changes = result.delta_frame()
    c1, c2, _ = st.columns([1, 1, 3])
    download("Report (HTML)", report, f"precal-lab-{safe_name(sid)}.html", "text/html", "lab_report", where=c1,
             help="Inputs, both models' predictions, gates, cues and the explanation, in one file that opens "
                  "without a network.")
    download_csv(changes, f"precal-lab-{safe_name(sid)}-gates.csv", "lab_changes_csv", "Gates and cues (CSV)",
                 where=c2)


lab()