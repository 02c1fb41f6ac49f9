"""Metrics: hand-computed examples (expected numbers derived in comments, never by calling the code
under test), perfect predictions, invariances and the MMSA conventions that change reported numbers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precal.metrics import (classification_metrics, compute_metrics, higher_is_better, pearson_or_zero,
                            primary_metric, regression_metrics)


NAMES = ("a", "b", "c")

# --------------------------------------------------------------------------------------------
# classification

Y_TRUE = np.array([0, 0, 1, 1, 2])
Y_PRED = np.array([0, 1, 1, 1, 0])


def test_classification_hand_computed() -> None:
    m = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    # correct at positions 0, 2, 3 -> 3 / 5
    assert m["accuracy"] == pytest.approx(0.6)
    # rows = truth, columns = prediction
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # recall: a 1/2, b 2/2, c 0/1
    assert m["per_class_recall"] == {"a": pytest.approx(0.5), "b": pytest.approx(1.0), "c": pytest.approx(0.0)}
    # F1: a: P=1/2 (predicted at 0 and 4), R=1/2 -> 0.5; b: P=2/3, R=1 -> 2*(2/3)/(5/3) = 0.8; c: 0
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["n"] == 5


def test_logits_give_the_same_metrics_as_their_argmax() -> None:
    logits = np.full((5, 3), -1.0)
    logits[np.arange(5), Y_PRED] = 2.0
    assert classification_metrics(Y_TRUE, logits, NAMES) == classification_metrics(Y_TRUE, Y_PRED, NAMES)


def test_logit_shift_and_positive_scale_invariance() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 3))
    y = rng.integers(0, 3, size=40)
    base = classification_metrics(y, logits, NAMES)
    shifted = logits * 3.5 + rng.normal(size=(40, 1))  # per-row shift, positive scale: same argmax
    assert classification_metrics(y, shifted, NAMES) == base


def test_perfect_classification() -> None:
    y = np.array([2, 0, 1, 1, 0])
    m = classification_metrics(y, y, NAMES)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0
    assert m["per_class_recall"] == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 1]]


def test_recall_of_a_class_without_true_samples_is_none() -> None:
    m = classification_metrics(np.array([0, 0]), np.array([0, 1]), NAMES)
    assert m["per_class_recall"]["c"] is None
    assert m["per_class_recall"]["b"] is None
    assert m["per_class_recall"]["a"] == pytest.approx(0.5)


@pytest.mark.parametrize("pred, match", [
    (np.zeros((5, 4)), "columns"),
    (np.array([0, 1, 2, 3, 0]), "0..2"),
    (np.array([0, 1]), "samples"),
    (np.array([0.5, 1, 1, 1, 0]), "integer"),
])
def test_classification_rejects_bad_predictions(pred: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        classification_metrics(Y_TRUE, pred, NAMES)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=30), st.randoms())
def test_classification_permutation_invariance(pairs, rnd) -> None:
    y = np.array([p[0] for p in pairs])
    p = np.array([p[1] for p in pairs])
    order = list(range(len(y)))
    rnd.shuffle(order)
    a = classification_metrics(y, p, NAMES)
    b = classification_metrics(y[order], p[order], NAMES)
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert a["accuracy"] == pytest.approx(b["accuracy"])
    assert a["macro_f1"] == pytest.approx(b["macro_f1"])
    assert 0.0 <= a["accuracy"] <= 1.0 and 0.0 <= a["macro_f1"] <= 1.0
    assert sum(map(sum, a["confusion_matrix"])) == len(y)


# --------------------------------------------------------------------------------------------
# regression (MMSA conventions)

T = np.array([-2.0, 0.0, 0.4, 1.6, -0.5, 2.6])
P = np.array([-1.4, -0.2, -0.3, 2.5, 0.5, 3.7])


def test_regression_hand_computed() -> None:
    m = regression_metrics(T, P)
    # has0: truth>=0 = [F,T,T,T,F,T], pred>=0 = [F,F,F,T,T,T] -> agree at 0, 3, 5 -> 3/6
    assert m["acc2_has0"] == pytest.approx(0.5)
    # weighted F1: True (support 4): P=2/3, R=2/4 -> F1=4/7; False (support 2): P=1/3, R=1/2 -> 2/5
    # (4 * 4/7 + 2 * 2/5) / 6 = 18/35
    assert m["f1_has0"] == pytest.approx(18 / 35)
    # non0 drops the true 0 at position 1; truth>0 = [F,T,T,F,T], pred>0 = [F,F,T,T,T] -> 3/5
    assert m["acc2_non0"] == pytest.approx(0.6)
    # True (support 3): P=2/3, R=2/3; False (support 2): P=1/2, R=1/2 -> (3*2/3 + 2*1/2)/5 = 0.6
    assert m["f1_non0"] == pytest.approx(0.6)
    # acc7 with round-half-to-even: truth -> [-2, 0, 0, 2, -0, 3]; pred (3.7 clipped to 3)
    # -> [-1, -0, -0, 2 (2.5), 0 (0.5), 3]: only position 0 differs -> 5/6
    assert m["acc7"] == pytest.approx(5 / 6)
    # |p - t| = 0.6, 0.2, 0.7, 0.9, 1.0, 1.1 -> 4.5 / 6
    assert m["mae"] == pytest.approx(0.75)
    assert m["n"] == 6 and m["n_non0"] == 5


def test_has0_and_non0_differ_on_a_zero_prediction() -> None:
    # A prediction of exactly 0 is "non-negative" (correct for has0) but not "positive" (wrong for non0).
    m = regression_metrics(np.array([1.0, -1.0]), np.array([0.0, -1.0]))
    assert m["acc2_has0"] == pytest.approx(1.0)
    assert m["acc2_non0"] == pytest.approx(0.5)


def test_true_zero_labels_count_as_positive_only_in_has0() -> None:
    # truth 0 with a negative prediction: wrong under has0 (0 >= 0), excluded under non0
    m = regression_metrics(np.array([0.0, 2.0, -2.0]), np.array([-1.0, 2.0, -2.0]))
    assert m["acc2_has0"] == pytest.approx(2 / 3)
    assert m["acc2_non0"] == pytest.approx(1.0)
    assert m["n_non0"] == 2


def test_non0_is_nan_when_every_label_is_zero() -> None:
    m = regression_metrics(np.zeros(3), np.array([0.1, -0.1, 0.0]))
    assert math.isnan(m["acc2_non0"]) and math.isnan(m["f1_non0"])
    assert m["acc2_has0"] == pytest.approx(2 / 3)


def test_acc5_clips_at_two_and_acc7_at_three() -> None:
    # acc7: round(-2.4) = -2 vs -3, round(2.2) = 2 vs round(2.9) = 3 -> 0; acc5 clips all to +-2 -> 1
    m = regression_metrics(np.array([-2.4, 2.2]), np.array([-3.0, 2.9]))
    assert m["acc7"] == 0.0
    assert m["acc5"] == 1.0


def test_rounding_is_half_to_even_like_mmsa() -> None:
    # np.round(0.5) == 0 and np.round(1.5) == 2; half-away-from-zero would give 1 and 2
    m = regression_metrics(np.array([0.0, 2.0]), np.array([0.5, 1.5]))
    assert m["acc7"] == 1.0


def test_pearson_hand_computed() -> None:
    # deviations t = [-1, 0, 1], p = [-1, 1, 0]: cov sum 1, variance sums 2 and 2 -> 1/2
    assert pearson_or_zero(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])) == pytest.approx(0.5)


def test_constant_predictions_give_zero_corr_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = regression_metrics(T, np.full_like(T, 0.7))
        assert m["corr"] == 0.0
        assert regression_metrics(np.ones(4), np.arange(4.0))["corr"] == 0.0
        assert regression_metrics(np.array([1.0]), np.array([2.0]))["corr"] == 0.0


def test_perfect_regression() -> None:
    m = regression_metrics(T, T.copy())
    for key in ("acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc7", "acc5", "corr"):
        assert m[key] == pytest.approx(1.0), key
    assert m["mae"] == 0.0


def test_column_vectors_are_flattened() -> None:
    assert regression_metrics(T.reshape(-1, 1), P.reshape(-1, 1)) == regression_metrics(T, P)


@pytest.mark.parametrize("bad", [np.array([np.nan, 0, 0, 0, 0, 0]), np.array([np.inf, 0, 0, 0, 0, 0])])
def test_non_finite_predictions_are_rejected(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="NaN"):
        regression_metrics(T, bad)


def test_length_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="samples"):
        regression_metrics(T, P[:-1])


# Labels and predictions on a 0.01 grid: realistic, and free of subnormal floats whose products
# underflow to 0 and would flip a sign for reasons that have nothing to do with the metrics.
_finite = st.integers(-400, 400).map(lambda k: k / 100)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_finite, _finite), min_size=2, max_size=25),
       st.sampled_from([0.1, 0.5, 2.0, 7.5]), st.randoms())
def test_regression_invariances(pairs, scale, rnd) -> None:
    t = np.array([p[0] for p in pairs])
    p = np.array([p[1] for p in pairs])
    base = regression_metrics(t, p)
    order = list(range(len(t)))
    rnd.shuffle(order)
    permuted = regression_metrics(t[order], p[order])
    for key, value in base.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(permuted[key])
        else:
            assert permuted[key] == pytest.approx(value, abs=1e-9), key
    scaled = regression_metrics(t, p * scale)  # positive scaling keeps every sign
    for key in ("acc2_has0", "f1_has0", "acc2_non0", "f1_non0"):
        assert (math.isnan(base[key]) and math.isnan(scaled[key])) or scaled[key] == pytest.approx(base[key])
    affine = pearson_or_zero(t, p * scale + 1.0)
    if abs(base["corr"]) > 1e-6 and np.ptp(p) > 1e-6:
        assert affine == pytest.approx(base["corr"], abs=1e-6)
    for key in ("acc2_has0", "acc7", "acc5"):
        assert 0.0 <= base[key] <= 1.0
    assert -1.0 - 1e-12 <= base["corr"] <= 1.0 + 1e-12


# --------------------------------------------------------------------------------------------
# dispatch and model selection


def test_compute_metrics_dispatches() -> None:
    assert compute_metrics("regression", T, P) == regression_metrics(T, P)
    assert compute_metrics("classification", Y_TRUE, Y_PRED, NAMES) == classification_metrics(Y_TRUE, Y_PRED, NAMES)
    inferred = compute_metrics("classification", Y_TRUE, np.eye(3)[Y_PRED])
    assert list(inferred["per_class_recall"]) == ["0", "1", "2"]
    assert inferred["accuracy"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="unknown task"):
        compute_metrics("ranking", T, P)


def test_primary_metric_and_direction() -> None:
    assert primary_metric("classification") == "accuracy"
    assert primary_metric("regression") == "acc2_non0"
    assert higher_is_better("accuracy") and higher_is_better("acc2_non0") and higher_is_better("corr")
    assert not higher_is_better("mae") and not higher_is_better("val_loss")
    with pytest.raises(KeyError, match="unknown metric"):
        higher_is_better("acuracy")
    with pytest.raises(ValueError):
        primary_metric("ranking")


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=60))
@settings(max_examples=80, deadline=None)
def test_f1_matches_scikit_learn(pairs) -> None:
    from sklearn.metrics import f1_score

    from precal.metrics import confusion, f1_from_confusion

    truth = np.array([t for t, _ in pairs])
    pred = np.array([p for _, p in pairs])
    cm = confusion(truth, pred, 5)
    for average in ("macro", "weighted"):
        expected = f1_score(truth, pred, average=average, zero_division=0)
        assert abs(f1_from_confusion(cm, average) - expected) < 1e-12, average
