"""The sidebar: which pair, which uncalibrated reference, which split, and a checkpoint upload; it
builds the :class:`~precal.dashboard.ui.context.Context` every page reads.
"""

from __future__ import annotations

import sys
from typing import List, Optional

import streamlit as st

from precal.dashboard.backend.overview import split_label, trained_splits
from precal.dashboard.backend.pairs import default_checkpoint_dirs, pair_checkpoints
from precal.dashboard.backend.uploads import is_uploaded, load_uploaded_checkpoint
from precal.dashboard.settings import MAX_UPLOAD_BYTES, ROOT, DashboardArgs, parse_dashboard_args
from precal.dashboard.ui.context import Context
from precal.dashboard.ui.loading import cached_split_batches, data_mtime, load_checkpoints, load_data
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


def build_context() -> Optional[Context]:
    """Sidebar controls + loading; stores the context in the session for the pages."""
    args = app_args()
    sb = st.sidebar.container()  # filled below; the upload box is drawn after it
    uploaded = _upload_widget()
    loaded, problems = load_checkpoints(_checkpoint_paths(args), args)
    pairs = pair_checkpoints(loaded)
    ctx = Context(args, pairs, problems)
    st.session_state["_ctx"] = ctx
    if not pairs:
        return ctx
    labels = {p.key: p.label for p in pairs}
    keys = [p.key for p in pairs]
    if uploaded is not None:  # show what was just uploaded
        hit = next((p.key for p in pairs if any(str(c.path) == uploaded for c in p.checkpoints)), None)
        if hit is not None:
            st.session_state["pair_key"] = hit
    if st.session_state.get("pair_key") not in keys:
        st.session_state["pair_key"] = keys[0]
    key = sb.selectbox("Data set · backbone", keys, format_func=lambda k: labels[k], key="pair_key",
                       help="Pairs the calibrated (…_calon) and uncalibrated (…_caloff) checkpoints of one "
                            "data set and backbone.")
    pair = next(p for p in pairs if p.key == key)
    ctx.pair = pair
    options = pair.reference_options()
    if len(options) > 1:
        ctx.reference = sb.radio("Uncalibrated column shows", options, key="reference", horizontal=False,
                                 help="trained baseline: the separately trained …_caloff model. calibrator "
                                      "switched off: the calibrated model with its gates fixed at 1.")
    else:
        ctx.reference = options[0] if options else None
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
        if st.session_state.get("split") not in splits:
            st.session_state["split"] = default
        trained = trained_splits(pair.checkpoints)
        ctx.split = sb.selectbox("Split", splits, key="split",
                                 format_func=lambda s: split_label(ctx.data, s, trained))
        if ctx.split in trained:
            sb.caption("The loaded models trained on this split: its accuracy measures fit, not generalisation.")
        try:
            ctx.splits = cached_split_batches(pair.cache_key, str(ctx.data_path), ctx.split, pair, ctx.data)
        except USER_ERRORS as exc:
            ctx.data_error = f"data {ctx.data_path}: {error_line(exc)}"
            ctx.splits = None
        sb.caption(f"data: `{ctx.data_path}`")
    for c in pair.checkpoints:
        sb.caption(f"{'calibrated' if c.config.calibration else 'uncalibrated'}: `{c.path}` "
                   f"(weights {pair.fingerprint(c)})")
    return ctx
