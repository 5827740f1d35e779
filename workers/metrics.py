"""Official GLUE metrics on numpy arrays: accuracy, binary F1, Matthews correlation, Pearson, Spearman."""

from __future__ import annotations

import math

import numpy as np


def classification_metrics(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """`predictions`, `labels`: int arrays of shape (n,). F1 is for class 1 (binary) or macro (more)."""
    accuracy = float((predictions == labels).mean()) if len(labels) else 0.0
    classes = np.union1d(predictions, labels)
    f1s = []
    for c in classes if len(classes) > 2 else [1]:
        tp = float(((predictions == c) & (labels == c)).sum())
        fp = float(((predictions == c) & (labels != c)).sum())
        fn = float(((predictions != c) & (labels == c)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"accuracy": accuracy, "f1": float(np.mean(f1s)), "matthews": matthews(predictions, labels)}


def matthews(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Multiclass Matthews correlation (Gorodkin 2004); 0 when undefined."""
    classes = np.union1d(predictions, labels)
    confusion = np.array([[np.sum((labels == a) & (predictions == b)) for b in classes] for a in classes], float)
    t, p, c, s = confusion.sum(1), confusion.sum(0), np.trace(confusion), confusion.sum()
    denominator = math.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - t @ p) / denominator) if denominator else 0.0


def regression_metrics(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """`predictions`, `labels`: float arrays of shape (n,)."""
    from scipy.stats import pearsonr, spearmanr

    if len(labels) < 2 or np.std(predictions) == 0 or np.std(labels) == 0:
        return {"pearson": 0.0, "spearman": 0.0}
    return {"pearson": float(pearsonr(predictions, labels)[0]), "spearman": float(spearmanr(predictions, labels)[0])}


#: Which way each metric is better; a ``dev_`` prefix (dev-split values) keeps the metric's direction.
METRIC_DIRECTIONS: dict[str, str] = {
    "accuracy": "maximize", "f1": "maximize", "matthews": "maximize", "pearson": "maximize", "spearman": "maximize",
    "eval_loss": "minimize", "perplexity": "minimize", "token_accuracy": "maximize", "exact_match": "maximize",
}


def metric_direction(metric: str) -> str:
    """``maximize`` or ``minimize`` for `metric` (``dev_`` prefix allowed); `KeyError` for an unknown metric."""
    return METRIC_DIRECTIONS[metric.removeprefix("dev_")]


def uniform_prediction_value(metric: str, vocab_size: int) -> float | None:
    """The value of a minimised language-model metric for a uniform prediction over `vocab_size` tokens
    (``ln V`` for eval_loss in nats per token, ``V`` for perplexity); None for other metrics."""
    return {"eval_loss": math.log(vocab_size), "perplexity": float(vocab_size)}.get(metric.removeprefix("dev_"))
