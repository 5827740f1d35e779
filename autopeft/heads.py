"""The task head a trial trains next to its adapter, and the model class and peft task type of its task.

Classification and regression trials (`autopeft.workers.evaluate`) load the model with
`AutoModelForSequenceClassification` and train its head with the adapter (the result's `head_params`,
and `head_modules` naming the modules); language-model trials (`kind=causal-lm|seq2seq`) train the
adapter alone. An export carries this so that loading it rebuilds what the trial trained: peft's
`task_type` and `modules_to_save`, the `head` entry of the AdapterHub file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: task kind → (peft task type, the transformers class the trial loaded the model with)
TASK_KINDS: dict[str, tuple[str, str]] = {
    "classification": ("SEQ_CLS", "AutoModelForSequenceClassification"),
    "regression": ("SEQ_CLS", "AutoModelForSequenceClassification"),
    "causal-lm": ("CAUSAL_LM", "AutoModelForCausalLM"),
    "seq2seq": ("SEQ_2_SEQ_LM", "AutoModelForSeq2SeqLM"),
}


@dataclass(frozen=True)
class TaskHead:
    """What a trial trained besides its adapter: `modules` (module names of the task head, empty for
    language-model tasks), their `params` in total, and how the model was loaded (`model_class`,
    `num_labels` for a sequence-classification head, None where unknown)."""

    task_type: str
    model_class: str
    modules: tuple[str, ...] = ()
    params: int = 0
    num_labels: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"task_type": self.task_type, "model_class": self.model_class, "modules": list(self.modules),
                "params": self.params, "num_labels": self.num_labels}

    def instructions(self) -> str:
        """One line on how to load the model so that the export trains what the trial trained."""
        labels = f"(..., num_labels={self.num_labels})" if self.num_labels else ""
        load = f"load the model with transformers.{self.model_class}{labels}"
        if not self.modules:
            return f"{load}; the trial trained the adapter alone"
        return f"{load}; the trial also trained {', '.join(self.modules)} ({self.params:,} parameters)"


def task_kind(task: str) -> str:
    """``classification``, ``regression``, ``causal-lm`` or ``seq2seq`` for a task string (no data read)."""
    from autopeft.workers.lm_tasks import lm_kind
    from autopeft.workers.tasks import split_task_options

    kind = lm_kind(task)
    if kind is not None:
        return kind
    if task.startswith("glue:"):
        return "classification" if _glue_labels(task) != () else "regression"
    return split_task_options(task.removeprefix("file:"))[1].get("kind", "classification")


def _glue_labels(task: str) -> tuple[str, ...] | None:
    """The class labels of a GLUE task, () for a regression one, None for a name GLUE does not have."""
    from autopeft.workers.tasks import _GLUE

    glue = _GLUE.get(task.removeprefix("glue:").lower().replace("-", ""))
    return None if glue is None else (glue.labels or ())


def head_modules(model, head: Iterable[str]) -> tuple[str, ...]:
    """The fewest modules of `model` whose parameters are exactly the parameter names `head`, in model order
    (``("classifier",)`` for BERT or RoBERTa, ``("score",)`` for Llama, ``("pre_classifier", "classifier")``)."""
    head = set(head)
    under: dict[str, set[str]] = {}
    names = [name for name, _ in model.named_parameters()]
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts)):
            under.setdefault(".".join(parts[:i]), set()).add(name)
    chosen: list[str] = []
    for name in names:
        if name not in head or any(name.startswith(c + ".") for c in chosen):
            continue
        parts = name.split(".")
        chosen.append(next((p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if under[p] <= head), name))
    return tuple(chosen)


def sequence_head(config, num_labels: int | None = None) -> tuple[tuple[str, ...], int]:
    """(modules, parameters) of the head `AutoModelForSequenceClassification` puts on a model of `config`:
    every parameter outside the base model (built on the meta device: nothing is allocated)."""
    import copy

    import torch
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(config)
    if num_labels:
        config.num_labels = num_labels
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    prefix = model.base_model_prefix + "."
    head = {n: p.numel() for n, p in model.named_parameters() if not n.startswith(prefix)}
    return head_modules(model, head), sum(head.values())


def trial_head(task: str, result: Mapping[str, Any] | None, config) -> TaskHead:
    """The `TaskHead` of a trial of `task` with worker result `result` on a model of `config`.

    Results record `head_modules` from this version on; for older ones the modules are those
    `AutoModelForSequenceClassification` adds (what the trial trained unless the checkpoint lacked
    some base-model weights, which the trial then trained too)."""
    kind = task_kind(task)
    task_type, model_class = TASK_KINDS[kind]
    if task_type != "SEQ_CLS":
        return TaskHead(task_type, model_class)
    result = result or {}
    labels = (result.get("split") or {}).get("labels") or (_glue_labels(task) if task.startswith("glue:") else None)
    num_labels = 1 if kind == "regression" else (len(labels) if isinstance(labels, list | tuple) and labels else None)
    if result.get("head_params") == 0:
        return TaskHead(task_type, model_class, num_labels=num_labels)
    modules, params = sequence_head(config, num_labels)
    recorded = result.get("head_modules")
    if isinstance(recorded, list) and recorded:
        modules = tuple(str(m) for m in recorded)
    return TaskHead(task_type, model_class, modules, int(result.get("head_params") or params), num_labels)
