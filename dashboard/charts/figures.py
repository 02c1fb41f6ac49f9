"""Plotly figures for the dashboard: layout only, no model math (that lives in
:mod:`precal.dashboard.backend`). Every figure has a title, axis labels with units and a legend or
colour bar where colour carries meaning."""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

DASHES = {"calibrated": "solid", "uncalibrated": "dash", "model A": "solid", "model B": "dash"}
"""Line style per column: solid for the calibrated model (or model A), dashed for the other."""
ROLE_COLOURS = {"calibrated": "#1f77b4", "uncalibrated": "#ff7f0e", "model A": "#1f77b4", "model B": "#ff7f0e"}
STATE_COLOURS = {"clean": "#7f7f7f", "corrupted": "#d62728"}
MODALITY_COLOURS = qualitative.Set2
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf", "#f3c300", "#875692", "#a1caf1", "#be0032", "#c2b280", "#008856",
                 "#ff00ff", "#003f5c", "#f99379", "#3d2b8f", "#66a61e", "#b3446c", "#00ffcc", "#882d17",
                 "#8db600", "#4d3319", "#e25822", "#2b3d26", "#000000", "#5ef1f2")
"""30 colours a reader can tell apart (Tableau 10, then Kelly's colours of maximum contrast and a few more;
no two of the first 27 closer than 45 in RGB): UTD-MHAD
has 27 classes, and a palette that repeats or fades after 10-24 makes neighbouring classes alike."""
FONT = dict(size=13)
LOW_BLUE_HIGH_RED = [[0.0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1.0, "#b2182b"]]
"""The diverging scale of feature heatmaps (MFCCs), spelt out: Vega's reversed "redblue" in the lab is
the same map (low blue, high red), so explorer and lab read alike."""


def _layout(fig: go.Figure, title: str, height: int = 360, **kw) -> go.Figure:
    kw.setdefault("margin", dict(l=60, r=20, t=60, b=50))
    fig.update_layout(title=dict(text=title, x=0.0, xanchor="left"), height=height, font=FONT, **kw)
    return fig


def _fig(data: List[dict], title: str, height: int = 360, frames: Optional[List[dict]] = None, **layout) -> go.Figure:
    """A figure from plain dicts in one go, without plotly's property validation: ~4 ms instead of ~15 ms
    (and ~80 ms for plotly.express). The lab redraws several charts on every control change;
    ``tests/test_dashboard_charts.py`` validates every chart built here instead."""
    layout.setdefault("margin", dict(l=60, r=20, t=60, b=50))
    base = dict(title=dict(text=title, x=0.0, xanchor="left"), height=height, font=FONT)
    base.update(layout)
    return go.Figure(data=data, layout=base, frames=frames, _validate=False)


def _axis(title: str, **kw) -> dict:
    return dict(title=dict(text=title), **kw)


def _hline(y: float, dash: str = "dash", colour: str = "black") -> dict:
    return dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=y, y1=y, line=dict(dash=dash, color=colour, width=1.5))


def modality_colours(modalities: Sequence[str]) -> Dict[str, str]:
    return {m: MODALITY_COLOURS[i % len(MODALITY_COLOURS)] for i, m in enumerate(modalities)}


# --------------------------------------------------------------------------------------------------
# Inputs in native form
# --------------------------------------------------------------------------------------------------


def frames_strip(frames: np.ndarray, times: Sequence[float], title: str, colour_label: str,
                 colourscale: str = "gray", zrange: Optional[Tuple[float, float]] = None,
                 time_unit: str = "s", reference: Optional[np.ndarray] = None) -> go.Figure:
    """A strip of frames (n, H, W) side by side in one heatmap, with a shared colour scale in
    physical units and each frame's time above it. With ``reference`` (same shape) the clean frames
    are drawn in a first row and ``frames`` (e.g. corrupted) in a second. NaN pixels are left blank."""
    n, h, w = frames.shape
    rows = [("clean", reference), ("corrupted", frames)] if reference is not None else [("", frames)]
    if zrange is None:
        finite = frames[np.isfinite(frames)]
        zrange = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if zrange[0] == zrange[1]:
        zrange = (zrange[0], zrange[0] + 1.0)
    gap = max(1, w // 10)
    strip = np.full((len(rows) * (h + gap) - gap, n * (w + gap) - gap), np.nan, dtype=np.float32)
    for r, (_, arr) in enumerate(rows):
        for k in range(min(n, len(arr))):
            strip[r * (h + gap): r * (h + gap) + h, k * (w + gap): k * (w + gap) + w] = arr[k]
    notes = [dict(x=k * (w + gap) + (w - 1) / 2, y=-0.6, xref="x", yref="y", yanchor="bottom", showarrow=False,
                  text=(f"t = {times[k]:.2f} s" if time_unit == "s" else f"step {int(times[k])}"), font=dict(size=11))
             for k in range(n)]
    if reference is not None:
        notes += [dict(x=-1, y=r * (h + gap) + (h - 1) / 2, xref="x", yref="y", xanchor="right", showarrow=False,
                       text=label, textangle=-90, font=dict(size=12)) for r, (label, _) in enumerate(rows)]
    trace = dict(type="heatmap", z=strip, colorscale=colourscale, zmin=zrange[0], zmax=zrange[1], hoverongaps=False,
                 colorbar=dict(title=dict(text=colour_label), thickness=12),
                 hovertemplate="value=%{z:.0f} " + colour_label + "<extra></extra>")
    return _fig([trace], title, height=170 + 110 * len(rows), annotations=notes,
                xaxis=dict(visible=False, constrain="domain"),
                yaxis=dict(visible=False, autorange="reversed", scaleanchor="x", scaleratio=1, constrain="domain"),
                margin=dict(l=30 if reference is not None else 10, r=10, t=70, b=10))


def skeleton_animation(joints: np.ndarray, times: Sequence[float], bones: Sequence[Tuple[int, int]],
                       joint_names: Sequence[str], title: str, unit: str = "m") -> go.Figure:
    """A 2-D stick figure (x right, y up) of (T, J, 3) joints with a frame slider and play button."""
    t_count = len(joints)
    xs, ys = joints[..., 0], joints[..., 1]
    pad = 0.1
    x_range = [float(np.nanmin(xs)) - pad, float(np.nanmax(xs)) + pad]
    y_range = [float(np.nanmin(ys)) - pad, float(np.nanmax(ys)) + pad]
    names = list(joint_names)
    a = np.asarray([b[0] for b in bones], dtype=int)
    b = np.asarray([b[1] for b in bones], dtype=int)

    def traces(k: int) -> List[dict]:
        bx = np.full(3 * len(a), np.nan)
        by = np.full(3 * len(a), np.nan)
        bx[0::3], bx[1::3] = joints[k, a, 0], joints[k, b, 0]
        by[0::3], by[1::3] = joints[k, a, 1], joints[k, b, 1]
        return [dict(type="scatter", x=bx, y=by, mode="lines", line=dict(color="#1f77b4", width=4), name="bones",
                     hoverinfo="skip"),
                dict(type="scatter", x=joints[k, :, 0], y=joints[k, :, 1], mode="markers", name="joints",
                     marker=dict(size=8, color="#d62728"), text=names,
                     hovertemplate="%{text}<br>x=%{x:.2f} " + unit + "<br>y=%{y:.2f} " + unit + "<extra></extra>")]

    frames = [dict(data=traces(k), name=str(k)) for k in range(t_count)]
    steps = [dict(method="animate", label=f"{times[k]:.2f}",
                  args=[[str(k)], dict(mode="immediate", frame=dict(duration=0, redraw=False),
                                       transition=dict(duration=0))]) for k in range(t_count)]
    return _fig(
        traces(0), title, height=540, frames=frames,
        sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="frame at t (s) = "), pad=dict(t=50),
                      len=0.85, x=0.15)],
        updatemenus=[dict(type="buttons", showactive=False, x=0.0, y=-0.1, xanchor="left", yanchor="top",
                          buttons=[dict(label="▶ play", method="animate",
                                        args=[None, dict(frame=dict(duration=60, redraw=False), fromcurrent=True)])])],
        xaxis=_axis(f"x ({unit}, camera right)", range=x_range, zeroline=False),
        yaxis=_axis(f"y ({unit}, up)", range=y_range, scaleanchor="x", scaleratio=1, zeroline=False),
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"),
        margin=dict(l=60, r=20, t=70, b=60))


def imu_figure(t: np.ndarray, values: np.ndarray, columns: Sequence[str], title: str,
               time_label: str = "time (s)", reference: Optional[np.ndarray] = None) -> go.Figure:
    """Accelerometer (g) and gyroscope (deg/s) as two stacked line charts sharing the time axis
    (``reference``: the clean signal, drawn in grey underneath)."""
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    data = []
    if reference is not None:
        for j in range(len(columns)):
            data.append(dict(type="scatter", x=t[: len(reference)], y=reference[:, j], mode="lines",
                             name="clean", legendgroup="clean", showlegend=j == 0, xaxis="x",
                             yaxis="y2" if j >= 3 else "y", line=dict(color="rgba(120,120,120,0.5)", width=3),
                             hoverinfo="skip"))
    for j, name in enumerate(columns):
        lower = j >= 3
        data.append(dict(type="scatter", x=t, y=values[:, j], mode="lines", name=name, xaxis="x",
                         yaxis="y2" if lower else "y",
                         line=dict(color=colours[j % 3], dash="dot" if lower else "solid")))
    return _fig(data, title, height=440,
                xaxis=_axis(time_label, anchor="y2"),
                yaxis=_axis("acceleration (g)", domain=[0.56, 1.0]),
                yaxis2=_axis("angular rate (deg/s)", domain=[0.0, 0.44]),
                annotations=[dict(text="accelerometer", xref="paper", yref="paper", x=0.5, y=1.0, showarrow=False,
                                  yanchor="bottom"),
                             dict(text="gyroscope", xref="paper", yref="paper", x=0.5, y=0.44, showarrow=False,
                                  yanchor="bottom")])


def lines_figure(t: np.ndarray, values: np.ndarray, columns: Sequence[str], title: str, y_label: str,
                 time_label: str = "time (s)", reference: Optional[np.ndarray] = None) -> go.Figure:
    data = []
    if reference is not None:
        data += [dict(type="scatter", x=t[: len(reference)], y=reference[:, j], mode="lines", name="clean",
                      legendgroup="clean", showlegend=j == 0, line=dict(color="rgba(120,120,120,0.5)", width=3),
                      hoverinfo="skip") for j in range(len(columns))]
    data += [dict(type="scatter", x=t, y=values[:, j], mode="lines", name=name) for j, name in enumerate(columns)]
    return _fig(data, title, xaxis=_axis(time_label), yaxis=_axis(y_label))


def feature_heatmap(t: np.ndarray, values: np.ndarray, rows: Sequence[str], title: str, colour_label: str,
                    time_label: str = "time (s)", y_label: str = "feature",
                    reference: Optional[np.ndarray] = None) -> go.Figure:
    """(T, F) features as a time x feature heatmap (e.g. MFCC); with ``reference`` the clean
    features are drawn above in a second panel on the same colour scale."""
    both = values if reference is None else np.concatenate([values.reshape(-1), reference.reshape(-1)])
    lim = float(np.nanpercentile(np.abs(both), 99)) if both.size else 1.0
    lim = lim or 1.0

    def trace(z: np.ndarray, axis: str, show: bool) -> dict:
        return dict(type="heatmap", z=z.T, x=t[: len(z)], y=list(rows), colorscale=LOW_BLUE_HIGH_RED,
                    zmid=0.0, zmin=-lim, zmax=lim, showscale=show, yaxis=axis,
                    colorbar=dict(title=dict(text=colour_label), thickness=12),
                    hovertemplate=time_label + "=%{x:.2f}<br>%{y}<br>value=%{z:.2f}<extra></extra>")

    if reference is None:
        return _fig([trace(values, "y", True)], title, height=400, xaxis=_axis(time_label), yaxis=_axis(y_label))
    return _fig([trace(reference, "y2", False), trace(values, "y", True)], title, height=560,
                xaxis=_axis(time_label, anchor="y"), yaxis=_axis(f"{y_label} · corrupted", domain=[0, 0.47]),
                yaxis2=_axis(f"{y_label} · clean", domain=[0.53, 1.0]))


LONG_VECTOR = 48
"""From this many features on, a vector is a line over its feature index (see lab_inputs)."""


def vector_figure(values: np.ndarray, names: Sequence[str], title: str, y_label: str) -> go.Figure:
    """One value per feature: bars with the features' names, or for a long vector (a 1024-d
    embedding) a line over the feature index, which stays readable at any length."""
    if len(names) >= LONG_VECTOR:
        return _fig([dict(type="scatter", mode="lines", x=np.arange(len(values)), y=values, name="value",
                          line=dict(width=1, shape="hv"), text=list(names),
                          hovertemplate="%{text} (index %{x}): %{y:.3f}<extra></extra>")], title,
                    xaxis=_axis(f"feature index (0–{len(names) - 1})"), yaxis=_axis(y_label))
    return _fig([dict(type="bar", x=list(names), y=values, name="value")], title,
                xaxis=_axis("feature"), yaxis=_axis(y_label))


# --------------------------------------------------------------------------------------------------
# Predictions, gates, cues
# --------------------------------------------------------------------------------------------------


def _groups(frame: pd.DataFrame, by: str) -> List[Tuple[str, pd.DataFrame]]:
    return [(str(k), g) for k, g in frame.groupby(by, sort=False)]


def top_k_figure(frame: pd.DataFrame, title: str, colour_by: str = "model",
                 colours: Optional[Mapping[str, str]] = None, true_class: Optional[str] = None) -> go.Figure:
    """Horizontal bars of class probabilities; ``frame`` has class, probability, and ``colour_by``."""
    classes = list(dict.fromkeys(frame["class"]))
    colours = dict(colours or {})
    data = [dict(type="bar", orientation="h", y=list(g["class"]), x=list(g["probability"]), name=name,
                 marker=dict(color=colours.get(name)), hovertemplate="%{y}: %{x:.3f}<extra>" + name + "</extra>")
            for name, g in _groups(frame, colour_by)]
    ticks = [f"<b>{c}</b> ✓" if c == true_class else c for c in classes]
    return _fig(data, title, height=140 + 34 * len(classes), barmode="group",
                xaxis=_axis("probability (0–1)", range=[0, 1.08]),
                yaxis=_axis("class", autorange="reversed", categoryorder="array", categoryarray=classes,
                            tickvals=classes, ticktext=ticks),
                legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1, title=dict(text="")),
                margin=dict(l=60, r=30, t=80, b=50))


def gate_bars(frame: pd.DataFrame, value: str, title: str, y_label: str, colour_by: str = "model",
              colours: Optional[Mapping[str, str]] = None, reference: Optional[float] = None,
              pattern_by: Optional[str] = None, y_range: Optional[Sequence[float]] = None) -> go.Figure:
    """Grouped bars per modality (alpha, support, conflict...) with an optional dashed reference line.

    A row whose value is NaN draws no bar; if the frame has a ``note`` column (e.g. "n/a (absent)"),
    the note is written where its bar would be, so an absent modality never looks like a number.
    Values are read on the axis and in the hover, not written on the bars."""
    colours = dict(colours or {})
    groups = _groups(frame, colour_by)
    data = [dict(type="bar", x=list(g["modality"]), y=list(g[value]), name=name, marker=dict(color=colours.get(name)),
                 hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>", offsetgroup=name)
            for name, g in groups]
    notes = []
    if "note" in frame:
        for k, (name, g) in enumerate(groups):
            for m, v, note in zip(g["modality"], g[value], g["note"]):
                if note and not np.isfinite(v):
                    notes.append(dict(x=m, y=0, xref="x", yref="y", text=str(note), showarrow=False, textangle=-90,
                                      yanchor="bottom", xshift=(k - (len(groups) - 1) / 2) * 40,
                                      font=dict(size=11, color="#555")))
    yaxis = _axis(y_label)
    if y_range is not None:
        yaxis["range"] = list(y_range)
    return _fig(data, title, barmode="group", xaxis=_axis("modality"), yaxis=yaxis, annotations=notes,
                shapes=[_hline(reference)] if reference is not None else [],
                legend=dict(orientation="h", yanchor="top", y=-0.22, x=0, title=dict(text="")),
                margin=dict(l=60, r=20, t=60, b=90))


def matrix_heatmap(matrix: np.ndarray, labels: Sequence[str], title: str, colour_label: str,
                   x_title: str, y_title: str, zrange: Tuple[float, float] = (-1.0, 1.0),
                   colourscale: str = "RdBu") -> go.Figure:
    trace = dict(type="heatmap", z=matrix, x=list(labels), y=list(labels), zmin=zrange[0], zmax=zrange[1],
                 colorscale=colourscale, text=[["—" if not np.isfinite(v) else f"{v:.2f}" for v in row] for row in matrix], texttemplate="%{text}",
                 colorbar=dict(title=dict(text=colour_label), thickness=12),
                 hovertemplate="m=%{y}, k=%{x}: %{z:.3f}<extra></extra>")
    return _fig([trace], title, height=380, xaxis=_axis(x_title), yaxis=_axis(y_title, autorange="reversed"))


def beta_heatmap(matrix: np.ndarray, modalities: Sequence[str], title: str) -> go.Figure:
    """Dimension gate beta: modalities x feature channels, centred at 1 (unchanged)."""
    dev = np.nanmax(np.abs(matrix - 1.0)) if np.isfinite(matrix).any() else 0.0
    dev = max(float(dev), 1e-3)
    trace = dict(type="heatmap", z=matrix, y=list(modalities), x=np.arange(matrix.shape[1]), colorscale="RdBu",
                 zmid=1.0, zmin=1.0 - dev, zmax=1.0 + dev, colorbar=dict(title=dict(text="beta (×)"), thickness=12),
                 hovertemplate="%{y}, channel %{x}<br>beta=%{z:.3f}<extra></extra>")
    return _fig([trace], title, height=max(380, 140 + 50 * len(modalities)),
                xaxis=_axis("feature channel (encoder output dimension)"), yaxis=_axis("modality"))


def waterfall_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """The alpha logit split into a typical sample's logit (the bias) + per-cue evidence (precal.explain)."""
    trace = dict(type="waterfall", x=list(frame["step"]), y=list(frame["value"]), measure=list(frame["measure"]),
                 name="contribution", hovertemplate="%{x}: %{y:+.3f}<extra></extra>",
                 increasing=dict(marker=dict(color="#2ca02c")), decreasing=dict(marker=dict(color="#d62728")),
                 totals=dict(marker=dict(color="#1f77b4")), connector=dict(line=dict(color="#999", dash="dot")))
    return _fig([trace], title, height=420, showlegend=False, shapes=[_hline(0.0, dash="solid")],
                xaxis=_axis("a typical sample's logit, then each cue's evidence, then this sample's logit"),
                yaxis=_axis("alpha logit (0 = unchanged)"))


# --------------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------------


def embedding_figure(pre: np.ndarray, post: np.ndarray, colour: Sequence, colour_label: str,
                     sample_ids: Sequence[str], hover: Sequence[str], title: str, method: str,
                     arrows: bool = True, continuous: bool = False, show_pre: bool = True,
                     height: int = 620, colorscale: str = "RdBu", cmid: Optional[float] = 1.0,
                     highlight: Sequence[int] = (), webgl: bool = False,
                     neighbours: Sequence[int] = ()) -> go.Figure:
    """Pre (hollow) and post (filled) calibration points in one aligned 2-D space, lines pre -> post.
    ``customdata`` of every point is its sample id (what a selection returns). ``highlight``: the
    searched rows, large red stars labelled with their id; ``neighbours``: smaller black rings with
    their id on hover only (ten labels side by side run into one blob). ``webgl``:
    markers and lines drawn with WebGL (``scattergl``), which stays interactive with 100k points;
    the points before calibration then hover with their id and colour only (no second copy of every
    hover text in what the browser is sent)."""
    data: List[dict] = []
    scatter = "scattergl" if webgl else "scatter"
    colour = np.asarray(colour)
    hover = np.asarray(list(hover), dtype=object)
    custom = np.asarray(list(sample_ids), dtype=object)
    if arrows and show_pre:
        xs = np.full(3 * len(pre), np.nan)
        ys = np.full(3 * len(pre), np.nan)
        xs[0::3], xs[1::3] = pre[:, 0], post[:, 0]
        ys[0::3], ys[1::3] = pre[:, 1], post[:, 1]
        data.append(dict(type=scatter, x=xs, y=ys, mode="lines", line=dict(color="rgba(120,120,120,0.35)", width=1),
                         name="pre → post", hoverinfo="skip"))  # WebGL too: one SVG path of 20k segments is slow
    if continuous:
        for k, (pts, symbol, label) in enumerate(((pre, "circle-open", "before calibration"),
                                                  (post, "circle", "after calibration"))):
            if k == 0 and not show_pre:
                continue
            marker = dict(symbol=symbol, size=8 if not webgl else 5, color=colour.astype(float),
                          colorscale=colorscale, showscale=k == 1, line=dict(width=1 if not webgl else 0))
            if cmid is not None:
                marker["cmid"] = cmid
            if k == 1:
                marker["colorbar"] = dict(title=dict(text=colour_label), thickness=12)
            texts = dict(text=hover, hovertemplate="%{text}<extra>" + label + "</extra>")
            if k == 0 and webgl:  # hover texts once per sample: the JSON is a quarter smaller at 100k
                texts = dict(hovertemplate="%{customdata}<extra>" + label + "</extra>")
            data.append(dict(type=scatter, x=pts[:, 0], y=pts[:, 1], mode="markers", name=label, customdata=custom,
                             marker=marker, **texts))
    else:
        cats = list(dict.fromkeys(colour.tolist()))
        palette = {c: CLASS_COLOURS[i % len(CLASS_COLOURS)] for i, c in enumerate(cats)}
        if set(cats) <= {"correct", "wrong"}:
            palette = {"correct": "#2ca02c", "wrong": "#d62728"}
        if set(cats) <= {"clean", "corrupted"}:
            palette = dict(STATE_COLOURS)
        for c in cats:
            sel = colour == c
            if show_pre:
                texts = (dict(hovertemplate=f"%{{customdata}} · {c}<extra>before calibration</extra>") if webgl else
                         dict(text=hover[sel], hovertemplate="%{text}<extra>before calibration</extra>"))
                data.append(dict(type=scatter, x=pre[sel, 0], y=pre[sel, 1], mode="markers", name=f"{c} (before)",
                                 legendgroup=str(c), showlegend=False, customdata=custom[sel],
                                 marker=dict(symbol="circle-open", size=7, color=palette[c]), **texts))
            data.append(dict(type=scatter, x=post[sel, 0], y=post[sel, 1], mode="markers", name=str(c),
                             legendgroup=str(c), customdata=custom[sel], text=hover[sel],
                             marker=dict(symbol="circle", size=8 if not webgl else 5, color=palette[c],
                                         line=dict(width=0.5 if not webgl else 0, color="white")),
                             hovertemplate="%{text}<extra>after calibration</extra>"))
    data += _found_traces(post, custom, highlight, neighbours)
    return _fig(data, title, height=height,
                xaxis=_axis(f"{method} dimension 1 (arbitrary units)"),
                yaxis=_axis(f"{method} dimension 2 (arbitrary units)"),
                legend=_embedding_legend(colour_label, continuous),
                margin=dict(l=60, r=20, t=110 if continuous else 60, b=50))


def _found_traces(post: np.ndarray, custom: np.ndarray, found: Sequence[int], neighbours: Sequence[int]) -> List[dict]:
    """The searched samples (red stars with their id) and their neighbours (rings, id on hover),
    neighbours first so the searched sample is drawn on top of them."""
    out: List[dict] = []
    near = np.asarray(list(neighbours), dtype=int)
    if len(near):
        out.append(dict(type="scatter", x=post[near, 0], y=post[near, 1], mode="markers", name="nearest neighbours",
                        customdata=custom[near], text=[str(c) for c in custom[near]],
                        marker=dict(symbol="circle-open", size=12, color="black", line=dict(width=2)),
                        hovertemplate="%{text}<extra>nearest neighbour</extra>"))
    rows = np.asarray(list(found), dtype=int)
    if len(rows):
        out.append(dict(type="scatter", x=post[rows, 0], y=post[rows, 1], mode="markers+text", name="found",
                        customdata=custom[rows], text=[str(c) for c in custom[rows]], textposition="top center",
                        textfont=dict(size=13, color="#b00020"),
                        marker=dict(symbol="star", size=22, color="#e4002b", line=dict(width=1.5, color="black")),
                        hovertemplate="%{text}<extra>searched</extra>"))
    return out


def _embedding_legend(colour_label: str, continuous: bool) -> dict:
    """Categories: a legend titled with what the colour means. Continuous colours: the colour bar
    carries that title, and the legend (marker kinds only) goes above the plot, clear of the bar."""
    if continuous:
        return dict(title=dict(text="filled: after · hollow: before"), orientation="h", x=0, xanchor="left",
                    y=1.02, yanchor="bottom", itemsizing="constant")
    return dict(title=dict(text=f"{colour_label}<br><sup>filled: after · hollow: before</sup>"), itemsizing="constant")


# --------------------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------------------


def robustness_figure(frame: pd.DataFrame, y: str, title: str, y_label: str,
                      facets: Sequence[Tuple[str, str, Sequence[str]]], y_range: Optional[Sequence[float]] = None,
                      reference: Optional[float] = None, points_only: Sequence[str] = ()) -> go.Figure:
    """y vs severity, one panel per corruption, colour = the model's role (solid: calibrated,
    dashed: uncalibrated).

    ``facets``: (corruption name, panel title, tick labels for severities 0-5) in the order to draw,
    the same order on every grid of the page; each panel's x axis is labelled in its corruption's
    own units. Corruptions in ``points_only`` (e.g. "missing": removed or not, no degrees in
    between) are drawn as markers without a line. ``y_range``: None fits the data (with a margin),
    so that differences between the models stay visible."""
    from plotly.subplots import make_subplots  # only the robustness page needs it

    shown = [f for f in facets if (frame["corruption"] == f[0]).any()]
    n = max(1, len(shown))
    wrap = min(n, 3)
    rows = -(-n // wrap)
    fig = make_subplots(rows=rows, cols=wrap, subplot_titles=[t for _, t, _ in shown] or [""],
                        horizontal_spacing=0.07, vertical_spacing=0.55 / max(rows, 1) if rows > 1 else 0.1)
    dashes = DASHES
    legend_done = set()
    for k, (name, _, ticks) in enumerate(shown):
        r, c = k // wrap + 1, k % wrap + 1
        sub = frame[frame["corruption"] == name].sort_values("severity")
        if name in points_only:  # removed or not: severities 1-5 are one and the same input
            sub = sub[sub["severity"] <= 1]
        for role, g in sub.groupby("role", sort=False):
            fig.add_trace(go.Scatter(
                x=list(g["severity"]), y=list(g[y]), name=str(role), legendgroup=str(role),
                showlegend=role not in legend_done, mode="markers" if name in points_only else "lines+markers",
                line=dict(color=ROLE_COLOURS.get(str(role)), dash=dashes.get(str(role), "solid")),
                marker=dict(color=ROLE_COLOURS.get(str(role)), size=8 if name in points_only else 6),
                hovertemplate="%{text}: %{y:.3f}<extra>" + str(role) + "</extra>",
                text=[ticks[int(s)] if int(s) < len(ticks) else str(s) for s in g["severity"]]), row=r, col=c)
            legend_done.add(role)
        sevs = sorted(int(s) for s in sub["severity"].unique())
        fig.update_xaxes(tickvals=sevs, ticktext=[ticks[s] if s < len(ticks) else str(s) for s in sevs],
                         tickangle=-30, tickfont=dict(size=10), row=r, col=c)
        if c == 1:
            fig.update_yaxes(title_text=y_label, row=r, col=c)
        panel_range = y_range
        values = sub[y].dropna()
        if panel_range is None and len(values):  # each panel spans its own values
            lo, hi = float(values.min()), float(values.max())
            if reference is not None:
                lo, hi = min(lo, reference), max(hi, reference)
            pad = max(0.08 * (hi - lo), 0.01)
            panel_range = [lo - pad, hi + pad]
        if panel_range is not None:
            fig.update_yaxes(range=list(panel_range), row=r, col=c)
    if reference is not None:
        for k in range(len(shown)):
            fig.add_hline(y=reference, line_dash="dot", line_color="black", row=k // wrap + 1, col=k % wrap + 1)
    height = 210 + 270 * rows
    # the legend under the grid: above it, it shared the top line with a long title (A vs B names both models)
    return _layout(fig, title, height=height,
                   legend=dict(orientation="h", yanchor="top", y=-70 / height, x=0, xanchor="left",
                               title_text="model (solid: calibrated or A, dashed: uncalibrated or B)"),
                   margin=dict(l=60, r=20, t=90, b=120))


def dynamics_figure(frame: pd.DataFrame, title: str, y_label: str, reference: Optional[float] = None) -> go.Figure:
    """mean ± std per epoch; colour = modality, dash = the model's role."""
    mods = list(dict.fromkeys(frame["modality"]))
    colours = modality_colours(mods)
    dashes = DASHES
    data = []
    for (role, m), g in frame.groupby(["role", "modality"], sort=False):
        g = g.sort_values("epoch")
        std = g["std"].fillna(0.0)
        data.append(dict(type="scatter", x=list(g["epoch"]), y=list(g["mean"]), mode="lines+markers",
                         name=f"{m} · {role}", line=dict(color=colours[m], dash=dashes.get(role, "solid")),
                         error_y=dict(type="data", array=list(std), visible=bool(std.any()), thickness=1)))
    return _fig(data, title, height=400, shapes=[_hline(reference, dash="dot")] if reference is not None else [],
                xaxis=_axis("epoch", dtick=1 if frame["epoch"].nunique() <= 20 else None),
                yaxis=_axis(y_label),
                legend=dict(title=dict(text=""), orientation="h", yanchor="top", y=-0.3, x=0),
                margin=dict(l=60, r=20, t=60, b=120))


def curves_figure(frame: pd.DataFrame, x: str, y: str, colour: Optional[str], title: str,
                  x_label: str, y_label: str, role: str = "role") -> go.Figure:
    """Curves per epoch. One rule for the whole training page: line style is the model (solid:
    calibrated, dashed: uncalibrated); colour is what is measured (``colour``: split, metric or
    modality; the role's colour when there is only one quantity)."""
    dashes = DASHES
    things = list(dict.fromkeys(frame[colour])) if colour else []
    palette = {t: CLASS_COLOURS[i % len(CLASS_COLOURS)] for i, t in enumerate(things)}
    data = []
    keys = [role] + ([colour] if colour else [])
    for key, g in frame.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        r = str(key[0])
        what = str(key[1]) if colour else ""
        g = g.sort_values(x)
        data.append(dict(type="scatter", x=list(g[x]), y=list(g[y]), mode="lines+markers",
                         name=f"{what} · {r}" if what else r,
                         line=dict(color=palette.get(key[1]) if colour else ROLE_COLOURS.get(r), dash=dashes.get(r, "solid")),
                         marker=dict(size=5)))
    return _fig(data, title, height=400, xaxis=_axis(x_label, dtick=1 if frame[x].nunique() <= 20 else None),
                yaxis=_axis(y_label),
                legend=dict(title=dict(text="solid: calibrated or A · dashed: uncalibrated or B"), orientation="h",
                            yanchor="top", y=-0.3, x=0),
                margin=dict(l=60, r=20, t=60, b=120))
