"""The overview's charts (the dashboard's first page), as Vega-Lite specifications.

The first page decides the app's start time. Plotly's browser bundle is 4.7 MB of JavaScript,
which the browser loads and compiles only after the page's data have arrived; Vega-Lite, which
the corruption lab uses too, is a fraction of that. Start to the first complete page went from
8.6-9.4 s to 6.2-7.2 s on the 2-core reference machine (``results/benchmarks/dashboard.txt``,
together with the lab's move to Vega-Lite). The other pages keep Plotly.

Builders follow :mod:`lab_charts`: data in named Arrow datasets, axes titled with units;
``tests/test_vega_charts.py`` validates them against the Vega-Lite schema.
"""

from __future__ import annotations

import json
from typing import List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from precal.dashboard.charts.lab import Spec, colour_encoding, top_level

ALPHA_TITLE = "alpha (× feature scale; 1 = unchanged)"


def _modality_colour(modalities: Sequence[str], colours: Mapping[str, str]) -> dict:
    return colour_encoding("modality", colours, "modality", modalities)


ALPHA_RANGE = (0.0, 2.0)
"""alpha = 2·sigmoid(logit) lies in this interval: no density, axis or tick is drawn outside it."""
FLAT_SPREAD = 1e-6
"""A modality whose gates span less than this has no distribution to draw: a kernel density of
identical values is a full-height block (an untrained model's gates are all exactly 1)."""


def _alpha_axis_domain(values: np.ndarray) -> List[float]:
    """The alpha axis: the data's range with a margin, so no shape ends at the chart's edge (the
    margin may reach 0.05 past [0, 2]; the shapes never do); at least ±0.1 around a single value,
    so float noise never fills an axis."""
    if not len(values):
        return list(ALPHA_RANGE)
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = max(0.1 if hi - lo < 0.02 else 0.05, 0.05 * (hi - lo))
    return [max(ALPHA_RANGE[0] - 0.05, lo - pad), min(ALPHA_RANGE[1] + 0.05, hi + pad)]


def _alpha_y(field: str, values: np.ndarray, title: Optional[str] = ALPHA_TITLE) -> dict:
    """The quantitative alpha channel with a fixed domain and two-decimal ticks (not "1.000000")."""
    return {"field": field, "type": "quantitative", "title": title,
            "scale": {"domain": _alpha_axis_domain(values), "nice": False, "zero": False},
            "axis": {"format": ".2f"}}


def _flat_modalities(frame: pd.DataFrame) -> List[str]:
    """Modalities whose alpha does not vary on these samples (drawn as a line, not a violin)."""
    spread = frame.groupby("modality")["alpha"].agg(lambda a: float(a.max() - a.min()))
    return [str(m) for m, s in spread.items() if s < FLAT_SPREAD]


def alpha_violins(frame: pd.DataFrame, modalities: Sequence[str], colours: Mapping[str, str], title: str,
                  total_width: int = 560) -> Spec:
    """Distribution of alpha per modality: a violin (kernel density, computed in the browser) per
    modality with its median as a black line, and a dashed line at 1. ``frame`` has modality and
    alpha. Each density stops at its modality's smallest and largest gate, never outside the data
    (a kernel's tails would reach below 0, where no alpha exists); a modality whose gates are all
    equal gets a coloured line at that value instead of a violin."""
    shown = [m for m in modalities if (frame["modality"] == m).any()]
    flat = _flat_modalities(frame)
    extent = frame.groupby("modality")["alpha"].agg(["min", "max"])
    table = pa.table({"modality": frame["modality"].astype(str).tolist(),
                      "alpha": frame["alpha"].to_numpy(dtype=np.float64),
                      "lo": frame["modality"].map(extent["min"]).to_numpy(dtype=np.float64),
                      "hi": frame["modality"].map(extent["max"]).to_numpy(dtype=np.float64)})
    values = frame["alpha"].to_numpy(dtype=np.float64)
    flat_test = f"indexof({json.dumps(flat)}, datum.modality) >= 0"
    y = _alpha_y("alpha", values)
    violin = {
        # the density over the whole axis, then cut to the modality's own range of gates (and
        # dropped for a flat modality, whose kernel has no width)
        "transform": [{"density": "alpha", "groupby": ["modality", "lo", "hi"], "extent": y["scale"]["domain"],
                       "steps": 200, "as": ["alpha", "density"]},
                      {"filter": f"!({flat_test}) && datum.alpha >= datum.lo && datum.alpha <= datum.hi"}],
        "mark": {"type": "area", "orient": "horizontal", "opacity": 0.8},
        "encoding": {
            "y": y,
            "x": {"field": "density", "type": "quantitative", "stack": "center", "impute": None, "title": None,
                  "axis": {"labels": False, "ticks": False, "grid": False}},
            "color": {**_modality_colour(shown, colours), "legend": None},
        },
    }
    level = {
        "transform": [{"filter": flat_test},
                      {"aggregate": [{"op": "min", "field": "alpha", "as": "alpha"}, {"op": "count", "as": "samples"}],
                       "groupby": ["modality"]}],
        "mark": {"type": "tick", "thickness": 6, "size": 60},
        "encoding": {"y": {"field": "alpha", "type": "quantitative"},
                     "color": {**_modality_colour(shown, colours), "legend": None},
                     "tooltip": [{"field": "modality"}, {"field": "alpha", "format": ".3f", "title": "alpha of every sample"},
                                 {"field": "samples"}]},
    }
    median = {
        "transform": [{"filter": f"!({flat_test})"},
                      {"aggregate": [{"op": "median", "field": "alpha", "as": "median"}], "groupby": ["modality"]}],
        "mark": {"type": "tick", "color": "black", "thickness": 2, "size": 40},
        "encoding": {"y": {"field": "median", "type": "quantitative"},
                     "tooltip": [{"field": "modality"}, {"field": "median", "format": ".3f", "title": "median alpha"}]},
    }
    reference = {"mark": {"type": "rule", "strokeDash": [6, 4], "color": "black"},
                 "encoding": {"y": {"datum": 1.0}}}
    return top_level(title, {
        "data": {"name": "alpha"},
        "facet": {"column": {"field": "modality", "type": "nominal", "sort": shown, "title": None,
                             "header": {"labelFontSize": 13, "labelOrient": "bottom"}}},
        # about ``total_width`` px of violins in all, whatever the number of modalities
        "spec": {"width": max(40, min(160, total_width // max(1, len(shown)))), "height": 320,
                 "layer": [violin, median, reference, level]},
        # each violin fills its own panel: a narrow distribution is not squeezed by a wide one
        "resolve": {"scale": {"x": "independent"}},
        "datasets": {"alpha": table},
    })


def alpha_by_class(frame: pd.DataFrame, modalities: Sequence[str], colours: Mapping[str, str],
                   class_order: Sequence[str], title: str) -> Spec:
    """alpha per true class and modality: the interquartile range as a bar and the median as a
    black line across it (quartiles computed here, so the browser draws a few hundred marks, not every sample)."""
    if frame.empty:
        return top_level(title, {"data": {"values": []}, "mark": "point"})
    stats = (frame.groupby(["class", "modality"], sort=False)["alpha"]
             .quantile([0.25, 0.5, 0.75]).unstack().reset_index())
    stats.columns = ["class", "modality", "q1", "median", "q3"]
    shown = [m for m in modalities if (stats["modality"] == m).any()]
    classes = [c for c in class_order if (stats["class"] == c).any()]
    # the median is a thin bar of the same band as the quartiles' bar: a point mark with the same
    # xOffset lands half a step beside its bar in Vega-Lite, on another modality's bar with six
    half = max(1e-3, 0.006 * float(stats["q3"].max() - stats["q1"].min()))
    median = stats["median"].to_numpy(np.float64)
    table = pa.table({"class": stats["class"].astype(str).tolist(), "modality": stats["modality"].astype(str).tolist(),
                      "q1": stats["q1"].to_numpy(np.float64), "median": median,
                      "median_lo": median - half, "median_hi": median + half,
                      "q3": stats["q3"].to_numpy(np.float64)})
    x = {"field": "class", "type": "nominal", "sort": classes, "title": "true class",
         "axis": {"labelAngle": -45, "labelLimit": 140, "labelOverlap": False}}
    offset = {"field": "modality", "type": "nominal", "sort": shown}
    colour = _modality_colour(shown, colours)
    tooltip = [{"field": "class"}, {"field": "modality"}, {"field": "median", "format": ".3f"},
               {"field": "q1", "format": ".3f", "title": "25 %"}, {"field": "q3", "format": ".3f", "title": "75 %"}]
    return top_level(title, {
        # Streamlit fits the chart into the page: the height includes the slanted class names
        "data": {"name": "quartiles"}, "width": max(600, 34 * len(classes)), "height": 460,
        "layer": [
            {"mark": {"type": "bar", "width": {"band": 0.7}, "opacity": 0.55},
             "encoding": {"x": x, "xOffset": offset,
                          "y": _alpha_y("q1", frame["alpha"].to_numpy(np.float64)),
                          "y2": {"field": "q3"}, "color": colour, "tooltip": tooltip}},
            {"mark": {"type": "bar", "width": {"band": 0.7}, "color": "black"},
             "encoding": {"x": x, "xOffset": offset, "y": {"field": "median_lo", "type": "quantitative"},
                          "y2": {"field": "median_hi"}, "tooltip": tooltip}},
            {"mark": {"type": "rule", "strokeDash": [6, 4], "color": "black"}, "encoding": {"y": {"datum": 1.0}}},
        ],
        "datasets": {"quartiles": table},
    })


def confusion_chart(cm: np.ndarray, names: Sequence[str], title: str) -> Spec:
    """Confusion matrix: true class (rows) × predicted class (columns), colour and number = samples."""
    cm = np.asarray(cm)
    k = len(names)
    true_idx, pred_idx = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    names = [str(n) for n in names]
    table = pa.table({
        "true": [names[i] for i in true_idx.reshape(-1)],
        "predicted": [names[j] for j in pred_idx.reshape(-1)],
        "samples": cm.reshape(-1).astype(np.int64),
    })
    peak = int(cm.max()) if cm.size else 1
    axis = {"labelLimit": 150, "labelOverlap": False}
    return top_level(title, {
        "data": {"name": "confusion"}, "width": {"step": 20}, "height": {"step": 20},
        "encoding": {
            "x": {"field": "predicted", "type": "nominal", "sort": names, "title": "predicted class",
                  "axis": {**axis, "labelAngle": -45}},
            "y": {"field": "true", "type": "nominal", "sort": names, "title": "true class", "axis": axis},
        },
        "layer": [
            {"mark": {"type": "rect"},
             "encoding": {"color": {"field": "samples", "type": "quantitative", "title": "samples",
                                    "scale": {"scheme": "blues", "domain": [0, max(peak, 1)]}},
                          "tooltip": [{"field": "true", "title": "true"}, {"field": "predicted"},
                                      {"field": "samples"}]}},
            {"transform": [{"filter": "datum.samples > 0"}],
             "mark": {"type": "text", "fontSize": 9},
             "encoding": {"text": {"field": "samples", "type": "quantitative"},
                          "color": {"condition": {"test": f"datum.samples > {peak / 2}", "value": "white"},
                                    "value": "black"}}},
        ],
        "datasets": {"confusion": table},
    })
