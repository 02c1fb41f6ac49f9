"""The sidebar: which pair, which uncalibrated reference, which split, and a checkpoint upload; it
builds the :class:`~precal.dashboard.ui.context.Context` every page reads.

The choices are kept in plain session keys (``chosen_*``) besides their widgets' keys: Streamlit
drops a widget's state when a run ends without drawing it (a page switched mid-run, e.g. by a click
on the embeddings map), and the pair must survive that, or a sample id would be looked up in
another data set.
"""

from __future__ import annotations

import sys
from typing import Dict, List, Optional, Sequence

import streamlit as st

from precal.dashboard.backend.demo import demo_pair_key
from precal.dashboard.backend.overview import split_label, trained_splits
from precal.dashboard.backend.pairs import (REFERENCE_SWITCHED_OFF, REFERENCE_TRAINED, ModelPair, compare,
                                            default_checkpoint_dirs, model_options, option_label, pair_checkpoints,
                                            seed_of, recipe_of)
from precal.dashboard.backend.uploads import is_uploaded, load_uploaded_checkpoint
from precal.dashboard.settings import MAX_UPLOAD_BYTES, ROOT, DashboardArgs, parse_dashboard_args
from precal.dashboard.ui.context import Context
from precal.dashboard.ui import url_state
from precal.dashboard.ui.loading import cached_split_batches, data_mtime, load_checkpoints, load_data
from precal.errors import USER_ERRORS, error_line
from precal.evaluation import resolve_data_dir

OTHER_PREFIX = "another uncalibrated checkpoint: "

COMPARE_MODES = {"pair": "a calibrated model and its baseline", "compare": "any two checkpoints (A vs B)"}


def app_args() -> DashboardArgs:
    try:
        return parse_dashboard_args(sys.argv[1:])
    except ValueError as exc:
        st.error(f"command line: {error_line(exc)}")
        return parse_dashboard_args([], {})


def _checkpoint_paths(args: DashboardArgs) -> List[str]:
    """The checkpoints named, else (unless your own model is opened without one) the shipped ones,
    and the uploads of this session."""
    paths = list(args.checkpoints) or ([] if args.model else [str(p) for p in default_checkpoint_dirs()])
    return paths + list(st.session_state.get("uploaded_checkpoints", []))


def _upload_widget() -> Optional[str]:
    """The upload box; returns the folder of a checkpoint uploaded in this run (else None)."""
    new = None
    with st.sidebar.expander("Upload a checkpoint (.zip)"):
        st.caption(f"A zipped checkpoint folder (config.json + model.safetensors), up to "
                   f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB. Nothing in it is executed.")
        upload = st.file_uploader("checkpoint zip", type=["zip"], key="upload", label_visibility="collapsed")
        if upload is None:
            return None
        token = f"{upload.name}:{upload.size}:{getattr(upload, 'file_id', '')}"
        done = st.session_state.setdefault("upload_results", {})
        if token not in done:
            try:
                ckpt = load_uploaded_checkpoint(upload.getvalue())  # this server's private upload area
                st.session_state.setdefault("uploaded_checkpoints", []).append(str(ckpt.path))
                done[token] = ("ok", f"loaded {ckpt.name} ({ckpt.schema.name}, {ckpt.config.backbone}, "
                                     f"calibration {'on' if ckpt.config.calibration else 'off'})", str(ckpt.path))
                new = str(ckpt.path)
            except USER_ERRORS as exc:
                done[token] = ("error", f"upload refused: {error_line(exc)}", None)
        status, message, _ = done[token]
        (st.success if status == "ok" else st.error)(message)
    return new


def _persistent_choice(widget_key: str, options: Sequence[str], default: str) -> None:
    """Put the remembered choice (``chosen_<key>``) into the widget's state before it is drawn."""
    chosen = st.session_state.get(f"chosen_{widget_key}")
    value = chosen if chosen in options else default
    if st.session_state.get(widget_key) != value:
        st.session_state[widget_key] = value
    st.session_state[f"chosen_{widget_key}"] = value


def _remember(widget_key: str) -> None:
    st.session_state[f"chosen_{widget_key}"] = st.session_state.get(widget_key)


def choose_pair(pairs: List[ModelPair], uploaded: Optional[str], sb) -> ModelPair:
    """The pair selector. Default: the pair whose stored results show the calibrator's effect
    most clearly (:func:`precal.dashboard.backend.demo.demo_pair_key`); a fresh upload is shown."""
    labels: Dict[str, str] = {p.key: p.label for p in pairs}
    keys = [p.key for p in pairs]
    if uploaded is not None:  # show what was just uploaded
        hit = next((p.key for p in pairs if any(str(c.path) == uploaded for c in p.checkpoints)), None)
        if hit is not None:
            st.session_state["chosen_pair_key"] = hit
    _persistent_choice("pair_key", keys, demo_pair_key(pairs) or keys[0])
    key = sb.selectbox("Model pair", keys, format_func=lambda k: labels[k], key="pair_key",
                       on_change=_remember, args=("pair_key",),
                       help="A calibrated checkpoint and the uncalibrated one trained on the same data set with "
                            "the same recipe and seed (read from their configs). Checkpoints without such a "
                            "partner stand alone.")
    pair = next(p for p in pairs if p.key == key)
    sb.caption(pair.label)  # in full: the selector cuts long labels
    return pair


def choose_reference(ctx: Context, pairs: List[ModelPair], sb) -> ModelPair:
    """What the uncalibrated column shows: the paired baseline, the calibrator switched off, or,
    by explicit choice, another uncalibrated checkpoint of the same data set."""
    pair = ctx.pair
    options = pair.reference_options()
    others = {}
    if pair.calibrated is not None:
        for p in pairs:
            u = p.uncalibrated
            if u is not None and u is not pair.uncalibrated and u.schema.name == pair.dataset:
                others[OTHER_PREFIX + u.name] = u
    options = options + list(others)
    if len(options) > 1:
        _persistent_choice("reference", options, options[0])
        ctx.reference = sb.radio("Uncalibrated column shows", options, key="reference",
                                 on_change=_remember, args=("reference",),
                                 help=f"{REFERENCE_TRAINED}: the separately trained uncalibrated model of this "
                                      f"pair. {REFERENCE_SWITCHED_OFF}: the calibrated model with its gates fixed "
                                      "at 1 (same weights). Another uncalibrated checkpoint: pair them by choice.")
    else:
        ctx.reference = options[0] if options else None
    if ctx.reference in others:
        chosen = pair.with_reference(others[ctx.reference])
        ctx.reference = REFERENCE_TRAINED
        return chosen
    return pair


def _files_expander(ctx: Context, sb) -> None:
    """Paths and weight hashes, out of the way (they matter when two runs look alike)."""
    with sb.expander("Files"):
        if ctx.data_path is not None:
            st.caption(f"data: `{ctx.data_path}`")
        for c in ctx.pair.checkpoints:
            st.caption(f"{'calibrated' if c.config.calibration else 'uncalibrated'}: `{c.path}` "
                       f"(weights sha256 {ctx.pair.fingerprint(c)[:12]}…)")


def _restore_link() -> None:
    """A shared link's models, split and sample become the remembered choices (``chosen_*``) before
    the sidebar's widgets are drawn; a value that no longer fits falls back to the default there."""
    for name, key in (("pair", "chosen_pair_key"), ("ref", "chosen_reference"), ("a", "chosen_cmp_a"),
                      ("b", "chosen_cmp_b"), ("split", "chosen_split"), ("sample", "sample_id")):
        value = url_state.take(name)
        if value is not None:
            st.session_state[key] = value
    if url_state.take("cmp") == "1":
        st.session_state["chosen_compare_mode"] = "compare"


def _default_b(options: Dict, a: str) -> str:
    """Model B by default: another seed of A's recipe, else another model of its data set (the
    calibrator switched off last: that is what a pair already shows)."""
    ca, _ = options[a]
    same_data = [k for k, (c, _) in options.items() if k != a and c.schema.name == ca.schema.name]
    recipe = {k: v for k, v in recipe_of(ca).items() if k != "seed"}
    seeds = [k for k in same_data if options[k][0] is not ca and options[k][1] == options[a][1]
             and {x: y for x, y in recipe_of(options[k][0]).items() if x != "seed"} == recipe
             and seed_of(options[k][0]) != seed_of(ca)]
    others = [k for k in same_data if options[k][0] is not ca]
    return (seeds or others or same_data or [a])[0]


def choose_comparison(ctx: Context, loaded, sb) -> Optional[ModelPair]:
    """Model A and model B: any two loaded models of one data set, each as trained or (a calibrated
    one) with its calibrator switched off."""
    options = model_options(loaded)
    if len(options) < 2:
        sb.caption("Load a second checkpoint to compare two models.")
        return None
    keys = list(options)
    labels = {k: option_label(k, *options[k]) for k in keys}
    first = next((k for k in keys if options[k][1]), keys[0])
    _persistent_choice("cmp_a", keys, first)
    a = sb.selectbox("Model A", keys, key="cmp_a", format_func=labels.get, on_change=_remember, args=("cmp_a",))
    same = [k for k in keys if options[k][0].schema.name == options[a][0].schema.name and k != a]
    if not same:
        sb.caption(f"No other model of {options[a][0].schema.name} is loaded.")
        return None
    _persistent_choice("cmp_b", same, _default_b(options, a))
    b = sb.selectbox("Model B", same, key="cmp_b", format_func=labels.get, on_change=_remember, args=("cmp_b",),
                     help="Another model of the same data set: another seed, another recipe, your own model, or "
                          "a calibrated model with its calibrator switched off.")
    try:
        return compare(options[a], options[b], a, b)
    except ValueError as exc:
        sb.error(str(exc))
        return None


def build_context() -> Optional[Context]:
    """Sidebar controls + loading; stores the context in the session for the pages."""
    url_state.read_link_once()
    _restore_link()
    args = app_args()
    sb = st.sidebar.container()  # filled below; the upload box is drawn after it
    uploaded = _upload_widget()
    loaded, problems = load_checkpoints(_checkpoint_paths(args), args)
    pairs = pair_checkpoints(loaded)
    ctx = Context(args, pairs, problems)
    st.session_state["_ctx"] = ctx
    if not pairs:
        return ctx
    _persistent_choice("compare_mode", list(COMPARE_MODES), "pair")
    mode = sb.radio("Compare", list(COMPARE_MODES), key="compare_mode", format_func=COMPARE_MODES.get,
                    on_change=_remember, args=("compare_mode",), horizontal=False,
                    help="A pair: a calibrated checkpoint beside its uncalibrated twin. Any two: model A and "
                         "model B chosen freely (another seed, another recipe, your own model).")
    comparison = choose_comparison(ctx, loaded, sb) if mode == "compare" else None
    if comparison is not None:
        pair = ctx.pair = comparison
        ctx.reference = None
        sb.caption(pair.label)
    else:
        ctx.pair = choose_pair(pairs, uploaded, sb)
        pair = ctx.pair = choose_reference(ctx, pairs, sb)
    ctx.views = pair.views(ctx.reference)
    try:
        ctx.data_path = resolve_data_dir(pair.primary, args.data, search=[ROOT / "sample_data"],
                                         trust_recorded=not is_uploaded(pair.primary))
        ctx.data = load_data(str(ctx.data_path), data_mtime(ctx.data_path))
    except USER_ERRORS as exc:
        ctx.data_error = f"data for {pair.primary.name}: {error_line(exc)}"
    if ctx.data is not None:
        splits = list(ctx.data.splits)
        default = "test" if "test" in splits else splits[0]
        _persistent_choice("split", splits, default)
        trained = trained_splits(pair.checkpoints)
        ctx.split = sb.selectbox("Split", splits, key="split", on_change=_remember, args=("split",),
                                 format_func=lambda s: split_label(ctx.data, s, trained))
        if ctx.split in trained:
            sb.caption("The loaded models trained on this split: its accuracy measures fit, not generalisation.")
        try:
            ctx.splits = cached_split_batches(pair.cache_key, str(ctx.data_path), ctx.split, pair, ctx.data)
        except USER_ERRORS as exc:
            ctx.data_error = f"data {ctx.data_path}: {error_line(exc)}"
            ctx.splits = None
    _files_expander(ctx, sb)
    return ctx
