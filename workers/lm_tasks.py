"""Language-model tasks from local files: ``kind=causal-lm`` (decoders) and ``kind=seq2seq`` (T5, BART).

Named with the file-task option syntax of `autopeft.workers.tasks`::

    data/sft.jsonl?kind=causal-lm                        # rows {"prompt","completion"}, {"messages":[...]} or {"text"}
    data/sft.jsonl?kind=causal-lm&metric=exact_match     # greedy generations vs the completion (needs max_new_tokens)
    data/pairs.csv?kind=seq2seq&input=question&target=answer&dev=data/pairs_dev.csv

Row shapes (JSONL; CSV/TSV with the same column names, except `messages`):

- causal-lm: ``{"prompt": str, "completion": str}`` (loss on the completion only), ``{"messages":
  [{"role", "content"}, ...]}`` rendered with the tokenizer's chat template (loss on the assistant
  turns only), or ``{"text": str}`` (loss on every token);
- seq2seq: ``{"input": str, "target": str}``, or the two columns named by ``input=`` / ``target=``.

Options: ``kind``; ``metric`` (default ``eval_loss``); ``dev`` (a dev file of the same format, kept for
final reporting); ``input`` / ``target`` (seq2seq column names). Metrics and their directions are in
`autopeft.workers.metrics.METRIC_DIRECTIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autopeft.workers.tasks import FILE_FORMATS, DataError, split_task_options

LM_KINDS = ("causal-lm", "seq2seq")
LM_METRICS = ("eval_loss", "perplexity", "token_accuracy", "exact_match")
LM_OPTIONS = ("kind", "metric", "dev", "input", "target")


@dataclass(frozen=True)
class LMTaskSpec:
    """One language-model task, resolved: its files, kind, columns (seq2seq) and the search metric.

    `metric` is one of `LM_METRICS`; `eval_loss` and `perplexity` are minimised, the others maximised.
    `header` and `file_format` follow `autopeft.workers.tasks.TaskSpec`, so the same file reader serves both.
    """

    name: str
    kind: str  # "causal-lm" | "seq2seq"
    metric: str
    train_source: Path
    dev_source: Path | None = None
    file_format: str = "jsonl"
    input_column: str = "input"
    target_column: str = "target"
    header: bool = True

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric an evaluation can report (``exact_match`` only with ``fidelity.max_new_tokens``)."""
        return LM_METRICS


def _options(task: str) -> tuple[str, dict[str, str]]:
    return split_task_options(task.removeprefix("file:"))


def lm_kind(task: str) -> str | None:
    """The language-model kind named by a task string's ``kind=`` option, or None (classification, GLUE, ...)."""
    if task.startswith("glue:"):
        return None
    kind = _options(task)[1].get("kind")
    return kind if kind in LM_KINDS else None


def resolve_lm_task(task: str) -> LMTaskSpec:
    """The `LMTaskSpec` of a ``PATH?kind=causal-lm|seq2seq&...`` task; `DataError` (one line) when it cannot be used."""
    path_text, options = _options(task)
    path = Path(path_text)
    file_format = FILE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise DataError(f"task {task}: expected a .jsonl, .csv or .tsv file, got {path_text!r}")
    unknown = sorted(set(options) - set(LM_OPTIONS))
    if unknown:
        raise DataError(f"task {task}: unknown option(s) {', '.join(unknown)} for a language-model task; "
                        f"expected {', '.join(o + '=' for o in LM_OPTIONS)}")
    kind = options.get("kind")
    if kind not in LM_KINDS:
        raise DataError(f"task {task}: kind: expected {' or '.join(LM_KINDS)}, got {kind!r}")
    metric = options.get("metric") or "eval_loss"
    if metric not in LM_METRICS:
        raise DataError(f"task {task}: metric: expected one of {', '.join(LM_METRICS)} for {kind}, got {metric!r}")
    if kind == "causal-lm" and ({"input", "target"} & set(options)):
        raise DataError(f"task {task}: input=/target= name seq2seq columns; a causal-lm file has prompt/completion, "
                        "messages or text rows")
    dev = Path(options["dev"]) if options.get("dev") else None
    if dev is not None and FILE_FORMATS.get(dev.suffix.lower()) != file_format:
        raise DataError(f"task {task}: dev: expected a {file_format} file like the training file, got {dev}")
    return LMTaskSpec(name=path.name, kind=kind, metric=metric, train_source=path, dev_source=dev, file_format=file_format,
                      input_column=options.get("input") or "input", target_column=options.get("target") or "target")
