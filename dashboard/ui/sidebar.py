"""The sidebar from the loaded models: which pair, which uncalibrated reference, which split, and
a checkpoint upload; it builds the :class:`~precal.dashboard.ui.context.Context` every page reads.

The widgets themselves are drawn by :mod:`precal.dashboard.ui.frame`, as from a stored first paint;
when every choice is at its default, the sidebar as drawn is kept in the context
(:attr:`Context.shown`) for the start page to store.
"""

from __future__ import annotations

import sys
from typing import Dict, List, Optional, Tuple

import streamlit as st

from precal.dashboard.backend.demo import demo_pair_key
from precal.dashboard.backend.first_paint import SidebarShown
from precal.dashboard.backend.overview import split_label, trained_splits
from precal.dashboard.backend.pairs import (ModelPair, compare, default_checkpoint_dirs, model_options, option_label,
                                            pair_checkpoints, recipe_of, seed_of)
from precal.dashboard.backend.references import OTHER_PREFIX, REFERENCE_TRAINED
from precal.dashboard.backend.uploads import is_uploaded, load_uploaded_checkpoint
from precal.dashboard.settings import ROOT, DashboardArgs, parse_dashboard_args
from precal.dashboard.ui import url_state
from precal.dashboard.ui.context import Context, problem_lines
from precal.dashboard.ui.frame import (compare_mode, files_box, pair_selector, persistent_choice, reference_selector,
                                       remember, split_selector, upload_box)
from precal.dashboard.ui.loading import cached_split_batches, data_mtime, load_checkpoints, load_data
from precal.dashboard.ui.model_notes import load_note_lines
from precal.errors import USER_ERRORS, error_line
from precal.evaluation import resolve_data_dir


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


def _receive_upload(upload) -> Optional[str]:
    """Load an uploaded checkpoint once (this server's private upload area) and say so in the box;
    returns its folder in the run that loaded it, else None."""
    new = None
    token = f"{upload.name}:{upload.size}:{getattr(upload, 'file_id', '')}"
    done = st.session_state.setdefault("upload_results", {})
    if token not in done:
        try:
            ckpt = load_uploaded_checkpoint(upload.getvalue())
            st.session_state.setdefault("uploaded_checkpoints", []).append(str(ckpt.path))
            done[token] = ("ok", f"loaded {ckpt.name} ({ckpt.schema.name}, {ckpt.config.backbone}, "
                                 f"calibration {'on' if ckpt.config.calibration else 'off'})", str(ckpt.path))
            new = str(ckpt.path)
        except USER_ERRORS as exc:
            done[token] = ("error", f"upload refused: {error_line(exc)}", None)
    status, message, _ = done[token]
    (st.success if status == "ok" else st.error)(message)
    return new


def choose_pair(pairs: List[ModelPair], uploaded: Optional[str], default: str, sb) -> ModelPair:
    """The pair selector. Default: the pair whose stored results show the calibrator's effect
    most clearly (:func:`precal.dashboard.backend.demo.demo_pair_key`); a fresh upload is shown."""
    if uploaded is not None:  # show what was just uploaded
        hit = next((p.key for p in pairs if any(str(c.path) == uploaded for c in p.checkpoints)), None)
        if hit is not None:
            st.session_state["chosen_pair_key"] = hit
    key = pair_selector([p.key for p in pairs], [p.label for p in pairs], default, sb)
    return next(p for p in pairs if p.key == key)


def choose_reference(ctx: Context, pairs: List[ModelPair], sb) -> Tuple[ModelPair, List[str]]:
    """What the uncalibrated column shows: the paired baseline, the calibrator switched off, or,
    by explicit choice, another uncalibrated checkpoint of the same data set. Returns the pair to
    show and the options offered."""
    pair = ctx.pair
    others = {}
    if pair.calibrated is not None:
        for p in pairs:
            u = p.uncalibrated
            if u is not None and u is not pair.uncalibrated and u.schema.name == pair.dataset:
                others[OTHER_PREFIX + u.name] = u
    options = pair.reference_options() + list(others)
    ctx.reference = reference_selector(options, sb)
    if ctx.reference in others:
        chosen = pair.with_reference(others[ctx.reference])
        ctx.reference = REFERENCE_TRAINED
        return chosen, options
    return pair, options


def _file_lines(ctx: Context) -> List[str]:
    """The files box: the data folder and each checkpoint with its weights' hash."""
    lines = [f"data: `{ctx.data_path}`"] if ctx.data_path is not None else []
    return lines + [f"{'calibrated' if c.config.calibration else 'uncalibrated'}: `{c.path}` "
                    f"(weights sha256 {ctx.pair.fingerprint(c)[:12]}…)" for c in ctx.pair.checkpoints]


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
    persistent_choice("cmp_a", keys, first)
    a = sb.selectbox("Model A", keys, key="cmp_a", format_func=labels.get, on_change=remember, args=("cmp_a",))
    same = [k for k in keys if options[k][0].schema.name == options[a][0].schema.name and k != a]
    if not same:
        sb.caption(f"No other model of {options[a][0].schema.name} is loaded.")
        return None
    persistent_choice("cmp_b", same, _default_b(options, a))
    b = sb.selectbox("Model B", same, key="cmp_b", format_func=labels.get, on_change=remember, args=("cmp_b",),
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
    uploaded = upload_box(_receive_upload)
    loaded, problems = load_checkpoints(_checkpoint_paths(args), args)
    pairs = pair_checkpoints(loaded)
    ctx = Context(args, pairs, problems)
    st.session_state["_ctx"] = ctx
    if not pairs:
        return ctx
    mode = compare_mode(sb)
    comparison = choose_comparison(ctx, loaded, sb) if mode == "compare" else None
    references: List[str] = []
    default_pair = ""
    if comparison is not None:
        pair = ctx.pair = comparison
        ctx.reference = None
        sb.caption(pair.label)
    else:
        default_pair = ctx.default_pair = demo_pair_key(pairs) or pairs[0].key
        ctx.pair = choose_pair(pairs, uploaded, default_pair, sb)
        pair, references = choose_reference(ctx, pairs, sb)
        ctx.pair = pair
    ctx.views = pair.views(ctx.reference)
    try:
        ctx.data_path = resolve_data_dir(pair.primary, args.data, search=[ROOT / "sample_data"],
                                         trust_recorded=not is_uploaded(pair.primary))
        ctx.data = load_data(str(ctx.data_path), data_mtime(ctx.data_path))
    except USER_ERRORS as exc:
        ctx.data_error = f"data for {pair.primary.name}: {error_line(exc)}"
    splits: List[str] = []
    labels: List[str] = []
    default_split = ""
    trained: List[str] = []
    if ctx.data is not None:
        splits = list(ctx.data.splits)
        default_split = "test" if "test" in splits else splits[0]
        trained = sorted(trained_splits(pair.checkpoints))
        labels = [split_label(ctx.data, s, set(trained)) for s in splits]
        ctx.split = split_selector(splits, labels, default_split, trained, sb)
        try:
            ctx.splits = cached_split_batches(pair.cache_key, str(ctx.data_path), ctx.split, pair, ctx.data)
        except USER_ERRORS as exc:
            ctx.data_error = f"data {ctx.data_path}: {error_line(exc)}"
            ctx.splits = None
    files = _file_lines(ctx)
    files_box(files, sb)
    # a new session's view, worth storing as its first paint (not an error that the next run may not have)
    at_defaults = (comparison is None and ctx.pair.key == default_pair and not st.session_state.get(
        "uploaded_checkpoints") and (ctx.reference or "") == (references[0] if references else "")
        and ctx.splits is not None and ctx.split == default_split)
    if at_defaults:
        ctx.shown = SidebarShown(
            pair_keys=tuple(p.key for p in pairs), pair_labels=tuple(p.label for p in pairs), pair=default_pair,
            references=tuple(references), reference=ctx.reference or "", splits=tuple(splits),
            split_labels=tuple(labels), split=default_split, trained=tuple(trained), files=tuple(files),
            problems=tuple(problem_lines(ctx)), notes=tuple(load_note_lines(ctx)))
    return ctx
