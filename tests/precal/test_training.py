"""Training on real sample data: it learns, logs its dynamics, round-trips through the CLI, and
runs under torchrun with 2 processes (DDP, gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from precal.checkpoint import load_checkpoint
from precal.cli import main as cli_main
from precal.data.storage import load_dataset
from precal.training.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]
UTD = ROOT / "sample_data" / "utd_mhad"
FAST = {"inertial": 48, "skeleton": 24}


@pytest.fixture(scope="module")
def utd():
    return load_dataset(UTD)


@pytest.mark.slow
def test_short_run_learns_and_logs_dynamics(utd, tmp_path: Path) -> None:
    cfg = TrainConfig(data=str(UTD), modalities=["inertial", "skeleton"], lengths=FAST, epochs=8, dim=32,
                      batch_size=32, lr=3e-3, seed=1, modality_dropout=0.2, noise_augment=0.2)
    result = train(cfg, out=tmp_path / "ck", progress=False, data=utd)
    h = result.history
    assert len(h) == 8
    assert h[-1]["train_loss"] < 0.8 * h[0]["train_loss"]
    chance = 1 / 27
    assert result.metrics["test"]["accuracy"] > 5 * chance
    for rec in h:
        for key in ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1",
                    "time_s", "modalities"):
            assert key in rec, key
        assert set(rec["modalities"]) == {"inertial", "skeleton"}
        for stats in rec["modalities"].values():
            for key in ("alpha_mean", "alpha_std", "beta_mean", "beta_std", "support_mean", "support_std",
                        "conflict_mean", "conflict_std", "probe_accuracy", "grad_norm"):
                assert key in stats, key
            assert 0 < stats["alpha_mean"] < 2 and 0 <= stats["probe_accuracy"] <= 1
            assert stats["grad_norm"] > 0
    # The calibrator moved away from the identity during training.
    assert any(abs(s["alpha_mean"] - 1) > 1e-4 for s in h[-1]["modalities"].values())
    # The selected epoch is the best validation epoch.
    best = max(r["val_accuracy"] for r in h)
    assert result.metrics["val"]["accuracy"] == pytest.approx(best)
    ckpt = load_checkpoint(tmp_path / "ck")
    assert ckpt.history == json.loads((tmp_path / "ck" / "history.json").read_text())


@pytest.mark.slow
def test_same_seed_same_model(utd) -> None:
    cfg = TrainConfig(data=str(UTD), modalities=["inertial"], lengths=FAST, epochs=2, dim=16, seed=5,
                      modality_dropout=0.3, noise_augment=0.3)
    a = train(cfg, progress=False, data=utd)
    b = train(cfg, progress=False, data=utd)
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]


@pytest.mark.slow
def test_cli_train_then_evaluate_reproduces_stored_metrics(tmp_path: Path, capsys) -> None:
    out = tmp_path / "ck"
    code = cli_main(["train", "--data", str(UTD), "--modalities", "inertial", "--length", "inertial=48",
                     "--epochs", "2", "--dim", "16", "--backbone", "late", "--calibration", "off",
                     "--dropout", "0.25", "--out", str(out), "--quiet"])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["dropout"] == 0.25 and config["training"]["dropout"] == 0.25
    stored = json.loads((out / "metrics.json").read_text())["test"]
    assert cli_main(["evaluate", str(out)]) == 0
    evaluated = json.loads((out / "eval_test.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(stored["accuracy"])
    assert evaluated["confusion_matrix"] == stored["confusion_matrix"]


def test_cli_reports_user_errors_in_one_line(tmp_path: Path, capsys) -> None:
    assert cli_main(["info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("precal info: error:") and err.count("\n") == 1
    assert cli_main(["train", "--data", str(UTD), "--modalities", "lidar", "--out", str(tmp_path / "x"),
                     "--epochs", "1", "--quiet"]) == 2
    assert "lidar" in capsys.readouterr().err
    assert cli_main(["train", "--data", str(UTD), "--length", "depth:16", "--out", str(tmp_path / "x")]) == 2
    assert "NAME=STEPS" in capsys.readouterr().err


def test_info_describes_data(capsys) -> None:
    assert cli_main(["info", str(UTD)]) == 0
    out = capsys.readouterr().out
    for word in ("inertial", "skeleton", "depth", "train=324", "test=430"):
        assert word in out


@pytest.mark.slow
def test_ddp_two_processes(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "precal", "train", "--data", str(UTD), "--modalities", "inertial", "--length", "inertial=48",
           "--epochs", "2", "--dim", "16", "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    ckpt = load_checkpoint(out)
    assert len(ckpt.history) == 2


def test_key_value_settings_take_their_fields_types() -> None:
    """The benchmarks' ``--set KEY=VALUE``: ``typicality=false`` must be False, not a truthy string,
    and a misspelt key must be refused rather than silently train the defaults."""
    from precal.training.config import parse_settings

    parsed = parse_settings(["typicality=false", "epochs=7", "lr=0.01", "evidence=capped", "backbone=late"])
    assert parsed == {"typicality": False, "epochs": 7, "lr": 0.01, "evidence": "capped", "backbone": "late"}
    assert parse_settings(["typicality=on"])["typicality"] is True
    with pytest.raises(ValueError, match="typicalty"):
        parse_settings(["typicalty=true"])
    # a misspelt value is refused too, with its key named, rather than read as the default
    for bad, key in (["typicality=ture"], "typicality"), (["evidence=cappd"], "evidence"), \
                    (["epochs=ten"], "epochs"), (["typicality"], "typicality"), (["velocity=skeleton"], "velocity"):
        with pytest.raises(ValueError, match=key):
            parse_settings(bad)
