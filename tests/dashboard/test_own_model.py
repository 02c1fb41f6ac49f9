"""Issue 23 in the dashboard: your own model (``precal dashboard --model F``), with a checkpoint or
without one, renders every page like a shipped model; the lab changes its prediction and gates;
pages say in one line what they show instead of what the model does not give; an upload never runs
a model's code."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

import pytest

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402

from precal.checkpoint import CheckpointError  # noqa: E402
from precal.dashboard.backend.data import split_batches  # noqa: E402
from precal.dashboard.backend.lab import LabSetting, lab_update  # noqa: E402
from precal.dashboard.backend.own_models import load_named_checkpoint, page_notes  # noqa: E402
from precal.dashboard.backend.pairs import pair_checkpoints  # noqa: E402
from precal.dashboard.backend.uploads import load_uploaded_checkpoint  # noqa: E402
from precal.dashboard.settings import (ENV_CHECKPOINTS, ENV_DATA, ENV_MODEL, ENV_WEIGHTS, DashboardArgs,  # noqa: E402
                                       parse_dashboard_args)
from precal.data.storage import load_dataset  # noqa: E402
from precal.models.model import CALIBRATED  # noqa: E402
from tests.dashboard.fixtures import LENGTHS, tiny_checkpoints  # noqa: E402
from tests.dashboard.test_app import APP, TIMEOUT, _restore  # noqa: E402
from tests.own_models import FACTORY, responsive_own_checkpoint, write_factory  # noqa: E402

PAGES = ["views/start.py", "views/overview.py", "views/explorer.py", "views/lab.py", "views/embeddings.py",
         "views/robustness.py", "views/training.py"]
KEYS = (ENV_CHECKPOINTS, ENV_DATA, ENV_MODEL, ENV_WEIGHTS, "PRECAL_DASHBOARD_WARMUP", "PRECAL_DASHBOARD_THREADS")


@pytest.fixture(scope="module")
def own(tmp_path_factory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("own-dash")
    data = tiny_checkpoints()["data"]
    ck = responsive_own_checkpoint(root / "own_calon", data, LENGTHS)
    return {"root": root, "data": data, "ck": ck, "logits_only": write_factory(root / "factories")}


def _app(checkpoints: Sequence[Path], data: Optional[Path], model: Optional[str]) -> Iterator[AppTest]:
    old = {k: os.environ.get(k) for k in KEYS}
    os.environ[ENV_CHECKPOINTS] = os.pathsep.join(str(c) for c in checkpoints)
    for key, value in ((ENV_DATA, data), (ENV_MODEL, model)):
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = str(value)
    os.environ.pop(ENV_WEIGHTS, None)
    os.environ["PRECAL_DASHBOARD_WARMUP"] = "0"
    os.environ["PRECAL_DASHBOARD_THREADS"] = "0"
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        at.run()
        yield at
    finally:
        _restore(old)


@pytest.fixture
def with_checkpoint(own) -> Iterator[AppTest]:
    yield from _app([own["ck"]], own["data"], FACTORY)


@pytest.fixture
def without_checkpoint(own) -> Iterator[AppTest]:
    yield from _app([], own["data"], own["logits_only"])


def _clean(at: AppTest, where: str) -> None:
    assert not at.exception, f"{where}: {[e.value for e in at.exception]}"
    assert not at.error, f"{where}: {[e.value for e in at.error]}"


def _markdown(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in at.markdown)


def _infos(at: AppTest) -> str:
    return "\n".join(str(i.value) for i in at.info)


def test_every_page_renders_with_an_own_checkpoint(with_checkpoint):
    at = with_checkpoint
    _clean(at, "start")
    options = at.selectbox(key="pair_key").options
    assert len(options) == 1 and "my_model.py:build" in options[0]  # only the model named, no shipped ones
    at.switch_page("views/overview.py").run()
    assert "is your own model" in _infos(at)  # the overview's one line on its parameter count
    for page in PAGES:
        at.switch_page(page).run()
        _clean(at, page)
        assert at.title, f"{page} shows no title"
    at.switch_page("views/robustness.py").run()
    assert "cannot split at its calibrator" in _infos(at)


def test_every_page_renders_without_a_checkpoint_and_says_what_it_stands_in_for(without_checkpoint):
    at = without_checkpoint
    _clean(at, "start")
    for page in PAGES:
        at.switch_page(page).run()
        _clean(at, page)
    at.switch_page("views/embeddings.py").run()
    assert "returns no `features`" in _infos(at)
    at.switch_page("views/training.py").run()
    assert any("has no history.json" in str(w.value) for w in at.warning)


def _changing_sample(own) -> tuple:
    """A test sample and a modality whose removal changes the calibrated model's prediction (found
    with the backend the lab page calls)."""
    ckpt = load_named_checkpoint(str(own["ck"]), FACTORY)
    pair = pair_checkpoints([ckpt])[0]
    data = load_dataset(own["data"])
    splits = split_batches(pair, data, "test")
    views = pair.views()
    for index in splits.indices:
        for m in ckpt.model.modalities:
            result = lab_update(views, splits, int(index), {m: LabSetting(remove=True)})
            if result.prediction_changed(CALIBRATED):
                return str(data.sample_ids[int(index)]), m, result
    pytest.fail("no removal changes the prediction of the fixture model")


def test_lab_changes_prediction_and_gates(own, with_checkpoint):
    sample, modality, result = _changing_sample(own)
    changes = result.change_table(CALIBRATED, result.corrupted[CALIBRATED].modalities)
    others = [m for m in changes.index if m != modality]
    assert changes.loc[others, "alpha"].abs().max() > 1e-4  # the other modalities' gates moved
    at = with_checkpoint
    at.switch_page("views/lab.py").run()
    at.selectbox(key="lab_sample").set_value(sample).run()
    _clean(at, "lab sample")
    assert "same as on the clean input" in _markdown(at) and "changed (clean:" not in _markdown(at)
    at.radio(key=f"lab_input_{modality}").set_value("remove").run()
    _clean(at, "lab removal")
    text = _markdown(at)
    assert f"{modality}: removed" in text
    assert "changed (clean:" in text


def test_page_notes_only_for_own_models(own):
    shipped = load_named_checkpoint(str(tiny_checkpoints()["on"]), FACTORY)  # a precal checkpoint: --model unused
    assert page_notes("lab", shipped) == [] and page_notes("overview", shipped) == []
    mine = load_named_checkpoint(str(own["ck"]), FACTORY)
    assert len(page_notes("lab", mine)) == 1 and len(page_notes("robustness", mine)) == 1


def test_upload_of_an_own_checkpoint_runs_no_code(own, tmp_path):
    marker = tmp_path / "imported"
    factory = write_factory(tmp_path / "f", "trap.py",
                            f"open({str(marker)!r}, 'w').close()\ndef build(schema):\n    raise SystemExit\n")
    folder = own["ck"]
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w") as zf:
        for p in folder.iterdir():
            data = p.read_bytes()
            if p.name == "config.json":
                data = data.replace(FACTORY.encode(), factory.encode())
            zf.writestr(f"up/{p.name}", data)
    with pytest.raises(CheckpointError, match="holds an own model built by .*trap.py:build; .* pass --model"):
        load_uploaded_checkpoint(payload.getvalue(), tmp_path / "uploads")
    assert not marker.exists()
    assert not any((tmp_path / "uploads").rglob("*.safetensors"))  # a refused upload leaves nothing behind


def test_model_arguments_reach_the_app(tmp_path):
    from precal.dashboard import launcher

    cmd = launcher.build_command([], str(tmp_path / "d"), 8765, "127.0.0.1", model="my_model.py:build",
                                 weights="w.safetensors")
    tail = cmd[cmd.index("--") + 1:]
    args = parse_dashboard_args(tail, {})
    assert args.model == f"{Path('my_model.py').resolve()}:build"
    assert args.weights == str(Path("w.safetensors").resolve())
    env = launcher.build_env([], None, base={ENV_MODEL: "stale.py:x"}, model="pkg.mod:make")
    assert env[ENV_MODEL] == "pkg.mod:make" and ENV_WEIGHTS not in env
    assert parse_dashboard_args([], {ENV_MODEL: "a.py:b", ENV_DATA: "d"}) == DashboardArgs((), "d", "a.py:b", None)
    assert parse_dashboard_args(["--model=x.py:y"], {ENV_MODEL: "a.py:b"}).model == "x.py:y"
