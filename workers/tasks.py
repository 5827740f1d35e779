"""Tasks: where the data is, which columns hold text and label, and which metric is official.

A task is named in one of two ways:

- ``glue:<name>`` (``rte``, ``sst2``, ``cola``, ``mrpc``, ``stsb``, ``qnli``, ``qqp``, ``mnli``,
  ``wnli``): GLUE TSV files from a data directory in the official layout (``<dir>/SST-2/train.tsv``,
  ``<dir>/SST-2/dev.tsv``; CoLA without a header row; MRPC's header after a UTF-8 byte-order mark
  (``Quality``, ``#1 String``, ``#2 String``); STS-B's float ``score``; QQP's ``is_duplicate``;
  MNLI's ``gold_label`` and dev ``dev_matched.tsv``; cells read verbatim, without csv quoting, since
  STS-B, MRPC and MNLI cells may start with a quote character; docs/user-guide.md has the table), or, with no
  data directory, the ``nyu-mll/glue`` dataset from the Hugging Face hub when the ``datasets``
  package is installed and the hub is not switched off (``HF_HUB_OFFLINE``, ``HF_DATASETS_OFFLINE``).
- a local file, ``[file:]PATH[?OPTIONS]``, CSV (comma, header row), TSV (tab, header row) or JSONL
  (one JSON object per line), with options joined by ``&``::

      file:data/reviews.csv                              # text column `sentence` (or `sentence1`,`sentence2`, or `text`), label `label`
      data/pairs.jsonl?text=premise,hypothesis&label=gold
      data/scores.tsv?text=a,b&label=score&kind=regression&dev=data/scores_dev.tsv
      data/topics.csv?labels=sport,politics,science&metric=f1

  ``text``: one or two text columns; ``label``: the label column (default ``label``); ``kind``:
  ``classification`` (default) or ``regression`` (numeric labels); ``labels``: the class labels in
  class-index order (default: the labels found in the training file, numbers first in numeric
  order, then the rest alphabetically); ``metric``: the metric the search maximises (default
  ``accuracy``, ``pearson`` for regression); ``dev``: a dev file of the same layout, kept for final
  reporting; ``unlabeled``: what a row whose label is empty or absent means, ``error`` (default: the
  data is refused, naming the lines) or ``drop`` (the row is left out, and the search says how many).
  A row without a label never becomes a class of its own.

Language-model tasks (``kind=causal-lm``, ``kind=seq2seq``) take the same file syntax; see
`autopeft.workers.lm_tasks`.

Metrics: classification reports ``accuracy``, ``f1`` (class 1 for two classes, macro otherwise) and
``matthews``; regression reports ``pearson`` and ``spearman``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from autopeft.workers.lm_tasks import LMTaskSpec


class DataError(ValueError):
    """Data that cannot be used for training; the message is one line saying what is wrong and what to do."""


CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews")
REGRESSION_METRICS = ("pearson", "spearman")


@dataclass(frozen=True)
class HubSplit:
    """One split of a Hugging Face hub dataset, e.g. ``HubSplit("nyu-mll/glue", "sst2", "train")``."""

    dataset: str
    config: str
    split: str

    def __str__(self) -> str:
        return f"hub:{self.dataset}/{self.config}[{self.split}]"


@dataclass(frozen=True)
class TaskSpec:
    """One task, resolved: where its splits are, its columns, labels and metrics.

    `text_columns` / `label_column` are header names, or 0-based column indices for header-less
    files (CoLA); empty `text_columns` means "find `sentence1,sentence2`, `sentence` or `text`".
    `labels` lists the class labels (as strings) in class-index order; None reads them from the
    training data (classification) or means regression. `metric` is the one the search maximises.
    """

    name: str
    kind: str  # "classification" | "regression"
    text_columns: tuple[str | int, ...]
    label_column: str | int
    metric: str
    train_source: Path | HubSplit
    dev_source: Path | HubSplit | None = None
    labels: tuple[str, ...] | None = None
    header: bool = True
    file_format: str = "tsv"  # "csv" | "tsv" | "jsonl" | "hub"
    drop_unlabeled: bool = False  # unlabeled=drop: rows without a label are left out (else they are an error)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric reported for this task."""
        return REGRESSION_METRICS if self.kind == "regression" else CLASSIFICATION_METRICS


@dataclass(frozen=True)
class _Glue:
    folder: str
    texts: tuple[str | int, ...]
    label: str | int
    labels: tuple[str, ...] | None  # None: regression
    metric: str
    hub_texts: tuple[str, ...]
    dev: str = "dev.tsv"
    hub_dev: str = "validation"
    header: bool = True


_PAIR = ("sentence1", "sentence2")
_NLI2 = ("entailment", "not_entailment")
_GLUE = {
    "rte": _Glue("RTE", _PAIR, "label", _NLI2, "accuracy", _PAIR),
    "wnli": _Glue("WNLI", _PAIR, "label", ("0", "1"), "accuracy", _PAIR),
    "sst2": _Glue("SST-2", ("sentence",), "label", ("0", "1"), "accuracy", ("sentence",)),
    "cola": _Glue("CoLA", (3,), 1, ("0", "1"), "matthews", ("sentence",), header=False),
    "mrpc": _Glue("MRPC", ("#1 String", "#2 String"), "Quality", ("0", "1"), "f1", _PAIR),
    "qnli": _Glue("QNLI", ("question", "sentence"), "label", _NLI2, "accuracy", ("question", "sentence")),
    "qqp": _Glue("QQP", ("question1", "question2"), "is_duplicate", ("0", "1"), "f1", ("question1", "question2")),
    "mnli": _Glue("MNLI", _PAIR, "gold_label", ("entailment", "neutral", "contradiction"), "accuracy",
                  ("premise", "hypothesis"), dev="dev_matched.tsv", hub_dev="validation_matched"),
    "stsb": _Glue("STS-B", _PAIR, "score", None, "pearson", _PAIR),
}
GLUE_TASKS = tuple(f"glue:{name}" for name in _GLUE)
GLUE_HUB_DATASET = "nyu-mll/glue"


def resolve_task(task: str, data_dir: str | Path | None = None) -> TaskSpec | LMTaskSpec:
    """The `TaskSpec` for `task` (see the module docstring), an `LMTaskSpec` for ``kind=causal-lm|seq2seq``;
    `DataError` for a task that cannot be used."""
    from autopeft.workers.lm_tasks import lm_kind, resolve_lm_task

    if lm_kind(task) is not None:
        return resolve_lm_task(task)
    if task.startswith("glue:"):
        return _glue_task(task[5:].lower().replace("-", ""), data_dir)
    return _file_task(task.removeprefix("file:"), task)


def hub_unavailable_reason() -> str | None:
    """Why the Hugging Face hub cannot be read here, or None when it may be (installed, not switched off)."""
    import importlib.util

    if importlib.util.find_spec("datasets") is None:
        return "the `datasets` package is not installed"
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var} is set"
    return None


def _glue_task(name: str, data_dir: str | Path | None) -> TaskSpec:
    if name not in _GLUE:
        raise DataError(f"task glue:{name}: unknown GLUE task; expected one of {', '.join(GLUE_TASKS)}")
    g = _GLUE[name]
    common = {"name": f"glue:{name}", "kind": "classification" if g.labels else "regression", "metric": g.metric,
              "labels": g.labels}
    if data_dir is not None:
        root = Path(data_dir) / g.folder
        return TaskSpec(text_columns=g.texts, label_column=g.label, train_source=root / "train.tsv",
                        dev_source=root / g.dev, header=g.header, file_format="tsv", **common)
    reason = hub_unavailable_reason()
    if reason is not None:
        raise DataError(f"task glue:{name}: no --data-dir given and the Hugging Face hub cannot be used ({reason}); "
                        f"pass --data-dir pointing at a folder with {g.folder}/train.tsv")
    return TaskSpec(text_columns=g.hub_texts, label_column="label", train_source=HubSplit(GLUE_HUB_DATASET, name, "train"),
                    dev_source=HubSplit(GLUE_HUB_DATASET, name, g.hub_dev), file_format="hub", **common)


FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


def split_task_options(spec: str) -> tuple[str, dict[str, str]]:
    """``PATH?k=v&...`` → ``(PATH, {k: v})``; the last value of a repeated key wins, and a `+` in a value
    (dev=c++/dev.csv) is a plus, not a URL-encoded space."""
    path_text, _, query = spec.partition("?")
    query = query.replace("+", "%2B")
    return path_text, {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
_OPTIONS = ("text", "label", "kind", "labels", "metric", "dev", "unlabeled")


def _file_task(spec: str, task: str) -> TaskSpec:
    path_text, options = split_task_options(spec)
    path = Path(path_text)
    file_format = FILE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise DataError(f"task {task}: expected glue:<name> or a .csv, .tsv or .jsonl file, got {path_text!r}")
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise DataError(f"task {task}: unknown option(s) {', '.join(unknown)}; expected {', '.join(o + '=' for o in _OPTIONS)}")
    kind = options.get("kind", "classification")
    if kind not in ("classification", "regression"):
        raise DataError(f"task {task}: kind: expected classification, regression, causal-lm or seq2seq, got {kind!r}")
    texts = tuple(c for c in options.get("text", "").split(",") if c)
    if len(texts) > 2:
        raise DataError(f"task {task}: text: expected one or two columns, got {len(texts)} ({', '.join(texts)})")
    labels = tuple(v.strip() for v in options["labels"].split(",")) if options.get("labels") else None
    if labels is not None and kind == "regression":
        raise DataError(f"task {task}: labels: a regression task has no class labels; drop labels= or use kind=classification")
    if labels is not None and (len(labels) < 2 or len(set(labels)) != len(labels)):
        raise DataError(f"task {task}: labels: expected two or more distinct labels, got {options['labels']!r}")
    allowed = REGRESSION_METRICS if kind == "regression" else CLASSIFICATION_METRICS
    metric = options.get("metric", allowed[0])
    if metric not in allowed:
        raise DataError(f"task {task}: metric: expected one of {', '.join(allowed)} for {kind}, got {metric!r}")
    unlabeled = options.get("unlabeled") or "error"
    if unlabeled not in ("error", "drop"):
        raise DataError(f"task {task}: unlabeled: expected error or drop, got {unlabeled!r}")
    dev = Path(options["dev"]) if options.get("dev") else None
    if dev is not None and FILE_FORMATS.get(dev.suffix.lower()) != file_format:
        raise DataError(f"task {task}: dev: expected a {file_format} file like the training file, got {dev}")
    return TaskSpec(name=path.name, kind=kind, text_columns=texts, label_column=options.get("label") or "label",
                    metric=metric, train_source=path, dev_source=dev, labels=labels, file_format=file_format,
                    drop_unlabeled=unlabeled == "drop")
