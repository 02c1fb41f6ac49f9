"""One sweep engine: ``precal robustness`` and the dashboard's sweep run :mod:`precal.robustness.engine`
and give the same table (one schema, a ``role`` column) for the same models.

(The engine replaced two: the commit that introduced it showed, with this file, that its tables
equal both old ones on these fixtures.)"""

from __future__ import annotations

import pandas as pd
import pytest

from precal.dashboard.backend.data import split_batches
from precal.dashboard.backend.pairs import (REFERENCE_SWITCHED_OFF, REFERENCE_TRAINED, load_checkpoints,
                                            pair_checkpoints)
from precal.dashboard.backend.robustness import robustness_sweep
from precal.data.storage import load_dataset
from precal.models.model import CALIBRATED, UNCALIBRATED
from precal.robustness.sweep import sweep_checkpoint
from precal.robustness.table import columns
from tests.dashboard.fixtures import tiny_checkpoints  # noqa: E402

CORRUPTIONS = ["gaussian_noise", "remove_absent", "swap", "occlusion"]


@pytest.fixture(scope="module")
def pair():
    tiny = tiny_checkpoints()
    ckpts, problems = load_checkpoints([tiny["on"], tiny["off"]])
    assert not problems
    return pair_checkpoints(ckpts)[0], load_dataset(tiny["data"])


def test_cli_and_dashboard_tables_are_equal(pair):
    p, data = pair
    splits = split_batches(p, data, "test")
    dash = robustness_sweep(p.views(REFERENCE_TRAINED), splits, p.primary.schema, corruptions=CORRUPTIONS,
                               severities=(0, 1, 3, 5), seed=0)
    cli = pd.concat([sweep_checkpoint(c, data, "test", seed=0, severities=(1, 3, 5), corruptions=CORRUPTIONS)
                     for c in (p.calibrated, p.uncalibrated)], ignore_index=True)
    assert list(cli.columns) == list(dash.columns) == columns(p.primary.schema.modality_names)
    assert list(cli["role"].unique()) == [CALIBRATED, UNCALIBRATED]
    pd.testing.assert_frame_equal(cli, dash)


def test_switched_off_calibrator_is_the_uncalibrated_role_of_the_same_checkpoint(pair):
    p, data = pair
    splits = split_batches(p, data, "test")
    table = robustness_sweep(p.views(REFERENCE_SWITCHED_OFF), splits, p.primary.schema,
                                modalities=["depth"], corruptions=["occlusion"], severities=(0, 5))
    assert list(table["checkpoint"]) == [p.calibrated.name] * 4
    assert list(table["role"]) == [CALIBRATED] * 2 + [UNCALIBRATED] * 2
    off = table[table["role"] == UNCALIBRATED]
    assert (off["alpha_depth"] == 1.0).all()  # gates fixed at 1: the same weights, no calibration


def test_both_leave_out_the_samples_the_data_marks_corrupted(pair):
    """With recorded truth (as the synthetic generator writes), both paths leave the samples the data
    corrupted itself out of the AUROC columns, alike."""
    import dataclasses

    import numpy as np

    p, data = pair
    test = data.split("test")
    truth = {m: np.zeros(len(data.labels), dtype=np.int8) for m in data.schema.modality_names}
    truth[data.schema.modality_names[0]][test[::3]] = 1
    marked = dataclasses.replace(data, truth=truth)
    dash = robustness_sweep(p.views(REFERENCE_TRAINED), split_batches(p, marked, "test"), p.primary.schema,
                            corruptions=["swap"], severities=(0, 1, 5), seed=0)
    cli = pd.concat([sweep_checkpoint(c, marked, "test", seed=0, severities=(1, 5), corruptions=["swap"])
                     for c in (p.calibrated, p.uncalibrated)], ignore_index=True)
    pd.testing.assert_frame_equal(cli, dash)
    plain = pd.concat([sweep_checkpoint(c, data, "test", seed=0, severities=(1, 5), corruptions=["swap"])
                       for c in (p.calibrated, p.uncalibrated)], ignore_index=True)
    assert not np.allclose(plain["auroc_alpha"].fillna(-1), cli["auroc_alpha"].fillna(-1))


def test_a_cached_sweep_is_keyed_by_every_module_the_engine_runs():
    """A sweep cached by an older engine must not be served: its key hashes the source of every
    precal module the sweep engine imports (corruptions, scoring, tables), not only the model code."""
    import subprocess
    import sys
    from pathlib import Path

    import precal
    from precal.dashboard.backend import running

    code = ("import sys, precal.robustness.engine; print('\\n'.join(sorted(m for m in sys.modules "
            "if m.startswith('precal.robustness.') or m == 'precal.metrics')))")
    used = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    base = Path(precal.__file__).resolve().parent
    files = {str(Path(*m.split(".")[1:]).with_suffix(".py")) for m in used}
    assert files and all((base / f).is_file() for f in files)
    assert files <= set(running._SWEEP_FILES)
    assert running.sweep_code_key() != running.code_key()
