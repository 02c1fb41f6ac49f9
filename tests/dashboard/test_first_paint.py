"""The stored first paint: a new session's start page drawn before torch is imported, the same as the
full run draws it, and only for the very inputs it was made from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402

from precal.dashboard import head_start, settings  # noqa: E402
from precal.dashboard.backend import first_paint  # noqa: E402
from precal.dashboard.backend.first_paint import (FirstPaint, MetricTile, SidebarShown, StartContent,  # noqa: E402
                                                  load, save)
from precal.dashboard.settings import DashboardArgs  # noqa: E402
from tests.dashboard.fixtures import tiny_checkpoints  # noqa: E402
from tests.dashboard.test_app import APP, TIMEOUT, _env, _restore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _paint(data_path: str = "") -> FirstPaint:
    side = SidebarShown(pair_keys=("a", "b"), pair_labels=("pair a", "pair b"), pair="b",
                        references=("trained baseline", "calibrator switched off"), reference="trained baseline",
                        splits=("train", "test"), split_labels=("train (8 samples)", "test (4 samples)"), split="test",
                        trained=("train",), files=("data: `x`",), problems=("checkpoint y: broken",), notes=())
    start = StartContent(modalities=("audio", "lips"), showing="pair b, chosen in the sidebar",
                         tiles=(MetricTile("clean", "90.0%", "+1.0 pts", "normal", "auto", ""),),
                         source="From the stored sweep", example="The lab opens on …", problem="",
                         needs_calibrated=False, button="Open the lab: lips swapped")
    return FirstPaint(side, start, data_path)


@pytest.fixture
def inputs(tmp_path) -> Dict[str, Path]:
    ckpts = tmp_path / "checkpoints"
    for name in ("m_calon", "m_caloff"):
        (ckpts / name).mkdir(parents=True)
        (ckpts / name / "config.json").write_text("{}")
        (ckpts / name / "model.safetensors").write_bytes(b"weights")
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.npz").write_bytes(b"arrays")
    cache = tmp_path / "cache"
    return {"checkpoints": ckpts, "data": data, "cache": cache}


def _args(inputs, **kw) -> DashboardArgs:
    return DashboardArgs((str(inputs["checkpoints"]),), kw.get("data"), kw.get("model"), kw.get("weights"))


def test_round_trip_for_the_same_inputs(inputs):
    paint = _paint(str(inputs["data"]))
    save(paint, _args(inputs), inputs["cache"])
    assert load(_args(inputs), inputs["cache"]) == paint


def _later(path: Path) -> None:
    """Rewrite a file so that its stamp surely changes (same size, a later time)."""
    content = path.read_bytes()
    time.sleep(0.01)
    path.write_bytes(content)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10_000_000))


def test_a_sweep_beside_a_named_checkpoint_folder_counts(inputs):
    """Named one by one, checkpoint folders take their stored sweep also from the folder holding them."""
    folders = inputs["checkpoints"]
    args = DashboardArgs((str(folders / "m_calon"), str(folders / "m_caloff")), None, None, None)
    save(_paint(), args, inputs["cache"])
    assert load(args, inputs["cache"]) == _paint()
    (folders / "robustness.csv").write_text("checkpoint,value\n")
    assert load(args, inputs["cache"]) is None


@pytest.mark.parametrize("change", ["weights", "config", "new_sweep", "new_checkpoint", "data", "arguments"])
def test_any_change_of_its_inputs_makes_it_stale(inputs, change):
    args = _args(inputs)
    save(_paint(str(inputs["data"])), args, inputs["cache"])
    folder = inputs["checkpoints"] / "m_calon"
    if change == "weights":
        _later(folder / "model.safetensors")
    elif change == "config":
        (folder / "config.json").write_text('{"seed": 1}')
    elif change == "new_sweep":
        (folder / "robustness.csv").write_text("checkpoint,value\n")
    elif change == "new_checkpoint":
        (inputs["checkpoints"] / "n_calon").mkdir()
        (inputs["checkpoints"] / "n_calon" / "config.json").write_text("{}")
    elif change == "data":
        _later(inputs["data"] / "data.npz")
    else:
        args = _args(inputs, data=str(inputs["data"]))
    assert load(args, inputs["cache"]) is None


def test_own_models_have_none(inputs):
    args = _args(inputs, model="my_model.py:build")
    assert save(_paint(), args, inputs["cache"]) is None
    assert load(args, inputs["cache"]) is None


@pytest.mark.parametrize("content", [
    b"", b"\x80\x04pickle", b"[1, 2]", b'{"format": 1}', b"{" * 100_000, b" " * (first_paint.MAX_BYTES + 1),
    "wrong types", "inconsistent choice", "wrong key", "delta style st.metric refuses"])
def test_a_file_that_is_not_a_first_paint_is_not_used(inputs, content):
    args = _args(inputs)
    target = save(_paint(), args, inputs["cache"])
    record = json.loads(target.read_text())
    if content == "wrong types":
        record["paint"]["start"]["tiles"] = [{"label": 1}]
    elif content == "inconsistent choice":
        record["paint"]["sidebar"]["pair"] = "c"
    elif content == "wrong key":
        record["key"] = "0" * 32
    elif content == "delta style st.metric refuses":
        record["paint"]["start"]["tiles"][0]["delta_color"] = "bogus"
    if isinstance(content, str):
        content = json.dumps(record).encode()
    target.write_bytes(content)
    assert load(args, inputs["cache"]) is None


def test_only_the_newest_are_kept_and_nothing_else_is_removed(inputs):
    cache = inputs["cache"]
    cache.mkdir(parents=True)
    (cache / "notes.json").write_text("mine")
    for i in range(first_paint.KEEP + 3):
        (inputs["checkpoints"] / "m_calon" / "config.json").write_text(json.dumps({"i": i}))
        save(_paint(), _args(inputs), cache)
    written = [p for p in cache.iterdir() if p.name != "notes.json"]
    assert len(written) == first_paint.KEEP
    assert (cache / "notes.json").read_text() == "mine"
    assert load(_args(inputs), cache) == _paint()  # the newest survives


# ---- in the app ---------------------------------------------------------------------------------


def _sweep_of_both(folder: Path, calibrated: str, uncalibrated: str) -> None:
    """A stored ``robustness.csv`` of the pair (both models, noise and swaps): the start page then
    shows its three headline figures, with their help texts and delta colours."""
    rows = ["checkpoint,role,modality,corruption,severity,metric,value,n,alpha_inertial,alpha_skeleton,alpha_depth,"
            "auroc_conflict,auroc_support,auroc_alpha"]
    for name, role, clean, kept in ((calibrated, "calibrated", 0.8, 0.6), (uncalibrated, "uncalibrated", 0.75, 0.4)):
        for corruption in ("gaussian_noise", "swap"):
            for sev, value in ((0, clean), (3, kept), (5, kept - 0.1)):
                gated = role == "calibrated"
                alphas = "1.1,1.0,1.0" if gated else ",,"
                aurocs = ",," if sev == 0 or not gated else "0.7,0.8,0.9"
                rows.append(f"{name},{role},depth,{corruption},{sev},accuracy,{value},12,{alphas},{aurocs}")
    (folder / "robustness.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture
def served(monkeypatch, tmp_path) -> Iterator[List[Path]]:
    """Copies of the tiny pair with a stored sweep, served with an empty cache folder of their own."""
    import shutil

    tiny = tiny_checkpoints()
    pair = [tmp_path / "models" / tiny[k].name for k in ("on", "off")]
    for source, copy in zip((tiny["on"], tiny["off"]), pair):
        shutil.copytree(source, copy)
    _sweep_of_both(pair[0], pair[0].name, pair[1].name)
    monkeypatch.setattr(settings, "CACHE_DIR", tmp_path / "cache")
    old = _env(pair, str(tiny["data"]))
    try:
        yield pair
    finally:
        _restore(old)
        head_start.STARTED.clear()
        head_start.DONE.clear()
        head_start._holds_began.clear()
        head_start._hold_until[0] = 0.0


def _screen(at: AppTest) -> Dict[str, list]:
    """What a user sees and can choose, in the sidebar and on the page."""
    out: Dict[str, list] = {}
    for where, tree in (("sidebar", at.sidebar), ("main", at.main)):
        out[f"{where} selectbox"] = [(w.label, list(w.options), w.value) for w in tree.selectbox]
        out[f"{where} radio"] = [(w.label, list(w.options), w.value) for w in tree.radio]
        out[f"{where} caption"] = [c.value for c in tree.caption]
        out[f"{where} expander"] = [e.label for e in tree.expander]
    out["title"] = [t.value for t in at.title]
    out["markdown"] = [m.value for m in at.main.markdown]
    out["metric"] = [(m.label, m.value, m.delta, m.proto.color, m.proto.direction, m.help) for m in at.metric]
    out["warning"] = [w.value for w in at.warning]
    out["button"] = [b.label for b in at.button]
    out["info"] = [i.value for i in at.info]
    out["error"] = [e.value for e in at.error]
    return out


def _fresh_session() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT)


def test_a_session_opened_during_the_head_start_sees_the_full_start_page(served, tmp_path):
    full = _fresh_session().run()
    assert not full.exception
    assert "_ctx" in full.session_state
    assert len(list((tmp_path / "cache" / "first_paint").glob("*.json"))) == 1  # stored by the start page
    assert len(full.metric) == 3  # the headline figures are there to compare

    head_start.STARTED.set()  # a server whose head start is still running
    early = _fresh_session().run()
    assert not early.exception
    assert "_ctx" not in early.session_state  # drawn from the first paint, not from the models
    assert _screen(early) == _screen(full)

    # the next run goes the full way, with the choices made on the first paint
    other = next(s for s in full.session_state["_ctx"].data.splits if s != early.sidebar.selectbox(key="split").value)
    early.sidebar.selectbox(key="split").set_value(other).run()
    assert not early.exception
    assert early.session_state["_ctx"].split == other


def test_the_button_on_the_first_paint_opens_the_lab(served):
    _fresh_session().run()
    head_start.STARTED.set()
    early = _fresh_session().run()
    assert "_ctx" not in early.session_state
    early.button(key="start_lab").click().run()
    assert not early.exception
    # the full run took the click: the lab opened on the prepared example, one modality swapped
    swapped = [k for k in early.session_state if k.startswith("lab_input_") and early.session_state[k] == "swap"]
    assert len(swapped) == 1


def test_no_first_paint_outside_the_head_start_or_away_from_the_defaults(served, tmp_path):
    _fresh_session().run()
    head_start.STARTED.set()
    head_start.DONE.set()  # the head start has finished: the full run is as fast
    assert "_ctx" in _fresh_session().run().session_state
    head_start.DONE.clear()
    linked = _fresh_session()
    linked.query_params["split"] = "train"  # a shared link: its choices need the models
    assert "_ctx" in linked.run().session_state

    # a session away from the defaults (any one choice) does not replace what a new session sees
    head_start.STARTED.clear()
    stored = {p: p.read_text() for p in (tmp_path / "cache" / "first_paint").glob("*.json")}
    for key, widget in (("split", "selectbox"), ("reference", "radio"), ("compare_mode", "radio")):
        session = _fresh_session().run()
        control = getattr(session.sidebar, widget)(key=key)
        values = (session.session_state["_ctx"].data.splits if key == "split"
                  else ["compare"] if key == "compare_mode" else control.options)
        control.set_value(next(v for v in values if v != control.value)).run()
        assert not session.exception
        assert session.session_state["_ctx"].shown is None, key
        session.switch_page("views/start.py").run()
        assert {p: p.read_text() for p in (tmp_path / "cache" / "first_paint").glob("*.json")} == stored, key


def test_the_first_paint_imports_no_torch(served, tmp_path):
    """In a fresh interpreter: the whole first run, drawn from a stored first paint, leaves torch
    (and pandas) unimported; that is what makes it fast."""
    _fresh_session().run()  # stores the first paint in tmp_path
    script = f"""
import json, sys
from pathlib import Path
from streamlit.testing.v1 import AppTest
from precal.dashboard import head_start, settings
settings.CACHE_DIR = Path({str(tmp_path / "cache")!r})
head_start.STARTED.set()
at = AppTest.from_file({str(APP)!r}, default_timeout={TIMEOUT}).run()
print(json.dumps({{"torch": "torch" in sys.modules, "pandas": "pandas" in sys.modules, "numpy": "numpy" in sys.modules,
                  "full": "_ctx" in at.session_state, "exception": [str(e.value) for e in at.exception],
                  "titles": [t.value for t in at.main.title], "metrics": len(at.metric)}}))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=str(ROOT), capture_output=True, text=True, timeout=300,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["exception"] == [] and not seen["full"]
    assert seen["titles"] == ["Pre-fusion calibration in one minute"]
    assert not seen["torch"] and not seen["pandas"] and not seen["numpy"]
    assert seen["metrics"] == 3


def test_the_stored_content_is_the_drawn_content(served, tmp_path):
    """What is stored is what the full run drew: its sentence about the example included."""
    full = _fresh_session().run()
    stored = json.loads(next((tmp_path / "cache" / "first_paint").glob("*.json")).read_text())["paint"]
    assert stored["start"]["example"] in [m.value for m in full.main.markdown]
    assert [t["value"] for t in stored["start"]["tiles"]] == [m.value for m in full.metric]
    assert stored["start"]["button"] == full.button(key="start_lab").label
    side = full.sidebar
    assert stored["sidebar"]["pair"] == side.selectbox(key="pair_key").value
    assert stored["sidebar"]["split"] == side.selectbox(key="split").value
    assert stored["sidebar"]["reference"] == side.radio(key="reference").value
    assert stored["sidebar"]["files"] == [c.value for c in side.caption if "sha256" in c.value or "data:" in c.value]


def test_a_first_paint_that_cannot_be_drawn_gives_way_to_the_full_run(served, tmp_path, monkeypatch):
    """Whatever a stored first paint holds, the session sees a page, never a traceback."""
    _fresh_session().run()
    head_start.STARTED.set()
    from precal.dashboard.ui import first_paint as ui_first_paint

    def refuse(*_args, **_kwargs):
        raise ValueError("Streamlit refuses this")

    monkeypatch.setattr(ui_first_paint, "pair_selector", refuse)
    at = _fresh_session().run()
    assert not at.exception
    assert "_ctx" in at.session_state  # the full run drew it
    assert [t.value for t in at.main.title] == ["Pre-fusion calibration in one minute"]


def test_leftover_choices_of_an_interrupted_first_run_take_the_full_way(served):
    """A run stopped between reading a shared link and building the context leaves choices behind:
    the session is no longer at its defaults, so no first paint."""
    _fresh_session().run()
    head_start.STARTED.set()
    at = _fresh_session()
    at.session_state["chosen_split"] = "train"
    assert "_ctx" in at.run().session_state


def test_a_data_error_is_not_stored_as_the_first_paint(served, tmp_path, monkeypatch):
    monkeypatch.setenv("PRECAL_DATA", str(tmp_path / "not_yet"))
    at = _fresh_session().run()
    assert any("not_yet" in e.value for e in at.error)
    assert not list((tmp_path / "cache" / "first_paint").glob("*.json"))
    # no data, no sample: the start page does not promise one ("the lab opens on a None sample")
    assert not any("lab opens on" in m.value for m in at.markdown)


def test_the_head_start_holds_back_only_so_long(monkeypatch):
    """A first paint being drawn holds the head start until it is drawn (plus DRAW_S), at most
    MAX_HOLD_S for one and MAX_TOTAL_HOLD_S for all: sessions that keep arriving cannot starve it."""
    clock = [100.0]
    monkeypatch.setattr(head_start.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(head_start, "_hold_until", [0.0])
    monkeypatch.setattr(head_start, "_holds_began", [])
    head_start.first_paint_begins()
    assert head_start._hold_until[0] == 100.0 + head_start.MAX_HOLD_S
    clock[0] = 100.5
    head_start.first_paint_drawn()
    assert head_start._hold_until[0] == 100.5 + head_start.DRAW_S
    for t in (101.0, 101.9, 102.8, 110.0):  # new sessions keep coming
        clock[0] = t
        head_start.first_paint_begins()
        assert head_start._hold_until[0] <= 100.0 + head_start.MAX_TOTAL_HOLD_S
    clock[0] = 100.0 + head_start.MAX_TOTAL_HOLD_S
    head_start.hold()  # returns at once: the total is used up
