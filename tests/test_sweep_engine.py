"""One sweep engine: the tables of ``precal robustness`` and of the dashboard's sweep, built by the
engine in :mod:`precal.robustness.engine`, equal those of the two engines it replaces on the same
fixture checkpoints (a calibrated/uncalibrated pair and the calibrated one switched off)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from precal import dashboard_backend as be
from precal.robustness import engine
from precal.robustness.sweep import sweep_checkpoint
from precal.robustness.table import corrupted_alpha

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_dashboard_backend import tiny_checkpoints  # noqa: E402

CORRUPTIONS = ["gaussian_noise", "remove_absent", "swap", "occlusion"]


@pytest.fixture(scope="module")
def pair():
    tiny = tiny_checkpoints()
    ckpts, problems = be.load_checkpoints([tiny["on"], tiny["off"]])
    assert not problems
    return be.pair_checkpoints(ckpts)[0], be.load_data(tiny["data"])


def _new(pair, views, severities, modalities=None):
    pair, data = pair
    splits = be.split_batches(pair, data, "test")
    models = [engine.SweptModel(v.checkpoint, v.calibration) for v in views]
    plan = engine.sweep_plan(pair.primary.schema, modalities, CORRUPTIONS)
    return engine.sweep(models, splits.batches, plan, severities, seed=0)


@pytest.mark.parametrize("flag", ["on", "off"])
def test_cli_table_equals_the_old_engine(pair, flag):
    p, data = pair
    ckpt = p.calibrated if flag == "on" else p.uncalibrated
    old = sweep_checkpoint(ckpt, data, "test", seed=0, severities=(1, 3, 5), corruptions=CORRUPTIONS)
    new = _new(pair, [engine.SweptModel.as_trained(ckpt)], (0, 1, 3, 5))
    assert list(new["role"]) == [("calibrated" if flag == "on" else "uncalibrated")] * len(new)
    shared = [c for c in old.columns if c != "calibration"]
    assert set(shared) <= set(new.columns)
    pd.testing.assert_frame_equal(old[shared].reset_index(drop=True), new[shared].reset_index(drop=True),
                                  check_exact=False, rtol=1e-5, atol=1e-6)


def test_dashboard_table_equals_the_old_engine(pair):
    p, data = pair
    splits = be.split_batches(p, data, "test")
    for views in (p.views(be.REFERENCE_TRAINED), p.views(be.REFERENCE_SWITCHED_OFF)):
        old = be.robustness_sweep(views, splits, p.primary.schema, modalities=["inertial", "depth"],
                                  corruptions=CORRUPTIONS, severities=(0, 1, 5), seed=0)
        new = _new(pair, views, (0, 1, 5), ["inertial", "depth"])
        new = new.assign(alpha_mean=corrupted_alpha(new))
        key = ["checkpoint", "modality", "corruption", "severity"]
        old = old.rename(columns={"model": "role"}).sort_values(["role", *key]).reset_index(drop=True)
        new = new.sort_values(["role", *key]).reset_index(drop=True)
        for col in ("role", *key, "metric", "n"):
            assert list(old[col]) == list(new[col]), col
        np.testing.assert_allclose(old["value"], new["value"], rtol=1e-6)
        np.testing.assert_allclose(old["alpha_mean"].astype(float), new["alpha_mean"], rtol=1e-5, atol=1e-6)
