"""Before the run folders of results/ are folded: on a copy of them, every generator writes the same
sections from the folders as from the compact store. (The calibrated and self-gate evidence runs
are not in results/runs yet; the copy gets the free-gate runs relabelled as both, with swap sweeps
taken from the ablation, so that every section has rows.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from experiments import results_store
from tests.experiments.test_generators_from_store import GENERATORS

RESULTS = Path(__file__).resolve().parents[2] / "results"
STORES = ("runs", "free_gates/runs", "inner_fold", "inner_fold_avletters", "input_ablation/runs",
          "input_ablation/current", "avletters_validation_selection/runs", "utd_mhad_validation_selection/runs",
          "utd_mhad_without_derived_inputs/runs", "ablation", "ablation/avletters_validation_selection",
          "ablation/utd_mhad_validation_selection", "ablation/utd_mhad_without_derived_inputs")

pytestmark = pytest.mark.skipif(not list(RESULTS.glob("runs/*/metrics.json")), reason="results/ is folded")


def _with_gated_runs(results: Path) -> None:
    for src in sorted((results / "free_gates" / "runs").iterdir()):
        for gate, tag in (("monotone", "calon"), ("self", "calself")):
            dst = results / "runs" / src.name.replace("calon", tag)
            shutil.copytree(src, dst)
            cfg = json.loads((dst / "config.json").read_text())
            cfg["model"]["gate"] = gate
            (dst / "config.json").write_text(json.dumps(cfg, indent=1))
            dataset, backbone = cfg["schema"]["name"], cfg["model"]["backbone"]
            backbone = "sequence" if dataset == "utd-mhad" else backbone
            sweep = pd.read_csv(sorted((results / "ablation").glob(f"{dataset}_{backbone}_calon_swap_seed*.csv"))[0])
            sweep = sweep[(sweep["corruption"] == "swap") & (sweep["severity"] <= 1)].assign(checkpoint=dst.name)
            sweep.to_csv(dst / "swap.csv", index=False, float_format="%.6g")


def test_every_generator_writes_the_same_sections_from_the_real_folders_and_their_store(tmp_path: Path) -> None:
    folders, compacted = tmp_path / "folders" / "results", tmp_path / "compacted" / "results"
    shutil.copytree(RESULTS, folders)
    _with_gated_runs(folders)
    shutil.copytree(folders, compacted)
    for store in STORES:
        results_store.compact(compacted / store)
    assert len(list(compacted.rglob("*"))) < 80
    for name, generator in GENERATORS.items():
        assert generator.sections(folders) == generator.sections(compacted), name
