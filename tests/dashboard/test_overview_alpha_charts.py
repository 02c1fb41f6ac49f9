"""The overview's alpha charts as the browser reads them: marks aligned, no density outside the
gates' range, ticks with two decimals, a flat modality drawn as a line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from precal.dashboard.charts import overview as overview_charts

MODALITIES = [f"vector_{i}" for i in range(1, 7)]
COLOURS = dict(zip(MODALITIES, ["#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f"]))


def _frame(flat: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"class": f"c{c}", "modality": m, "alpha": 1.0 if flat else float(rng.uniform(0.05, 1.95))}
            for c in range(3) for m in MODALITIES for _ in range(8)]
    return pd.DataFrame(rows)


def test_alpha_by_class_median_uses_the_bars_mark_and_offset() -> None:
    """A point layer with the bars' xOffset is drawn half a step beside its bar in Vega-Lite (on
    another modality's bar with six); the median must be the same kind of mark as the bar."""
    spec = overview_charts.alpha_by_class(_frame(), MODALITIES, COLOURS, ["c0", "c1", "c2"], "t")
    bars, median = spec["layer"][0], spec["layer"][1]
    assert median["mark"]["type"] == bars["mark"]["type"] == "bar"
    assert median["mark"]["width"] == bars["mark"]["width"]
    assert median["encoding"]["x"] == bars["encoding"]["x"]
    assert median["encoding"]["xOffset"] == bars["encoding"]["xOffset"]
    table = spec["datasets"]["quartiles"].to_pandas()
    assert ((table["median_lo"] < table["median"]) & (table["median"] < table["median_hi"])).all()


def test_alpha_violins_density_stays_inside_the_gates_range() -> None:
    spec = overview_charts.alpha_violins(_frame(), MODALITIES, COLOURS, "t")
    violin = spec["spec"]["layer"][0]
    lo, hi = violin["encoding"]["y"]["scale"]["domain"]
    assert -0.05 <= lo < 0.05 and 1.95 < hi <= 2.05  # a margin beyond the data, never past [0, 2] ± 0.05
    cut = violin["transform"][-1]["filter"]
    assert "datum.alpha >= datum.lo" in cut and "datum.alpha <= datum.hi" in cut
    table = spec["datasets"]["alpha"].to_pandas()
    for m, g in table.groupby("modality"):
        assert (g["lo"] == g["alpha"].min()).all() and (g["hi"] == g["alpha"].max()).all()
    assert violin["encoding"]["y"]["axis"]["format"] == ".2f"


def test_alpha_violins_of_equal_gates_are_a_line_not_a_block() -> None:
    """An untrained model: every alpha is 1. No violin, a line per modality, ticks not '1.000000'."""
    frame = _frame(flat=True)
    spec = overview_charts.alpha_violins(frame, MODALITIES, COLOURS, "t")
    layers = spec["spec"]["layer"]
    flat = json.dumps(MODALITIES)
    assert flat in layers[0]["transform"][-1]["filter"]  # the density is dropped for them
    line = [la for la in layers if la["mark"].get("type") == "tick" and "color" in la["encoding"]]
    assert len(line) == 1 and line[0]["transform"][0] == {"filter": f"indexof({flat}, datum.modality) >= 0"}
    lo, hi = layers[0]["encoding"]["y"]["scale"]["domain"]
    assert hi - lo >= 0.2 and lo < 1.0 < hi
    by_class = overview_charts.alpha_by_class(frame, MODALITIES, COLOURS, ["c0", "c1", "c2"], "t")
    assert by_class["layer"][0]["encoding"]["y"]["axis"]["format"] == ".2f"
