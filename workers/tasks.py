"""Tasks: where the data is, which columns hold text and label, and which metric is official.

A task is named `glue:<name>` (GLUE TSV files from `--data-dir`, e.g. `<dir>/SST-2/train.tsv`), or
is a local file with an optional query string::

    data/reviews.csv                                   # columns `sentence` (or `sentence1`,`sentence2`), `label`
    data/pairs.jsonl?text=premise,hypothesis&label=gold
    data/scores.tsv?text=a,b&label=score&kind=regression&dev=data/scores_dev.tsv

CSV is comma-separated with a header, TSV tab-separated with a header, JSONL one object per line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs


class DataError(ValueError):
    """Data that cannot be used for training; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class TaskSpec:
    """One task. `columns` are header names, or 0-based indices for header-less files (CoLA)."""

    name: str
    kind: str  # "classification" | "regression"
    text_columns: tuple[str | int, ...]
    label_column: str | int
    metric: str  # the official metric maximised by the search
    metrics: tuple[str, ...]
    train_file: Path | None = None
    dev_file: Path | None = None
    header: bool = True
    labels: tuple[str, ...] | None = None  # label strings in class-index order; None = read from data
    file_format: str = "tsv"
    extra: dict = field(default_factory=dict)


_CLS = ("accuracy", "f1", "matthews")
_REG = ("pearson", "spearman")

# name → (folder, text columns, label column, labels, metric, dev file, header)
_GLUE = {
    "rte": ("RTE", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment"), "accuracy", "dev.tsv", True),
    "wnli": ("WNLI", ("sentence1", "sentence2"), "label", ("0", "1"), "accuracy", "dev.tsv", True),
    "sst2": ("SST-2", ("sentence",), "label", ("0", "1"), "accuracy", "dev.tsv", True),
    "cola": ("CoLA", (3,), 1, ("0", "1"), "matthews", "dev.tsv", False),
    "mrpc": ("MRPC", ("#1 String", "#2 String"), "Quality", ("0", "1"), "f1", "dev.tsv", True),
    "qnli": ("QNLI", ("question", "sentence"), "label", ("entailment", "not_entailment"), "accuracy", "dev.tsv", True),
    "qqp": ("QQP", ("question1", "question2"), "is_duplicate", ("0", "1"), "accuracy", "dev.tsv", True),
    "mnli": ("MNLI", ("sentence1", "sentence2"), "gold_label", ("entailment", "neutral", "contradiction"), "accuracy",
             "dev_matched.tsv", True),
    "stsb": ("STS-B", ("sentence1", "sentence2"), "score", None, "pearson", "dev.tsv", True),
}
GLUE_TASKS = tuple(f"glue:{name}" for name in _GLUE)


def resolve_task(task: str, data_dir: str | Path | None = None) -> TaskSpec:
    """The `TaskSpec` for `task`; `DataError` for an unknown name or a missing data directory."""
    if task.startswith("glue:"):
        return _glue_task(task[5:].lower().replace("-", ""), data_dir)
    return _file_task(task)


def _glue_task(name: str, data_dir: str | Path | None) -> TaskSpec:
    if name not in _GLUE:
        raise DataError(f"task glue:{name}: unknown GLUE task; known: {', '.join(GLUE_TASKS)}")
    folder, texts, label, labels, metric, dev, header = _GLUE[name]
    if data_dir is None:
        raise DataError(
            f"task glue:{name}: no --data-dir given and the Hugging Face hub is not used here; "
            f"pass --data-dir pointing at a folder with {folder}/train.tsv"
        )
    root = Path(data_dir) / folder
    regression = labels is None
    return TaskSpec(
        name=f"glue:{name}", kind="regression" if regression else "classification", text_columns=texts,
        label_column=label, metric=metric, metrics=_REG if regression else _CLS, train_file=root / "train.tsv",
        dev_file=root / dev, header=header, labels=labels, file_format="tsv",
    )


def _file_task(task: str) -> TaskSpec:
    path_text, _, query = task.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    path = Path(path_text)
    file_format = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}.get(path.suffix.lower())
    if file_format is None:
        raise DataError(f"task {task}: expected glue:<name> or a .csv, .tsv or .jsonl file, got {path_text!r}")
    unknown = set(options) - {"text", "label", "kind", "dev"}
    if unknown:
        raise DataError(f"task {task}: unknown option(s) {', '.join(sorted(unknown))}; use text=, label=, kind=, dev=")
    kind = options.get("kind", "classification")
    if kind not in ("classification", "regression"):
        raise DataError(f"task {task}: kind: expected classification or regression, got {kind!r}")
    texts = tuple(options["text"].split(",")) if "text" in options else ()
    return TaskSpec(
        name=path.name, kind=kind, text_columns=texts, label_column=options.get("label", "label"),
        metric="pearson" if kind == "regression" else "accuracy", metrics=_REG if kind == "regression" else _CLS,
        train_file=path, dev_file=Path(options["dev"]) if "dev" in options else None, file_format=file_format,
    )
