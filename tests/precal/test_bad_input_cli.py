"""Issue 20, items 3-6 on the command line: every bad argument is one line naming the option, exit
status 2, nothing written; options that quietly did nothing now do what they say.

Cases run ``precal.cli.main`` in-process on a tiny data set and checkpoint built in ``tmp_path``; the
whole tree is snapshotted before and compared after every refusal.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from precal.cli import main
from precal.data.storage import build_ragged, save_dataset
from tests.corpus import assert_unchanged, cli_error, snapshot, tiny_checkpoint, tiny_data, tiny_dataset  # noqa: E402

FAST = ["--epochs", "1", "--batch-size", "8", "--dim", "8", "--shared-dim", "4", "--backbone", "conv",
        "--length", "acc=8", "--length", "cam=3", "--quiet"]


@pytest.fixture
def data(tmp_path) -> Path:
    return tiny_dataset(tmp_path / "data")


def _refused(capsys, tmp_path, command: str, args, expected: str, forbidden: str = "") -> str:
    """Run ``precal COMMAND ARGS``: status 2, one line naming ``expected``, the tree unchanged."""
    before = snapshot(tmp_path)
    assert main([command, *map(str, args)]) == 2
    line = cli_error(capsys, command)
    assert expected in line, line
    if forbidden:
        assert forbidden not in line, line
    assert_unchanged(before, snapshot(tmp_path))
    return line


TRAIN_CASES = {
    "batch size 0": (["--batch-size", "0"], "--batch-size"),
    "batch size -3": (["--batch-size", "-3"], "--batch-size"),
    "threads -1": (["--threads", "-1"], "--threads"),
    "epochs -1": (["--epochs", "-1"], "--epochs"),
    "epochs 0": (["--epochs", "0"], "--epochs"),
    "seed -1": (["--seed", "-1"], "--seed"),
    "learning rate 0": (["--lr", "0"], "--lr"),
    "learning rate nan": (["--lr", "nan"], "--lr"),
    "weight decay -1": (["--weight-decay", "-1"], "--weight-decay"),
    "dim 0": (["--dim", "0"], "--dim"),
    "dropout 1": (["--dropout", "1"], "--dropout"),
    "modality dropout 1.5": (["--modality-dropout", "1.5"], "--modality-dropout"),
    "noise augment -0.1": (["--noise-augment", "-0.1"], "--noise-augment"),
    "swap augment -1": (["--swap-augment", "-1"], "--swap-augment"),
    "recombine augment 2": (["--recombine-augment", "2"], "--recombine-augment"),
    "time augment 1.01": (["--time-augment", "1.01"], "--time-augment"),
    "aux weight -1": (["--aux-weight", "-1"], "--aux-weight"),
    "gate loss inf": (["--gate-loss", "inf"], "--gate-loss"),
    "length of no modality": (["--length", "smell=3"], "'smell'"),
    "length 0": (["--length", "acc=0"], "--length acc"),
    "length not a number": (["--length", "acc=many"], "NAME=STEPS"),
    "length 1e9": (["--length", "acc=1000000000"], "--length acc"),
    "rotation of no modality": (["--rotate-augment", "smell=10"], "'smell'"),
    "epochs not a number": (["--epochs", "x"], "--epochs"),
    "unknown option": (["--bogus", "1"], "--bogus"),
    "validation split missing": (["--val-split", "dev"], "--val-split"),
    "no validation split to select by": (["--val-split", "none"], "--val-split"),
    "average over more epochs than run": (["--average-epochs", "5"], "--average-epochs"),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_refuses_bad_arguments_in_one_line(tmp_path, capsys, data, case):
    extra, expected = TRAIN_CASES[case]
    line = _refused(capsys, tmp_path, "train", ["--data", data, "--out", tmp_path / "ck", *FAST, *extra], expected,
                    forbidden="--average-epochs" if case == "epochs -1" else "")
    assert "invalid literal" not in line


API_CASES = {
    "batch_size": (dict(batch_size=0), "--batch-size"),
    "threads": (dict(threads=-1), "--threads"),
    "epochs": (dict(epochs=-1, average_epochs=2), "--epochs"),
    "modality_dropout": (dict(modality_dropout=1.5), "--modality-dropout"),
    "lengths": (dict(lengths={"smell": 3}), "'smell'"),
    "val_split": (dict(val_split=None), "--val-split"),
    "calibration": (dict(calibration="no"), "calibration"),
    "dim": (dict(dim=20000), "--dim"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_the_python_api_checks_the_same_ranges(tmp_path, data, case):
    from precal.training.loop import TrainConfig, train

    fields, expected = API_CASES[case]
    base = dict(data=str(data), epochs=1, batch_size=8, dim=8, shared_dim=4, backbone="conv", lengths={"acc": 8})
    cfg = TrainConfig(**{**base, **fields})
    before = snapshot(tmp_path)
    with pytest.raises((ValueError, KeyError)) as err:
        train(cfg, out=tmp_path / "ck", progress=False)
    message = str(err.value.args[0]) if isinstance(err.value, KeyError) else str(err.value)
    assert expected in message and "\n" not in message, message
    assert_unchanged(before, snapshot(tmp_path))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(["--modality-dropout", "--noise-augment", "--swap-augment", "--recombine-augment",
                               "--time-augment"]),
       value=st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1 + 1e-9), st.just(float("nan"))))
def test_every_probability_outside_zero_one_is_refused(tmp_path_factory, capsys, option, value):
    root = tmp_path_factory.mktemp("p")
    data = tiny_dataset(root / "data")
    before = snapshot(root)
    assert main(["train", "--data", str(data), "--out", str(root / "ck"), *FAST, f"{option}={value!r}"]) == 2
    assert option in cli_error(capsys, "train")
    assert_unchanged(before, snapshot(root))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(["--batch-size", "--epochs", "--threads", "--dim", "--shared-dim"]),
       value=st.integers(max_value=-1))
def test_every_negative_count_is_refused(tmp_path_factory, capsys, option, value):
    root = tmp_path_factory.mktemp("n")
    data = tiny_dataset(root / "data")
    before = snapshot(root)
    assert main(["train", "--data", str(data), "--out", str(root / "ck"), *FAST, f"{option}={value}"]) == 2
    line = cli_error(capsys, "train")
    assert option in line and "--average-epochs" not in line
    assert_unchanged(before, snapshot(root))


def test_empty_data_set_and_empty_splits_are_one_line(tmp_path, capsys):
    empty = tiny_data()
    empty.splits["train"] = np.array([], dtype=np.int64)
    empty.splits["test"] = np.array([], dtype=np.int64)
    data = save_dataset(empty, tmp_path / "data")
    _refused(capsys, tmp_path, "train", ["--data", data, "--out", tmp_path / "ck", *FAST], "'train' is empty")
    ck = tiny_checkpoint(tmp_path / "model", data)
    _refused(capsys, tmp_path, "evaluate", [ck, "--data", data], "'test'")
    full = tiny_data()
    nothing = type(full)(full.schema, full.sample_ids[:0], full.labels[:0],
                         {m: build_ragged([], full.schema.modality(m).step_shape, np.float32)
                          for m in full.schema.modality_names}, {"train": np.array([], dtype=np.int64)})
    none = save_dataset(nothing, tmp_path / "none")
    _refused(capsys, tmp_path, "train", ["--data", none, "--out", tmp_path / "ck", *FAST, "--selection", "last",
                                         "--val-split", "none"], "empty")


def test_evaluate_and_robustness_arguments(tmp_path, capsys, data):
    ck = tiny_checkpoint(tmp_path / "ck", data)
    _refused(capsys, tmp_path, "evaluate", [ck, "--data", data, "--split", "nope"], "'nope'")
    sweep = ["robustness", ck, "--data", data, "--out", tmp_path / "r.csv"]
    _refused(capsys, tmp_path, "robustness", [*sweep[1:], "--baseline", "/nope"], "--baseline")
    _refused(capsys, tmp_path, "robustness", [*sweep[1:], "--severities", "9"], "severity")
    _refused(capsys, tmp_path, "robustness", [*sweep[1:], "--corruptions", "fire"], "'fire'")


def test_dashboard_and_convert_arguments(tmp_path, capsys):
    _refused(capsys, tmp_path, "dashboard", ["--port", "0", "--headless"], "--port")
    _refused(capsys, tmp_path, "dashboard", ["--port", "70000", "--headless"], "--port")
    out = tmp_path / "synthetic"
    _refused(capsys, tmp_path, "convert", ["synthetic", out, "--samples", "0"], "samples")
    _refused(capsys, tmp_path, "convert", ["synthetic", out, "--corrupt-fraction", "2"], "corrupt fraction")


def test_messages_name_the_sample_and_the_field_in_plain_words(tmp_path, capsys):
    bad = tiny_data()
    bad.modalities["acc"].values[bad.modalities["acc"].offsets[3], 1] = np.inf
    data = tiny_dataset(tmp_path / "data")
    arrays = dict(np.load(data / "data.npz"))
    arrays["acc.values"] = bad.modalities["acc"].values
    np.savez(data / "data.npz", **arrays)
    line = _refused(capsys, tmp_path, "info", [data], "first in sample 's3'")
    assert "np.str_" not in line
    header = json.loads((data / "dataset.json").read_text())
    header["schema"]["modalities"][0]["step_shape"] = ["3"]
    (data / "dataset.json").write_text(json.dumps(header))
    line = _refused(capsys, tmp_path, "info", [data], "step_shape")
    assert "invalid literal" not in line


# ------------------------------------------------------------------- options that did nothing


def test_a_modality_absent_everywhere_trains(tmp_path, capsys):
    data = tiny_data()
    data.modalities["meta"] = build_ragged([None] * len(data), (2,), np.float32)
    path = save_dataset(data, tmp_path / "data")
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "ck"), *FAST]) == 0


def test_selection_last_needs_no_validation_split(tmp_path, capsys):
    data = tiny_data()
    data.splits = {"train": data.splits["train"], "test": data.splits["test"]}  # no split named val
    path = save_dataset(data, tmp_path / "data")
    _refused(capsys, tmp_path, "train", ["--data", path, "--out", tmp_path / "ck", *FAST, "--selection", "last"],
             "--val-split")
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "ck"), *FAST, "--selection", "last",
                 "--val-split", "none"]) == 0
    history = json.loads((tmp_path / "ck" / "history.json").read_text())
    assert len(history) == 1 and "train_loss" in history[0] and not any(k.startswith("val_") for k in history[0])
    renamed = tiny_data()
    renamed.splits = {"train": renamed.splits["train"], "dev": renamed.splits["val"], "test": renamed.splits["test"]}
    path = save_dataset(renamed, tmp_path / "renamed")
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "ck2"), *FAST, "--val-split", "dev"]) == 0
    config = json.loads((tmp_path / "ck2" / "config.json").read_text())
    assert config["training"]["val_split"] == "dev"
    assert "val_accuracy" in json.loads((tmp_path / "ck2" / "history.json").read_text())[0]


def test_robustness_baseline_alone_gives_effective_robustness(tmp_path, capsys, data):
    ck = tiny_checkpoint(tmp_path / "tiny_calon", data, seed=0)
    base = tiny_checkpoint(tmp_path / "tiny_caloff", data, seed=1, calibration=False)
    out = tmp_path / "r.csv"
    assert main(["robustness", str(ck), "--baseline", str(base), "--data", str(data), "--corruptions",
                 "gaussian_noise", "--severities", "1", "3", "--out", str(out)]) == 0
    summary = pd.read_csv(tmp_path / "r.summary.csv")
    mine = summary[summary["checkpoint"] == "tiny_calon"]
    assert len(mine) and mine["effective_robustness"].notna().all()
    assert set(pd.read_csv(out)["checkpoint"]) == {"tiny_calon", "tiny_caloff"}
