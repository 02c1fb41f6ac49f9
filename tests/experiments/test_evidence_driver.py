"""scripts/run_evidence.sh's ``keep`` folds every run it keeps into the store results/runs: no run
folder is left in results/, and a gated run brings its swap sweep (training, prediction and the
sweep are stubbed; the folding is the real command)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from experiments import results_store

ROOT = Path(__file__).resolve().parents[2]

STUBS = {
    "precal": """#!/usr/bin/env bash
# precal robustness CK ... --out FILE: a one-row swap sweep
while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
printf 'checkpoint,modality,corruption,severity,auroc_alpha\\nck,a,swap,1,0.91\\n' > "$out"
""",
    "python": f"""#!/usr/bin/env bash
# python -m experiments.error_analysis store CK RUN_DIR: predictions; anything else: the real python
if [ "$2" = experiments.error_analysis ]; then
  printf 'sample_id,true,predicted\\ns1,x,x\\n' > "$5/test_predictions.csv"
else
  exec {sys.executable} "$@"
fi
""",
}


def _checkpoint(folder: Path, calibration: bool) -> Path:
    folder.mkdir(parents=True)
    config = {"schema": {"name": "toy"}, "model": {"modalities": ["a", "b"], "calibration": calibration}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.9}}))
    (folder / "history.json").write_text(json.dumps([{"epoch": 1}]))
    (folder / "model.safetensors").write_bytes(b"weights, not kept")
    return folder


def test_keep_folds_each_run_into_the_store(tmp_path: Path) -> None:
    script = (ROOT / "scripts" / "run_evidence.sh").read_text()
    keep = re.search(r"^keep\(\) \{.*?^\}$", script, flags=re.S | re.M).group(0)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in STUBS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    on, off = _checkpoint(tmp_path / "ck" / "toy_calon", True), _checkpoint(tmp_path / "ck" / "toy_caloff", False)
    repo = tmp_path / "repo"
    (repo / "results" / "runs").mkdir(parents=True)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "WORK": str(tmp_path / "work")}
    subprocess.run(["bash", "-c", f"set -euo pipefail\n{keep}\nkeep {on} toy_calon_seed0\nkeep {off} toy_caloff_seed0"],
                   cwd=repo, env=env, check=True)
    store = repo / "results" / "runs"
    assert sorted(p.name for p in store.iterdir()) == ["history.jsonl", "predictions.csv", "runs.jsonl", "swaps.csv"]
    runs = {run.name: run for run in results_store.load(store)}
    assert sorted(runs) == ["toy_caloff_seed0", "toy_calon_seed0"]
    assert runs["toy_calon_seed0"].swap is not None and runs["toy_caloff_seed0"].swap is None
    assert all(run.history == [{"epoch": 1}] and len(run.predictions) == 1 for run in runs.values())
