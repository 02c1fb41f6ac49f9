"""The probability-calibration page's reliability diagram, as a Vega-Lite specification (the
dashboard's chart conventions: data in a named Arrow dataset, axes titled with units)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from precal.dashboard.charts.lab import Spec, top_level


def reliability_chart(frame: pd.DataFrame, title: str) -> Spec:
    """Accuracy against confidence per bin, one line per model and input (``frame`` from
    :func:`precal.dashboard.backend.probability.reliability_frame`), points sized by their bin's
    sample count, the diagonal (perfect calibration) dashed. Below the diagonal: over-confident."""
    table = pa.table({"model": frame["model"].astype(str).tolist(),
                      "confidence": frame["confidence"].astype(float).tolist(),
                      "accuracy": frame["accuracy"].astype(float).tolist(),
                      "count": frame["count"].astype(int).tolist(),
                      "bin": frame["bin"].astype(str).tolist()})
    axis = {"type": "quantitative", "scale": {"domain": [0, 1]}}
    colour = {"field": "model", "type": "nominal", "title": None, "legend": {"orient": "bottom", "columns": 1,
                                                                             "labelLimit": 600}}
    return top_level(title, {
        "width": 420, "height": 420,
        "datasets": {"bins": table},
        "layer": [
            {"data": {"values": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]},
             "mark": {"type": "line", "strokeDash": [5, 4], "color": "#888"},
             "encoding": {"x": {"field": "x", **axis}, "y": {"field": "y", **axis}}},
            {"data": {"name": "bins"}, "mark": {"type": "line", "point": False},
             "encoding": {"x": {"field": "confidence", **axis, "title": "confidence (top-class probability)"},
                          "y": {"field": "accuracy", **axis, "title": "accuracy (share right)"},
                          "color": colour}},
            {"data": {"name": "bins"}, "mark": {"type": "circle", "opacity": 0.7},
             "encoding": {"x": {"field": "confidence", **axis}, "y": {"field": "accuracy", **axis},
                          "color": colour, "size": {"field": "count", "type": "quantitative", "title": "samples",
                                                    "legend": None},
                          "tooltip": [{"field": "model"}, {"field": "bin"},
                                      {"field": "confidence", "format": ".3f"},
                                      {"field": "accuracy", "format": ".3f"}, {"field": "count"}]}},
        ],
    })
