"""The two-feature-vector measurement: its data must be what it says (two vector modalities, both
informative, splits that partition the samples), and a capped late-fusion run must see swaps."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from experiments.two_feature_vectors import make_data, rows_for


def test_the_data_is_two_informative_feature_vectors_in_disjoint_splits():
    data = make_data(samples=600, classes=5, dims=(24, 16))
    assert [(m.name, m.kind, m.step_shape) for m in data.schema.modalities] == [
        ("image", "vector", (24,)), ("text", "vector", (16,))]
    parts = np.concatenate([data.splits[s] for s in ("train", "val", "test")])
    assert sorted(parts.tolist()) == list(range(600))
    train, test = data.splits["train"], data.splits["test"]
    for name in ("image", "text"):
        x = data.modalities[name].values.reshape(600, -1)
        score = LogisticRegression(max_iter=2000).fit(x[train], data.labels[train]).score(x[test], data.labels[test])
        assert score > 0.6  # five classes: chance is 0.2; each view alone reads the class


@pytest.mark.slow
def test_a_capped_late_fusion_run_sees_the_swaps():
    rows = rows_for(make_data(samples=1500, classes=10, dims=(64, 48)), "late", "capped", seed=0)
    assert [r["modality"] for r in rows] == ["image", "text"]
    for r in rows:
        assert r["support"] > 0.9 and r["gate"] > 0.9
