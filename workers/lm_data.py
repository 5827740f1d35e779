"""Read a language-model task's rows, check them, and split them honestly (no tokenizer needed here).

Every row becomes an `LMExample`: a prompt and a completion (``{"prompt","completion"}``), a whole
text trained on every token (``{"text"}``), a conversation (``{"messages"}``, rendered later with the
tokenizer's chat template), or an input and a target (seq2seq). A row that cannot be trained on —
a prompt without a completion, an empty completion or target, a conversation with no assistant turn —
raises `DataError` (one line naming the file and line) before any training. The held-out split (search
metric) is a seeded random share of the training file, as for classification; the dev file, when
there is one, is kept for final reporting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autopeft.workers.data import _digest, _read_file, stratified_split, subset
from autopeft.workers.lm_tasks import LMTaskSpec
from autopeft.workers.tasks import DataError

SHAPES = ("pair", "text", "chat", "seq2seq")


@dataclass(frozen=True)
class LMExample:
    """One row. `shape` in `SHAPES`; `line` is its line in the source file (for messages).

    - pair: `prompt` then `completion` (trained on);
    - text: `completion` holds the whole text (trained on), `prompt` is empty;
    - chat: `messages` = ({"role", "content"}, ...), trained on the assistant turns;
    - seq2seq: `prompt` is the encoder input, `completion` the decoder target.
    """

    shape: str
    prompt: str = ""
    completion: str = ""
    messages: tuple[dict[str, str], ...] = ()
    line: int = 0

    @property
    def reference(self) -> str | None:
        """The answer a greedy generation is compared with (exact match); None for text rows."""
        if self.shape == "text":
            return None
        if self.shape == "chat":
            return next(m["content"] for m in reversed(self.messages) if m["role"] == "assistant")
        return self.completion


@dataclass(frozen=True)
class LMTaskData:
    """The splits of one language-model task at one seed; the fields mean what they mean in `TaskData`."""

    task: LMTaskSpec
    train: list[LMExample]
    heldout: list[LMExample]
    dev: list[LMExample] | None
    train_rows: tuple[int, ...] = ()
    heldout_rows: tuple[int, ...] = ()
    seed: int = 0
    heldout_fraction: float = 0.0

    def split_info(self) -> dict[str, Any]:
        """How the rows were split (sizes, seed, row digests) and which row shapes the task holds."""
        return {
            "source": str(self.task.train_source), "dev_source": str(self.task.dev_source or ""),
            "train": len(self.train), "heldout": len(self.heldout), "dev": len(self.dev) if self.dev else 0,
            "seed": self.seed, "heldout_fraction": self.heldout_fraction, "stratified": False,
            "train_rows_sha1": _digest(self.train_rows), "heldout_rows_sha1": _digest(self.heldout_rows),
            "shapes": sorted({e.shape for e in self.train}),
        }


def _text(row: dict, key: str, where: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: {key} is a {type(value).__name__}; expected a string")
    return value


def _messages(value: Any, where: str) -> tuple[dict[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: messages: expected a non-empty JSON list of {{\"role\", \"content\"}} objects (JSONL rows)")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: messages[{i}]: expected an object with string role and content, got {m!r:.80}")
        out.append({"role": m["role"], "content": m["content"]})
    assistant = [m for m in out if m["role"] == "assistant"]
    if not assistant:
        raise DataError(f"{where}: messages has no assistant turn, so nothing to train on; add the assistant's answer")
    if any(not m["content"].strip() for m in assistant):
        raise DataError(f"{where}: an assistant turn is empty; every assistant message needs content to train on")
    return tuple(out)


def _example(row: dict, task: LMTaskSpec, where: str, line: int) -> LMExample:
    if task.kind == "seq2seq":
        i, t = task.input_column, task.target_column
        if i not in row or t not in row:
            raise DataError(f"{where}: expected columns {i!r} and {t!r} for seq2seq (name others with ?input=&target=), "
                            f"got {', '.join(map(repr, row)) or 'none'}")
        source, target = _text(row, i, where), _text(row, t, where)
        if not target.strip():
            raise DataError(f"{where}: empty target; every seq2seq row needs a target to train on")
        return LMExample("seq2seq", prompt=source, completion=target, line=line)
    if "messages" in row and row["messages"] not in (None, ""):
        return LMExample("chat", messages=_messages(row["messages"], where), line=line)
    if "prompt" in row or "completion" in row:
        if row.get("completion") is None:
            raise DataError(f"{where}: a prompt without a completion; every row needs the completion to train on")
        completion = _text(row, "completion", where)
        if not completion.strip():
            raise DataError(f"{where}: empty completion; every row needs a completion to train on")
        return LMExample("pair", prompt=_text(row, "prompt", where), completion=completion, line=line)
    if "text" in row:
        text = _text(row, "text", where)
        if not text.strip():
            raise DataError(f"{where}: empty text; drop the row or give it text")
        return LMExample("text", completion=text, line=line)
    raise DataError(f"{where}: expected prompt+completion, messages or text for causal-lm, "
                    f"got {', '.join(map(repr, row)) or 'no columns'}")


def read_lm_examples(source: Path, task: LMTaskSpec) -> list[LMExample]:
    """Every row of one split as an `LMExample`, checked; `DataError` names the first bad row."""
    rows, _ = _read_file(source, task)
    if not rows:
        raise DataError(f"{source}: no examples in this split")
    first = 1 if task.file_format == "jsonl" else 2  # CSV/TSV: line 1 is the header
    return [_example(row, task, f"{source}:{n}", n) for n, row in enumerate(rows, first)]


def load_lm_task_data(task: LMTaskSpec, *, seed: int, heldout_fraction: float, train_size: int | None,
                      eval_size: int | None) -> LMTaskData:
    """Read, check and split a language-model task like `load_task_data` does (held-out drawn first, then subsets)."""
    full = read_lm_examples(task.train_source, task)
    rest, held = stratified_split([0] * len(full), heldout_fraction, seed, stratify=False)
    if not rest or not held:
        raise DataError(f"{task.train_source}: {len(full)} examples are too few to hold out {heldout_fraction:.0%} "
                        "and still train; add examples or change fidelity.heldout_fraction")
    train_rows, heldout_rows = subset(rest, train_size, seed), subset(held, eval_size, seed + 1)
    dev = read_lm_examples(task.dev_source, task) if task.dev_source is not None else None
    return LMTaskData(task=task, train=[full[i] for i in train_rows], heldout=[full[i] for i in heldout_rows], dev=dev,
                      train_rows=tuple(train_rows), heldout_rows=tuple(heldout_rows), seed=seed,
                      heldout_fraction=heldout_fraction)
