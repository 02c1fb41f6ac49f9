"""The UTD-MHAD error analysis (experiments/error_analysis.py): where the calibrated sequence model errs,
and how often every other model gets those samples right."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from experiments import error_analysis

ROOT = Path(__file__).resolve().parents[2]

SAMPLES = [f"a{a}_s{s}_t{t}" for a in (1, 2) for s in (2, 4) for t in (1, 2)]
TRUE = {sid: ("wave" if sid.startswith("a1_") else "clap") for sid in SAMPLES}


def _run(runs: Path, name: str, modalities: list, calibration: bool, seed: int, wrong: dict,
         dataset: str = "utd-mhad", gate: str = "monotone") -> None:
    folder = runs / name
    folder.mkdir(parents=True)
    config = {"schema": {"name": dataset},
              "model": {"modalities": modalities, "backbone": "sequence", "calibration": calibration, "gate": gate},
              "training": {"seed": seed}}
    (folder / "config.json").write_text(json.dumps(config))
    pd.DataFrame({"sample_id": SAMPLES, "true": [TRUE[s] for s in SAMPLES],
                  "predicted": [wrong.get(s, TRUE[s]) for s in SAMPLES]}).to_csv(folder / error_analysis.PREDICTIONS,
                                                                                 index=False)


def test_recurring_errors_are_ranked_and_every_model_is_scored_on_them(tmp_path: Path) -> None:
    runs, readme = tmp_path / "runs", tmp_path / "README.md"
    readme.write_text("intro\n<!-- utd_errors:begin -->\nold\n<!-- utd_errors:end -->\nrest\n")
    fused = ["inertial", "skeleton", "depth"]
    # subject 4 waves read as claps in both seeds (both trials), subject 2 once
    _run(runs, "on0", fused, True, 0, {"a1_s4_t1": "clap", "a1_s4_t2": "clap", "a2_s2_t1": "wave"})
    _run(runs, "on1", fused, True, 1, {"a1_s4_t1": "clap", "a1_s4_t2": "clap"})
    _run(runs, "imu0", ["inertial"], True, 0, {})  # the IMU alone is right on all of them
    _run(runs, "skel0", ["skeleton"], True, 0, {"a1_s4_t1": "clap", "a1_s4_t2": "clap"})
    _run(runs, "avl0", ["audio", "lips"], True, 0, {s: "x" for s in SAMPLES}, dataset="avletters")  # ignored
    _run(runs, "self0", fused, True, 0, {s: "x" for s in SAMPLES}, gate="self")  # the control: its own column
    section = error_analysis.report(runs, readme)
    assert "5 of 16 test predictions; by subject 4: 4, 2: 1." in section
    rows = [line for line in section.splitlines() if line.startswith("| 4 |") or line.startswith("| 2 |")]
    assert rows[0].startswith("| 4 | wave | clap (4 of 4) |")  # the most frequent error comes first
    header = next(line for line in section.splitlines() if line.startswith("| subject |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    cells = dict(zip(columns, [c.strip() for c in rows[0].strip("|").split("|")]))
    assert cells["inertial alone"] == "2 of 2" and cells["skeleton alone"] == "0 of 2"
    assert cells["sequence calibrated"] == "0 of 4" and cells["sequence self-gated"] == "0 of 2"
    assert "audio" not in section  # another data set's runs are not read
    text = readme.read_text()
    assert "old" not in text and section in text and text.startswith("intro") and text.rstrip().endswith("rest")
