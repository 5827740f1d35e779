"""Read a task's files into examples, check them, and split them honestly.

The search metric comes from a split held out of train (seeded; stratified by label for
classification); the dev file, when there is one, is kept for final reporting. Every problem with
the data raises `DataError` before any training starts.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from autopeft.workers.tasks import DataError, TaskSpec

csv.field_size_limit(sys.maxsize)


@dataclass(frozen=True)
class Examples:
    """Parallel lists: `texts[i]` is a 1- or 2-tuple of strings, `labels[i]` a class index or a float."""

    texts: list[tuple[str, ...]]
    labels: list[float] | list[int]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: list[int]) -> Examples:
        return Examples([self.texts[i] for i in indices], [self.labels[i] for i in indices])


@dataclass(frozen=True)
class TaskData:
    """The splits of one task at one seed: `train` (searched on), `heldout` (search metric), `dev`."""

    task: TaskSpec
    labels: tuple[str, ...] | None
    train: Examples
    heldout: Examples
    dev: Examples | None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    def split_info(self, seed: int, heldout_fraction: float) -> dict:
        return {"train": len(self.train), "heldout": len(self.heldout), "dev": len(self.dev) if self.dev else 0,
                "seed": seed, "heldout_fraction": heldout_fraction, "stratified": self.task.kind == "classification"}


def _read_rows(path: Path, task: TaskSpec) -> tuple[list[dict | list], list[str] | None]:
    if not path.is_file():
        raise DataError(f"{path}: data file not found; check --data-dir or the task path")
    if task.file_format == "jsonl":
        rows = []
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        raise DataError(f"{path}:{n}: not a JSON object; JSONL needs one object per line") from None
        return rows, sorted({k for r in rows for k in r}) if rows else []
    delimiter = "," if task.file_format == "csv" else "\t"
    quoting = csv.QUOTE_MINIMAL if task.file_format == "csv" else csv.QUOTE_NONE
    with path.open(encoding="utf-8", newline="") as f:
        if task.header:
            reader = csv.DictReader(f, delimiter=delimiter, quoting=quoting)
            return list(reader), list(reader.fieldnames or [])
        return list(csv.reader(f, delimiter=delimiter, quoting=quoting)), None


def _text_columns(task: TaskSpec, header: list[str] | None) -> tuple[str | int, ...]:
    if task.text_columns:
        return task.text_columns
    for candidate in (("sentence1", "sentence2"), ("sentence",), ("text",)):
        if header is not None and all(c in header for c in candidate):
            return candidate
    raise DataError(f"{task.train_file}: no text column found; name it with ?text=COLUMN[,COLUMN2]")


def read_examples(path: Path, task: TaskSpec, labels: tuple[str, ...] | None) -> tuple[Examples, tuple[str, ...] | None]:
    """Examples of one file; class labels are mapped to indices with `labels` (read from data if None)."""
    rows, header = _read_rows(path, task)
    if not rows:
        raise DataError(f"{path}: no examples in the file")
    columns = (*_text_columns(task, header), task.label_column)
    if header is not None:
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(map(str, missing))}; the file has {', '.join(header)}")
    texts, raw = [], []
    for n, row in enumerate(rows, 2 if header is not None else 1):
        try:
            texts.append(tuple(str(row[c]) for c in columns[:-1]))
            raw.append(str(row[columns[-1]]).strip())
        except (IndexError, KeyError):
            raise DataError(f"{path}: line {n} has too few columns") from None
    if task.kind == "regression":
        try:
            values: list = [float(v) for v in raw]
        except ValueError:
            bad = next(v for v in raw if not _is_number(v))
            raise DataError(f"{path}: regression label {bad!r} is not a number; regression needs numeric labels") from None
        return Examples(texts, values), None
    if labels is None:
        labels = tuple(sorted(set(raw), key=lambda v: (not _is_number(v), float(v) if _is_number(v) else 0, v)))
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(raw) - set(index))
    if unknown:
        raise DataError(f"{path}: unknown label(s) {', '.join(map(repr, unknown[:5]))}; expected one of {', '.join(labels)}")
    return Examples(texts, [index[v] for v in raw]), labels


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def stratified_split(labels: list, fraction: float, seed: int, stratify: bool) -> tuple[list[int], list[int]]:
    """(rest, heldout) indices: `fraction` of each class (or of all, unstratified) held out, seeded."""
    rng = random.Random(seed)
    groups: dict = {}
    for i, label in enumerate(labels):
        groups.setdefault(label if stratify else 0, []).append(i)
    rest, heldout = [], []
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        k = max(1, round(len(members) * fraction)) if len(members) > 1 else 0
        heldout += members[:k]
        rest += members[k:]
    return sorted(rest), sorted(heldout)


def subset(examples: Examples, size: int | None, seed: int) -> Examples:
    """A seeded random subset of `size` examples (all when `size` is None or larger)."""
    if size is None or size >= len(examples):
        return examples
    return examples.take(sorted(random.Random(seed).sample(range(len(examples)), size)))


def load_task_data(task: TaskSpec, *, seed: int, heldout_fraction: float, train_size: int | None,
                   eval_size: int | None) -> TaskData:
    """Read, check and split a task: train subset, held-out subset (search metric), dev (reporting)."""
    full, labels = read_examples(task.train_file, task, task.labels)
    rest, held = stratified_split(full.labels, heldout_fraction, seed, stratify=task.kind == "classification")
    if not rest or not held:
        raise DataError(f"{task.train_file}: {len(full)} examples are too few to hold out {heldout_fraction:.0%} and train")
    dev = None
    if task.dev_file is not None:
        dev, _ = read_examples(task.dev_file, task, labels)
    return TaskData(task=task, labels=labels, train=subset(full.take(rest), train_size, seed),
                    heldout=subset(full.take(held), eval_size, seed + 1), dev=dev)
