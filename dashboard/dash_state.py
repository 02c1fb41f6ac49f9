"""Shared Streamlit plumbing for the pages: arguments, cached loading, the sidebar, input rendering.

Caching policy:

- models (checkpoints) and data sets: ``st.cache_resource`` (one shared copy; keyed by path and the
  checkpoint's weight fingerprint, so a re-trained checkpoint at the same path is reloaded);
- predictions, sweeps: ``st.cache_data`` keyed by weight fingerprints + data + split + settings;
- projections: ``st.cache_resource`` in memory over :func:`precal.projection.cached_projection` on
  disk under ``.cache/precal/`` (so a restart does not refit t-SNE/UMAP).
"""

from __future__ import annotations

import contextlib
import html
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import streamlit as st

from precal import dashboard_backend as be
from precal.checkpoint import WEIGHTS_FILE, Checkpoint, file_sha256, load_checkpoint
from precal.data.storage import MultimodalData
from precal.inference import Predictions

import dash_charts as charts
import lab_inputs

PAGES = {
    "overview": "views/overview.py",
    "explorer": "views/explorer.py",
    "lab": "views/lab.py",
    "embeddings": "views/embeddings.py",
    "robustness": "views/robustness.py",
    "training": "views/training.py",
}
PLOTLY_CONFIG = {"displayModeBar": False, "displaylogo": False}
ZOOM_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["toImage", "autoScale2d"]}


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def guard(what: str = "") -> Iterator[None]:
    """Show a user-caused error (bad path, file, choice) as one ``st.error`` line, not a traceback."""
    try:
        yield
    except be.USER_ERRORS as exc:
        prefix = f"{what}: " if what else ""
        st.error(f"{prefix}{be.error_message(exc)}", icon=":material/error:")


# --------------------------------------------------------------------------------------------------
# Cached loading
# --------------------------------------------------------------------------------------------------


def _weights_key(path: str) -> str:
    """Fingerprint of a checkpoint's weights (re-hashed only when the file changes)."""
    folder = Path(path)
    weights = folder / WEIGHTS_FILE if folder.is_dir() else folder
    try:
        st_ = weights.stat()
    except OSError:
        return "missing"
    return _hash_file(str(weights), st_.st_mtime_ns, st_.st_size)


@st.cache_data(show_spinner=False, max_entries=256)
def _hash_file(path: str, mtime_ns: int, size: int) -> str:  # noqa: ARG001 (cache key)
    return file_sha256(Path(path))


@st.cache_resource(show_spinner="Loading checkpoint…", max_entries=32)
def _checkpoint(path: str, fingerprint: str) -> Checkpoint:  # noqa: ARG001 (cache key)
    return load_checkpoint(path)


def load_checkpoints(paths: Sequence[str]):
    loaded: List[Checkpoint] = []
    problems: List[be.LoadProblem] = []
    seen = set()
    for p in paths:
        try:
            ckpt = _checkpoint(str(Path(p).expanduser().resolve()), _weights_key(str(Path(p).expanduser().resolve())))
        except be.USER_ERRORS as exc:
            problems.append(be.LoadProblem(str(p), be.error_message(exc)))
            continue
        if ckpt.path not in seen:
            seen.add(ckpt.path)
            loaded.append(ckpt)
    return loaded, problems


@st.cache_resource(show_spinner="Loading data set…", max_entries=8)
def load_data(path: str, mtime_ns: int) -> MultimodalData:  # noqa: ARG001 (cache key)
    return be.load_data(path)


def _data_mtime(path: Path) -> int:
    try:
        return (path / "data.npz").stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_resource(show_spinner="Preparing the split…", max_entries=16)
def _split_batches(pair_key: str, data_path: str, split: str, _pair: be.ModelPair,
                   _data: MultimodalData) -> be.SplitBatches:
    return be.split_batches(_pair, _data, split)


@st.cache_data(show_spinner="Running the model over the split…", max_entries=64)
def _predictions(view_key: str, fingerprint: str, data_path: str, data_mtime: int, split: str, variant: str,
                 _view: be.ModelView, _batch) -> Predictions:
    parts = {"data": data_path, "data_mtime": data_mtime, "split": split, "variant": variant}
    return be.cached_predict(_view, _batch, parts, be.CACHE_DIR / "predictions")


@st.cache_resource(show_spinner=False)
def configure_torch() -> int:
    """Run the models single-threaded by default (``PRECAL_DASHBOARD_THREADS`` overrides).

    The dashboard's forward passes are small (one or two samples in the lab); with several
    intra-op threads on a busy 2-core machine each tiny op waits for its threads and a 20 ms
    update takes over a second. One thread is also fairer when several sessions run at once.
    """
    import torch

    threads = int(os.environ.get("PRECAL_DASHBOARD_THREADS", "1") or 1)
    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def schedule_warmups(delay: float = be.UMAP_WARM_UP_DELAY_S) -> None:
    """Start the UMAP warm-up some seconds after the first page rather than at once.

    The compile runs in the projection worker process (:func:`projection`), so it holds no GIL of
    the server; it still takes a CPU core for a minute or more, which on a 2-core machine the browser
    needs while it draws the first page. Once per process (a cached resource); the embeddings page
    starts it at once if it is not running yet.
    """
    if os.environ.get("PRECAL_DASHBOARD_WARMUP", "1") == "0":
        return
    _warm_up_timer(delay)


@st.cache_resource(show_spinner=False)
def _warm_up_timer(delay: float) -> threading.Timer:
    from precal.projection import shared_worker  # once per process, no Streamlit context needed

    timer = threading.Timer(delay, shared_worker().warm_up)
    timer.daemon = True
    timer.start()
    return timer


def start_warmups() -> Any:
    """Compile UMAP in the projection worker process now (once per server process), so that the
    first UMAP map does not wait for it; the thread returned waits for the compile."""
    if os.environ.get("PRECAL_DASHBOARD_WARMUP", "1") == "0":
        return None
    from precal.projection import shared_worker

    return shared_worker().warm_up()


@st.cache_resource(show_spinner="Fitting the 2-D map of the split (cached afterwards)…", max_entries=16)
def projection(key: str, method: str, _pre: np.ndarray, _post: np.ndarray, _parts: dict):
    """The split's pre/post map, in memory and on disk (:func:`precal.projection.cached_projection`).

    UMAP is fitted in the projection worker process: its first fit compiles numba kernels for about a
    minute, holding the GIL of the process it runs in, which in the server would slow every page."""
    from precal.projection import cached_projection, shared_worker

    return cached_projection(be.CACHE_DIR / "projections", _parts, _pre, _post, method, 0,
                             fitter=shared_worker().fit if method == "umap" else None)


# --------------------------------------------------------------------------------------------------
# Context
# --------------------------------------------------------------------------------------------------


@dataclass
class Context:
    """What every page needs: the chosen pair, its views, the data and the split batches."""

    args: be.DashboardArgs
    pairs: List[be.ModelPair]
    problems: List[be.LoadProblem]
    pair: Optional[be.ModelPair] = None
    views: List[be.ModelView] = field(default_factory=list)
    reference: Optional[str] = None
    data_path: Optional[Path] = None
    data: Optional[MultimodalData] = None
    data_error: Optional[str] = None
    split: Optional[str] = None
    splits: Optional[be.SplitBatches] = None

    @property
    def schema(self):
        return self.pair.primary.schema

    def view(self, role: str) -> Optional[be.ModelView]:
        return next((v for v in self.views if v.role == role), None)

    def predictions(self, view: be.ModelView) -> Predictions:
        """Cached predictions of a view over the split."""
        fp = self.pair.fingerprint(view.checkpoint)
        return _predictions(view.key, fp, str(self.data_path), _data_mtime(self.data_path), self.split, "clean",
                            view, self.splits.batch_for(view.checkpoint))

    def switched_off(self) -> Optional[be.ModelView]:
        """The calibrated checkpoint with its calibrator switched off (the 'pre' features)."""
        if self.pair.calibrated is None:
            return None
        return be.ModelView(be.UNCALIBRATED, self.pair.calibrated, False,
                            f"calibrator off (same weights as {self.pair.calibrated.name})")

    def require_data(self) -> None:
        """Stop the page with the data error (already readable) if the data did not load."""
        if self.data is None or self.splits is None:
            st.error(self.data_error or "no data loaded for this model", icon=":material/error:")
            st.stop()

    def sample_ids(self) -> List[str]:
        return [str(s) for s in self.data.sample_ids[self.splits.indices]]

    def current_index(self) -> int:
        """Data-set position of the selected sample (the first of the split if none is selected
        or the selected one is not in this split)."""
        sid = st.session_state.get("sample_id")
        ids = self.data.sample_ids[self.splits.indices]
        if sid is not None:
            hits = np.nonzero(ids == sid)[0]
            if len(hits):
                return int(self.splits.indices[hits[0]])
        first = int(self.splits.indices[0])
        st.session_state["sample_id"] = str(self.data.sample_ids[first])
        return first


def app_args() -> be.DashboardArgs:
    try:
        return be.parse_dashboard_args(sys.argv[1:])
    except ValueError as exc:
        st.error(f"command line: {be.error_message(exc)}")
        return be.parse_dashboard_args([], {})


def _checkpoint_paths(args: be.DashboardArgs) -> List[str]:
    paths = list(args.checkpoints) or [str(p) for p in be.default_checkpoint_dirs()]
    return paths + list(st.session_state.get("uploaded_checkpoints", []))


def _upload_widget() -> Optional[str]:
    """The upload box; returns the folder of a checkpoint uploaded in this run (else None)."""
    new = None
    with st.sidebar.expander("Upload a checkpoint (.zip)"):
        st.caption(f"A zipped checkpoint folder (config.json + model.safetensors), up to "
                   f"{be.MAX_UPLOAD_BYTES // (1024 * 1024)} MB. Nothing in it is executed.")
        upload = st.file_uploader("checkpoint zip", type=["zip"], key="upload", label_visibility="collapsed")
        if upload is None:
            return None
        token = f"{upload.name}:{upload.size}:{getattr(upload, 'file_id', '')}"
        done = st.session_state.setdefault("upload_results", {})
        if token not in done:
            try:
                ckpt = be.load_uploaded_checkpoint(upload.getvalue())  # this server's private upload area
                st.session_state.setdefault("uploaded_checkpoints", []).append(str(ckpt.path))
                done[token] = ("ok", f"loaded {ckpt.name} ({ckpt.schema.name}, {ckpt.config.backbone}, "
                                     f"calibration {'on' if ckpt.config.calibration else 'off'})", str(ckpt.path))
                new = str(ckpt.path)
            except be.USER_ERRORS as exc:
                done[token] = ("error", f"upload refused: {be.error_message(exc)}", None)
        status, message, _ = done[token]
        (st.success if status == "ok" else st.error)(message)
    return new


def build_context() -> Optional[Context]:
    """Sidebar controls + loading; stores the context in the session for the pages."""
    args = app_args()
    sb = st.sidebar.container()  # filled below; the upload box is drawn after it
    uploaded = _upload_widget()
    loaded, problems = load_checkpoints(_checkpoint_paths(args))
    pairs = be.pair_checkpoints(loaded)
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
        ctx.data_path = be.find_data_dir(pair.primary, args.data, trust_recorded=not be.is_uploaded(pair.primary))
        ctx.data = load_data(str(ctx.data_path), _data_mtime(ctx.data_path))
    except be.USER_ERRORS as exc:
        ctx.data_error = f"data for {pair.primary.name}: {be.error_message(exc)}"
    if ctx.data is not None:
        splits = list(ctx.data.splits)
        default = "test" if "test" in splits else splits[0]
        if st.session_state.get("split") not in splits:
            st.session_state["split"] = default
        trained = be.trained_splits(pair.checkpoints)
        ctx.split = sb.selectbox("Split", splits, key="split",
                                 format_func=lambda s: be.split_label(ctx.data, s, trained))
        if ctx.split in trained:
            sb.caption("The loaded models trained on this split: its accuracy measures fit, not generalisation.")
        try:
            ctx.splits = _split_batches(pair.cache_key, str(ctx.data_path), ctx.split, pair, ctx.data)
        except be.USER_ERRORS as exc:
            ctx.data_error = f"data {ctx.data_path}: {be.error_message(exc)}"
            ctx.splits = None
        sb.caption(f"data: `{ctx.data_path}`")
    for c in pair.checkpoints:
        sb.caption(f"{'calibrated' if c.config.calibration else 'uncalibrated'}: `{c.path}` "
                   f"(weights {pair.fingerprint(c)})")
    return ctx


def pause_background_work() -> None:
    """Someone is using a page: a running UMAP warm-up compile waits until two seconds after the
    last run (:meth:`precal.projection.ProjectionWorker.pause_warm_up`), so it does not slow what
    the user is waiting for. Every page calls this through :func:`context`, the lab on every change."""
    from precal.projection import shared_worker

    shared_worker().pause_warm_up()


def context() -> Context:
    """The context built by app.py for this run; stops the page with a message if nothing loaded."""
    pause_background_work()
    ctx: Optional[Context] = st.session_state.get("_ctx")
    if ctx is None or ctx.pair is None:
        st.error("No checkpoint could be loaded. Start with `precal dashboard --checkpoint DIR` "
                 "(a folder with config.json + model.safetensors) or upload a zipped checkpoint in the sidebar.",
                 icon=":material/error:")
        st.stop()
    return ctx


def show_problems(ctx: Context) -> None:
    for p in ctx.problems:
        st.error(f"checkpoint {p.path}: {p.message}", icon=":material/error:")


# --------------------------------------------------------------------------------------------------
# Sample selection
# --------------------------------------------------------------------------------------------------


def select_sample(ctx: Context, key: str) -> int:
    """A selectbox over the split's sample ids bound to the session's current sample."""
    ids = ctx.sample_ids()
    index = ctx.current_index()
    current = str(ctx.data.sample_ids[index])
    labels = {sid: f"{sid} — {ctx.data.label_name(int(i))}" for sid, i in zip(ids, ctx.splits.indices)}
    widget_key = f"{key}_sample"
    if st.session_state.get(widget_key) != current:
        st.session_state[widget_key] = current

    def changed() -> None:
        st.session_state["sample_id"] = st.session_state[widget_key]

    st.selectbox("Sample", ids, key=widget_key, format_func=lambda s: labels.get(s, s), on_change=changed)
    return ctx.current_index()


# --------------------------------------------------------------------------------------------------
# Rendering inputs in their native form
# --------------------------------------------------------------------------------------------------


def _frame_range(spec, values: np.ndarray) -> Tuple[float, float]:
    """Colour range of a frame modality in its units: depth from the 2nd to the 98th percentile of
    the readings (0 mm = no reading), 8-bit images 0-255, anything else its min and max."""
    if "mm" in spec.unit:
        nz = values[values > 1.0]
        lo, hi = (float(v) for v in np.percentile(nz, [2, 98])) if nz.size else (0.0, 1.0)
    elif "0-255" in spec.unit:
        lo, hi = 0.0, 255.0
    else:
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return lo, hi


@dataclass
class FrameStrip:
    """Up to 8 frames of a frame modality, ready to draw (both renderers use this)."""

    picks: np.ndarray
    frames: np.ndarray
    reference: Optional[np.ndarray]
    title: str
    colour_title: str
    colours: str  # "viridis" (depth) or "gray"


def _frame_strip(spec, values: np.ndarray, reference: Optional[np.ndarray], title: str) -> FrameStrip:
    picks = be.frame_picks(len(values), 8)
    frames = values[picks].astype(np.float32)
    ref = reference[picks[picks < len(reference)]].astype(np.float32) if reference is not None else None
    if "mm" in spec.unit:  # 0 mm means "no reading": left blank rather than drawn as the nearest depth
        frames = np.where(frames > 1.0, frames, np.nan)
        ref = np.where(ref > 1.0, ref, np.nan) if ref is not None else None
        return FrameStrip(picks, frames, ref, f"{title}: {len(picks)} of {len(values)} frames "
                                              "(blank = no depth reading)", "depth (mm)", "viridis")
    return FrameStrip(picks, frames, ref, f"{title}: {len(picks)} of {len(values)} frames",
                      spec.unit or "value", "gray")


def _light_input_spec(ctx: Context, modality: str, kind: str, values: np.ndarray, t: np.ndarray, t_label: str,
                      title: str, reference: Optional[np.ndarray], unit: str) -> dict:
    """The lab's drawing of one modality (lab_inputs: Vega-Lite, cheap to redraw on every change)."""
    spec = ctx.schema.modality(modality)
    extra = ctx.schema.extra
    if kind == "frames":
        strip = _frame_strip(spec, values, reference, title)
        # colour range from the clean input: it stays put while the corrupted row changes
        lo, hi = _frame_range(spec, reference if reference is not None else values)
        return lab_inputs.frames_chart(strip.frames, t[strip.picks], strip.reference, lo, hi, strip.title,
                                       strip.colour_title, strip.colours)
    if kind == "skeleton":
        names = list(extra.get("joint_names", []))
        return lab_inputs.skeleton_chart(values, t, be.frame_picks(len(values), 8), be.skeleton_bones(names),
                                         reference, f"{title}: poses over time (x–y plane; grey: clean)", unit)
    cols = be.feature_names(spec, extra)
    flat = values.reshape(len(values), -1)
    ref = reference.reshape(len(reference), -1) if reference is not None else None
    if kind == "imu":
        return lab_inputs.series_chart(t, flat, cols, ref, f"{title}: inertial sensor",
                                       [("acceleration (g)", range(0, 3)), ("angular velocity (deg/s)", range(3, 6))],
                                       t_label)
    if kind == "lines":
        return lab_inputs.series_chart(t, flat, cols, ref, title, [(f"{modality} ({unit})", range(len(cols)))], t_label)
    if kind == "heatmap":
        label = "MFCC / energy coefficient" if "MFCC" in spec.description else "feature"
        colour = spec.unit or ("coefficient value" if "MFCC" in spec.description else "value")
        return lab_inputs.heatmap_chart(t, flat, cols, ref, f"{title}: features over time", colour, t_label, label)
    return lab_inputs.vector_chart(values.reshape(-1), cols, reference, title, unit)


def render_lab_input(ctx: Context, modality: str, values: np.ndarray, clean: np.ndarray,
                     original_steps: Optional[int], key: str, unit: str) -> None:
    """The lab's drawing of one modality: the clean input and ``values`` (what the model sees now).

    Always one chart whose specification depends only on the modality, never on its corruption:
    a removed input (``values`` empty) is drawn as NaN, i.e. nothing over the clean input. The lab
    redraws this on every change, and a chart whose specification is unchanged is only fed new data
    (far cheaper in the browser than a new chart). ``unit``: the unit of the values as the model
    sees them (``be.model_input_unit``)."""
    spec = ctx.schema.modality(modality)
    if len(clean) == 0:  # absent from the sample itself: nothing to compare against
        st.info(f"{modality} is absent for this sample (marked missing in the data).")
        return
    if len(values) == 0:
        values = np.full_like(clean, np.nan, dtype=np.float32)
    kind = be.input_view_kind(spec, ctx.schema.extra)
    t, t_label = be.time_axis(len(values), spec, original_steps)
    st.vega_lite_chart(spec=_light_input_spec(ctx, modality, kind, values, t, t_label, f"{modality} (model input)",
                                              clean, unit), key=f"{key}_{modality}_input")


def render_modality(ctx: Context, modality: str, values: np.ndarray, original_steps: Optional[int],
                    key: str, title_suffix: str = "", reference: Optional[np.ndarray] = None) -> None:
    """Draw one modality of one sample (physical units): frames, skeleton, IMU, MFCC heatmap, vector.

    ``reference``: the clean input, drawn beside/under ``values`` for comparison."""
    if reference is not None and len(reference) == 0:
        reference = None
    schema = ctx.schema
    spec = schema.modality(modality)
    extra = schema.extra
    if len(values) == 0:
        st.info(f"{modality} is absent for this sample (marked missing).")
        return
    kind = be.input_view_kind(spec, extra)
    t, t_label = be.time_axis(len(values), spec, original_steps)
    title = f"{modality}{title_suffix}"
    unit = spec.unit or "value"
    if kind == "frames":
        strip = _frame_strip(spec, values, reference, title)
        fig = charts.frames_strip(strip.frames, t[strip.picks], strip.title, strip.colour_title,
                                  "Viridis" if strip.colours == "viridis" else "gray", _frame_range(spec, values),
                                  reference=strip.reference)
        st.plotly_chart(fig, config=PLOTLY_CONFIG, key=f"{key}_{modality}_frames")
    elif kind == "skeleton":
        names = list(extra.get("joint_names", []))
        bones = be.skeleton_bones(names)
        fig = charts.skeleton_animation(values, t, bones, names,
                                        f"{title}: stick figure (x–y plane, drag the slider or press play)",
                                        unit=spec.unit or "m")
        st.plotly_chart(fig, config=PLOTLY_CONFIG, key=f"{key}_{modality}_skeleton")
    elif kind == "imu":
        cols = be.feature_names(spec, extra)
        ref = reference.reshape(len(reference), -1) if reference is not None else None
        st.plotly_chart(charts.imu_figure(t, values.reshape(len(values), -1), cols, f"{title}: inertial sensor",
                                          time_label=t_label, reference=ref), config=PLOTLY_CONFIG,
                        key=f"{key}_{modality}_imu")
    elif kind == "lines":
        cols = be.feature_names(spec, extra)
        ref = reference.reshape(len(reference), -1) if reference is not None else None
        st.plotly_chart(charts.lines_figure(t, values.reshape(len(values), -1), cols, title,
                                            f"{modality} ({unit})", t_label, reference=ref), config=PLOTLY_CONFIG,
                        key=f"{key}_{modality}_lines")
    elif kind == "heatmap":
        flat = values.reshape(len(values), -1)
        rows = be.feature_names(spec, extra)
        label = "MFCC / energy coefficient" if "MFCC" in spec.description else "feature"
        colour = spec.unit or ("coefficient value" if "MFCC" in spec.description else "value")
        ref = reference.reshape(len(reference), -1) if reference is not None else None
        st.plotly_chart(charts.feature_heatmap(t, flat, rows, f"{title}: features over time",
                                               colour, t_label, label, reference=ref), config=PLOTLY_CONFIG,
                        key=f"{key}_{modality}_heat")
    else:
        st.plotly_chart(charts.vector_figure(values.reshape(-1), be.feature_names(spec, extra), title, unit),
                        config=PLOTLY_CONFIG, key=f"{key}_{modality}_vec")
    if spec.description:
        st.caption(spec.description)


def prediction_card(title: str, predicted: str, correct: bool, probability: float, note: str = "",
                    heading: Optional[str] = None) -> None:
    """A prediction shown in full (st.metric truncates long class names), under an optional
    heading. One element: the lab redraws it on every change, and every element costs the browser
    a re-render."""
    badge = ":green-badge[correct]" if correct else ":red-badge[wrong]"
    st.markdown((f"##### {heading}\n\n" if heading else "")
                + f"<div style='font-size:0.85rem;color:#666'>{html.escape(title)}</div>\n"
                + f"<div style='font-size:1.6rem;font-weight:600;line-height:1.3;margin:0.2rem 0 0.4rem 0'>"
                  f"{html.escape(predicted)}</div>\n\n"
                + f"{badge} probability **{probability:.3f}**" + (f" · {note}" if note else ""),
                unsafe_allow_html=True)


def role_colour_map(views: Sequence[be.ModelView]) -> Dict[str, str]:
    return {v.label: charts.ROLE_COLOURS.get(v.role, "#2ca02c") for v in views}


def fmt_pct(x: Optional[float]) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f}%"
