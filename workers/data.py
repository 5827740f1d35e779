"""Read a task's splits into examples, check them, and split them honestly.

The search metric comes from a split held out of train (seeded; stratified by label for
classification); the dev split, when there is one, is kept for final reporting. Files are read as
`autopeft.workers.textfile` opens them (UTF-8 with or without a byte-order mark, UTF-16 with one,
any line endings). Every problem with the data raises `DataError` (one line) before any training
starts: a missing file or column, a file that is not UTF-8 text, an empty split, a label outside
the label map, a regression label that is not a number.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autopeft.workers.tasks import DataError, HubSplit, TaskSpec
from autopeft.workers.textfile import open_text

csv.field_size_limit(sys.maxsize)


@dataclass(frozen=True)
class Examples:
    """Parallel lists: `texts[i]` is a 1- or 2-tuple of strings, `labels[i]` a class index or a float."""

    texts: list[tuple[str, ...]]
    labels: list[float] | list[int]
    dropped: tuple[int, ...] = ()  # lines (rows of a hub split) left out for having no label (unlabeled=drop)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: list[int]) -> Examples:
        return Examples([self.texts[i] for i in indices], [self.labels[i] for i in indices])


@dataclass(frozen=True)
class TaskData:
    """The splits of one task at one seed: `train` (trained on), `heldout` (search metric), `dev` (reporting).

    `train_rows` / `heldout_rows` are the 0-based row numbers, in the training source, of the examples
    in `train` / `heldout` (data rows; a header row is not counted; with ``unlabeled=drop``, counted
    after the rows without a label were left out). `notes`: one line per split that left rows out.
    """

    task: TaskSpec
    labels: tuple[str, ...] | None
    train: Examples
    heldout: Examples
    dev: Examples | None
    train_rows: tuple[int, ...] = ()
    heldout_rows: tuple[int, ...] = ()
    seed: int = 0
    heldout_fraction: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def num_labels(self) -> int:
        """Output width of the task head: the number of classes, or 1 for regression."""
        return 1 if self.labels is None else len(self.labels)

    def split_info(self) -> dict[str, Any]:
        """How the examples were split, enough to reproduce and check it (sizes, seed, row digests)."""
        return {
            "source": str(self.task.train_source), "dev_source": str(self.task.dev_source or ""),
            "train": len(self.train), "heldout": len(self.heldout), "dev": len(self.dev) if self.dev else 0,
            "seed": self.seed, "heldout_fraction": self.heldout_fraction, "stratified": self.task.kind == "classification",
            "train_rows_sha1": _digest(self.train_rows), "heldout_rows_sha1": _digest(self.heldout_rows),
            "labels": list(self.labels) if self.labels else None,
            **({"notes": list(self.notes)} if self.notes else {}),
        }


def _digest(rows: tuple[int, ...]) -> str:
    return hashlib.sha1(",".join(map(str, rows)).encode()).hexdigest()


def _read_file(path: Path, task: TaskSpec) -> tuple[list[dict | list], list[str] | None]:
    """Rows of a CSV/TSV/JSONL file, and its column names (None for a header-less file)."""
    rows, header, _ = read_rows(path, task)
    return rows, header


def read_rows(path: Path, task: TaskSpec) -> tuple[list[dict | list], list[str] | None, list[int]]:
    """Rows of a CSV/TSV/JSONL file, its column names (None for a header-less file), and each row's line
    number in the file (1-based; the last line of a CSV record that spans several)."""
    if not path.is_file():
        raise DataError(f"{path}: data file not found; check --data-dir or the task path")
    rows: list = []
    lines: list[int] = []
    if task.file_format == "jsonl":
        with open_text(path) as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        row = None
                    if not isinstance(row, dict):
                        raise DataError(f"{path}:{n}: not a JSON object; JSONL needs one object per line")
                    rows.append(row)
                    lines.append(n)
        return rows, sorted({k for r in rows for k in r}), lines
    delimiter = "," if task.file_format == "csv" else "\t"
    quoting = csv.QUOTE_MINIMAL if task.file_format == "csv" else csv.QUOTE_NONE
    with open_text(path) as f:  # rows that are all empty (",,," from a spreadsheet) are skipped, as blank lines are
        reader = (csv.DictReader(f, delimiter=delimiter, quoting=quoting) if task.header
                  else csv.reader(f, delimiter=delimiter, quoting=quoting))
        for row in reader:
            if any(row.values() if task.header else row):
                rows.append(row)
                lines.append(reader.line_num)
        return rows, (list(reader.fieldnames or []) if task.header else None), lines


def _read_hub(split: HubSplit, task: TaskSpec) -> tuple[list[dict], list[str]]:
    """Rows of a hub split; integer class labels are turned into the task's label strings."""
    try:
        import datasets

        rows = datasets.load_dataset(split.dataset, split.config, split=split.split).to_list()
    except Exception as exc:  # network, missing config, ...: the user's fix is the same
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{split}: could not be loaded from the Hugging Face hub ({type(exc).__name__}: {detail}); "
                        "pass --data-dir with the GLUE TSV files") from None
    if task.labels is not None:
        for row in rows:
            value = row.get(task.label_column)
            if isinstance(value, int) and 0 <= value < len(task.labels):
                row[task.label_column] = task.labels[value]
    return rows, sorted({k for r in rows for k in r})


def _text_columns(task: TaskSpec, header: list[str] | None, where: object) -> tuple[str | int, ...]:
    if task.text_columns:
        return task.text_columns
    for candidate in (("sentence1", "sentence2"), ("sentence",), ("text",)):
        if header is not None and all(c in header for c in candidate):
            return candidate
    raise DataError(f"{where}: no text column found (looked for sentence1+sentence2, sentence, text); "
                    "name it with ?text=COLUMN[,COLUMN2]")


def read_examples(source: Path | HubSplit, task: TaskSpec, labels: tuple[str, ...] | None
                  ) -> tuple[Examples, tuple[str, ...] | None]:
    """Examples of one split, checked; class labels are mapped to indices with `labels` (read from data if None).

    Returns (examples, labels in class-index order) — labels None for regression. A row whose label is
    empty or absent is a `DataError` naming the lines and their count, or, with the task's
    ``unlabeled=drop``, left out (their lines in `Examples.dropped`); it never becomes a class.
    """
    if isinstance(source, HubSplit):
        rows, header = _read_hub(source, task)
        lines, where = list(range(1, len(rows) + 1)), "row"
    else:
        rows, header, lines = read_rows(source, task)
        where = "line"
    if not rows:
        raise DataError(f"{source}: no examples in this split")
    columns = (*_text_columns(task, header, source), task.label_column)
    if header is not None:
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"{source}: missing column(s) {', '.join(map(str, missing))}; "
                            f"the file has {', '.join(map(str, header))}")
    texts, raw, unlabeled = [], [], []
    for n, row in zip(lines, rows, strict=True):
        try:
            text = tuple("" if row[c] is None else str(row[c]) for c in columns[:-1])
        except (IndexError, KeyError):
            raise DataError(f"{source}: {where} {n} has no column {_missing_in(row, columns)}") from None
        label = _cell(row, columns[-1])
        if label == "":
            unlabeled.append(n)
            continue
        texts.append(text)
        raw.append(label)
    if unlabeled and not task.drop_unlabeled:
        raise DataError(_unlabeled_message(source, task, unlabeled, where))
    if not raw:
        raise DataError(f"{source}: no row has a label (column {task.label_column!r}); label the examples")
    dropped = tuple(unlabeled)
    if task.kind == "regression":
        bad = next((v for v in raw if not _is_number(v)), None)
        if bad is not None:
            raise DataError(f"{source}: regression label {bad!r} is not a number; regression needs numeric labels")
        return Examples(texts, [float(v) for v in raw], dropped), None
    if labels is None:
        labels = tuple(sorted(set(raw), key=lambda v: (not _is_number(v), float(v) if _is_number(v) else 0.0, v)))
        if len(labels) < 2:
            raise DataError(f"{source}: only one class ({labels[0]!r}) in the labels; classification needs two or more")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(raw) - set(index))
    if unknown:
        raise DataError(f"{source}: unknown label(s) {', '.join(map(repr, unknown[:5]))}; "
                        f"expected one of {', '.join(map(repr, labels))}")
    return Examples(texts, [index[v] for v in raw], dropped), labels


def _cell(row: dict | list, column: str | int) -> str:
    """The stripped text of a label cell; "" when it is empty, null or absent (a short row)."""
    try:
        value = row[column]
    except (IndexError, KeyError):
        return ""
    return "" if value is None else str(value).strip()


def _unlabeled_message(source: object, task: TaskSpec, lines: list[int], where: str) -> str:
    shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
    rows = "1 row has" if len(lines) == 1 else f"{len(lines)} rows have"
    fix = "label them" if task.name.startswith("glue:") else \
        "label them, or add unlabeled=drop to the task's options (PATH?unlabeled=drop) to leave them out"
    where += "s" if len(lines) > 1 else ""
    return f"{source}: {rows} no label (column {task.label_column!r} empty or absent; {where} {shown}); {fix}"


def _missing_in(row: dict | list, columns: tuple) -> str:
    for c in columns:
        try:
            row[c]
        except (IndexError, KeyError):
            return repr(c)
    return "?"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity")


def stratified_split(labels: list, fraction: float, seed: int, stratify: bool) -> tuple[list[int], list[int]]:
    """(rest, heldout) sorted indices: `fraction` of each class (or of all, unstratified) held out, seeded.

    Every class with two or more examples gives at least one held-out example; a single example stays in train.
    """
    rng = random.Random(seed)
    groups: dict = {}
    for i, label in enumerate(labels):
        groups.setdefault(label if stratify else 0, []).append(i)
    rest, heldout = [], []
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        k = min(len(members) - 1, max(1, round(len(members) * fraction))) if len(members) > 1 else 0
        heldout += members[:k]
        rest += members[k:]
    return sorted(rest), sorted(heldout)


def subset(indices: list[int], size: int | None, seed: int) -> list[int]:
    """A seeded random subset of `size` of `indices`, in their order (all when `size` is None or larger)."""
    if size is None or size >= len(indices):
        return indices
    chosen = set(random.Random(seed).sample(range(len(indices)), size))
    return [x for i, x in enumerate(indices) if i in chosen]


def load_task_data(task: TaskSpec, *, seed: int, heldout_fraction: float, train_size: int | None,
                   eval_size: int | None) -> TaskData:
    """Read, check and split a task: a train subset, a held-out subset (search metric), dev (reporting).

    The held-out split is drawn from the whole training source first, then both parts are subsampled
    (`train_size`, `eval_size` examples), so the held-out examples never depend on `train_size`.
    """
    full, labels = read_examples(task.train_source, task, task.labels)
    rest, held = stratified_split(full.labels, heldout_fraction, seed, stratify=task.kind == "classification")
    if not rest or not held:
        raise DataError(f"{task.train_source}: {len(full)} examples are too few to hold out {heldout_fraction:.0%} "
                        "and still train; add examples or change fidelity.heldout_fraction")
    train_rows, heldout_rows = subset(rest, train_size, seed), subset(held, eval_size, seed + 1)
    dev = read_examples(task.dev_source, task, labels)[0] if task.dev_source is not None else None
    notes = tuple(_dropped_note(source, split) for source, split in ((task.train_source, full), (task.dev_source, dev))
                  if split is not None and split.dropped)
    return TaskData(task=task, labels=labels, train=full.take(train_rows), heldout=full.take(heldout_rows), dev=dev,
                    train_rows=tuple(train_rows), heldout_rows=tuple(heldout_rows), seed=seed,
                    heldout_fraction=heldout_fraction, notes=notes)


def _dropped_note(source: object, split: Examples) -> str:
    lines = split.dropped
    shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
    return (f"{source}: left out {len(lines)} row(s) without a label (unlabeled=drop; line(s) {shown}); "
            f"{len(split)} remain")
