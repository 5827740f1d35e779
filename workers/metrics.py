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
