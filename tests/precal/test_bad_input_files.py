"""Issue 20, items 2-5 for files: a hostile or careless checkpoint or data set costs one line.

Each case damages a freshly built tiny checkpoint or data set and is run on two surfaces, the Python
API (load_checkpoint / load_dataset) and the CLI (``precal info``), under a deadline: a few bytes
asking for a billion layers or a terabyte of steps must be refused by a check, not by running out of
memory. The message must name the field, and nothing on disk may change.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from precal import limits
from precal.checkpoint import CheckpointError, load_checkpoint
from precal.cli import main
from precal.data.dataset import Preprocessor
from precal.data.schema import SchemaError
from precal.data.storage import DataFormatError, build_ragged, load_dataset
from tests.corpus import (SCHEMA, assert_unchanged, cli_error, deadline, edit_json, one_line, snapshot,  # noqa: E402
                    tiny_checkpoint, tiny_data, tiny_dataset)


DEADLINE_S = 30


def _set(*path_and_value):
    """A change to a JSON object: set obj[k1][k2]... = value."""
    *keys, value = path_and_value

    def change(obj):
        for k in keys[:-1]:
            obj = obj[k]
        obj[keys[-1]] = value
    return change


CONFIG_CASES = {
    "a billion fusion layers": (_set("model", "fusion_layers", 10 ** 9), "fusion_layers"),
    "dim 20000": (_set("model", "dim", 20000), "dim"),
    "negative dim": (_set("model", "dim", -16), "dim"),
    "heads not dividing dim": (lambda c: (_set("model", "backbone", "sequence")(c), _set("model", "heads", 3)(c)),
                               "heads"),
    "calibration 'no'": (_set("model", "calibration", "no"), "calibration"),
    "dropout 1.5": (_set("model", "dropout", 1.5), "dropout"),
    "fractional width": (_set("model", "head_hidden", 8.5), "head_hidden"),
    "model modalities as a string": (_set("model", "modalities", "acc"), "modalities"),
    "absurd model within every field's bound": (
        lambda c: c["model"].update(backbone="sequence", dim=4096, heads=4, fusion_layers=64), "M parameters"),
    "schema modalities as a string": (_set("schema", "modalities", "depth"), "schema.modalities"),
    "schema modalities as a number": (_set("schema", "modalities", 5), "schema.modalities"),
    "class_names as a number": (_set("schema", "class_names", 7), "class_names"),
    "class_names as a string": (_set("schema", "class_names", "xy"), "class_names"),
    "a terabyte step": (lambda c: c["schema"]["modalities"][0].update(step_shape=[10 ** 12]), "step_shape"),
    "step shape of words": (lambda c: c["schema"]["modalities"][0].update(step_shape=["three"]), "step_shape"),
    "preprocessing length 1e9": (_set("preprocessing", "lengths", "acc", 10 ** 9), "lengths"),
    "statistics of the wrong size": (_set("preprocessing", "mean", "acc", [0.0] * 7), "preprocessing.mean"),
    "training as a list": (_set("training", [1, 2]), "training"),
    "weights of another shape": (_set("model", "dim", 16), "shape"),
}


def _damaged_checkpoint(tmp_path: Path, change) -> Path:
    ck = tiny_checkpoint(tmp_path / "ck")
    edit_json(ck / "config.json", change)
    return ck


@pytest.mark.parametrize("surface", ["api", "cli"])
@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_hostile_checkpoint_config_is_one_line_naming_the_field(tmp_path, capsys, case, surface):
    change, field = CONFIG_CASES[case]
    ck = _damaged_checkpoint(tmp_path, change)
    before = snapshot(tmp_path)
    with deadline(DEADLINE_S):
        if surface == "api":
            with pytest.raises(CheckpointError) as err:
                load_checkpoint(ck)
            message = one_line(str(err.value))
        else:
            assert main(["info", str(ck)]) == 2
            message = cli_error(capsys, "info")
    assert field in message, message
    assert_unchanged(before, snapshot(tmp_path))


FILE_CASES = {
    "metrics.json is a list": ("metrics.json", "[1, 2]", "metrics.json"),
    "history.json is an object": ("history.json", '{"epoch": 1}', "history.json"),
    "history entries are numbers": ("history.json", "[1, 2]", "entry 0"),
    "history modalities is a list": ("history.json", '[{"epoch": 1, "modalities": [1]}]', "modalities"),
    "config nested 200k deep": ("config.json", "[" * 200_000 + "]" * 200_000, "nested too deeply"),
    "config of 9 MB": ("config.json", '{"format": "precal-checkpoint", "pad": "' + "x" * 9_000_000 + '"}', "MB"),
    "config not text": ("config.json", b"\xff\xfe\x00", "not text"),
}


@pytest.mark.parametrize("surface", ["api", "cli"])
@pytest.mark.parametrize("case", list(FILE_CASES))
def test_malformed_checkpoint_files_are_one_line(tmp_path, capsys, case, surface):
    name, payload, expected = FILE_CASES[case]
    ck = tiny_checkpoint(tmp_path / "ck")
    path = ck / name
    path.write_bytes(payload if isinstance(payload, bytes) else payload.encode())
    before = snapshot(tmp_path)
    with deadline(DEADLINE_S):
        if surface == "api":
            with pytest.raises(CheckpointError) as err:
                load_checkpoint(ck)
            message = one_line(str(err.value))
        else:
            assert main(["info", str(ck)]) == 2
            message = cli_error(capsys, "info")
    assert expected in message
    assert_unchanged(before, snapshot(tmp_path))


_FIELD_VALUES = st.one_of(st.integers(-10, 40), st.integers(10 ** 5, 10 ** 12), st.floats(allow_nan=True),
                          st.booleans(), st.none(), st.text(max_size=5), st.lists(st.integers(0, 3), max_size=2))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(["dim", "shared_dim", "fusion_layers", "heads", "head_hidden",
                                                "dropout", "calibration", "instance_gate", "backbone"]),
                               _FIELD_VALUES, min_size=1, max_size=3))
def test_any_model_config_loads_within_bounds_or_is_refused_in_one_line(tmp_path_factory, monkeypatch, changes):
    monkeypatch.setattr(limits, "MAX_PARAMETERS", 2_000_000)  # keeps the accepted examples small
    ck = _damaged_checkpoint(tmp_path_factory.mktemp("h"), lambda c: c["model"].update(changes))
    with deadline(DEADLINE_S):
        try:
            ckpt = load_checkpoint(ck)
        except CheckpointError as exc:
            one_line(str(exc))
            return
    cfg = ckpt.config  # accepted: every field it holds is of its type and in its range
    assert all(type(getattr(cfg, k)) is int and 1 <= getattr(cfg, k) <= limits.MAX_WIDTH
               for k in ("dim", "shared_dim", "fusion_layers", "heads", "head_hidden"))
    assert type(cfg.calibration) is bool and 0 <= cfg.dropout < 1
    assert sum(p.numel() for p in ckpt.model.parameters()) <= 2_000_000


# ----------------------------------------------------------------------------------------- data


def _npz_arrays(folder: Path) -> dict:
    with np.load(folder / "data.npz") as z:
        return {k: z[k] for k in z.files}


def _rewrite_npz(folder: Path, change) -> None:
    arrays = _npz_arrays(folder)
    change(arrays)
    np.savez(folder / "data.npz", **arrays)


def _forged_npz(folder: Path) -> None:
    """labels declared as 10**10 int64 values in a member that stores a few bytes."""
    arrays = _npz_arrays(folder)
    with zipfile.ZipFile(folder / "data.npz", "w") as zf:
        for k, v in arrays.items():
            with zf.open(f"{k}.npy", "w") as fh:
                if k == "labels":
                    np.lib.format.write_array_header_1_0(fh, {"descr": "<i8", "fortran_order": False,
                                                              "shape": (10 ** 10,)})
                    fh.write(b"\0" * 64)
                else:
                    np.lib.format.write_array(fh, v, allow_pickle=False)


def _bomb_npz(folder: Path) -> None:
    """A real zip bomb: labels as 96 MB of zeros, deflated to ~0.1 MB (written in chunks)."""
    arrays = _npz_arrays(folder)
    with zipfile.ZipFile(folder / "data.npz", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k, v in arrays.items():
            with zf.open(f"{k}.npy", "w", force_zip64=True) as fh:
                if k == "labels":
                    n = 96 * 1024 * 1024 // 8
                    np.lib.format.write_array_header_1_0(fh, {"descr": "<i8", "fortran_order": False, "shape": (n,)})
                    for _ in range(96):
                        fh.write(bytes(1024 * 1024))
                else:
                    np.lib.format.write_array(fh, v, allow_pickle=False)


def _nan_in_s3(folder: Path) -> None:
    def change(a):
        a["acc.values"] = a["acc.values"].copy()
        a["acc.values"][a["acc.offsets"][3], 0] = np.nan
    _rewrite_npz(folder, change)


DATA_CASES = {
    "schema modalities as a string": (lambda d: edit_json(d / "dataset.json", _set("schema", "modalities", "acc")),
                                      "schema.modalities"),
    "class_names as a number": (lambda d: edit_json(d / "dataset.json", _set("schema", "class_names", 7)),
                                "class_names"),
    "split index 1e30": (lambda d: edit_json(d / "dataset.json", _set("splits", "test", [1e30])), "split 'test'"),
    "split index 10**30": (lambda d: edit_json(d / "dataset.json", _set("splits", "test", [10 ** 30])), "outside"),
    "split of words": (lambda d: edit_json(d / "dataset.json", _set("splits", "test", ["abc"])), "split 'test'"),
    "step shape of words": (lambda d: edit_json(d / "dataset.json", lambda h: h["schema"]["modalities"][0].update(
        step_shape=["3"])), "step_shape"),
    "a terabyte step": (lambda d: edit_json(d / "dataset.json", lambda h: h["schema"]["modalities"][0].update(
        step_shape=[10 ** 12])), "step_shape"),
    "header nested 200k deep": (lambda d: (d / "dataset.json").write_text("[" * 200_000 + "]" * 200_000),
                                "nested too deeply"),
    "complex values": (lambda d: _rewrite_npz(d, lambda a: a.update({"acc.values": a["acc.values"] * (1 + 1j)})),
                       "real numbers"),
    "object arrays": (lambda d: _rewrite_npz(d, lambda a: a.update(labels=a["labels"].astype(object))),
                      "objects"),
    "forged array size": (_forged_npz, "declares"),
    "zip bomb": (_bomb_npz, "declares"),
    "NaN values": (_nan_in_s3, "first in sample 's3'"),
}


@pytest.mark.parametrize("surface", ["api", "cli"])
@pytest.mark.parametrize("case", list(DATA_CASES))
def test_hostile_data_set_is_one_line_naming_the_problem(tmp_path, capsys, case, surface):
    damage, expected = DATA_CASES[case]
    data = tiny_dataset(tmp_path / "data")
    damage(data)
    before = snapshot(tmp_path)
    with deadline(DEADLINE_S):
        if surface == "api":
            with pytest.raises(SchemaError) as err:  # DataFormatError is a SchemaError
                load_dataset(data)
            message = one_line(str(err.value))
        else:
            assert main(["info", str(data)]) == 2
            message = cli_error(capsys, "info")
    assert expected in message and "np.str_" not in message, message
    assert_unchanged(before, snapshot(tmp_path))


def test_the_data_budget_is_checked_before_reading(tmp_path, monkeypatch):
    data = tiny_dataset(tmp_path / "data")
    monkeypatch.setattr(limits, "MAX_DATA_BYTES", 1000)
    with pytest.raises(DataFormatError, match="declares"):
        load_dataset(data)


# ------------------------------------------------------------------------- building data in code


def test_a_vector_modality_from_an_n_by_f_array_gets_a_readable_message():
    rows = np.zeros((5, 2), np.float32)  # (N, F): one row per sample, not (1, F) per sample
    with pytest.raises(DataFormatError) as err:
        build_ragged(list(rows), (2,), np.float32)
    message = one_line(str(err.value))
    assert "sample 0 has shape (2,)" in message and "(1, 2)" in message
    assert build_ragged(list(rows[:, None]), (2,), np.float32).values.shape == (5, 2)


def test_complex_samples_are_refused_when_building():
    with pytest.raises(DataFormatError, match="complex"):
        build_ragged([np.ones((2, 3), np.complex64)], (3,), np.float32)


def test_a_modality_absent_from_every_training_sample_still_preprocesses():
    data = tiny_data()
    data.modalities["meta"] = build_ragged([None] * 24, (2,), np.float32)  # absent everywhere
    pre = Preprocessor().fit(data, data.split("train"))
    x = np.array([[1.5, -2.0]], np.float32)
    assert np.array_equal(pre.apply(SCHEMA.modality("meta"), x), x)  # identity statistics of the right size
