"""The dashboard's Vega-Lite charts (the corruption lab: dashboard/charts/lab.py and lab_inputs.py;
the overview: dashboard/charts/overview.py), validated against the Vega-Lite
JSON schema that ships with Altair (a Streamlit dependency), and checked for what they must show:
one panel per model or quantity, every value, labelled axes with units, the true class marked, the
alpha = 1 reference, the split's points and the sample's moves."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List

import jsonschema
import numpy as np
import pandas as pd
import pytest

from precal.dashboard.charts import figures as charts, lab as lab_charts, lab_inputs, overview as overview_charts
from precal.data.skeleton import KINECT_V1_BONES, skeleton_bones
from precal.models.model import CALIBRATED, UNCALIBRATED

ROOT = Path(__file__).resolve().parents[2]

MODALITIES = ["inertial", "skeleton", "depth"]
CLASSES = ["swipe left", "swipe right", "wave", "clap", "throw", "cross 'arms'"]


@pytest.fixture(scope="module")
def vega_lite_schema() -> Dict[str, Any]:
    import importlib

    import altair

    # the schema of the Vega-Lite major version that this Altair (and so this Streamlit) speaks
    major = altair.SCHEMA_VERSION.split(".")[0]
    return importlib.import_module(f"altair.vegalite.{major}.schema").load_schema()


def _panels(true_class: str = "wave") -> List:
    rng = np.random.default_rng(0)
    panels = []
    for role in (CALIBRATED, UNCALIBRATED):
        rows = [{"class": c, "probability": float(p), "input": state}
                for state in ("clean", "corrupted") for c, p in zip(CLASSES, rng.dirichlet(np.ones(len(CLASSES))))]
        panels.append((role, pd.DataFrame(rows)))
    return panels


def _cues() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame([{"modality": m, "quantity": q, "input": s, "value": float(rng.uniform(-1, 2))}
                         for q in ("alpha", "support", "conflict") for m in MODALITIES for s in ("clean", "corrupted")])


def _changes() -> Dict[str, pd.DataFrame]:
    rng = np.random.default_rng(3)
    tables = {role: pd.DataFrame(rng.uniform(-1.5, 1.5, (3, 3)), columns=["alpha", "support", "conflict"],
                                 index=pd.Index(MODALITIES, name="modality"))
              for role in (CALIBRATED, UNCALIBRATED)}
    tables[UNCALIBRATED].loc["depth", "alpha"] = np.nan  # a value a model lacks
    return tables


def _moves() -> Dict[str, Any]:
    return {"after calibration": (np.array([0.1, 0.2]), np.array([1.1, -0.4])),
            "before calibration": (np.array([0.3, 0.3]), np.array([0.3, 0.3]))}


IMU = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
JOINTS = list(dict.fromkeys(j for bone in KINECT_V1_BONES for j in bone))


def _input_specs() -> Dict[str, Dict[str, Any]]:
    rng = np.random.default_rng(4)
    t = np.linspace(0, 2.0, 40)
    imu, imu_clean = rng.normal(size=(40, 6)), rng.normal(size=(40, 6))
    frames = rng.uniform(500, 3000, (8, 30, 40))
    frames[:, :5] = np.nan  # no depth reading
    joints = rng.normal(size=(40, len(JOINTS), 3))
    mfcc = rng.normal(size=(40, 26))
    return {
        "series_chart": lab_inputs.series_chart(t, imu, IMU, imu_clean, "inertial: inertial sensor",
                                                [("acceleration (g)", range(3)), ("angular velocity (deg/s)", range(3, 6))],
                                                "time (s)"),
        "frames_chart": lab_inputs.frames_chart(frames, np.linspace(0, 1.9, 8), frames[::-1], 500.0, 3000.0,
                                                "depth: 8 of 16 frames", "depth (mm)"),
        "heatmap_chart": lab_inputs.heatmap_chart(t, mfcc * 3, [f"c{k}" for k in range(26)], mfcc, "audio",
                                                  "coefficient value", "time (s)", "MFCC coefficient"),
        "skeleton_chart": lab_inputs.skeleton_chart(joints, t, [0, 10, 20, 39], skeleton_bones(JOINTS), joints * 0.5,
                                                    "skeleton: poses", "m"),
        "vector_chart": lab_inputs.vector_chart(rng.normal(size=5), list("abcde"), rng.normal(size=5), "features",
                                                "z-score"),
    }


def _alpha_frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = [{"modality": m, "alpha": float(rng.uniform(0.2, 1.8)), "class": c}
            for c in CLASSES for m in MODALITIES for _ in range(4)]
    return pd.DataFrame(rows)


MODALITY_COLOURS = {"inertial": "#66c2a5", "skeleton": "#fc8d62", "depth": "#8da0cb"}


def _overview_specs() -> Dict[str, Dict[str, Any]]:
    cm = np.diag([5, 4, 3, 6, 2, 1]) + np.eye(6, k=1, dtype=int)
    return {
        "alpha_violins": overview_charts.alpha_violins(_alpha_frame(), MODALITIES, MODALITY_COLOURS, "alpha per modality"),
        "alpha_by_class": overview_charts.alpha_by_class(_alpha_frame(), MODALITIES, MODALITY_COLOURS, CLASSES,
                                                         "alpha per true class"),
        "confusion_chart": overview_charts.confusion_chart(cm, CLASSES, "confusion matrix"),
    }


def _specs() -> Dict[str, Dict[str, Any]]:
    background = np.random.default_rng(2).normal(size=(300, 2))
    return {
        **_input_specs(),
        **_overview_specs(),
        "probability_chart": lab_charts.probability_chart(_panels(), "class probabilities", "input",
                                                          charts.STATE_COLOURS, true_class="cross 'arms'"),
        "cue_chart": lab_charts.cue_chart(_cues(), "gates and cues", "input", charts.STATE_COLOURS),
        "change_chart": lab_charts.change_chart(_changes(), "change from the clean input"),
        "projection_chart": lab_charts.projection_chart(background, _moves(), "PCA of val", "PCA"),
    }


def _as_json(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The spec as the browser gets it: the datasets' DataFrames as records."""
    datasets = {k: v.to_pylist() for k, v in spec.get("datasets", {}).items()}
    return {**spec, "datasets": datasets}


def _walk(spec: Any) -> Iterator[Dict[str, Any]]:
    """Every dict in a spec (views, layers, encodings)."""
    if isinstance(spec, dict):
        yield spec
        for v in spec.values():
            yield from _walk(v)
    elif isinstance(spec, list):
        for v in spec:
            yield from _walk(v)


def _axis_titles(spec: Dict[str, Any]) -> List[str]:
    titles = []
    for d in _walk(spec):
        axis = d.get("axis")
        if isinstance(axis, dict) and axis.get("title"):
            titles.append(axis["title"])
        if d.get("bin") and d.get("title"):
            titles.append(d["title"])
    return titles


def test_every_builder_is_covered() -> None:
    public = {n for module in (lab_charts, lab_inputs, overview_charts)
              for n, f in inspect.getmembers(module, inspect.isfunction)
              if not n.startswith("_") and f.__module__ == module.__name__}
    assert public - {"top_level", "frame_png", "colour_encoding"} == set(_specs())


@pytest.mark.parametrize("name", sorted(_specs()))
def test_chart_is_valid_vega_lite(name: str, vega_lite_schema: Dict[str, Any]) -> None:
    spec = _as_json(_specs()[name])
    jsonschema.validate(spec, vega_lite_schema)
    json.dumps(spec, allow_nan=False)  # what Streamlit sends: plain JSON, no NaN, no numpy scalars
    assert spec["title"]["text"]


def test_validation_can_fail(vega_lite_schema: Dict[str, Any]) -> None:
    spec = _as_json(_specs()["cue_chart"])
    spec["hconcat"][0]["layer"][0]["mark"]["type"] = "barr"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(spec, vega_lite_schema)


def _without_data(spec: Dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in spec.items() if k != "datasets"}, sort_keys=True)


def test_specification_does_not_depend_on_the_values() -> None:
    """Streamlit updates a chart's data in place when only the datasets change; a changed
    specification rebuilds the chart in the browser. New values, new top classes, another true
    class or another sample's move must therefore leave the specification as it was."""
    other_panels = [(role, frame.assign(probability=frame["probability"][::-1].to_numpy(),
                                        **{"class": frame["class"][::-1].to_numpy()}))
                    for role, frame in _panels()]
    first = lab_charts.probability_chart(_panels(), "p", "input", charts.STATE_COLOURS, true_class="wave")
    second = lab_charts.probability_chart(other_panels, "p", "input", charts.STATE_COLOURS, true_class="clap")
    assert _without_data(first) == _without_data(second)
    assert not first["datasets"]["probabilities"].equals(second["datasets"]["probabilities"])
    cues = _cues()
    assert _without_data(lab_charts.cue_chart(cues, "c", "input", charts.STATE_COLOURS)) == _without_data(
        lab_charts.cue_chart(cues.assign(value=cues["value"] * 2), "c", "input", charts.STATE_COLOURS))
    changes = _changes()
    assert _without_data(lab_charts.change_chart(changes, "d")) == _without_data(
        lab_charts.change_chart({k: -t for k, t in changes.items()}, "d"))
    background = np.zeros((10, 2))
    moved = {"after calibration": (np.array([5.0, 5.0]), np.array([-1.0, 2.0])),
             "before calibration": (np.array([0.0, 1.0]), np.array([0.0, 0.0]))}
    assert _without_data(lab_charts.projection_chart(background, _moves(), "P", "PCA")) == _without_data(
        lab_charts.projection_chart(background, moved, "P", "PCA"))


def _panel_rows(spec: Dict[str, Any], dataset: str, panel: Dict[str, Any]) -> pd.DataFrame:
    """The rows of ``dataset`` that a panel shows (its filter transform applied)."""
    (rule,) = [t["filter"] for t in panel["transform"]]
    frame = spec["datasets"][dataset].to_pandas()
    return frame[frame[rule["field"]] == rule["equal"]]


def test_probability_chart_shows_every_value_per_model() -> None:
    spec = _specs()["probability_chart"]
    panels = spec["hconcat"]
    assert len(panels) == 2
    for (role, frame), panel in zip(_panels(), panels):
        rows = _panel_rows(spec, "probabilities", panel)
        assert sorted(rows["probability"]) == sorted(frame["probability"])
        bars = panel["layer"][0]["encoding"]
        assert bars["x"]["axis"]["title"] == f"probability (0–1) · {role}"
        # the model's own class order: its first classes rank first
        order = rows.groupby("class")["rank"].min().sort_values().index.str.replace(" ✓", "")
        assert list(order) == list(dict.fromkeys(frame["class"]))
        assert bars["color"]["scale"]["range"] == [charts.STATE_COLOURS["clean"], charts.STATE_COLOURS["corrupted"]]


def test_probability_chart_marks_the_true_class() -> None:
    spec = _specs()["probability_chart"]
    labels = set(spec["datasets"]["probabilities"].column("class").to_pylist())
    assert "cross 'arms' ✓" in labels and "cross 'arms'" not in labels
    assert sum(label.endswith("✓") for label in labels) == 1
    weight = spec["hconcat"][0]["layer"][0]["encoding"]["y"]["axis"]["labelFontWeight"]
    assert "✓" in weight["condition"]["test"] and weight["condition"]["value"] == "bold"
    unmarked = lab_charts.probability_chart(_panels(), "t", "input", charts.STATE_COLOURS, true_class=None)
    assert not any(c.endswith("✓") for c in unmarked["datasets"]["probabilities"].column("class").to_pylist())


def test_cue_chart_has_a_panel_per_quantity_with_units_and_the_alpha_reference() -> None:
    spec = _specs()["cue_chart"]
    frame = _cues()
    assert len(spec["hconcat"]) == 3
    for (quantity, label, _, reference), panel in zip(lab_charts.CUE_PANELS, spec["hconcat"]):
        bars = panel["layer"][0]
        assert bars["encoding"]["y"]["axis"]["title"] == label
        expected = frame.loc[frame["quantity"] == quantity, "value"]
        assert sorted(_panel_rows(spec, "cues", panel)["value"]) == sorted(expected)
        rules = [layer for layer in panel["layer"] if layer["mark"]["type"] == "rule"]
        assert len(rules) == (0 if reference is None else 1)
        for rule in rules:
            # the reference line spans the panel: it must not inherit the modality axis (it would
            # add an "undefined" modality)
            assert "x" not in rule["encoding"] and "encoding" not in panel
            assert rule["data"]["values"] == [{"reference": reference}]


def test_change_chart_writes_every_finite_change_in_its_models_panel() -> None:
    tables = _changes()
    spec = lab_charts.change_chart(tables, "change")
    assert [p["layer"][0]["encoding"]["x"]["axis"]["title"] for p in spec["hconcat"]] == list(tables)
    for panel, (role, table) in zip(spec["hconcat"], tables.items()):
        rows = _panel_rows(spec, "changes", panel)
        finite = table.stack().dropna()
        assert rows["change"].notna().sum() == len(finite)
        assert (rows.loc[rows["change"].isna(), "label"] == "n/a").all()  # NaN: words, never "+nan"
        for (m, q), v in finite.items():
            (row,) = rows[(rows["modality"] == m) & (rows["quantity"] == f"Δ {q}")].itertuples()
            assert row.change == pytest.approx(v) and row.label == f"{v:+.3f}"
            assert row.trust == pytest.approx(-v if q == "conflict" else v)  # more conflict: towards distrust
    colour = spec["hconcat"][0]["layer"][0]["encoding"]["color"]
    assert colour["scale"]["domain"] == [-lab_charts.CHANGE_LIMIT, 0, lab_charts.CHANGE_LIMIT]  # symmetric about 0
    assert colour["scale"]["range"][0] == lab_charts.DISTRUST  # the warning colour: less trusted
    assert colour["scale"]["clamp"] and colour["field"] == "trust"


def test_projection_chart_keeps_every_split_point_and_each_move() -> None:
    background = np.random.default_rng(3).normal(size=(123, 2))
    spec = lab_charts.projection_chart(background, _moves(), "PCA of val", "PCA")
    data = {k: v.to_pandas() for k, v in spec["datasets"].items()}
    np.testing.assert_allclose(data["split"][["x", "y"]].to_numpy(), background)
    assert list(data["moves"]["model"]) == list(_moves())
    assert len(data["markers"]) == 2 * len(_moves())
    density, samples = spec["layer"]
    segments, markers = samples["layer"]
    assert (density["data"], segments["data"], markers["data"]) == ({"name": "split"}, {"name": "moves"},
                                                                     {"name": "markers"})
    assert markers["encoding"]["shape"]["scale"]["range"] == ["circle", "cross"]
    assert spec["resolve"]["scale"]["color"] == "independent"  # density count vs model colours
    assert set(_axis_titles(spec)) == {"PCA dimension 1 (arbitrary units)", "PCA dimension 2 (arbitrary units)"}


# ---- inputs


def _decode(url: str) -> np.ndarray:
    import base64
    import io

    from PIL import Image

    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url[len(prefix):]))).convert("RGB"))


def test_frame_png_maps_the_range_and_leaves_no_reading_white() -> None:
    frame = np.array([[np.nan, 0.0, 100.0], [50.0, 200.0, -5.0]])
    rgb = _decode(lab_inputs.frame_png(frame, 0.0, 100.0, "gray"))
    assert rgb.shape == (2, 3, 3)
    assert (rgb[0, 0] == 255).all()                       # NaN: white
    assert (rgb[0, 1] == 0).all() and (rgb[0, 2] == 255).all()  # ends of the range: black, white
    assert abs(int(rgb[1, 0, 0]) - 128) <= 1              # mid-range grey
    assert (rgb[1, 1] == 255).all() and (rgb[1, 2] == 0).all()  # clipped outside the range
    viridis = _decode(lab_inputs.frame_png(np.array([[0.0, 1.0]]), 0.0, 1.0, "viridis"))
    assert tuple(viridis[0, 0]) == (0x44, 0x01, 0x54) and tuple(viridis[0, 1]) == (0xfd, 0xe7, 0x25)


def test_frames_chart_has_both_rows_and_a_legend_in_physical_units() -> None:
    spec = _specs()["frames_chart"]
    frames = spec["datasets"]["frames"].to_pandas()
    assert sorted(frames["input"].unique()) == ["clean", "corrupted"] and len(frames) == 16
    assert frames.loc[frames["input"] == "clean", "time"].tolist()[0] == "t = 0.00 s"
    assert spec["datasets"]["colour_range"].column("value").to_pylist() == [500.0, 3000.0]
    legend = spec["layer"][1]["encoding"]["color"]
    assert legend["title"] == "depth (mm)" and legend["scale"] == {"scheme": "viridis"}


def test_series_chart_splits_the_imu_into_its_two_units() -> None:
    spec = _specs()["series_chart"]
    panels = spec["vconcat"]
    assert [p["layer"][0]["encoding"]["y"]["title"] for p in panels] == ["acceleration (g)", "angular velocity (deg/s)"]
    assert [p["transform"][0]["filter"]["oneOf"] for p in panels] == [IMU[:3], IMU[3:]]
    table = spec["datasets"]["signals"].to_pandas()
    assert len(table) == 2 * 40 * 6 and set(table["input"]) == {"clean", "corrupted"}


def test_heatmap_scale_comes_from_the_clean_input_and_clamps() -> None:
    spec = _specs()["heatmap_chart"]
    colour = spec["encoding"]["color"]["scale"]
    table = spec["datasets"]["features"].to_pandas()
    limit = np.percentile(table[table["input"] == "clean"]["value"].abs(), 99)
    assert colour["clamp"] is True
    assert colour["domain"] == pytest.approx([-limit, limit])  # the corrupted values (×3) do not widen it
    assert table["value"].abs().max() > 2 * limit
    assert len(table) == 2 * 40 * 26


def test_skeleton_chart_draws_every_bone_of_each_picked_pose() -> None:
    spec = _specs()["skeleton_chart"]
    bones = spec["datasets"]["bones"].to_pandas()
    n_bones = len(skeleton_bones(JOINTS))
    assert len(bones) == 4 * 2 * n_bones
    assert bones.groupby(["order", "input"]).size().eq(n_bones).all()
    assert spec["spec"]["layer"][0]["encoding"]["x"]["title"] == "x (m)"


# ---- overview


def test_alpha_violins_keep_every_gate_and_mark_one() -> None:
    spec = _specs()["alpha_violins"]
    table = spec["datasets"]["alpha"].to_pandas()
    frame = _alpha_frame()
    np.testing.assert_allclose(np.sort(table["alpha"]), np.sort(frame["alpha"]))
    layers = spec["spec"]["layer"]
    assert layers[0]["transform"][0]["density"] == "alpha"
    assert layers[0]["encoding"]["y"]["title"] == overview_charts.ALPHA_TITLE
    assert layers[2]["encoding"]["y"] == {"datum": 1.0}
    assert spec["facet"]["column"]["sort"] == MODALITIES


def test_alpha_by_class_quartiles_match_pandas() -> None:
    spec = _specs()["alpha_by_class"]
    table = spec["datasets"]["quartiles"].to_pandas().set_index(["class", "modality"])
    frame = _alpha_frame()
    for (cls, mod), g in frame.groupby(["class", "modality"]):
        row = table.loc[(cls, mod)]
        assert row["median"] == pytest.approx(g["alpha"].median())
        assert row["q1"] == pytest.approx(g["alpha"].quantile(0.25))
        assert row["q3"] == pytest.approx(g["alpha"].quantile(0.75))
    assert spec["layer"][0]["encoding"]["x"]["sort"] == CLASSES


def test_confusion_chart_has_every_cell_in_class_order() -> None:
    cm = np.arange(36).reshape(6, 6)
    spec = overview_charts.confusion_chart(cm, CLASSES, "confusion matrix")
    table = spec["datasets"]["confusion"].to_pandas()
    assert len(table) == 36 and table["samples"].sum() == cm.sum()
    # row i, column j of the matrix: true class i predicted as class j
    cell = table[(table["true"] == CLASSES[2]) & (table["predicted"] == CLASSES[4])]
    assert cell["samples"].item() == cm[2, 4]
    assert spec["encoding"]["x"]["title"] == "predicted class" and spec["encoding"]["y"]["title"] == "true class"
    assert spec["encoding"]["y"]["sort"] == CLASSES


def test_vector_drawing_is_readable_at_a_glance():
    """Six-modality vector data: short upright feature labels (index; the name is in the hover), a
    value axis with several ticks and room for the bars (Streamlit fits the height around axes)."""
    import numpy as np

    from precal.dashboard.charts import lab_inputs

    names = [f"vector_1[{k}]" for k in range(16)]
    spec = lab_inputs.vector_chart(np.linspace(-3, 3, 16), names, np.zeros(16), "vector_1 (model input)", "a.u.")
    x = spec["encoding"]["x"]
    assert x["field"] == "index" and x["axis"]["labelAngle"] == 0
    assert spec["encoding"]["y"]["axis"]["tickCount"] >= 5
    assert spec["height"] >= 280
    assert {"field": "feature"} in spec["encoding"]["tooltip"]


def test_heatmap_labels_are_readable():
    """26 MFCC rows: labels at 11 px with room for each (every other one), the first always."""
    import numpy as np

    from precal.dashboard.charts import lab_inputs

    rows = [f"c{k}" for k in range(1, 13)] + ["logE"] + [f"Δc{k}" for k in range(1, 13)] + ["ΔlogE"]
    spec = lab_inputs.heatmap_chart(np.linspace(0, 1.3, 40), np.zeros((40, 26)), rows, np.zeros((40, 26)),
                                    "audio", "value", "time (s)", "MFCC")
    axis = spec["encoding"]["y"]["axis"]
    assert axis["labelFontSize"] >= 11 and axis["values"][0] == "c1"
    assert spec["height"] / len(rows) * (len(rows) / len(axis["values"])) >= 14
