"""The unseen-defaults measurement: its swapped pairs must really swap one modality from another
class and leave the others, its report must count misses against the trained detector, and one real
run must find the swaps the generator's modalities make detectable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.unseen_defaults import TARGET, report, rows_for, swap_pairs


def test_swap_pairs_replace_only_the_target_and_only_from_another_class():
    labels = np.array([0, 0, 1, 1, 2, 2])
    summaries = {"a": np.arange(6, dtype=float)[:, None] * 10, "b": np.arange(6, dtype=float)[:, None]}
    x, y = swap_pairs(summaries, labels, "a", ["a", "b"], np.random.default_rng(0))
    assert x.shape == (12, 2) and list(y) == [0] * 6 + [1] * 6
    assert np.array_equal(x[:6], np.c_[summaries["a"], summaries["b"]])
    assert np.array_equal(x[6:, 1], summaries["b"][:, 0])  # the peer is untouched
    donors = (x[6:, 0] / 10).astype(int)
    assert np.all(labels[donors] != labels)  # every swapped-in summary is of another class


def test_report_counts_the_misses_and_those_the_trained_detector_also_misses():
    frame = pd.DataFrame({
        "set": ["s"] * 4, "backbone": ["late", "late", "conv", "conv"], "seed": [1] * 4,
        "modality": ["a", "b", "a", "b"], "gate": [0.95, 0.80, 0.92, 0.85], "support": [0.9] * 4,
        "ceiling": [0.99, 0.85, 0.97, 0.95], "probe": [0.8] * 4, "accuracy": [0.9] * 4})
    text = report(frame)
    assert f"gate >= {TARGET}: 2 of 4" in text
    assert "conv 1/2" in text and "late 1/2" in text
    assert "below 0.9: 2 rows, 1 of them where the trained detector also stays below" in text


@pytest.mark.slow
def test_a_default_run_on_an_unseen_shape_flags_swaps():
    rows = rows_for("frames_tokens", "late", seed=100)
    assert [r["modality"] for r in rows] == ["frame_sequence", "token_sequence"]
    for r in rows:
        assert r["probe"] > 0.4  # six classes: chance is 0.17
        assert r["ceiling"] > 0.8 and r["gate"] > 0.8  # stored runs: 0.9 and above
