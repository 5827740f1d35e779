"""Official GLUE metrics, checked against hand-computed values and scikit-learn / SciPy."""

from __future__ import annotations

import numpy as np
import pytest

from autopeft.workers.metrics import classification_metrics, matthews, regression_metrics


def test_binary_metrics_match_hand_computed_values():
    pred, gold = np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1])
    m = classification_metrics(pred, gold)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # tp=2, fp=1, fn=1
    assert m["matthews"] == pytest.approx((2 * 1 - 1 * 1) / np.sqrt(3 * 3 * 2 * 2))  # tp=2, tn=1, fp=1, fn=1


def test_metrics_agree_with_scikit_learn_on_random_labels():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for classes in (2, 3):
        gold, pred = rng.integers(0, classes, 200), rng.integers(0, classes, 200)
        m = classification_metrics(pred, gold)
        assert m["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(gold, pred))
        assert m["matthews"] == pytest.approx(sklearn_metrics.matthews_corrcoef(gold, pred))
        average = "binary" if classes == 2 else "macro"
        assert m["f1"] == pytest.approx(sklearn_metrics.f1_score(gold, pred, average=average))


def test_degenerate_predictions_give_zero_correlations_not_nan():
    assert matthews(np.ones(5, int), np.array([0, 1, 0, 1, 1])) == 0.0
    assert classification_metrics(np.zeros(4, int), np.zeros(4, int))["f1"] == 0.0
    assert regression_metrics(np.full(4, 2.0), np.array([1.0, 2.0, 3.0, 4.0])) == {"pearson": 0.0, "spearman": 0.0}


def test_regression_metrics_match_scipy():
    from scipy.stats import pearsonr, spearmanr

    pred, gold = np.array([1.0, 2.0, 3.0, 5.0, 4.5]), np.array([2.0, 4.0, 6.0, 7.0, 7.5])
    r = regression_metrics(pred, gold)
    assert r["pearson"] == pytest.approx(pearsonr(pred, gold)[0]) and 0.9 < r["pearson"] < 1.0
    assert r["spearman"] == pytest.approx(spearmanr(pred, gold)[0])
