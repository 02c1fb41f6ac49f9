"""The augmentation ablation report (experiments/ablation_report.py) reads any store of sweeps, and
printing an earlier store leaves the README and the current summary alone."""

from __future__ import annotations

import sys
from pathlib import Path

from experiments import ablation_report, results_store

ROOT = Path(__file__).resolve().parents[2]

EARLIER = ROOT / "results" / "ablation" / "avletters_validation_selection"


def test_an_earlier_store_is_read_on_its_own() -> None:
    runs = ablation_report.per_run(EARLIER)
    assert set(runs["dataset"]) == {"avletters"}  # not mixed with the current store's tables
    assert len(runs) == len([run for run in results_store.load(EARLIER) if run.sweep is not None]) == 32
    assert runs["clean"].between(0, 1).all() and runs["kept"].gt(0).all()
    calibrated = runs[runs["calibration"] == "on"]
    assert calibrated["auroc_support"].gt(0.8).all()  # the support cue detects swapped modalities


def test_printing_an_earlier_store_writes_nothing(monkeypatch, capsys) -> None:
    readme, summary = ROOT / "README.md", ablation_report.STORE / "summary.csv"
    before = (readme.read_bytes(), summary.read_bytes())
    monkeypatch.setattr(sys, "argv", ["ablation_report.py", "--store", str(EARLIER)])
    ablation_report.main()
    assert (readme.read_bytes(), summary.read_bytes()) == before
    table = capsys.readouterr().out
    assert "| avletters | conv | without swap augmentation | on |" in table
    assert "utd-mhad" not in table
