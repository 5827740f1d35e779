"""Metrics: official GLUE ones on numpy arrays (accuracy, binary F1, Matthews, Pearson, Spearman), the
language-model ones (held-out loss, perplexity, token accuracy, exact match), and each metric's direction.

`METRIC_DIRECTIONS` is the single source of whether a metric is maximised or minimised.
"""

from __future__ import annotations

import math
import re

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


def lm_metrics(loss_sum: float, tokens: int, correct: int) -> dict[str, float]:
    """Token-level metrics of a language model on one split, from sums over its target tokens.

    `loss_sum`: summed cross-entropy in nats over the `tokens` target (completion) tokens; `correct`:
    how many of them are the argmax prediction. Returns ``eval_loss`` (nats per token), ``perplexity``
    (exp of it, capped at exp(50)) and ``token_accuracy`` (in [0, 1]); NaN loss when `tokens` is 0.
    """
    if tokens <= 0:
        return {"eval_loss": math.nan, "perplexity": math.nan, "token_accuracy": math.nan}
    loss = loss_sum / tokens
    return {"eval_loss": loss, "perplexity": math.exp(min(loss, 50.0)), "token_accuracy": correct / tokens}


_SPACES = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """What exact match compares: stripped, lower-cased, runs of whitespace collapsed to one space."""
    return _SPACES.sub(" ", text.strip().lower())


def exact_match(predictions: list[str], references: list[str]) -> float:
    """Share in [0, 1] of generated `predictions` equal to their `references` after `normalize_answer`."""
    if len(predictions) != len(references):
        raise ValueError(f"expected as many predictions as references, got {len(predictions)} and {len(references)}")
    if not references:
        return math.nan
    return sum(normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references, strict=True)) / len(references)
