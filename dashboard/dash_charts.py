"""Plotly figures for the dashboard: layout only, no model math (that lives in
:mod:`precal.dashboard_backend`). Every figure has a title, axis labels with units and a legend or
colour bar where colour carries meaning."""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

ROLE_COLOURS = {"calibrated": "#1f77b4", "uncalibrated": "#ff7f0e"}
STATE_COLOURS = {"clean": "#7f7f7f", "corrupted": "#d62728"}
MODALITY_COLOURS = px.colors.qualitative.Set2
CLASS_COLOURS = px.colors.qualitative.Dark24 + px.colors.qualitative.Light24
FONT = dict(size=13)


def _layout(fig: go.Figure, title: str, height: int = 360, **kw) -> go.Figure:
    kw.setdefault("margin", dict(l=60, r=20, t=60, b=50))
    fig.update_layout(title=dict(text=title, x=0.0, xanchor="left"), height=height, font=FONT, **kw)
    return fig


def modality_colours(modalities: Sequence[str]) -> Dict[str, str]:
    return {m: MODALITY_COLOURS[i % len(MODALITY_COLOURS)] for i, m in enumerate(modalities)}


# --------------------------------------------------------------------------------------------------
# Inputs in native form
# --------------------------------------------------------------------------------------------------


def frames_strip(frames: np.ndarray, times: Sequence[float], title: str, colour_label: str,
                 colourscale: str = "gray", zrange: Optional[Tuple[float, float]] = None,
                 time_unit: str = "s") -> go.Figure:
    """A strip of frames (n, H, W) side by side with a shared colour scale in physical units."""
    n = len(frames)
    if zrange is None:
        finite = frames[np.isfinite(frames)]
        zrange = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if zrange[0] == zrange[1]:
            zrange = (zrange[0], zrange[0] + 1.0)
    fig = px.imshow(frames, facet_col=0, facet_col_wrap=n, color_continuous_scale=colourscale,
                    zmin=zrange[0], zmax=zrange[1], labels={"color": colour_label, "facet_col": "frame"},
                    aspect="equal")
    for i, ann in enumerate(fig.layout.annotations):
        k = int(ann.text.split("=")[-1]) if "=" in ann.text else i
        t = times[k] if k < len(times) else k
        ann.text = f"t = {t:.2f} {time_unit}" if time_unit == "s" else f"step {int(t)}"
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(coloraxis_colorbar=dict(title=colour_label, thickness=12))
    return _layout(fig, title, height=230 + (0 if n <= 8 else 160),
                   margin=dict(l=10, r=10, t=70, b=10))


def skeleton_animation(joints: np.ndarray, times: Sequence[float], bones: Sequence[Tuple[int, int]],
                       joint_names: Sequence[str], title: str, unit: str = "m") -> go.Figure:
    """A 2-D stick figure (x right, y up) of (T, J, 3) joints with a frame slider and play button."""
    t_count = len(joints)
    xs, ys = joints[..., 0], joints[..., 1]
    pad = 0.1
    x_range = [float(np.nanmin(xs)) - pad, float(np.nanmax(xs)) + pad]
    y_range = [float(np.nanmin(ys)) - pad, float(np.nanmax(ys)) + pad]

    def traces(k: int) -> List[go.Scatter]:
        bx, by = [], []
        for a, b in bones:
            bx += [joints[k, a, 0], joints[k, b, 0], None]
            by += [joints[k, a, 1], joints[k, b, 1], None]
        return [go.Scatter(x=bx, y=by, mode="lines", line=dict(color="#1f77b4", width=4), name="bones",
                           hoverinfo="skip"),
                go.Scatter(x=joints[k, :, 0], y=joints[k, :, 1], mode="markers", name="joints",
                           marker=dict(size=8, color="#d62728"), text=list(joint_names),
                           hovertemplate="%{text}<br>x=%{x:.2f} " + unit + "<br>y=%{y:.2f} " + unit + "<extra></extra>")]

    fig = go.Figure(data=traces(0), frames=[go.Frame(data=traces(k), name=str(k)) for k in range(t_count)])
    steps = [dict(method="animate", label=f"{times[k]:.2f}",
                  args=[[str(k)], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                       transition=dict(duration=0))]) for k in range(t_count)]
    fig.update_layout(
        sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="frame at t (s) = "), pad=dict(t=40),
                      len=0.85, x=0.15)],
        updatemenus=[dict(type="buttons", showactive=False, x=0.0, y=-0.08, xanchor="left", yanchor="top",
                          buttons=[dict(label="▶ play", method="animate",
                                        args=[None, dict(frame=dict(duration=60, redraw=True), fromcurrent=True)])])],
    )
    fig.update_xaxes(title_text=f"x ({unit}, camera right)", range=x_range, zeroline=False)
    fig.update_yaxes(title_text=f"y ({unit}, up)", range=y_range, scaleanchor="x", scaleratio=1, zeroline=False)
    return _layout(fig, title, height=520, legend=dict(orientation="h", y=1.02, x=1, xanchor="right"))


def imu_figure(t: np.ndarray, values: np.ndarray, columns: Sequence[str], title: str,
               time_label: str = "time (s)") -> go.Figure:
    """Accelerometer (g) and gyroscope (deg/s) as two stacked line charts."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("accelerometer", "gyroscope"))
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    for j, name in enumerate(columns):
        row = 1 if j < 3 else 2
        fig.add_trace(go.Scatter(x=t, y=values[:, j], mode="lines", name=name,
                                 line=dict(color=colours[j % 3], dash="solid" if row == 1 else "dot")),
                      row=row, col=1)
    fig.update_yaxes(title_text="acceleration (g)", row=1, col=1)
    fig.update_yaxes(title_text="angular rate (deg/s)", row=2, col=1)
    fig.update_xaxes(title_text=time_label, row=2, col=1)
    return _layout(fig, title, height=430)


def lines_figure(t: np.ndarray, values: np.ndarray, columns: Sequence[str], title: str, y_label: str,
                 time_label: str = "time (s)") -> go.Figure:
    fig = go.Figure()
    for j, name in enumerate(columns):
        fig.add_trace(go.Scatter(x=t, y=values[:, j], mode="lines", name=name))
    fig.update_xaxes(title_text=time_label)
    fig.update_yaxes(title_text=y_label)
    return _layout(fig, title)


def feature_heatmap(t: np.ndarray, values: np.ndarray, rows: Sequence[str], title: str, colour_label: str,
                    time_label: str = "time (s)", y_label: str = "feature") -> go.Figure:
    """(T, F) features as a time x feature heatmap (e.g. MFCC)."""
    fig = go.Figure(go.Heatmap(z=values.T, x=t, y=list(rows), colorscale="RdBu_r", zmid=0.0,
                               colorbar=dict(title=colour_label, thickness=12),
                               hovertemplate=time_label + "=%{x:.2f}<br>%{y}<br>value=%{z:.2f}<extra></extra>"))
    fig.update_xaxes(title_text=time_label)
    fig.update_yaxes(title_text=y_label)
    return _layout(fig, title, height=380)


def vector_figure(values: np.ndarray, names: Sequence[str], title: str, y_label: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(names), y=values, name="value"))
    fig.update_xaxes(title_text="feature")
    fig.update_yaxes(title_text=y_label)
    return _layout(fig, title)


# --------------------------------------------------------------------------------------------------
# Predictions, gates, cues
# --------------------------------------------------------------------------------------------------


def top_k_figure(frame: pd.DataFrame, title: str, colour_by: str = "model",
                 colours: Optional[Mapping[str, str]] = None, true_class: Optional[str] = None) -> go.Figure:
    """Horizontal bars of class probabilities; ``frame`` has class, probability, and ``colour_by``."""
    fig = px.bar(frame, y="class", x="probability", color=colour_by, barmode="group", orientation="h",
                 color_discrete_map=dict(colours or {}), range_x=[0, 1],
                 labels={"probability": "probability (0–1)", "class": "class", colour_by: colour_by})
    fig.update_yaxes(autorange="reversed", categoryorder="array",
                     categoryarray=list(dict.fromkeys(frame["class"])))
    if true_class is not None:
        fig.update_yaxes(ticktext=[f"<b>{c}</b> ✓" if c == true_class else c for c in dict.fromkeys(frame["class"])],
                         tickvals=list(dict.fromkeys(frame["class"])))
    return _layout(fig, title, height=140 + 34 * frame["class"].nunique(),
                   legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1, title_text=""),
                   margin=dict(l=60, r=20, t=80, b=50))


def gate_bars(frame: pd.DataFrame, value: str, title: str, y_label: str, colour_by: str = "model",
              colours: Optional[Mapping[str, str]] = None, reference: Optional[float] = None,
              pattern_by: Optional[str] = None, y_range: Optional[Sequence[float]] = None) -> go.Figure:
    """Grouped bars per modality (alpha, support, conflict...) with an optional reference line."""
    fig = px.bar(frame, x="modality", y=value, color=colour_by, barmode="group", pattern_shape=pattern_by,
                 color_discrete_map=dict(colours or {}), labels={value: y_label, "modality": "modality"},
                 text_auto=".2f")
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dash", line_color="black")
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    fig.update_traces(textposition="outside", cliponaxis=False, textfont_size=11)
    return _layout(fig, title, legend=dict(orientation="h", yanchor="top", y=-0.22, x=0, title_text=""),
                   margin=dict(l=60, r=20, t=60, b=90))


def matrix_heatmap(matrix: np.ndarray, labels: Sequence[str], title: str, colour_label: str,
                   x_title: str, y_title: str, zrange: Tuple[float, float] = (-1.0, 1.0),
                   colourscale: str = "RdBu") -> go.Figure:
    fig = px.imshow(matrix, x=list(labels), y=list(labels), zmin=zrange[0], zmax=zrange[1],
                    color_continuous_scale=colourscale, text_auto=".2f", aspect="auto",
                    labels={"x": x_title, "y": y_title, "color": colour_label})
    fig.update_layout(coloraxis_colorbar=dict(title=colour_label, thickness=12))
    return _layout(fig, title, height=360)


def beta_heatmap(matrix: np.ndarray, modalities: Sequence[str], title: str) -> go.Figure:
    """Dimension gate beta: modalities x feature channels, centred at 1 (unchanged)."""
    dev = np.nanmax(np.abs(matrix - 1.0)) if np.isfinite(matrix).any() else 0.0
    dev = max(float(dev), 1e-3)
    fig = go.Figure(go.Heatmap(z=matrix, y=list(modalities), x=np.arange(matrix.shape[1]),
                               colorscale="RdBu", zmid=1.0, zmin=1.0 - dev, zmax=1.0 + dev,
                               colorbar=dict(title="beta (×)", thickness=12),
                               hovertemplate="%{y}, channel %{x}<br>beta=%{z:.3f}<extra></extra>"))
    fig.update_xaxes(title_text="feature channel (encoder output dimension)")
    fig.update_yaxes(title_text="modality")
    return _layout(fig, title, height=140 + 50 * len(modalities))


def waterfall_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """The alpha logit split into baseline + per-cue contributions (from precal.explain)."""
    fig = go.Figure(go.Waterfall(
        x=frame["step"], y=frame["value"], measure=frame["measure"], name="contribution",
        text=[f"{v:+.2f}" for v in frame["value"]], textposition="outside",
        increasing=dict(marker=dict(color="#2ca02c")), decreasing=dict(marker=dict(color="#d62728")),
        totals=dict(marker=dict(color="#1f77b4")), connector=dict(line=dict(color="#999", dash="dot"))))
    fig.add_hline(y=0.0, line_color="black", line_width=1)
    fig.update_xaxes(title_text="baseline, then each cue's contribution, then the total logit")
    fig.update_yaxes(title_text="alpha logit (0 = unchanged)")
    return _layout(fig, title, height=400, showlegend=False)


def confusion_figure(cm: np.ndarray, names: Sequence[str], title: str) -> go.Figure:
    short = [n if len(n) <= 22 else n[:20] + "…" for n in names]
    fig = go.Figure(go.Heatmap(z=cm, x=short, y=short, colorscale="Blues", colorbar=dict(title="samples", thickness=12),
                               customdata=np.dstack(np.meshgrid(names, names)),
                               hovertemplate="true: %{customdata[1]}<br>predicted: %{customdata[0]}"
                                             "<br>samples: %{z}<extra></extra>"))
    fig.update_xaxes(title_text="predicted class", tickangle=-45)
    fig.update_yaxes(title_text="true class", autorange="reversed")
    size = max(420, 22 * len(names) + 200)
    return _layout(fig, title, height=size, margin=dict(l=160, r=20, t=60, b=160))


# --------------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------------


def embedding_figure(pre: np.ndarray, post: np.ndarray, colour: Sequence, colour_label: str,
                     sample_ids: Sequence[str], hover: Sequence[str], title: str, method: str,
                     arrows: bool = True, continuous: bool = False, show_pre: bool = True,
                     height: int = 620) -> go.Figure:
    """Pre (hollow) and post (filled) calibration points in one aligned 2-D space, lines pre -> post."""
    fig = go.Figure()
    colour = np.asarray(colour)
    if arrows and show_pre:
        xs = np.full(3 * len(pre), np.nan)
        ys = np.full(3 * len(pre), np.nan)
        xs[0::3], xs[1::3] = pre[:, 0], post[:, 0]
        ys[0::3], ys[1::3] = pre[:, 1], post[:, 1]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="rgba(120,120,120,0.35)", width=1),
                                 name="pre → post", hoverinfo="skip"))
    custom = np.asarray(sample_ids, dtype=object)
    if continuous:
        for k, (pts, symbol, label) in enumerate(((pre, "circle-open", "before calibration"),
                                                  (post, "circle", "after calibration"))):
            if k == 0 and not show_pre:
                continue
            fig.add_trace(go.Scatter(
                x=pts[:, 0], y=pts[:, 1], mode="markers", name=label, customdata=custom, text=list(hover),
                marker=dict(symbol=symbol, size=8, color=colour.astype(float), colorscale="RdBu", cmid=1.0,
                            colorbar=dict(title=colour_label, thickness=12) if k == 1 else None,
                            showscale=k == 1, line=dict(width=1)),
                hovertemplate="%{text}<extra>" + label + "</extra>"))
    else:
        cats = list(dict.fromkeys(colour.tolist()))
        palette = {c: CLASS_COLOURS[i % len(CLASS_COLOURS)] for i, c in enumerate(cats)}
        if set(cats) <= {"correct", "wrong"}:
            palette = {"correct": "#2ca02c", "wrong": "#d62728"}
        if set(cats) <= {"clean", "corrupted"}:
            palette = STATE_COLOURS
        for c in cats:
            sel = colour == c
            if show_pre:
                fig.add_trace(go.Scatter(
                    x=pre[sel, 0], y=pre[sel, 1], mode="markers", name=f"{c} (before)", legendgroup=str(c),
                    showlegend=False, customdata=custom[sel], text=np.asarray(hover, dtype=object)[sel],
                    marker=dict(symbol="circle-open", size=7, color=palette[c]),
                    hovertemplate="%{text}<extra>before calibration</extra>"))
            fig.add_trace(go.Scatter(
                x=post[sel, 0], y=post[sel, 1], mode="markers", name=str(c), legendgroup=str(c),
                customdata=custom[sel], text=np.asarray(hover, dtype=object)[sel],
                marker=dict(symbol="circle", size=8, color=palette[c], line=dict(width=0.5, color="white")),
                hovertemplate="%{text}<extra>after calibration</extra>"))
    fig.update_xaxes(title_text=f"{method} dimension 1 (arbitrary units)")
    fig.update_yaxes(title_text=f"{method} dimension 2 (arbitrary units)")
    return _layout(fig, title, height=height,
                   legend=dict(title_text=f"{colour_label}<br><sup>filled: after · hollow: before</sup>",
                               itemsizing="constant"))


def lab_projection_figure(background: np.ndarray, background_labels: Sequence[str],
                          moves: Mapping[str, Tuple[np.ndarray, np.ndarray]], title: str, method: str) -> go.Figure:
    """Split points (after calibration) in grey and, per model, the sample's clean -> corrupted move."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=background[:, 0], y=background[:, 1], mode="markers", name="split (after calibration)",
                             marker=dict(size=6, color="rgba(150,150,150,0.45)"), text=list(background_labels),
                             hovertemplate="%{text}<extra></extra>"))
    colours = {"after calibration": "#1f77b4", "before calibration": "#ff7f0e"}
    for name, (clean, cor) in moves.items():
        c = colours.get(name, "#2ca02c")
        fig.add_trace(go.Scatter(x=[clean[0]], y=[clean[1]], mode="markers", name=f"clean ({name})",
                                 marker=dict(size=14, color=c, symbol="circle", line=dict(width=2, color="black"))))
        fig.add_trace(go.Scatter(x=[cor[0]], y=[cor[1]], mode="markers", name=f"corrupted ({name})",
                                 marker=dict(size=15, color=c, symbol="x", line=dict(width=1, color="black"))))
        if float(np.hypot(*(np.asarray(cor) - np.asarray(clean)))) > 1e-9:
            fig.add_annotation(x=cor[0], y=cor[1], ax=clean[0], ay=clean[1], xref="x", yref="y", axref="x",
                               ayref="y", showarrow=True, arrowhead=3, arrowsize=1.5, arrowwidth=2, arrowcolor=c)
    fig.update_xaxes(title_text=f"{method} dimension 1 (arbitrary units)")
    fig.update_yaxes(title_text=f"{method} dimension 2 (arbitrary units)")
    return _layout(fig, title, height=480, legend=dict(orientation="h", y=-0.18, x=0))


# --------------------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------------------


def robustness_figure(frame: pd.DataFrame, y: str, title: str, y_label: str,
                      titles: Mapping[str, str], y_range: Optional[Sequence[float]] = None,
                      reference: Optional[float] = None) -> go.Figure:
    """y vs severity, one panel per corruption, colour = model."""
    frame = frame.assign(corruption_title=frame["corruption"].map(lambda c: titles.get(c, c)))
    n = frame["corruption_title"].nunique()
    wrap = min(n, 3)
    fig = px.line(frame.sort_values("severity"), x="severity", y=y, color="model", markers=True,
                  facet_col="corruption_title", facet_col_wrap=wrap, color_discrete_map=ROLE_COLOURS,
                  labels={"severity": "severity (0 = clean)", y: y_label, "model": "model",
                          "corruption_title": "corruption"}, range_y=y_range)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dash", line_color="black")
    rows = -(-n // wrap)
    fig.update_xaxes(dtick=1)
    return _layout(fig, title, height=140 + 230 * rows, legend=dict(orientation="h", y=1.08, x=1, xanchor="right"))


def dynamics_figure(frame: pd.DataFrame, title: str, y_label: str, reference: Optional[float] = None) -> go.Figure:
    """mean ± std per epoch; colour = modality, dash = model."""
    fig = go.Figure()
    mods = list(dict.fromkeys(frame["modality"]))
    colours = modality_colours(mods)
    dashes = {"calibrated": "solid", "uncalibrated": "dash"}
    for (model, m), g in frame.groupby(["model", "modality"], sort=False):
        g = g.sort_values("epoch")
        fig.add_trace(go.Scatter(
            x=g["epoch"], y=g["mean"], mode="lines+markers", name=f"{m} · {model}",
            line=dict(color=colours[m], dash=dashes.get(model, "solid")),
            error_y=dict(type="data", array=g["std"].fillna(0.0), visible=bool(g["std"].fillna(0).any()),
                         thickness=1)))
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dot", line_color="black")
    fig.update_xaxes(title_text="epoch", dtick=1 if frame["epoch"].nunique() <= 20 else None)
    fig.update_yaxes(title_text=y_label)
    return _layout(fig, title, height=400, legend=dict(title_text="", orientation="h", yanchor="top", y=-0.22, x=0),
                   margin=dict(l=60, r=20, t=60, b=110))


def curves_figure(frame: pd.DataFrame, x: str, y: str, colour: str, dash: Optional[str], title: str,
                  x_label: str, y_label: str) -> go.Figure:
    fig = px.line(frame, x=x, y=y, color=colour, line_dash=dash, markers=True,
                  color_discrete_map=ROLE_COLOURS, labels={x: x_label, y: y_label})
    fig.update_xaxes(dtick=1 if frame[x].nunique() <= 20 else None)
    return _layout(fig, title, height=400, legend=dict(title_text="", orientation="h", yanchor="top", y=-0.22, x=0),
                   margin=dict(l=60, r=20, t=60, b=110))
