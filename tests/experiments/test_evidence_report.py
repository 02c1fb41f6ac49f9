"""The evidence table (experiments/evidence.py) keeps runs trained differently in separate rows."""

from __future__ import annotations

import json
from pathlib import Path

from experiments import evidence

ROOT = Path(__file__).resolve().parents[2]


def _run(folder: Path, seed: int, accuracy: float, **training) -> None:
    folder.mkdir(parents=True)
    config = {"schema": {"name": "toy"}, "model": {"modalities": ["a", "b"], "backbone": "sequence", "calibration": True,
                                                   "gate": training.pop("gate", "monotone")},
              "training": {"seed": seed, "epochs": 40, **training}}
    metrics = {"test": {"accuracy": accuracy, "macro_f1": accuracy}, "val": {"accuracy": 1.0}, "train_seconds": 10.0}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_runs_that_fit_on_different_splits_are_not_averaged_together(tmp_path: Path) -> None:
    _run(tmp_path / "old0", 0, 0.80)  # written before the option existed: train split, best epoch
    _run(tmp_path / "old1", 1, 0.82, train_split="train", selection="best")
    _run(tmp_path / "new0", 0, 0.90, train_split="train+val", selection="last")
    table = evidence.aggregate(evidence.load_runs(tmp_path))
    assert sorted(table["fit"]) == ["train+val, final epoch", "train, best val epoch"]
    old = table[table["fit"] == "train, best val epoch"].iloc[0]
    assert old["seeds"] == 2 and abs(old["acc_mean"] - 0.81) < 1e-9
    text = evidence.markdown(table)
    assert "| train+val, final epoch | 1 | 90.0 (one seed) |" in text


def test_a_probe_on_data_the_model_trained_on_is_marked(tmp_path: Path) -> None:
    for name, calibration, split in (("held_on", True, "train"), ("held_off", False, "train"),
                                     ("fit_on", True, "train+val"), ("fit_off", False, "train+val")):
        folder = tmp_path / name
        _run(folder, 0, 0.9, train_split=split)
        config = json.loads((folder / "config.json").read_text())
        config["model"]["calibration"] = calibration
        config["schema"]["name"] = f"toy_{split}"
        (folder / "config.json").write_text(json.dumps(config))
        metrics = json.loads((folder / "metrics.json").read_text())
        (folder / "metrics.json").write_text(json.dumps({**metrics, "selected_epoch": 1}))
        stats = {"alpha_mean": 1.0, "probe_accuracy": 0.5}
        (folder / "history.json").write_text(json.dumps([{"epoch": 1, "modalities": {"a": stats, "b": stats}}]))
    rows = [line for line in evidence.dynamics_table(evidence.load_dynamics(tmp_path)).splitlines()
            if line.startswith("| toy")]
    assert len(rows) == 4
    assert all(("†" in line) == line.startswith("| toy_train+val") for line in rows)


def test_before_and_after_training_on_train_val_pairs_the_same_configuration(tmp_path: Path) -> None:
    for seed, (before, after) in enumerate(((0.90, 0.94), (0.92, 0.96))):
        _run(tmp_path / "before" / f"r{seed}", seed, before, train_split="train", selection="best")
        _run(tmp_path / "after" / f"r{seed}", seed, after, train_split="train+val", selection="last")
    kept = evidence.ROOT / "results" / "somewhere"
    text = evidence.validation_fit(evidence.load_runs(tmp_path / "after"), evidence.load_runs(tmp_path / "before"),
                                   "the toy split", 60, kept)
    assert "| a+b | sequence | on | 91.0 ± 1.4 (2) | 95.0 ± 1.4 (2) | +4.0 |" in text
    assert "60-epoch budget" in text and "`results/somewhere/`" in text


def test_gate_variants_get_their_own_rows_and_the_gate_change_pairs_calibrated_models(tmp_path: Path) -> None:
    for seed in (0, 1):
        _run(tmp_path / "now" / f"on{seed}", seed, 0.90 + seed / 100)
        _run(tmp_path / "now" / f"self{seed}", seed, 0.80, gate="self")
        _run(tmp_path / "free" / f"on{seed}", seed, 0.85, gate="free")
    now = evidence.load_runs(tmp_path / "now")
    assert sorted(set(now["calibration"])) == ["on", "self-gate"]
    config = json.loads((tmp_path / "free" / "on0" / "config.json").read_text())
    del config["model"]["gate"]  # written before the field existed: free gates
    (tmp_path / "free" / "on0" / "config.json").write_text(json.dumps(config))
    free = evidence.load_runs(tmp_path / "free")
    assert set(free["calibration"]) == {"on, free gates"}
    text = evidence.gate_change(now, free)
    assert "| a+b | sequence | on | 85.0 ± 0.0 (2) | 90.5 ± 0.7 (2) | +5.5 |" in text
    assert "self" not in text.split("\n\n")[0]
