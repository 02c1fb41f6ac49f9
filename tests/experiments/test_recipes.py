"""The recipes as config files (experiments/recipes/*.json, for ``precal train --config``) are the
recipes the training scripts pass on the command line (scripts/recipes.sh): the same TrainConfig,
field for field, and options given beside ``--config`` override the file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from precal.cli import build_parser, train_settings
from precal.training.config import TrainConfig, read_settings

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "experiments" / "recipes"


def _script_arguments(dataset: str) -> list:
    """What scripts/train_all.sh passes to precal train for a data set (before seed, backbone,
    calibration and --out): the data set's recipe and COMMON."""
    out = subprocess.run(["bash", "-c", f'source scripts/recipes.sh; recipe {dataset}; printf "%s\\n" "${{COMMON[@]}}"'],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def _config(argv: list) -> TrainConfig:
    args, _ = build_parser().parse_known_args(["train", "--out", "unused", *argv])
    values = read_settings(args.config) if args.config else {}
    values.update(train_settings(args))
    return TrainConfig.from_mapping(values)


@pytest.mark.parametrize("dataset", ["utd_mhad", "avletters"])
def test_config_file_equals_the_scripts_recipe(dataset: str) -> None:
    scripted = _script_arguments(dataset)
    assert "--quiet" in scripted  # a display switch, not a setting: not in the file
    from_script = _config([a for a in scripted if a != "--quiet"])
    from_file = _config(["--config", str(RECIPES / f"{dataset}.json")])
    assert from_file == from_script
    run = ["--seed", "3", "--backbone", "conv", "--calibration", "off"]
    assert _config(["--config", str(RECIPES / f"{dataset}.json"), *run]) == _config([*scripted[:-1], *run])


def test_options_override_the_file_and_unknown_settings_are_refused(tmp_path: Path) -> None:
    cfg = _config(["--config", str(RECIPES / "utd_mhad.json"), "--epochs", "3", "--length", "depth=8"])
    assert cfg.epochs == 3 and cfg.lengths == {"depth": 8}  # a repeatable option replaces the file's whole map
    toml = tmp_path / "run.toml"
    toml.write_text('data = "sample_data/utd_mhad"\nepochs = 5\n[lengths]\ndepth = 4\n')
    assert _config(["--config", str(toml)]) == TrainConfig(data="sample_data/utd_mhad", epochs=5, lengths={"depth": 4})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": "x", "epoch": 3}))
    with pytest.raises(ValueError, match="unknown setting 'epoch'"):
        _config(["--config", str(bad)])
