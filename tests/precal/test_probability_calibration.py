"""Probability calibration metrics (precal.metrics: reliability bins and ECE), checked against
values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from precal.metrics import expected_calibration_error, reliability_bins


def logits_for(probabilities: np.ndarray) -> np.ndarray:
    return np.log(probabilities)


def test_hand_worked_two_bin_example() -> None:
    # Four samples at confidence 0.9 (3 right) and two at 0.6 (1 right), two classes.
    p = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 2)
    labels = np.array([0, 0, 0, 1, 0, 1])
    bins = reliability_bins(labels, logits_for(p), bins=10)
    assert [(b["count"], round(b["confidence"], 6), b["accuracy"]) for b in bins] == [(2, 0.6, 0.5), (4, 0.9, 0.75)]
    # ECE = (2 * |0.6 - 0.5| + 4 * |0.9 - 0.75|) / 6 = (0.2 + 0.6) / 6
    assert expected_calibration_error(labels, logits_for(p), bins=10) == pytest.approx(0.8 / 6)


def test_perfectly_calibrated_and_overconfident() -> None:
    rng = np.random.default_rng(0)
    n = 20000
    confidence = rng.uniform(0.5, 1.0, n)
    correct = rng.uniform(size=n) < confidence  # right exactly as often as the model says
    labels = np.where(correct, 0, 1)
    p = np.stack([confidence, 1 - confidence], axis=1)
    assert expected_calibration_error(labels, logits_for(p)) < 0.02
    sharp = np.stack([np.full(n, 0.99), np.full(n, 0.01)], axis=1)  # 99% sure, right ~75% of the time
    assert expected_calibration_error(labels, logits_for(sharp)) == pytest.approx(0.99 - correct.mean(), abs=1e-9)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="bins"):
        reliability_bins(np.array([0]), np.array([[1.0, 0.0]]), bins=0)
    with pytest.raises(ValueError):
        reliability_bins(np.array([0, 1]), np.array([[1.0, 0.0]]))
