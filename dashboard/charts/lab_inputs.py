"""The corruption lab's drawings of the (corrupted) inputs, as Vega-Lite specifications.

The lab redraws them on every control change, so they follow the rules of :mod:`lab_charts`
(data in named Arrow datasets, a specification that does not change with the lab's settings,
drawn on a canvas). The sample explorer keeps the richer Plotly drawings of ``figures``
(animation, hover on every pixel), which are drawn once per visit.

Every drawing puts the clean input beside the corrupted one, in physical units.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa

from precal.dashboard.backend.images import LUTS, VIRIDIS, frame_png  # noqa: F401 (VIRIDIS, LUTS: shared names)
from precal.dashboard.charts.lab import Spec, top_level

CLEAN_GREY = "#9a9a9a"
FRAME_PIXELS = (72, 96)
"""Displayed size (height, width) of one frame."""


def frames_chart(frames: np.ndarray, times: Sequence[float], reference: Optional[np.ndarray], lo: float, hi: float,
                 title: str, colour_title: str, colours: str = "viridis") -> Spec:
    """Picked frames (n, H, W) in a row under their times, the clean frames in a row above, with
    a colour legend in physical units. Frames are sent as small PNGs (NaN = white, no reading)."""
    rows = [("clean", reference), ("corrupted", frames)] if reference is not None else [("corrupted", frames)]
    images = [{"input": name, "time": f"t = {times[k]:.2f} s", "order": k, "url": frame_png(arr[k], lo, hi, colours)}
              for name, arr in rows if arr is not None for k in range(min(len(arr), len(times)))]
    h, w = FRAME_PIXELS
    legend_scale = {"scheme": "viridis"} if colours == "viridis" else {"range": ["#000000", "#ffffff"]}
    image_layer = {
        "data": {"name": "frames"},
        "mark": {"type": "image", "width": w, "height": h, "smooth": False},
        "encoding": {
            "x": {"field": "time", "type": "ordinal", "sort": {"field": "order", "op": "min"},
                  "axis": {"title": None, "orient": "top", "labelAngle": 0}},
            "y": {"field": "input", "type": "ordinal", "sort": ["clean", "corrupted"], "axis": {"title": None}},
            "url": {"field": "url", "type": "nominal"},
        },
    }
    legend_layer = {  # invisible marks that carry the colour scale's legend (physical units)
        "data": {"name": "colour_range"},
        "mark": {"type": "point", "opacity": 0},
        "encoding": {"color": {"field": "value", "type": "quantitative", "title": colour_title,
                               "scale": legend_scale,  # no longer than the rows, or its end is cut off
                               "legend": {"gradientLength": max(40, len(rows) * (h + 14) - 40)}}},
    }
    return top_level(title, {"width": {"step": w + 14}, "height": {"step": h + 14},  # a band per frame
                        "layer": [image_layer, legend_layer],
                        "datasets": {"frames": pa.Table.from_pylist(images),
                                     "colour_range": pa.table({"value": [float(lo), float(hi)]})}})


def series_chart(t: np.ndarray, values: np.ndarray, columns: Sequence[str], reference: Optional[np.ndarray],
                 title: str, panels: Sequence[Tuple[str, Sequence[int]]], time_title: str) -> Spec:
    """(T, F) signals as lines, one panel per (axis title, column indices), the clean signal drawn
    thick and grey underneath. The IMU's panels are accelerometer (g) and gyroscope (deg/s)."""
    frames: List[Dict[str, Any]] = []
    for name, arr in (("clean", reference), ("corrupted", values)):
        if arr is None:
            continue
        steps = min(len(arr), len(t))
        for j, col in enumerate(columns):
            frames.append({"time": t[:steps], "value": arr[:steps, j].astype(np.float64), "channel": col,
                           "input": name})
    table = pa.table({
        "time": np.concatenate([f["time"] for f in frames]) if frames else np.zeros(0),
        "value": np.concatenate([f["value"] for f in frames]) if frames else np.zeros(0),
        "channel": sum(([f["channel"]] * len(f["time"]) for f in frames), []),
        "input": sum(([f["input"]] * len(f["time"]) for f in frames), []),
    })
    charts = []
    for axis_title, idx in panels:
        names = [columns[i] for i in idx]
        shown = {"field": "channel", "oneOf": names}
        x = {"field": "time", "type": "quantitative", "title": time_title}
        y = {"field": "value", "type": "quantitative", "title": axis_title}
        charts.append({
            "data": {"name": "signals"}, "width": 620, "height": 150,
            "transform": [{"filter": shown}],
            "layer": [
                {"transform": [{"filter": {"field": "input", "equal": "clean"}}],
                 "mark": {"type": "line", "strokeWidth": 3.5, "opacity": 0.45, "color": CLEAN_GREY},
                 "encoding": {"x": x, "y": y, "detail": {"field": "channel"}}},
                {"transform": [{"filter": {"field": "input", "equal": "corrupted"}}],
                 "mark": {"type": "line", "strokeWidth": 1.5},
                 "encoding": {"x": x, "y": y, "color": {"field": "channel", "type": "nominal",
                                                        "title": "channel (grey: clean)", "sort": list(columns),
                                                        "scale": {"domain": list(columns)}}}},
            ],
        })
    return top_level(title, {"vconcat": charts, "spacing": 12, "datasets": {"signals": table}})


def heatmap_chart(t: np.ndarray, values: np.ndarray, rows: Sequence[str], reference: Optional[np.ndarray],
                  title: str, colour_title: str, time_title: str, row_title: str) -> Spec:
    """(T, F) features as a time × feature heatmap (e.g. MFCC), clean above corrupted, one
    diverging colour scale centred on 0 (limit: the 99th percentile of |clean|, values beyond are
    clamped), so a corruption's change of scale stays visible."""
    base = reference if reference is not None else values
    limit = float(np.nanpercentile(np.abs(base), 99)) if base.size else 1.0
    limit = limit if np.isfinite(limit) and limit > 0 else 1.0
    parts = []
    for name, arr in (("clean", reference), ("corrupted", values)):
        if arr is None:
            continue
        steps = min(len(arr), len(t))
        parts.append((name, np.repeat(t[:steps], len(rows)), np.tile(np.asarray(rows, dtype=object), steps),
                      arr[:steps].reshape(steps, -1).reshape(-1).astype(np.float64)))
    table = pa.table({
        "input": sum(([p[0]] * len(p[1]) for p in parts), []),
        "time": np.concatenate([p[1] for p in parts]) if parts else np.zeros(0),
        "feature": np.concatenate([p[2] for p in parts]).tolist() if parts else [],
        "value": np.concatenate([p[3] for p in parts]) if parts else np.zeros(0),
    })
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    height, labelled = _feature_rows(rows)
    return top_level(title, {
        "data": {"name": "features"}, "width": 620, "height": height,
        "transform": [{"calculate": f"datum.time + {step}", "as": "time_end"}],
        "mark": {"type": "rect"},
        "encoding": {
            "row": {"field": "input", "type": "nominal", "sort": ["clean", "corrupted"], "title": None},
            "x": {"field": "time", "type": "quantitative", "title": time_title},
            "x2": {"field": "time_end"},
            # first coefficient at the bottom, as in the explorer's heatmap (and as MFCCs are drawn)
            "y": {"field": "feature", "type": "ordinal", "sort": list(rows)[::-1], "title": row_title,
                  "axis": {"labelFontSize": 11, "values": labelled}},
            "color": {"field": "value", "type": "quantitative", "title": colour_title,
                      "scale": {"scheme": "redblue", "reverse": True, "domain": [-limit, limit], "clamp": True}},
            "tooltip": [{"field": "feature"}, {"field": "time", "format": ".2f"},
                        {"field": "value", "format": ".2f"}],
        },
        "datasets": {"features": table},
    })


ROW_PIXELS = 10
"""Height of one feature row of a heatmap (within 150-300 px for the whole panel)."""
LABEL_PIXELS = 14
"""Least vertical room per tick label: an 11 px label every row of 26 was squeezed to 6 px."""


def _feature_rows(rows: Sequence[str]) -> Tuple[int, List[str]]:
    """A heatmap panel's height and the feature names labelled on its axis: every row while they
    fit at a readable size, else every k-th, the first coefficient always among them."""
    n = max(1, len(rows))
    height = int(min(300, max(150, ROW_PIXELS * n)))
    every = max(1, int(np.ceil(LABEL_PIXELS / (height / n))))
    return height, [str(r) for r in list(rows)[::every]]


def skeleton_chart(joints: np.ndarray, times: Sequence[float], picks: Sequence[int], bones: Sequence[Tuple[int, int]],
                   reference: Optional[np.ndarray], title: str, unit: str) -> Spec:
    """Poses (x–y plane) at the picked steps, one small panel each under its time; the clean pose
    is drawn thick and grey underneath the corrupted one."""
    a = np.asarray([b[0] for b in bones], dtype=int)
    b = np.asarray([b[1] for b in bones], dtype=int)
    cols: Dict[str, List[Any]] = {k: [] for k in ("time", "order", "input", "x", "y", "x2", "y2")}
    for order, f in enumerate(picks):
        for name, arr in (("clean", reference), ("corrupted", joints)):
            if arr is None or f >= len(arr):
                continue
            cols["time"] += [f"t = {times[f]:.2f} s"] * len(a)
            cols["order"] += [order] * len(a)
            cols["input"] += [name] * len(a)
            cols["x"] += arr[f, a, 0].astype(float).tolist()
            cols["y"] += arr[f, a, 1].astype(float).tolist()
            cols["x2"] += arr[f, b, 0].astype(float).tolist()
            cols["y2"] += arr[f, b, 1].astype(float).tolist()
    x = {"field": "x", "type": "quantitative", "title": f"x ({unit})", "scale": {"zero": False}}
    y = {"field": "y", "type": "quantitative", "title": f"y ({unit}, up)", "scale": {"zero": False}}
    return top_level(title, {
        "data": {"name": "bones"},
        "facet": {"column": {"field": "time", "type": "ordinal", "sort": {"field": "order", "op": "min"},
                             "title": None}},
        "spec": {"width": 80, "height": 150, "layer": [
            {"transform": [{"filter": {"field": "input", "equal": "clean"}}],
             "mark": {"type": "rule", "strokeWidth": 4, "opacity": 0.5, "color": CLEAN_GREY},
             "encoding": {"x": x, "y": y, "x2": {"field": "x2"}, "y2": {"field": "y2"}}},
            {"transform": [{"filter": {"field": "input", "equal": "corrupted"}}],
             "mark": {"type": "rule", "strokeWidth": 2, "color": "#1f77b4"},
             "encoding": {"x": x, "y": y, "x2": {"field": "x2"}, "y2": {"field": "y2"}}},
        ]},
        "datasets": {"bones": pa.table(cols)},
    })


LONG_VECTOR = 48
"""From this many features on, a vector is drawn as a line over its feature index: bars (and one
tick label per feature) become an unreadable strip at hundreds of features."""


def vector_chart(values: np.ndarray, names: Sequence[str], reference: Optional[np.ndarray], title: str,
                 unit: str) -> Spec:
    """One value per feature, clean and corrupted side by side (bars), or, for a long vector (e.g.
    a 1024-d embedding), two lines over the feature index.

    The feature axis is labelled by index, level (names such as ``vector_1[15]`` stand upright and
    eat the drawing's height; the hover gives the name), the value axis spans the values with a
    few ticks, and the chart's height is set for the whole drawing (Streamlit fits the spec's
    height around axes and title, so the plot itself must be given room)."""
    long = len(names) >= LONG_VECTOR
    rows = [{"feature": str(n), "index": k, "input": name, "value": float(v)}
            for name, arr in (("clean", reference), ("corrupted", values)) if arr is not None
            for k, (n, v) in enumerate(zip(names, np.asarray(arr).reshape(-1)))]
    colour = {"field": "input", "type": "nominal", "title": "input",
              "scale": {"domain": ["clean", "corrupted"], "range": [CLEAN_GREY, "#d62728"]}}
    y = {"field": "value", "type": "quantitative", "title": f"value ({unit})" if unit else "value",
         "axis": {"tickCount": 6, "grid": True}}
    tooltip = [{"field": "feature"}, {"field": "input"}, {"field": "value", "format": ".3f"}]
    if long:
        body = {"mark": {"type": "line", "strokeWidth": 1, "interpolate": "step-after"},
                "encoding": {"x": {"field": "index", "type": "quantitative",
                                   "title": f"feature index (0–{len(names) - 1})"},
                             "y": y, "color": colour, "tooltip": tooltip}}
    else:
        body = {"mark": {"type": "bar"},
                "encoding": {"x": {"field": "index", "type": "ordinal", "title": "feature (index; hover for its name)",
                                   "axis": {"labelAngle": 0}},
                             "xOffset": {"field": "input", "type": "nominal", "sort": ["clean", "corrupted"]},
                             "y": y, "color": colour, "tooltip": tooltip}}
    return top_level(title, {"data": {"name": "vector"}, "width": 620, "height": VECTOR_HEIGHT, **body,
                             "datasets": {"vector": pa.Table.from_pylist(rows)}})


VECTOR_HEIGHT = 300
"""Height of the vector drawing, title and axes included (see :func:`vector_chart`)."""
