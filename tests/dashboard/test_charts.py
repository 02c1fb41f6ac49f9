"""Every chart builder of dashboard/charts/figures.py, validated by plotly.

``figures._fig`` builds figures with ``go.Figure(..., _validate=False)`` (fast dashboard
reruns), so a misspelt property would reach the browser silently. Here every public builder is run
on small, realistic inputs (shapes and columns as the views and ui modules pass them) and its
output is rebuilt with validation on (``go.Figure(fig.to_dict())``, frames included), then checked
for: the title that was passed in, non-empty axis titles (units) and traces of the expected length.
:func:`test_every_builder_is_covered` fails when a new builder is added without a case here.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from precal.dashboard.backend.overview import history_frames
from precal.dashboard.backend.robustness import POINTS_ONLY, corruption_titles, severity_facets
from precal.dashboard.charts import figures as charts
from precal.data.skeleton import KINECT_V1_BONES, skeleton_bones
from precal.explain import BASELINE, AlphaExplanation, waterfall_frame
from precal.models.model import CALIBRATED, UNCALIBRATED

ROOT = Path(__file__).resolve().parents[2]

RNG_SEED = 0
MODALITIES = ["inertial", "skeleton", "depth"]
ROLES = [CALIBRATED, UNCALIBRATED]
CLASSES = ["swipe left", "swipe right", "wave", "clap", "throw", "arm cross", "basketball shoot"]
JOINTS = list(dict.fromkeys(j for bone in KINECT_V1_BONES for j in bone))  # Kinect v1 joint order
BONES = skeleton_bones(JOINTS)
TITLES = corruption_titles()


def _rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


def validated(fig: go.Figure) -> go.Figure:
    """The figure rebuilt with plotly's property validation on: raises ValueError on any invalid
    property (trace, layout or animation frame)."""
    assert isinstance(fig, go.Figure)
    return go.Figure(fig.to_dict())


# --------------------------------------------------------------------------------------------------
# Cases: (figure, title it was given, axis -> expected title (None: any non-empty), extra checks)
# --------------------------------------------------------------------------------------------------


class Case(NamedTuple):
    builder: str
    fig: go.Figure
    title: str
    axes: Dict[str, Optional[str]]
    check: Callable[[go.Figure], None]


def _lengths(fig: go.Figure, attr: str = "x") -> List[int]:
    return [len(getattr(t, attr)) for t in fig.data]


# ---- inputs in native form


def case_frames_strip() -> Case:
    n, h, w = 8, 24, 32
    frames = _rng().uniform(0, 255, (n, h, w)).astype(np.float32)
    times = np.linspace(0.0, 2.1, n)
    title = "lips: 8 of 30 frames"
    fig = charts.frames_strip(frames, times, title, "intensity (0-255)", "gray", (0.0, 255.0))

    def check(f: go.Figure) -> None:
        gap = max(1, w // 10)
        assert len(f.data) == 1 and f.data[0].type == "heatmap"
        assert np.asarray(f.data[0].z).shape == (h, n * (w + gap) - gap)
        assert f.data[0].colorbar.title.text == "intensity (0-255)"
        assert len(f.layout.annotations) == n  # one time label per frame
        assert f.layout.annotations[0].text == "t = 0.00 s"

    return Case("frames_strip", fig, title, {}, check)  # axes hidden on purpose (image strip)


def case_frames_strip_depth_reference() -> Case:
    n, h, w = 4, 12, 16
    rng = _rng()
    ref = rng.uniform(800, 3000, (n, h, w)).astype(np.float32)
    frames = np.where(rng.random((n, h, w)) < 0.2, np.nan, ref + rng.normal(0, 50, (n, h, w))).astype(np.float32)
    title = "depth (corrupted): 4 of 4 frames (blank = no depth reading)"
    fig = charts.frames_strip(frames, np.arange(n) * 0.5, title, "depth (mm)", "Viridis", None,
                              time_unit="step", reference=ref)

    def check(f: go.Figure) -> None:
        gap = max(1, w // 10)
        assert np.asarray(f.data[0].z).shape == (2 * (h + gap) - gap, n * (w + gap) - gap)
        assert f.data[0].colorbar.title.text == "depth (mm)"
        assert f.data[0].zmin < f.data[0].zmax
        texts = [a.text for a in f.layout.annotations]
        assert len(texts) == n + 2 and "clean" in texts and "corrupted" in texts and "step 0" in texts

    return Case("frames_strip", fig, title, {}, check)


def _skeleton(t_count: int) -> np.ndarray:
    rng = _rng()
    base = rng.normal(0.0, 0.4, (len(JOINTS), 3)) + np.array([0.0, 0.0, 2.5])
    drift = np.linspace(0.0, 0.2, t_count)[:, None, None]
    return base[None] + drift + rng.normal(0, 0.01, (t_count, len(JOINTS), 3))


def case_skeleton_animation() -> Case:
    t_count = 10
    joints = _skeleton(t_count)
    title = "skeleton: stick figure (x–y plane, drag the slider or press play)"
    fig = charts.skeleton_animation(joints, np.linspace(0, 1.8, t_count), BONES, JOINTS, title, unit="m")

    def check(f: go.Figure) -> None:
        assert _lengths(f) == [3 * len(BONES), len(JOINTS)]
        assert len(f.frames) == t_count
        assert all(_lengths(fr) == [3 * len(BONES), len(JOINTS)] for fr in f.frames)
        assert len(f.layout.sliders[0].steps) == t_count
        assert "(m" in f.layout.xaxis.title.text and "(m" in f.layout.yaxis.title.text

    return Case("skeleton_animation", fig, title, {"xaxis": None, "yaxis": None}, check)


IMU_COLUMNS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]


def case_imu_figure() -> Case:
    t = np.linspace(0, 3.0, 60)
    values = _rng().normal(0, 1, (60, 6))
    title = "inertial: inertial sensor"
    fig = charts.imu_figure(t, values, IMU_COLUMNS, title)

    def check(f: go.Figure) -> None:
        assert [t.name for t in f.data] == IMU_COLUMNS
        assert _lengths(f) == [60] * 6 and _lengths(f, "y") == [60] * 6
        assert [t.yaxis for t in f.data] == ["y"] * 3 + ["y2"] * 3

    return Case("imu_figure", fig, title, {"xaxis": "time (s)", "yaxis": "acceleration (g)",
                                           "yaxis2": "angular rate (deg/s)"}, check)


def case_imu_figure_reference() -> Case:
    t = np.arange(24, dtype=float)
    ref = _rng().normal(0, 1, (24, 6))
    title = "inertial (corrupted): inertial sensor"
    fig = charts.imu_figure(t, ref * 2.0, IMU_COLUMNS, title, time_label="model input step", reference=ref)

    def check(f: go.Figure) -> None:
        assert len(f.data) == 12
        assert _lengths(f, "y") == [24] * 12
        assert sum(bool(t.showlegend) for t in f.data[:6] if t.showlegend is not None) == 1

    return Case("imu_figure", fig, title, {"xaxis": "model input step", "yaxis": None, "yaxis2": None}, check)


def case_lines_figure() -> Case:
    t = np.linspace(0, 1.0, 30)
    values = _rng().normal(0, 1, (30, 3))
    title = "audio"
    fig = charts.lines_figure(t, values, ["f0", "f1", "f2"], title, "audio (value)")
    return Case("lines_figure", fig, title, {"xaxis": "time (s)", "yaxis": "audio (value)"},
                lambda f: _assert(_lengths(f, "y") == [30] * 3 and [t.name for t in f.data] == ["f0", "f1", "f2"]))


def case_lines_figure_reference() -> Case:
    t = np.arange(20, dtype=float)
    ref = _rng().normal(0, 1, (20, 2))
    title = "audio (corrupted)"
    fig = charts.lines_figure(t, ref + 1, ["f0", "f1"], title, "audio (value)", "model input step", reference=ref)
    return Case("lines_figure", fig, title, {"xaxis": "model input step", "yaxis": "audio (value)"},
                lambda f: _assert(_lengths(f, "y") == [20] * 4 and [t.name for t in f.data] == ["clean", "clean",
                                                                                              "f0", "f1"]))


MFCC_ROWS = [f"mfcc {k}" for k in range(13)]


def case_feature_heatmap() -> Case:
    t = np.linspace(0, 1.2, 40)
    values = _rng().normal(0, 5, (40, 13))
    title = "audio: features over time"
    fig = charts.feature_heatmap(t, values, MFCC_ROWS, title, "coefficient value", "time (s)",
                                 "MFCC / energy coefficient")

    def check(f: go.Figure) -> None:
        assert len(f.data) == 1 and np.asarray(f.data[0].z).shape == (13, 40)
        assert list(f.data[0].y) == MFCC_ROWS and len(f.data[0].x) == 40
        assert f.data[0].colorbar.title.text == "coefficient value"

    return Case("feature_heatmap", fig, title, {"xaxis": "time (s)", "yaxis": "MFCC / energy coefficient"}, check)


def case_feature_heatmap_reference() -> Case:
    t = np.arange(24, dtype=float)
    ref = _rng().normal(0, 5, (24, 13))
    title = "audio (corrupted): features over time"
    fig = charts.feature_heatmap(t, ref * 0.5, MFCC_ROWS, title, "coefficient value", "model input step",
                                 reference=ref)

    def check(f: go.Figure) -> None:
        assert [np.asarray(t.z).shape for t in f.data] == [(13, 24), (13, 24)]
        assert [t.yaxis for t in f.data] == ["y2", "y"]

    return Case("feature_heatmap", fig, title, {"xaxis": "model input step", "yaxis": "feature · corrupted",
                                                "yaxis2": "feature · clean"}, check)


def case_vector_figure() -> Case:
    names = [f"feature {k}" for k in range(12)]
    title = "text"
    fig = charts.vector_figure(_rng().normal(0, 1, 12), names, title, "value")
    return Case("vector_figure", fig, title, {"xaxis": "feature", "yaxis": "value"},
                lambda f: _assert(len(f.data) == 1 and list(f.data[0].x) == names and len(f.data[0].y) == 12))


# ---- predictions, gates, cues


def _top_frame(k: int = 5) -> pd.DataFrame:
    rng = _rng()
    parts = []
    for role in ROLES:
        p = np.sort(rng.dirichlet(np.ones(len(CLASSES))))[::-1][:k]
        parts.append(pd.DataFrame({"class": CLASSES[:k], "probability": p, "rank": np.arange(1, k + 1),
                                   "model": role}))
    return pd.concat(parts, ignore_index=True)


def case_top_k_figure() -> Case:
    title = "top-5 class probabilities"
    fig = charts.top_k_figure(_top_frame(5), title, colours=charts.ROLE_COLOURS, true_class="wave")

    def check(f: go.Figure) -> None:
        assert [t.name for t in f.data] == ROLES
        assert _lengths(f, "y") == [5, 5] and _lengths(f, "x") == [5, 5]
        assert all(t.orientation == "h" for t in f.data)
        assert any("✓" in str(tick) for tick in f.layout.yaxis.ticktext)

    return Case("top_k_figure", fig, title, {"xaxis": "probability (0–1)", "yaxis": "class"}, check)


def _cue_frame() -> pd.DataFrame:
    rng = _rng()
    return pd.concat([pd.DataFrame({"modality": MODALITIES, "alpha": rng.uniform(0.2, 1.8, 3),
                                    "support": rng.uniform(-1, 1, 3), "conflict": rng.uniform(0, 2, 3),
                                    "model": role}) for role in ROLES], ignore_index=True)


def case_gate_bars() -> Case:
    title = "instance gate alpha"
    fig = charts.gate_bars(_cue_frame(), "alpha", title, "alpha (× feature scale)", colours=charts.ROLE_COLOURS,
                           reference=1.0, y_range=[0, 2.1])

    def check(f: go.Figure) -> None:
        assert [t.name for t in f.data] == ROLES
        assert [list(t.x) for t in f.data] == [MODALITIES, MODALITIES] and _lengths(f, "y") == [3, 3]
        assert len(f.layout.shapes) == 1 and f.layout.shapes[0].y0 == 1.0
        assert list(f.layout.yaxis.range) == [0, 2.1]

    return Case("gate_bars", fig, title, {"xaxis": "modality", "yaxis": "alpha (× feature scale)"}, check)


def case_gate_bars_plain() -> Case:
    title = "conflict: ‖u − û‖² / d"
    fig = charts.gate_bars(_cue_frame(), "conflict", title, "conflict (mean squared distance)",
                           colours=charts.ROLE_COLOURS)
    return Case("gate_bars", fig, title, {"xaxis": "modality", "yaxis": "conflict (mean squared distance)"},
                lambda f: _assert(_lengths(f, "y") == [3, 3] and len(f.layout.shapes) == 0))


def _alpha_frame() -> pd.DataFrame:
    rng = _rng()
    n = 40
    return pd.DataFrame({"modality": np.repeat(MODALITIES, n), "alpha": rng.uniform(0.4, 1.8, 3 * n),
                         "class": np.tile(np.resize(CLASSES[:4], n), 3)})


def case_matrix_heatmap() -> Case:
    m = _rng().uniform(-1, 1, (3, 3))
    np.fill_diagonal(m, 1.0)
    title = "pairwise support cos(u_m, u_k)"
    fig = charts.matrix_heatmap(m, MODALITIES, title, "cosine", "modality k", "modality m")

    def check(f: go.Figure) -> None:
        assert np.asarray(f.data[0].z).shape == (3, 3) and list(f.data[0].x) == MODALITIES
        assert f.data[0].colorbar.title.text == "cosine"

    return Case("matrix_heatmap", fig, title, {"xaxis": "modality k", "yaxis": "modality m"}, check)


def case_beta_heatmap() -> Case:
    mat = np.full((3, 64), np.nan)
    rng = _rng()
    for i, d in enumerate((64, 48, 32)):  # NaN-padded when encoder dims differ, as beta_matrix() returns it
        mat[i, :d] = rng.uniform(0.7, 1.3, d)
    title = "dimension gate beta per channel (calibrated model)"
    fig = charts.beta_heatmap(mat, MODALITIES, title)

    def check(f: go.Figure) -> None:
        assert np.asarray(f.data[0].z).shape == (3, 64) and len(f.data[0].x) == 64
        assert list(f.data[0].y) == MODALITIES
        assert f.data[0].colorbar.title.text == "beta (×)"

    return Case("beta_heatmap", fig, title, {"xaxis": None, "yaxis": "modality"}, check)


def case_waterfall_figure() -> Case:
    contributions = [("support", -0.8), ("conflict", -0.35), ("support from skeleton", 0.1)]
    expl = AlphaExplanation(modality="depth", alpha=0.41, logit=-1.2, baseline=-0.15, contributions=contributions,
                            cue_values={"support": -0.4, "conflict": 0.7, "support from skeleton": 0.2},
                            sentence="", status="suppressed")
    frame = waterfall_frame(expl)
    title = "alpha logit of depth: baseline + cue contributions = -1.200 → alpha = 0.410"
    fig = charts.waterfall_figure(frame, title)

    def check(f: go.Figure) -> None:
        assert len(f.data) == 1 and f.data[0].type == "waterfall"
        assert len(f.data[0].x) == len(f.data[0].y) == len(f.data[0].measure) == len(contributions) + 2
        assert f.data[0].x[0] == BASELINE and f.data[0].measure[-1] == "total"

    return Case("waterfall_figure", fig, title, {"xaxis": None, "yaxis": "alpha logit (0 = unchanged)"}, check)


N_POINTS = 30


def _embedding(colour, label: str, **kw) -> go.Figure:
    rng = _rng()
    pre = rng.normal(0, 1, (N_POINTS, 2))
    post = pre + rng.normal(0, 0.3, (N_POINTS, 2))
    ids = [f"s{k:03d}" for k in range(N_POINTS)]
    hover = [f"{s} · {c}" for s, c in zip(ids, np.resize(CLASSES, N_POINTS))]
    return charts.embedding_figure(pre, post, colour, label, ids, hover, kw.pop("title"), "PCA", **kw)


def _post_points(f: go.Figure) -> int:
    return sum(len(t.x) for t in f.data if t.customdata is not None and "before" not in (t.name or ""))


def case_embedding_classes() -> Case:
    colour = np.asarray(np.resize(CLASSES[:4], N_POINTS), dtype=object)
    title = f"PCA of fused · val ({N_POINTS} samples)"
    fig = _embedding(colour, "true class", title=title)

    def check(f: go.Figure) -> None:
        assert f.data[0].name == "pre → post" and len(f.data[0].x) == 3 * N_POINTS
        assert len(f.data) == 1 + 2 * 4  # arrows + (before, after) per class
        assert _post_points(f) == N_POINTS
        assert all(len(t.customdata) == len(t.x) for t in f.data[1:])

    return Case("embedding_figure", fig, title, {"xaxis": "PCA dimension 1 (arbitrary units)",
                                                 "yaxis": "PCA dimension 2 (arbitrary units)"}, check)


def case_embedding_alpha() -> Case:
    colour = _rng().uniform(0.2, 1.8, N_POINTS)
    title = "PCA of depth · test"
    fig = _embedding(colour, "alpha of depth", title=title, continuous=True)

    def check(f: go.Figure) -> None:
        assert [t.name for t in f.data] == ["pre → post", "before calibration", "after calibration"]
        assert _lengths(f)[1:] == [N_POINTS, N_POINTS]
        assert f.data[2].marker.colorbar.title.text == "alpha of depth"

    return Case("embedding_figure", fig, title, {"xaxis": None, "yaxis": None}, check)


def case_embedding_correctness_no_pre() -> Case:
    colour = np.where(np.arange(N_POINTS) % 3 == 0, "wrong", "correct").astype(object)
    title = "PCA of fused · val"
    fig = _embedding(colour, "calibrated prediction", title=title, arrows=False, show_pre=False, height=500)

    def check(f: go.Figure) -> None:
        assert [t.name for t in f.data] == ["wrong", "correct"]  # order of first appearance; no arrows/hollow points
        assert sum(_lengths(f)) == N_POINTS
        assert [t.marker.color for t in f.data] == ["#d62728", "#2ca02c"]

    return Case("embedding_figure", fig, title, {"xaxis": None, "yaxis": None}, check)


def case_embedding_state() -> Case:
    colour = np.where(np.arange(N_POINTS) < 10, "corrupted", "clean").astype(object)
    title = "PCA of fused · val · depth: Gaussian noise, severity 3"
    fig = _embedding(colour, "input", title=title, continuous=False)
    return Case("embedding_figure", fig, title, {"xaxis": None, "yaxis": None},
                lambda f: _assert(_post_points(f) == N_POINTS and len(f.data) == 1 + 2 * 2))


def case_embedding_webgl() -> Case:
    """A large map is drawn with WebGL, lines included; selection still returns sample ids."""
    colour = np.asarray(np.resize(CLASSES[:3], N_POINTS), dtype=object)
    title = "UMAP of fused · test (100,000 samples)"
    fig = _embedding(colour, "true class", title=title, webgl=True, highlight=[0, 1])

    def check(f: go.Figure) -> None:
        assert all(t.type == "scattergl" for t in f.data if t.name != "found")
        assert f.data[0].name == "pre → post" and f.data[0].mode == "lines"
        assert _post_points(f) == N_POINTS + 2  # the highlighted stars carry their ids too
        assert all(len(t.customdata) == len(t.x) for t in f.data[1:])

    return Case("embedding_figure", fig, title, {"xaxis": None, "yaxis": None}, check)


# ---- curves (plotly express)


SEVERITIES = [0, 1, 2, 3, 4, 5]


def _robustness_frame(corruptions: Sequence[str]) -> pd.DataFrame:
    rng = _rng()
    rows = []
    for c in corruptions:
        for role in ROLES:
            for s in SEVERITIES:
                rows.append({"modality": "depth", "corruption": c, "severity": s, "role": role, "metric": "accuracy",
                             "value": float(max(0.0, 0.9 - 0.1 * s + rng.normal(0, 0.02))),
                             "alpha_mean": float(1.0 - 0.1 * s) if role == CALIBRATED else np.nan})
    return pd.DataFrame(rows)


def case_robustness_figure() -> Case:
    corruptions = ["gaussian_noise", "occlusion", "blur", "remove_absent"]
    frame = _robustness_frame(corruptions)
    title = "accuracy vs severity when depth is corrupted"
    facets = severity_facets(corruptions)
    fig = charts.robustness_figure(frame, "value", title, "accuracy (0–1)", facets, points_only=POINTS_ONLY)

    def check(f: go.Figure) -> None:
        assert len(f.data) == len(corruptions) * len(ROLES)
        assert _lengths(f) == [len(SEVERITIES)] * (len(f.data) - 2) + [2, 2]  # "missing": present, removed
        assert {t.name for t in f.data} == set(ROLES)
        facet_titles = [a.text for a in f.layout.annotations]
        # the catalogue's order, each with its unit
        assert facet_titles == ["Gaussian noise (dB SNR)", "Occlusion (% of frame side)", "Blur (px blur sigma)",
                                "Missing"]
        ticks = [list(f.layout[k].ticktext) for k in sorted(f.layout)
                 if k.startswith("xaxis") and f.layout[k].ticktext is not None]
        assert ticks[0] == ["clean", "20", "10", "5", "0", "-5"][: len(ticks[0])] and ticks[3] == ["present", "removed"]
        missing = [t for t in f.data if t.xaxis == "x4"]
        assert all(t.mode == "markers" for t in missing)  # removed or not: no line over severities
        assert all(t.mode == "lines+markers" for t in f.data if t.xaxis != "x4")
        y_titles = [f.layout[k].title.text for k in f.layout if k.startswith("yaxis") and f.layout[k].title.text]
        assert y_titles and set(y_titles) == {"accuracy (0–1)"}
        lo, hi = f.layout.yaxis.range
        assert lo > 0.0 and hi < 1.0  # fitted to the values, not 0-1
        assert {t.line.dash for t in f.data if t.name == CALIBRATED} == {"solid"}

    return Case("robustness_figure", fig, title, {}, check)  # facet axes: checked in `check`


def case_robustness_figure_alpha() -> Case:
    frame = _robustness_frame(["gaussian_noise"])
    cal = frame[(frame["role"] == CALIBRATED) & frame["alpha_mean"].notna()]
    title = "mean alpha of depth (calibrated model) vs severity"
    fig = charts.robustness_figure(cal, "alpha_mean", title, "mean alpha of depth (1 = unchanged)",
                                   severity_facets(["gaussian_noise"]), reference=1.0)

    def check(f: go.Figure) -> None:
        assert len(f.data) == 1 and len(f.data[0].x) == len(SEVERITIES)
        assert len(f.layout.shapes) == 1 and f.layout.shapes[0].y0 == 1.0
        assert f.layout.annotations[0].text == "Gaussian noise (dB SNR)"

    return Case("robustness_figure", fig, title, {"yaxis": "mean alpha of depth (1 = unchanged)"}, check)


EPOCHS = 6


def _history() -> List[dict]:
    rng = _rng()
    history = []
    for e in range(1, EPOCHS + 1):
        mods = {m: {"alpha_mean": float(rng.uniform(0.5, 1.5)), "alpha_std": float(rng.uniform(0, 0.2)),
                    "support_mean": float(rng.uniform(-1, 1)), "support_std": 0.0,
                    "probe_accuracy": float(rng.uniform(0, 1)), "grad_norm": float(rng.uniform(0, 3))}
                for m in MODALITIES}
        history.append({"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e, "val_accuracy": 0.1 * e,
                        "val_macro_f1": 0.09 * e, "lr": 1e-3 / e, "modalities": mods})
    return history


def _history_frames():
    parts = [history_frames(_history()) for _ in ROLES]
    s = pd.concat([p[0].assign(role=role) for p, role in zip(parts, ROLES)], ignore_index=True)
    d = pd.concat([p[1].assign(role=role) for p, role in zip(parts, ROLES)], ignore_index=True)
    return s, d


def case_dynamics_figure() -> Case:
    _, d = _history_frames()
    sub = d[d["quantity"] == "alpha"]
    title = "instance gate alpha"
    fig = charts.dynamics_figure(sub, title, "alpha (× feature scale)", reference=1.0)

    def check(f: go.Figure) -> None:
        assert len(f.data) == len(ROLES) * len(MODALITIES)
        assert _lengths(f) == [EPOCHS] * len(f.data) and _lengths(f, "y") == [EPOCHS] * len(f.data)
        assert all(len(t.error_y.array) == EPOCHS and t.error_y.visible for t in f.data)
        assert len(f.layout.shapes) == 1
        assert {t.line.dash for t in f.data if t.name.endswith(f"· {CALIBRATED}")} == {"solid"}  # the model
        assert {t.line.dash for t in f.data if t.name.endswith(f"· {UNCALIBRATED}")} == {"dash"}

    return Case("dynamics_figure", fig, title, {"xaxis": "epoch", "yaxis": "alpha (× feature scale)"}, check)


def case_dynamics_figure_grad() -> Case:
    _, d = _history_frames()
    sub = d[d["quantity"] == "grad_norm"]
    title = "gradient norm per encoder (mean over steps)"
    fig = charts.dynamics_figure(sub, title, "‖∇ encoder parameters‖₂")
    return Case("dynamics_figure", fig, title, {"xaxis": "epoch", "yaxis": "‖∇ encoder parameters‖₂"},
                lambda f: _assert(len(f.data) == 6 and not any(t.error_y.visible for t in f.data)
                                  and len(f.layout.shapes) == 0))


def case_curves_figure_loss() -> Case:
    s, _ = _history_frames()
    loss = s.melt(id_vars=["epoch", "role"], value_vars=["train_loss", "val_loss"], var_name="split",
                  value_name="loss")
    loss["split"] = loss["split"].str.replace("_loss", "")
    title = "loss per epoch (colour: split)"
    fig = charts.curves_figure(loss, "epoch", "loss", "split", title, "epoch", "cross-entropy loss (nats)")

    def check(f: go.Figure) -> None:
        assert len(f.data) == len(ROLES) * 2  # model x split
        assert _lengths(f) == [EPOCHS] * 4
        # line style means one thing on the training page: the model
        assert {t.line.dash for t in f.data if t.name.endswith(CALIBRATED) and "uncal" not in t.name} == {"solid"}
        assert {t.line.dash for t in f.data if t.name.endswith(UNCALIBRATED)} == {"dash"}
        assert len({t.line.color for t in f.data}) == 2  # colour: the split

    return Case("curves_figure", fig, title, {"xaxis": "epoch", "yaxis": "cross-entropy loss (nats)"}, check)


def case_curves_figure_lr() -> Case:
    s, _ = _history_frames()
    title = "learning rate per epoch"
    fig = charts.curves_figure(s, "epoch", "lr", None, title, "epoch", "learning rate")
    return Case("curves_figure", fig, title, {"xaxis": "epoch", "yaxis": "learning rate"},
                lambda f: _assert(_lengths(f) == [EPOCHS] * len(ROLES)))


def _assert(ok: bool) -> None:
    assert ok


CASES: Dict[str, Callable[[], Case]] = {name[len("case_"):]: fn for name, fn in sorted(globals().items())
                                        if name.startswith("case_") and callable(fn)}


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_validation_can_fail() -> None:
    """The check is not vacuous: an unknown property fails validation, also when a figure was built
    unvalidated through ``_fig`` (the path every _fig-based builder takes). (Names without an
    underscore: plotly reads ``a_b`` as the path ``a.b`` and rejects a bad one even unvalidated.)"""
    with pytest.raises(ValueError, match="nonsense"):
        go.Figure({"data": [{"type": "scatter", "nonsense_prop": 1}]})
    bad_trace = charts._fig([dict(type="bar", x=[1], y=[2], nonsense=1)], "t")  # builds fine unvalidated
    with pytest.raises(ValueError, match="nonsense"):
        validated(bad_trace)
    bad_layout = charts._fig([], "t", xaxis=dict(titel=dict(text="x")))
    with pytest.raises(ValueError, match="titel"):
        validated(bad_layout)
    bad_value = charts._fig([dict(type="scatter", mode="bogus")], "t")
    with pytest.raises(ValueError, match="bogus"):
        validated(bad_value)
    with pytest.raises(ValueError, match="nonsense"):  # animation frames: plotly validates them even at build
        validated(charts._fig([], "t", frames=[dict(data=[dict(type="scatter", nonsense=1)], name="0")]))


def _figure_builders() -> List[str]:
    return sorted(name for name, fn in inspect.getmembers(charts, inspect.isfunction)
                  if not name.startswith("_") and fn.__module__ == charts.__name__
                  and "Figure" in str(inspect.signature(fn).return_annotation))


def test_every_builder_is_covered() -> None:
    builders = _figure_builders()
    assert len(builders) >= 12, builders  # discovery works (15 builders today)
    covered = {fn().builder for fn in CASES.values()}
    assert sorted(set(builders) - covered) == [], "chart builders without a validation case in this file"


@pytest.mark.parametrize("name", sorted(CASES))
def test_chart_is_valid_plotly(name: str) -> None:
    case = CASES[name]()
    checked = validated(case.fig)  # raises ValueError on any invalid property
    assert checked.layout.title.text == case.title

    # the remaining checks read the built figure itself: to_dict() encodes numpy arrays as plotly's
    # typed-array dicts ({"dtype", "bdata"}), so lengths are not readable on the rebuilt copy
    fig = case.fig
    title = fig.layout.title.text
    assert title and title == case.title

    for axis, expected in case.axes.items():
        text = fig.layout[axis].title.text
        assert text, f"{case.builder}: {axis} has no title"
        if expected is not None:
            assert text == expected, f"{case.builder}: {axis} title {text!r} != {expected!r}"

    assert len(fig.data) > 0
    case.check(fig)


# ---- readability rules (issue 22) -------------------------------------------------------------------


def test_bars_carry_no_value_labels() -> None:
    frame = pd.DataFrame({"modality": ["a", "b"] * 2, "alpha": [0.8, 1.2, 1.0, 1.0],
                          "model": ["calibrated"] * 2 + ["uncalibrated"] * 2})
    for fig in (charts.gate_bars(frame, "alpha", "t", "alpha", reference=1.0),
                charts.top_k_figure(pd.DataFrame({"class": ["x", "y"], "probability": [0.7, 0.3],
                                                  "model": ["m", "m"]}), "t")):
        assert all(getattr(t, "text", None) is None for t in fig.data)
        assert not fig.layout.annotations


def test_gate_bars_write_absent_instead_of_a_number() -> None:
    frame = pd.DataFrame({"modality": ["a", "b"], "alpha": [0.8, np.nan], "note": ["", "n/a (absent)"],
                          "model": ["calibrated"] * 2})
    fig = charts.gate_bars(frame, "alpha", "t", "alpha")
    assert [a.text for a in fig.layout.annotations] == ["n/a (absent)"]


def test_class_palette_separates_27_classes() -> None:
    colours = [c.lower() for c in charts.CLASS_COLOURS[:27]]
    assert len(set(colours)) == 27

    def rgb(h):
        return np.array([int(h[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)

    pts = np.stack([rgb(c) for c in colours])
    d = np.linalg.norm(pts[:, None] - pts[None], axis=2) + np.eye(27) * 1e9
    assert d.min() > 40  # no two classes nearly the same colour


def test_long_vectors_are_drawn_over_a_feature_index() -> None:
    values = np.sin(np.arange(1024) / 20.0)
    fig = charts.vector_figure(values, [f"f{k}" for k in range(1024)], "embedding", "a.u.")
    assert fig.data[0].type == "scatter" and fig.layout.xaxis.title.text.startswith("feature index")
    short = charts.vector_figure(values[:6], [f"f{k}" for k in range(6)], "short", "a.u.")
    assert short.data[0].type == "bar"


def test_embedding_search_marks_the_sample_apart_from_its_neighbours() -> None:
    """Only the searched sample carries a label; its neighbours are smaller rings with hover ids."""
    colour = np.asarray(np.resize(CLASSES[:3], N_POINTS), dtype=object)
    fig = _embedding(colour, "true class", title="t", highlight=[0], neighbours=[1, 2, 3])
    found = next(t for t in fig.data if t.name == "found")
    near = next(t for t in fig.data if t.name == "nearest neighbours")
    assert list(found.customdata) == ["s000"] and found.mode == "markers+text" and list(found.text) == ["s000"]
    assert near.mode == "markers" and list(near.customdata) == ["s001", "s002", "s003"]
    assert found.marker.symbol != near.marker.symbol and found.marker.size > near.marker.size
    assert found.marker.color != near.marker.color
    assert [t.name for t in fig.data][-1] == "found"  # drawn on top of its neighbours


def test_embedding_colour_bar_and_legend_do_not_share_a_place() -> None:
    """A continuous colouring: the colour bar holds the title, the legend sits above the plot."""
    values = np.linspace(0.0, 1.0, N_POINTS)
    fig = _embedding(values, "support of audio", title="t", continuous=True, cmid=None)
    bars = [t.marker.colorbar for t in fig.data if t.marker is not None and t.marker.showscale]
    assert len(bars) == 1 and bars[0].title.text == "support of audio"
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.y >= 1.0 and "support of audio" not in legend.title.text
    assert fig.layout.margin.t >= 100


def test_cue_panels_say_why_a_value_is_missing() -> None:
    """No value is drawn as a bar; the words say why: absent (no gate, no cues) or, for the cues of a
    modality whose peers were all removed, no peer (its alpha, the pass-through, is still drawn)."""
    from precal.dashboard.charts.lab import cue_chart

    rows = [("a", "alpha", "clean", 0.9), ("a", "support", "clean", 0.5), ("a", "conflict", "clean", 0.2),
            ("a", "alpha", "corrupted", 1.0), ("a", "support", "corrupted", np.nan),
            ("a", "conflict", "corrupted", np.nan),
            ("b", "alpha", "clean", 1.1), ("b", "support", "clean", 0.4), ("b", "conflict", "clean", 0.3),
            ("b", "alpha", "corrupted", np.nan), ("b", "support", "corrupted", np.nan),
            ("b", "conflict", "corrupted", np.nan)]
    frame = pd.DataFrame(rows, columns=["modality", "quantity", "input", "value"])
    values = cue_chart(frame, "t", "input", {"clean": "#999", "corrupted": "#d62728"})["datasets"]["cues"]
    values = values.to_pandas().set_index(["modality", "quantity", "input"])
    assert (values.loc[("b", slice(None), "corrupted"), "note"] == "n/a (absent)").all()
    assert values.loc[("a", "support", "corrupted"), "note"] == "n/a (no peer)"
    assert values.loc[("a", "conflict", "corrupted"), "note"] == "n/a (no peer)"
    assert values.loc[("a", "alpha", "corrupted"), "note"] == "" and values.loc[("a", "alpha", "corrupted"), "value"] == 1.0
    assert values["value"].isna().sum() == 5
