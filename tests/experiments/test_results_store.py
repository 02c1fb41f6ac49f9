"""The compact results store (experiments/results_store.py): run folders fold into a few tables and
read back as the same records; new folders merge in; a malformed table is one line of error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict

import numpy as np
import pandas as pd
import pytest

from experiments import evidence, gate_report, results_store
from tests.experiments.results_fixture import _evidence, _run, _sweep


def _records(store: Path) -> Dict[str, dict]:
    """A store's runs as plain values (frames as CSV text, columns by name)."""
    out = {}
    for run in results_store.load(store):
        frames = {k: None if f is None else f[sorted(f.columns)].to_csv(index=False)
                  for k, f in (("predictions", run.predictions), ("swap", run.swap), ("sweep", run.sweep))}
        out[run.name] = {"config": run.config, "metrics": run.metrics, "history": run.history, **frames}
    return out


def _files(folder: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An evidence store in the drivers' layout (run folders, one loose sweep) of both data sets."""
    store = tmp_path / "runs"
    _evidence(store, np.random.RandomState(0), seeds=(0, 1))
    _sweep("avletters_conv_calon_swap_seed1", "avletters", "conv", True, ["swap"], [1, 3],
           np.random.RandomState(1)).to_csv(store / "avletters_conv_calon_swap_seed1.csv", index=False)
    return store


def test_folders_fold_into_tables_that_read_back_as_the_same_records(store: Path) -> None:
    before = _records(store)
    assert len(before) == 2 * (2 * 2 * 3 + 5) + 1 and before["utd_mhad_conv_calself_seed1"]["swap"] is not None
    folded = results_store.compact(store)
    assert sorted(folded) == sorted(before)
    assert sorted(p.name for p in store.iterdir()) == ["history.jsonl", "predictions.csv", "runs.jsonl",
                                                       "swaps.csv", "sweeps.csv"]
    assert _records(store) == before
    run = json.loads((store / "runs.jsonl").read_text().splitlines()[0])
    config = json.loads(json.dumps(before[run["run"]]["config"]))
    assert list(run) == ["run", "config", "metrics"] and run["config"] == config
    # plain tables: one JSON object a line, CSV with a run column
    history = pd.read_json(store / "history.jsonl", lines=True)
    assert len(history) == sum(len(r["history"]) for r in before.values() if r["history"])
    swaps = pd.read_csv(store / "swaps.csv")
    assert list(swaps.columns[:2]) == ["run", "checkpoint"] and (swaps["run"] == swaps["checkpoint"]).all()
    assert {"alpha_audio", "alpha_depth"} <= set(swaps.columns)  # the union of both data sets' columns
    assert list(pd.read_csv(store / "sweeps.csv")["run"].unique()) == ["avletters_conv_calon_swap_seed1"]


def test_folding_again_changes_nothing(store: Path) -> None:
    results_store.compact(store)
    tables = _files(store)
    assert results_store.compact(store) == []
    assert _files(store) == tables


def test_new_run_folders_after_a_compaction_merge_in(store: Path, tmp_path: Path) -> None:
    """What the evidence driver does later: after a first compaction, new calibrated and self-gate
    runs with their swap sweeps, a swap sweep for a run already stored, and a loose sweep arrive;
    then compact again."""
    everything = _records(store)
    results = tmp_path / "results"
    later = results / "runs"
    later.mkdir(parents=True)
    first = [p for p in store.iterdir() if p.is_dir() and ("_caloff_" in p.name or p.name.startswith("uni_"))]
    for folder in first:
        shutil.copytree(folder, later / folder.name)
    results_store.compact(later)
    assert set(_records(later)) == {p.name for p in first}
    for folder in store.iterdir():
        if not (later / folder.name).exists() and folder not in first:
            (shutil.copytree if folder.is_dir() else shutil.copy)(folder, later / folder.name)
    stored = "avletters_conv_caloff_seed0"
    (later / stored).mkdir()
    shutil.copy(store / "avletters_conv_calon_seed0" / "swap.csv", later / stored / "swap.csv")
    results_store.compact(later)
    assert not [p for p in later.iterdir() if p.is_dir() or p.name.endswith("_seed1.csv")]
    merged = _records(later)
    assert merged[stored]["swap"] == everything["avletters_conv_calon_seed0"]["swap"]  # the new part joined ...
    merged[stored]["swap"] = None
    assert merged == everything  # ... the stored run kept the rest, and every new run is there
    swaps = gate_report.load_swaps(results)
    assert set(swaps["variant"]) == {"calibrator", "self-gate", "baseline"}
    assert set(evidence.load_runs(later)["calibration"]) == {"off", "on", "self-gate", "–"}


def test_a_folder_given_from_elsewhere_is_folded_and_left_in_place(tmp_path: Path) -> None:
    staging = tmp_path / "work" / "utd_mhad_sequence_calon_seed3"
    _run(staging, "utd-mhad", ["inertial", "skeleton", "depth"], "sequence", "on", 3, np.random.RandomState(2),
         swap=True)
    store = tmp_path / "results" / "runs"
    assert results_store.compact(store, add=[staging]) == [staging.name]
    assert staging.is_dir() and [r.name for r in results_store.load(store)] == [staging.name]
    assert results_store.load(store)[0].swap is not None


def test_a_run_folder_holding_other_files_is_not_folded(store: Path) -> None:
    (store / "utd_mhad_conv_calon_seed0" / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(results_store.StoreError, match="model.safetensors"):
        results_store.compact(store)
    assert (store / "utd_mhad_conv_calon_seed0" / "config.json").is_file() and not (store / "runs.jsonl").exists()


@pytest.mark.parametrize("table, text, where", [
    ("runs.jsonl", '{"run": "a", "config": {}}\n{"run": "b", "config": {\n', "runs.jsonl:2: not JSON"),
    ("runs.jsonl", '{"run": "a"}\n\n["b"]\n', "runs.jsonl:3: a line must be a JSON object"),
    ("history.jsonl", '{"epoch": 1}\n', "history.jsonl:1: no 'run' name"),
    ("runs.jsonl", '{"run": "a"}\n{"run": "a"}\n', "runs.jsonl:2: run 'a' appears twice"),
    ("predictions.csv", "run,sample_id,true\na,s1,x\na,s2\n", "predictions.csv:3: 2 cells, the header has 3"),
    ("swaps.csv", "checkpoint,value\na,1\n", "swaps.csv:1: the first column must be 'run'"),
])
def test_a_malformed_line_is_one_line_of_error_naming_file_and_line(tmp_path: Path, table: str, text: str,
                                                                    where: str, capsys) -> None:
    (tmp_path / table).write_text(text)
    with pytest.raises(results_store.StoreError) as error:
        results_store.load(tmp_path)
    assert str(error.value).startswith(f"{tmp_path / table.split(':')[0]}") and where in str(error.value)
    (tmp_path / "new_seed0").mkdir()
    (tmp_path / "new_seed0" / "metrics.json").write_text("{}")
    with pytest.raises(SystemExit) as stop:
        results_store.main(["compact", str(tmp_path)])
    message = str(stop.value)
    assert where in message and "\n" not in message
    assert (tmp_path / "new_seed0").is_dir()  # nothing folded, nothing removed


def test_a_malformed_run_file_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "a_seed0").mkdir()
    (tmp_path / "a_seed0" / "metrics.json").write_text('{\n "test": {\n  "accuracy": 0.9,\n }\n}\n')
    with pytest.raises(results_store.StoreError, match=r"a_seed0/metrics.json:4: not JSON"):
        results_store.compact(tmp_path)
