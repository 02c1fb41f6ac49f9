"""The corruption lab's charts, as Vega-Lite specifications.

The lab redraws its charts on every control change, and the browser's redraw is what a user
waits for. Plotly rebuilds a figure's SVG on every update; Vega-Lite on a canvas updates the data
of a chart that is already there. With the lab's charts in Plotly, the browser round trip was
0.69-0.81 s on the 2-core reference machine; with them in Vega-Lite (and the other changes listed
in the README) its medians are 0.18-0.25 s (``results/benchmarks/dashboard.txt``;
``benchmarks/dashboard.py --breakdown`` attributes it part by part). The explorer, embeddings, robustness and training pages keep Plotly (``figures``).

Each builder returns a complete specification whose data sit in named ``datasets``. These are
Arrow tables, which Streamlit sends as they are, beside the specification; a DataFrame would first
go through pandas' Arrow conversion, which starts a thread pool on every call. The specification
proper depends only on the model pair, the split and the projection method, not on the lab's
settings, and each chart is drawn on a canvas. ``tests/test_vega_charts.py`` validates every one
against the Vega-Lite JSON schema that ships with Altair.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import pyarrow as pa

Spec = Dict[str, Any]

INPUT_STATES = ("clean", "corrupted")
TRUE_MARK = "✓"
"""Appended to the true class's label (and makes it bold)."""
PROJECTION_COLOURS = {"after calibration": "#111111", "before calibration": "#d62728"}
"""The sample's own markers: black and red, apart from the class colours of the split under them."""
CUE_PANELS = (("alpha", "alpha (× features; 1 = unchanged)", (0.0, 2.15), 1.0),
              ("support", "support (cosine, −1…1)", (-1.15, 1.25), None),
              ("conflict", "conflict (mean sq. distance)", None, None),
              ("atypicality", "atypicality (log mean sq. whitened distance; higher: less typical)", None, None))
"""quantity, axis title with units, fixed axis range (None: from the data), reference line. A panel
is drawn only for the quantities the frame holds (atypicality only for models trained with it)."""
PANEL_WIDTH, NARROW_PANEL_WIDTH = 230, 165
"""Width of one cue panel (px): three fit the page's width at 230, four at 165 (six modalities'
slanted names still fit under either)."""


def colour_encoding(field: str, colours: Mapping[str, str], title: str, domain: Sequence[str]) -> Dict[str, Any]:
    """A nominal colour channel with fixed colours per value (e.g. clean grey, corrupted red)."""
    domain = list(domain)
    return {"field": field, "type": "nominal", "title": title,
            "scale": {"domain": domain, "range": [colours.get(d, "#2ca02c") for d in domain]},
            "legend": {"orient": "top"}}


def _states(frame: pd.DataFrame, column: str) -> List[str]:
    present = list(dict.fromkeys(frame[column]))
    return [s for s in INPUT_STATES if s in present] + [s for s in present if s not in INPUT_STATES]


def top_level(title: str, body: Spec) -> Spec:
    """A chart's title, fonts and renderer around its body (every Vega-Lite chart of the dashboard)."""
    # Drawn on a canvas: Vega's SVG renderer rewrites thousands of DOM nodes per update.
    return {"title": {"text": title, "anchor": "start", "fontSize": 15}, **body,
            "config": {"axis": {"labelFontSize": 12, "titleFontSize": 12}, "legend": {"labelFontSize": 12}},
            "usermeta": {"embedOptions": {"renderer": "canvas"}}}


def probability_chart(panels: Sequence[Tuple[str, pd.DataFrame]], title: str, colour_by: str,
                      colours: Mapping[str, str], true_class: Optional[str] = None) -> Spec:
    """Top-k class probabilities, one horizontal bar panel per model, bars grouped by ``colour_by``.

    ``panels``: (model name, frame with class, probability and ``colour_by``). Each panel keeps its
    own class order (its model's top classes first); the true class is ticked and bold. The values
    travel in the ``probabilities`` dataset, so the specification itself stays the same from one
    lab change to the next (see the module docstring)."""
    frames = [f for _, f in panels]
    states = _states(pd.concat(frames) if frames else pd.DataFrame({colour_by: []}), colour_by)
    values = []
    for name, frame in panels:
        order = {c: k for k, c in enumerate(dict.fromkeys(frame["class"]))}
        values += [{"role": name, "class": _class_label(str(c), true_class), "rank": order[c],
                    "probability": float(p), colour_by: str(g), "label": f"{float(p):.3f}"}
                   for c, p, g in zip(frame["class"], frame["probability"], frame[colour_by])]
    encoding = {
        "y": {"field": "class", "type": "nominal", "sort": {"field": "rank", "op": "min"},
              "axis": {"title": None, "labelLimit": 240,
                       "labelFontWeight": {"condition": {"test": f"indexof(datum.value, '{TRUE_MARK}') >= 0",
                                                         "value": "bold"}, "value": "normal"}}},
        "yOffset": {"field": colour_by, "type": "nominal", "sort": states},
        "x": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1.15]}},
        "color": colour_encoding(colour_by, colours, colour_by, states),
        "tooltip": [{"field": "class"}, {"field": colour_by}, {"field": "probability", "format": ".3f"}],
    }
    charts = []
    for name, _ in panels:
        x = {**encoding["x"], "axis": {"title": f"probability (0–1) · {name}", "values": [0, 0.2, 0.4, 0.6, 0.8, 1.0]}}
        panel_encoding = {**encoding, "x": x}
        charts.append({"data": {"name": "probabilities"}, "transform": [{"filter": {"field": "role", "equal": name}}],
                       "width": 300, "height": {"step": 14},
                       "layer": [{"mark": {"type": "bar"}, "encoding": panel_encoding}]})
    return top_level(title, {"hconcat": charts, "spacing": 40, "datasets": {"probabilities": pa.Table.from_pylist(values)}})


def cue_chart(frame: pd.DataFrame, title: str, colour_by: str, colours: Mapping[str, str]) -> Spec:
    """alpha, support and conflict (and atypicality, where the frame has it) per modality, one bar
    panel each, bars grouped by ``colour_by``.
    ``frame``: modality, quantity, value and ``colour_by`` columns. alpha has a dashed line at 1
    (unchanged features). A NaN value draws no bar but words where the bar would be: "n/a (absent)"
    where the modality is absent from that input (no gate, no cues), "n/a (no peer)" for the cues of
    one whose peers are all absent (nothing to compare it with; its alpha, the pass-through, is drawn). Values are read on the axis
    and in the tooltip, not written on the bars. The values travel in the ``cues`` dataset."""
    states = _states(frame, colour_by)
    modalities = [str(m) for m in dict.fromkeys(frame["modality"])]
    def missing(v) -> bool:
        return v is None or not np.isfinite(v)

    # where alpha has no value the modality is absent; where only a cue has none it had no peer
    absent = {(str(m), str(g)) for m, q, v, g in zip(frame["modality"], frame["quantity"], frame["value"],
                                                    frame[colour_by]) if q == "alpha" and missing(v)}
    values = []
    for m, q, v, g in zip(frame["modality"], frame["quantity"], frame["value"], frame[colour_by]):
        note = "" if not missing(v) else "n/a (absent)" if (str(m), str(g)) in absent or q == "alpha" \
            else "n/a (no peer)"
        values.append({"modality": str(m), "quantity": str(q), "value": None if note else float(v),
                       colour_by: str(g), "note": note})
    charts = []
    held = set(str(q) for q in frame["quantity"])
    panels = [p for p in CUE_PANELS if p[0] in held]
    width = PANEL_WIDTH if len(panels) <= 3 else NARROW_PANEL_WIDTH  # four side by side must fit the page
    for quantity, label, domain, reference in panels:
        y: Dict[str, Any] = {"field": "value", "type": "quantitative", "axis": {"title": label}}
        if domain is not None:
            y["scale"] = {"domain": list(domain)}
        # every modality named, slanted when there are many (six fit under a panel of either width)
        x = {"field": "modality", "type": "nominal", "sort": modalities,
             "axis": {"title": f"modality · {quantity}", "labelAngle": 0 if len(modalities) <= 3 else -40,
                      "labelOverlap": False, "labelLimit": 120}}
        offset = {"field": colour_by, "type": "nominal", "sort": states}
        encoding = {
            "x": x, "xOffset": offset, "y": y,
            "color": colour_encoding(colour_by, colours, colour_by, states),
            "tooltip": [{"field": "modality"}, {"field": colour_by}, {"field": "value", "format": ".3f"}],
        }
        # Encodings live in the layers, not the panel: the reference line must not inherit x.
        layers: List[Spec] = [
            {"transform": [{"filter": "datum.note == ''"}], "mark": {"type": "bar"}, "encoding": encoding},
            {"transform": [{"filter": "datum.note != ''"}],
             "mark": {"type": "text", "angle": 270, "align": "left", "dx": 4, "fontSize": 11, "color": "#555"},
             "encoding": {"x": x, "xOffset": offset, "y": {"datum": 0 if quantity != "alpha" else 0.05,
                                                           "type": "quantitative"},
                          "text": {"field": "note"}}},
        ]
        if reference is not None:
            layers.append({"data": {"values": [{"reference": reference}]},
                           "mark": {"type": "rule", "strokeDash": [6, 4], "color": "black"},
                           "encoding": {"y": {"field": "reference", "type": "quantitative"}}})
        charts.append({"data": {"name": "cues"}, "transform": [{"filter": {"field": "quantity", "equal": quantity}}],
                       "width": width, "height": 260, "layer": layers})
    schema = pa.schema([("modality", pa.string()), ("quantity", pa.string()), ("value", pa.float64()),
                        (colour_by, pa.string()), ("note", pa.string())])
    return top_level(title, {"hconcat": charts, "spacing": 30,
                             "datasets": {"cues": pa.Table.from_pylist(values, schema=schema)}})


CHANGE_LIMIT = 1.0
"""Colour range (±) of the change chart; larger changes are clamped (the text still says them)."""


TRUST_SIGN = {"alpha": 1.0, "support": 1.0, "conflict": -1.0, "atypicality": -1.0}
"""Which way each quantity moves when the calibrator trusts a modality *less*: alpha and support
fall, conflict and atypicality rise. The change chart colours by this, so a warning colour always means "less
trusted", whatever the quantity."""
DISTRUST, NEUTRAL, TRUST = "#e6550d", "#f7f7f7", "#3182bd"


def change_chart(tables: Mapping[str, pd.DataFrame], title: str,
                 notes: Optional[Mapping[str, pd.DataFrame]] = None, muted: Sequence[str] = ()) -> Spec:
    """Corrupted − clean per modality (rows) and quantity (columns), one panel per model: a table
    drawn as coloured cells with their value written in. Orange cells moved towards distrust (lower
    alpha or support, higher conflict or atypicality), blue ones towards trust. ``notes`` (same shape, per model):
    words written instead of a number, on a grey cell ("n/a (absent)", "fixed at 1"). Models in
    ``muted`` (no calibrator in use: their cues move no gate) get their numbers on grey cells, so no
    colour suggests that they matter. A chart rather
    than a table element, because the lab redraws it on every change and a chart of unchanged
    specification only gets new data (``benchmarks/dashboard.py --breakdown`` measured the table
    element at ~50 ms per change). Values travel in the ``changes`` dataset."""
    values = []
    for model, table in tables.items():
        note_table = notes.get(model) if notes is not None else None
        for m, row in table.iterrows():
            for q, v in row.items():
                note = str(note_table.loc[m, q]) if note_table is not None else ""
                finite = v is not None and np.isfinite(v)
                if not note and not finite:
                    note = "n/a"
                change = float(v) if finite and not note else None
                values.append({"role": str(model), "modality": str(m), "quantity": f"Δ {q}", "change": change,
                               "trust": None if change is None or model in muted
                               else change * TRUST_SIGN.get(str(q), 1.0),
                               "label": note if note else f"{float(v):+.3f}"})
    quantities = [f"Δ {q}" for q in dict.fromkeys(q for t in tables.values() for q in t.columns)]
    modalities = [str(m) for m in dict.fromkeys(m for t in tables.values() for m in t.index)]
    charts = []
    for model in tables:
        encoding = {
            "x": {"field": "quantity", "type": "nominal", "sort": quantities,
                  "axis": {"title": str(model), "orient": "top", "labelAngle": 0}},
            "y": {"field": "modality", "type": "nominal", "sort": modalities, "axis": {"title": None}},
        }
        charts.append({
            "data": {"name": "changes"}, "transform": [{"filter": {"field": "role", "equal": str(model)}}],
            "width": {"step": 96}, "height": {"step": 30},
            "layer": [
                {"transform": [{"filter": "datum.trust != null"}],
                 "mark": {"type": "rect", "stroke": "white"},
                 "encoding": {**encoding, "color": {
                     "field": "trust", "type": "quantitative",
                     "title": "towards",
                     "scale": {"domain": [-CHANGE_LIMIT, 0, CHANGE_LIMIT], "range": [DISTRUST, NEUTRAL, TRUST],
                               "clamp": True},
                     "legend": {"orient": "right", "gradientLength": 90, "values": [-CHANGE_LIMIT, 0, CHANGE_LIMIT],
                                "labelExpr": "datum.value < 0 ? 'distrust' : datum.value > 0 ? 'trust' : ''"}},
                     "tooltip": [{"field": "modality"}, {"field": "quantity"}, {"field": "change", "format": "+.4f"}]}},
                {"transform": [{"filter": "datum.trust == null"}],
                 "mark": {"type": "rect", "stroke": "white", "color": "#e9e9e9"}, "encoding": encoding},
                {"mark": {"type": "text", "fontSize": 12},
                 "encoding": {**encoding, "text": {"field": "label"}, "color": {  # readable on dark cells
                     "condition": {"test": f"datum.trust != null && abs(datum.trust) > {0.6 * CHANGE_LIMIT}",
                                   "value": "white"},
                     "value": "black"}}},
            ],
        })
    return top_level(title, {"hconcat": charts, "spacing": 30, "resolve": {"scale": {"color": "shared"}},
                             "datasets": {"changes": pa.Table.from_pylist(
                                 values, schema=pa.schema([("role", pa.string()), ("modality", pa.string()),
                                                           ("quantity", pa.string()), ("change", pa.float64()),
                                                           ("trust", pa.float64()), ("label", pa.string())]))}})


def projection_chart(background: np.ndarray, moves: Mapping[str, Tuple[np.ndarray, np.ndarray]], title: str,
                     method: str, classes: Optional[Sequence[str]] = None,
                     class_colours: Optional[Sequence[str]] = None, class_order: Optional[Sequence[str]] = None) -> Spec:
    """The split (after calibration) as small points coloured by true class, and, per model, the
    sample's clean → corrupted move (● clean, ✕ corrupted, a line between them), so a reader sees
    which class's region the sample moved towards. Data in the ``split``, ``moves`` and ``markers``
    datasets; the class colours are fixed by the split, so the specification does not change with
    the lab's settings."""
    xy = np.asarray(background, dtype=np.float64).reshape(-1, 2)
    names = [str(c) for c in classes] if classes is not None else ["sample"] * len(xy)
    order = [str(c) for c in (class_order or dict.fromkeys(names))]
    palette = list(class_colours or ["#999999"])
    split = pa.table({"x": xy[:, 0], "y": xy[:, 1], "class": names})
    points, segments = [], []
    for name, (clean, cor) in moves.items():
        points.append({"model": name, "input": "clean", "x": float(clean[0]), "y": float(clean[1])})
        points.append({"model": name, "input": "corrupted", "x": float(cor[0]), "y": float(cor[1])})
        segments.append({"model": name, "x": float(clean[0]), "y": float(clean[1]),
                         "x2": float(cor[0]), "y2": float(cor[1])})
    x_title, y_title = (f"{method} dimension {k} (arbitrary units)" for k in (1, 2))
    models = list(moves)
    model_colour = colour_encoding("model", PROJECTION_COLOURS, "sample", models)
    scatter = {
        "data": {"name": "split"},
        "mark": {"type": "circle", "size": 22, "opacity": 0.55},
        "encoding": {
            "x": {"field": "x", "type": "quantitative", "axis": {"title": x_title}, "scale": {"zero": False}},
            "y": {"field": "y", "type": "quantitative", "axis": {"title": y_title}, "scale": {"zero": False}},
            "color": {"field": "class", "type": "nominal", "title": "true class of split samples",
                      "scale": {"domain": order, "range": [palette[k % len(palette)] for k in range(len(order))]},
                      "legend": {"orient": "right", "columns": 1 if len(order) <= 14 else 2, "symbolSize": 60,
                                 "labelLimit": 150}},
            "tooltip": [{"field": "class", "title": "true class"}],
        },
    }
    moves_layer = {
        "data": {"name": "moves"},
        "mark": {"type": "rule", "strokeWidth": 3},
        "encoding": {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "quantitative"},
                     "x2": {"field": "x2"}, "y2": {"field": "y2"}, "color": model_colour},
    }
    markers = {
        "data": {"name": "markers"},
        "mark": {"type": "point", "filled": True, "size": 260, "stroke": "black", "strokeWidth": 1.5},
        "encoding": {
            "x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "quantitative"},
            "color": model_colour,
            "shape": {"field": "input", "type": "nominal", "title": "input",
                      "scale": {"domain": list(INPUT_STATES), "range": ["circle", "cross"]},
                      "legend": {"orient": "top"}},
            "tooltip": [{"field": "model", "title": "sample"}, {"field": "input"},
                        {"field": "x", "format": ".2f"}, {"field": "y", "format": ".2f"}],
        },
    }
    # The split's colour (its class) and the sample's colour (the model) are separate scales; the
    # move lines and markers share theirs, so the model legend appears once.
    return top_level(title, {"width": 620, "height": 420,
                        "layer": [scatter, {"layer": [moves_layer, markers]}],
                        "resolve": {"scale": {"color": "independent"}, "legend": {"color": "independent"}},
                        "datasets": {"split": split, "moves": pa.Table.from_pylist(segments),
                                     "markers": pa.Table.from_pylist(points)}})


def _class_label(name: str, true_class: Optional[str]) -> str:
    return f"{name} {TRUE_MARK}" if true_class is not None and name == true_class else name


