"""Issue 20, item 1 (data loss): precal never deletes or overwrites what it did not write.

Each case snapshots the whole tree first and checks afterwards that every file that existed still
exists with the same bytes, on every surface that writes: the Python API (save_checkpoint,
save_dataset, convert), and the CLI (train, convert, evaluate, robustness).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from precal.checkpoint import load_checkpoint, save_checkpoint
from precal.cli import main
from precal.data.converters import convert
from precal.data.dataset import Preprocessor
from precal.data.storage import load_dataset, save_dataset
from precal.models.model import ModelConfig, MultimodalModel
from precal.safe_write import UnsafeWriteError
from tests.corpus import (MODEL, SCHEMA, assert_unchanged, cli_error, one_line, snapshot, tiny_checkpoint,  # noqa: E402
                    tiny_data, tiny_dataset)


def _model() -> MultimodalModel:
    return MultimodalModel(SCHEMA, ModelConfig(**MODEL))


WRITERS = {
    "checkpoint": lambda out, **kw: save_checkpoint(out, _model(), Preprocessor(), **kw),
    "data set": lambda out, **kw: save_dataset(tiny_data(), out, **kw),
}


def _foreign(folder: Path) -> Path:
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.bin").write_bytes(b"\0\1\2")
    return folder


# ------------------------------------------------------------------------------------ Python API


@pytest.mark.parametrize("kind", list(WRITERS))
@pytest.mark.parametrize("case, message", [
    ("foreign folder", "is not empty and is not a precal"),
    ("file", "is a file"),
    ("symlink", "symbolic link"),
    ("working directory", "working directory"),
    ("ancestor of the working directory", "working directory"),
])
def test_api_refuses_targets_it_did_not_write(tmp_path, monkeypatch, kind, case, message):
    home = tmp_path / "home"
    _foreign(home)
    if case == "foreign folder":
        target = home
    elif case == "file":
        target = home / "thesis.tex"
    elif case == "symlink":
        target = tmp_path / "link"
        target.symlink_to(home)
    elif case == "working directory":
        monkeypatch.chdir(home)
        target = Path(".")
    else:
        monkeypatch.chdir(home / "sub")
        target = Path("..")
    before = snapshot(tmp_path)
    with pytest.raises(UnsafeWriteError) as err:
        WRITERS[kind](target)
    assert message in one_line(str(err.value))
    assert_unchanged(before, snapshot(tmp_path))


@pytest.mark.parametrize("kind", list(WRITERS))
def test_api_refuses_the_input_folder_and_what_holds_it(tmp_path, kind):
    data = tiny_dataset(tmp_path / "inputs" / "data")
    before = snapshot(tmp_path)
    for target in (data, data.parent):
        with pytest.raises(UnsafeWriteError, match="input folder"):
            WRITERS[kind](target, inputs=[data])
    assert_unchanged(before, snapshot(tmp_path))


@pytest.mark.parametrize("kind", list(WRITERS))
def test_api_replaces_its_own_output_only_when_asked(tmp_path, kind):
    out = tmp_path / "out"
    WRITERS[kind](out)
    before = snapshot(tmp_path)
    with pytest.raises(UnsafeWriteError, match="--overwrite"):
        WRITERS[kind](out)
    assert_unchanged(before, snapshot(tmp_path))
    WRITERS[kind](out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or set-aside folder left
    (out / "notes.txt").write_text("mine")  # a user's file in precal's folder: never replaced
    before = snapshot(tmp_path)
    with pytest.raises(UnsafeWriteError, match="notes.txt"):
        WRITERS[kind](out, overwrite=True)
    assert_unchanged(before, snapshot(tmp_path))


def test_an_empty_folder_is_filled_and_a_failed_write_keeps_the_old_checkpoint(tmp_path):
    (tmp_path / "empty").mkdir()
    save_checkpoint(tmp_path / "empty", _model(), Preprocessor())
    assert load_checkpoint(tmp_path / "empty").name == "empty"
    before = snapshot(tmp_path)
    with pytest.raises(TypeError):  # fails while writing: metrics that are not JSON
        save_checkpoint(tmp_path / "empty", _model(), Preprocessor(), metrics={"x": object()}, overwrite=True)
    assert_unchanged(before, snapshot(tmp_path))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(st.sampled_from(["config.json", "dataset.json", "model.safetensors", "data.npz",
                                              "metrics.json", "eval_test.json", "a.txt", ".hidden"]),
                             st.binary(max_size=64), min_size=1, max_size=5),
       kind=st.sampled_from(list(WRITERS)), overwrite=st.booleans())
def test_any_folder_precal_did_not_write_is_left_alone(tmp_path_factory, files, kind, overwrite):
    """Files named like precal's own but not carrying its format marker are not precal's."""
    root = tmp_path_factory.mktemp("tree")
    target = root / "target"
    target.mkdir()
    for name, payload in files.items():
        (target / name).write_bytes(payload)
    before = snapshot(root)
    with pytest.raises(UnsafeWriteError):
        WRITERS[kind](target, overwrite=overwrite)
    assert_unchanged(before, snapshot(root))


def test_convert_refuses_its_source_before_reading_it(tmp_path):
    src = _foreign(tmp_path / "raw")
    before = snapshot(tmp_path)
    for out in (src, tmp_path):
        with pytest.raises(UnsafeWriteError, match="input folder"):
            convert("utd-mhad", src, out)
    assert_unchanged(before, snapshot(tmp_path))


# ------------------------------------------------------------------------------------------ CLI


def _train(data: Path, out: Path | str, *extra: str) -> int:
    return main(["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "8",
                 "--dim", "8", "--shared-dim", "4", "--backbone", "conv", "--selection", "last",
                 "--length", "acc=8", "--length", "cam=3", "--quiet", *extra])


@pytest.mark.parametrize("where, message", [
    ("data", "input folder"), ("data parent", "input folder"), ("cwd", "working directory"),
    ("cwd parent", "working directory"), ("foreign", "not a precal checkpoint"), ("file", "is a file"),
])
def test_cli_train_refuses_outputs_it_would_destroy(tmp_path, monkeypatch, capsys, where, message):
    data = tiny_dataset(tmp_path / "sets" / "data")
    work = _foreign(tmp_path / "work")
    other = _foreign(tmp_path / "other")
    monkeypatch.chdir(work / "sub")
    out = {"data": data, "data parent": data.parent, "cwd": Path("."), "cwd parent": Path(".."),
           "foreign": other, "file": other / "thesis.tex"}[where]
    before = snapshot(tmp_path)
    assert _train(data, out) == 2
    assert message in cli_error(capsys, "train")
    assert_unchanged(before, snapshot(tmp_path))


def test_cli_train_overwrites_its_own_checkpoint_only_with_overwrite(tmp_path, capsys):
    data = tiny_dataset(tmp_path / "data")
    out = tmp_path / "ck"
    assert _train(data, out) == 0
    capsys.readouterr()
    before = snapshot(tmp_path)
    assert _train(data, out, "--seed", "1") == 2
    assert "--overwrite" in cli_error(capsys, "train")
    assert_unchanged(before, snapshot(tmp_path))
    assert _train(data, out, "--seed", "1", "--overwrite") == 0
    assert load_checkpoint(out).training["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "data"]


def test_cli_convert_refuses_and_overwrites_only_its_own_data_set(tmp_path, monkeypatch, capsys):
    synth = ["--kinds", "vector", "--samples", "24", "--classes", "2"]
    out = tmp_path / "synthetic"
    assert main(["convert", "synthetic", str(out), *synth]) == 0
    capsys.readouterr()
    foreign = _foreign(tmp_path / "mine")
    monkeypatch.chdir(_foreign(tmp_path / "work"))
    before = snapshot(tmp_path)
    cases = [(foreign, "not a precal data set", ["--overwrite"]), (Path("."), "working directory", ["--overwrite"]),
             (out, "--overwrite", [])]
    for target, message, extra in cases:
        assert main(["convert", "synthetic", str(target), *synth, "--seed", "3", *extra]) == 2
        line = cli_error(capsys, "convert")
        assert message in line and "OUT" in line
    assert main(["convert", "utd-mhad", str(foreign), str(foreign)]) == 2
    assert "input folder" in cli_error(capsys, "convert")
    assert_unchanged(before, snapshot(tmp_path))
    old = (out / "data.npz").read_bytes()
    assert main(["convert", "synthetic", str(out), *synth, "--seed", "3", "--overwrite"]) == 0
    assert (out / "data.npz").read_bytes() != old and len(load_dataset(out)) == 24


def test_cli_evaluate_never_writes_through_links(tmp_path, capsys):
    data = tiny_dataset(tmp_path / "data")
    real = tiny_checkpoint(tmp_path / "shared" / "ck", data)
    link = tmp_path / "mine"
    link.symlink_to(real)
    outside = tmp_path / "important.json"
    outside.write_text("keep")
    before = snapshot(tmp_path)
    assert main(["evaluate", str(link), "--data", str(data)]) == 2
    assert "symbolic link" in cli_error(capsys, "evaluate")
    assert main(["evaluate", str(real), "--data", str(data), "--split", "../../important"]) == 2
    assert "split name" in cli_error(capsys, "evaluate")
    (real / "eval_test.json").symlink_to(outside)
    before = snapshot(tmp_path)
    assert main(["evaluate", str(real), "--data", str(data)]) == 2
    assert "eval_test.json" in cli_error(capsys, "evaluate")
    assert_unchanged(before, snapshot(tmp_path))
    (real / "eval_test.json").unlink()
    assert main(["evaluate", str(real), "--data", str(data)]) == 0
    assert json.loads((real / "eval_test.json").read_text())["split"] == "test"
    assert not [p for p in real.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_cli_robustness_out_must_be_a_file_precal_may_replace(tmp_path, capsys):
    data = tiny_dataset(tmp_path / "data")
    ck = tiny_checkpoint(tmp_path / "ck", data)
    table = tmp_path / "notes.csv"
    table.write_text("a,b\n1,2\n")
    sweep = ["robustness", str(ck), "--data", str(data), "--corruptions", "gaussian_noise", "--severities", "1"]
    before = snapshot(tmp_path)
    for out, message in ((tmp_path, "is a folder"), (table, "not a table precal wrote")):
        assert main([*sweep, "--out", str(out), "--overwrite"]) == 2
        assert message in cli_error(capsys, "robustness")
    assert_unchanged(before, snapshot(tmp_path))
    out = tmp_path / "r.csv"
    assert main([*sweep, "--out", str(out)]) == 0
    capsys.readouterr()
    before = snapshot(tmp_path)
    assert main([*sweep, "--out", str(out)]) == 2
    assert "--overwrite" in cli_error(capsys, "robustness")
    assert_unchanged(before, snapshot(tmp_path))
    os.utime(out, (0, 0))
    assert main([*sweep, "--out", str(out), "--overwrite"]) == 0
    assert out.stat().st_mtime > 0 and (tmp_path / "r.summary.csv").is_file()
