"""Every report generator writes the same sections, byte for byte, whether its runs lie in one
folder per run (as the drivers write them) or folded into the compact store
(experiments/results_store.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Dict

import pytest

from experiments import ablation_report, error_analysis, evidence, gate_report, inner_fold, results_store
from tests.experiments.results_fixture import STORES, write_results

GENERATORS = {"evidence": evidence, "gate_report": gate_report, "error_analysis": error_analysis,
              "inner_fold": inner_fold, "ablation_report": ablation_report}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> Dict[str, Path]:
    """The same results twice: as run folders, and compacted."""
    folders = write_results(tmp_path_factory.mktemp("folders") / "results")
    compacted = tmp_path_factory.mktemp("compacted") / "results"
    shutil.copytree(folders, compacted)
    for store in STORES:
        results_store.compact(compacted / store)
    return {"folders": folders, "compacted": compacted}


def test_the_compacted_results_hold_tables_not_run_folders(layouts) -> None:
    compacted = layouts["compacted"]
    assert not [p for p in compacted.rglob("*.json")]
    assert sorted(p.name for p in (compacted / "runs").iterdir()) == [
        "history.jsonl", "predictions.csv", "runs.jsonl", "swaps.csv"]
    assert [p.name for p in (compacted / "ablation").iterdir()] == ["sweeps.csv"]
    assert len(list(layouts["folders"].rglob("*"))) > 10 * len(list(compacted.rglob("*")))


@pytest.mark.parametrize("name", GENERATORS)
def test_a_generator_writes_the_same_sections_from_folders_and_from_the_store(layouts, name: str) -> None:
    generator = GENERATORS[name]
    from_folders = generator.sections(layouts["folders"])
    from_store = generator.sections(layouts["compacted"])
    assert from_folders == from_store
    for section, body in from_folders.items():  # the fixture fills every table: no empty one, no NaN
        lines = body.splitlines()
        assert all(lines[i + 1].startswith("| ") for i, line in enumerate(lines) if line.startswith("|---")), section
        assert not re.search(r"\bnan\b", body), section


def test_the_fixture_reaches_every_variant_of_the_tables(layouts) -> None:
    sections = {**gate_report.sections(layouts["compacted"]), **evidence.sections(layouts["compacted"])}
    real = [line for line in sections["gates_real"].splitlines() if line.startswith("| utd-mhad | conv | depth")]
    assert len(real) == 1 and "–" not in real[0]  # free gates, calibrator and self-gate all measured
    assert {"evidence", "dynamics", "gate_accuracy", "avl_fit", "utd_fit", "utd_derived", "inputs"} <= set(sections)
