"""Evaluation metrics for classification and for MOSI/MOSEI-style sentiment regression.

Why a module of its own: the numbers a paper reports on CMU-MOSI/MOSEI depend on small conventions
(is a label of exactly 0 "positive" or dropped? how is a 7-class accuracy rounded?). Putting them
in one place, with the convention named, keeps training, model selection, evaluation and the
dashboard reporting the *same* numbers, comparable with published MMSA results.

Regression convention (followed exactly, apart from not rounding to 4 decimals): the MMSA toolkit,
``MetricsTop.__eval_mosei_regression`` in ``src/MMSA/utils/metricsTop.py`` of
https://github.com/thuiar/MMSA (used for both MOSI and MOSEI):

- ``acc2_has0`` / ``f1_has0``: truth ``>= 0`` vs ``< 0`` and prediction ``>= 0`` vs ``< 0`` over
  *all* samples; F1 is ``sklearn.metrics.f1_score(..., average="weighted")``.
- ``acc2_non0`` / ``f1_non0``: only samples whose *true* label is not exactly 0; truth ``> 0`` vs
  prediction ``> 0`` (so a prediction of exactly 0 counts as negative here); weighted F1.
- ``acc7``: clip truth and prediction to [-3, 3], round both with ``np.round`` and compare.
  ``np.round`` rounds halves to even (0.5 -> 0, 1.5 -> 2, 2.5 -> 2), exactly as MMSA does.
- ``acc5``: the same after clipping to [-2, 2].
- ``mae``: mean absolute error of the *unclipped* values.
- ``corr``: Pearson correlation (``np.corrcoef``); where MMSA would return NaN (a constant input, or
  fewer than two samples) this returns 0.0 so that model selection and JSON reports stay usable.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import numpy as np

REGRESSION_SELECTION_METRIC = "acc2_non0"
"""Model selection on MOSI/MOSEI uses the binary accuracy without neutral labels (higher is
better): it is the headline number of most papers and, unlike MAE, matches the task users care
about (polarity)."""

_HIGHER_IS_BETTER = frozenset({
    "accuracy", "macro_f1", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc7", "acc5", "corr",
})
_LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse", "loss"})


# --------------------------------------------------------------------------------------------
# classification


def classification_metrics(y_true: np.ndarray, logits_or_pred: np.ndarray,
                           class_names: Sequence[str]) -> Dict[str, object]:
    """Accuracy, macro-F1, confusion matrix and per-class recall of a classifier.

    ``logits_or_pred`` is either (N, K) scores (argmax is taken; logits, probabilities and
    log-probabilities all give the same argmax) or (N,) integer class indices.

    Macro-F1 averages over the classes that occur in the truth or the predictions (scikit-learn's
    default), so a small evaluation set that lacks a class is not penalised for it. The confusion
    matrix is ``K x K`` over all declared classes, rows = true class, columns = predicted class.
    ``per_class_recall`` maps each class name to its recall, or ``None`` when the class has no true
    samples (recall is undefined; ``None`` keeps the dict JSON-serialisable).
    """
    names = list(class_names)
    k = len(names)
    truth = _as_label_vector(y_true, "y_true")
    pred = _predicted_labels(logits_or_pred, k)
    _check_same_length(truth, pred)
    _check_label_range(truth, k, "y_true")
    _check_label_range(pred, k, "predictions")
    cm = confusion(truth, pred, k)
    return {
        "accuracy": float(np.mean(truth == pred)),
        "macro_f1": f1_from_confusion(cm, "macro"),
        "confusion_matrix": cm.astype(int).tolist(),
        "per_class_recall": _per_class_recall(cm, names),
        "n": int(len(truth)),
    }


def confusion(truth: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """K x K counts, rows = true class, columns = predicted class."""
    return np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)


def f1_from_confusion(cm: np.ndarray, average: str) -> float:
    """F1 averaged over the classes that occur in the truth or the predictions, with per-class F1
    0 where it is undefined: scikit-learn's ``f1_score(..., average, zero_division=0)``.

    Computed here rather than imported: scikit-learn's import (scipy.stats) costs seconds, which
    the dashboard would pay before its first page.
    """
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    seen = denom > 0
    if not seen.any():
        return 0.0
    if average == "macro":
        return float(f1[seen].mean())
    if average == "weighted":
        total = support[seen].sum()
        return float((f1[seen] * support[seen]).sum() / total) if total > 0 else 0.0
    raise ValueError(f"unknown average {average!r}; use 'macro' or 'weighted'")


def _as_label_vector(values: np.ndarray, what: str) -> np.ndarray:
    """(N,) int64 labels; float arrays are accepted only when every value is a whole number."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what} is empty: metrics need at least one sample")
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    raise ValueError(f"{what} must hold integer class indices, got dtype {arr.dtype}")


def _predicted_labels(logits_or_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices from (N, K) scores (argmax) or from (N,) indices."""
    arr = np.asarray(logits_or_pred)
    if arr.ndim == 2:
        if arr.shape[1] != num_classes:
            raise ValueError(f"logits have {arr.shape[1]} columns but there are {num_classes} classes")
        if arr.shape[0] == 0:
            raise ValueError("predictions are empty: metrics need at least one sample")
        return np.argmax(arr, axis=1).astype(np.int64)
    if arr.ndim == 1:
        return _as_label_vector(arr, "predictions")
    raise ValueError(f"predictions must be (N,) labels or (N, K) logits, got shape {arr.shape}")


def _check_same_length(a: np.ndarray, b: np.ndarray) -> None:
    if len(a) != len(b):
        raise ValueError(f"y_true has {len(a)} samples but the predictions have {len(b)}")


def _check_label_range(labels: np.ndarray, k: int, what: str) -> None:
    if k < 1:
        raise ValueError("class_names is empty")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"{what} must lie in 0..{k - 1}, found {labels.min()}..{labels.max()}")


def _per_class_recall(cm: np.ndarray, names: Sequence[str]) -> Dict[str, Optional[float]]:
    support = cm.sum(axis=1)
    return {name: (float(cm[i, i] / support[i]) if support[i] else None) for i, name in enumerate(names)}


# --------------------------------------------------------------------------------------------
# regression (MOSI / MOSEI sentiment in [-3, 3])


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> Dict[str, float]:
    """MMSA-convention sentiment metrics (see the module docstring for the exact definitions).

    Both inputs are flattened, so (N,) and (N, 1) work. Non-finite values raise ``ValueError``: a
    NaN prediction means a diverged model, and silently scoring it would hide that. ``acc2_non0``
    and ``f1_non0`` are NaN when every true label is exactly 0 (the subset is empty).
    """
    truth = _as_float_vector(y_true, "y_true")
    pred = _as_float_vector(y_pred, "y_pred")
    _check_same_length(truth, pred)
    has0_acc, has0_f1 = _binary_scores(truth >= 0, pred >= 0)
    non0 = truth != 0
    non0_acc, non0_f1 = (_binary_scores(truth[non0] > 0, pred[non0] > 0) if non0.any()
                         else (math.nan, math.nan))
    return {
        "acc2_has0": has0_acc,
        "f1_has0": has0_f1,
        "acc2_non0": non0_acc,
        "f1_non0": non0_f1,
        "acc7": _rounded_class_accuracy(truth, pred, 3.0),
        "acc5": _rounded_class_accuracy(truth, pred, 2.0),
        "mae": float(np.mean(np.abs(pred - truth))),
        "corr": pearson_or_zero(truth, pred),
        "n": int(len(truth)),
        "n_non0": int(non0.sum()),
    }


def _as_float_vector(values: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{what} is empty: metrics need at least one sample")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return arr


def _binary_scores(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Accuracy and support-weighted F1 of boolean labels, as MMSA computes them.

    ``zero_division=0`` gives the value scikit-learn's default already returns (with a warning) when
    one class is never predicted.
    """
    t, p = np.asarray(truth).astype(np.int64), np.asarray(pred).astype(np.int64)
    return float(np.mean(t == p)), f1_from_confusion(confusion(t, p, 2), "weighted")


def _rounded_class_accuracy(truth: np.ndarray, pred: np.ndarray, bound: float) -> float:
    """Clip both to [-bound, bound], round half to even (``np.round``, as MMSA), compare."""
    t = np.round(np.clip(truth, -bound, bound))
    p = np.round(np.clip(pred, -bound, bound))
    return float(np.mean(t == p))


def pearson_or_zero(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation, or 0.0 where it is undefined (constant input, fewer than 2 samples).

    A constant predictor carries no information about the ranking of samples, so 0.0 is the honest
    score and, unlike NaN, it can be compared during model selection.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        r = float(np.corrcoef(a, b)[0, 1])
    return r if math.isfinite(r) else 0.0


# --------------------------------------------------------------------------------------------
# dispatch and model selection


def compute_metrics(task: str, y_true: np.ndarray, outputs: np.ndarray,
                    class_names: Sequence[str] = ()) -> Dict[str, object]:
    """Metrics for a task type from the schema ("classification" or "regression").

    For classification without ``class_names`` the classes are named "0".."K-1", with K taken from
    the logits' width or, for label predictions, from the largest label seen.
    """
    if task == "classification":
        names = list(class_names) or _default_class_names(y_true, outputs)
        return classification_metrics(y_true, outputs, names)
    if task == "regression":
        return regression_metrics(y_true, outputs)
    raise ValueError(f"unknown task {task!r}; expected 'classification' or 'regression'")


def _default_class_names(y_true: np.ndarray, outputs: np.ndarray) -> List[str]:
    out = np.asarray(outputs)
    if out.ndim == 2:
        k = out.shape[1]
    else:
        k = int(max(np.max(np.asarray(y_true)), np.max(out))) + 1 if np.size(out) else 0
    return [str(i) for i in range(k)]


def primary_metric(task: str) -> str:
    """The metric used to select the best epoch/model for a task.

    Classification: ``"accuracy"``. Regression: ``"acc2_non0"`` (MOSI/MOSEI binary accuracy
    without neutral labels). Both are higher-is-better; see :func:`higher_is_better`.
    """
    if task == "classification":
        return "accuracy"
    if task == "regression":
        return REGRESSION_SELECTION_METRIC
    raise ValueError(f"unknown task {task!r}; expected 'classification' or 'regression'")


def higher_is_better(name: str) -> bool:
    """Direction of a metric for model selection.

    Unknown names raise ``KeyError`` rather than guessing, because a wrong guess would silently
    select the *worst* model.
    """
    if name in _HIGHER_IS_BETTER:
        return True
    if name in _LOWER_IS_BETTER or name.endswith("_loss"):
        return False
    raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(_HIGHER_IS_BETTER | _LOWER_IS_BETTER))}")


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of "positive scores higher", via the Mann-Whitney U statistic
    (ties count one half): the same value as scikit-learn's ``roc_auc_score``, without paying its
    import (seconds) in every sweep and in the dashboard."""
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    scores = np.concatenate([positive, negative]).astype(np.float64)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average rank (1-based) of each run of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    n_pos, n_neg = len(positive), len(negative)
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


# --------------------------------------------------------------------------------------------
# probability calibration (how well the predicted probabilities match the observed accuracy; not to
# be confused with the pre-fusion calibrator)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities from logits over the last axis, in float64 (shifted by the maximum: no
    overflow). The one softmax of the library and the app."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def reliability_bins(labels: np.ndarray, logits: np.ndarray, bins: int = 15) -> List[Dict[str, float]]:
    """Confidence (the top class's probability) against accuracy in ``bins`` equal-width bins.

    ``logits`` are (N, K) unnormalised log-probabilities (a softmax gives the probabilities; a model's
    logits and log-probabilities both qualify). Empty bins are left out. Each bin: its range, the
    mean confidence, the accuracy and the number of samples: what a reliability diagram draws."""
    if not 1 <= bins <= 1000:
        raise ValueError(f"bins must be between 1 and 1000, got {bins}")
    truth = _as_label_vector(labels, "labels")
    probs = softmax(logits)
    _check_same_length(truth, probs)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        rows = which == b
        if rows.any():
            out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "confidence": float(confidence[rows].mean()),
                        "accuracy": float(correct[rows].mean()), "count": int(rows.sum())})
    return out


def expected_calibration_error(labels: np.ndarray, logits: np.ndarray, bins: int = 15) -> float:
    """ECE (Guo et al., 2017): the count-weighted mean gap between confidence and accuracy over the
    reliability bins; 0 for perfectly calibrated probabilities."""
    table = reliability_bins(labels, logits, bins)
    n = sum(b["count"] for b in table)
    if n == 0:
        return float("nan")
    return float(sum(b["count"] * abs(b["confidence"] - b["accuracy"]) for b in table) / n)
