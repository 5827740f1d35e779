"""Fine-tune and evaluate one plan at one fidelity: `evaluate_plan(...) -> TrialResult`.

Per worker process, `CACHE` keeps what does not change between trials: the tokenizer, the task's
tokenized splits and the base model (each trial deep-copies it in memory; nothing is reloaded from
disk). Speed: length-grouped batches with dynamic padding; frozen layers below the lowest adapter
build no autograd graph (nothing below it requires grad, so PyTorch records nothing there); mixed
precision and TF32 on CUDA; on CPU the process's `torch.set_num_threads` is respected.
"""

from __future__ import annotations

import copy
import math
import random
import resource
import socket
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from autopeft.backends import apply_plan
from autopeft.search_spaces.counting import count_plan
from autopeft.search_spaces.model_structure import structure_of
from autopeft.search_spaces.plan import Plan
from autopeft.workers.data import Examples, TaskData, load_task_data
from autopeft.workers.metrics import classification_metrics, regression_metrics
from autopeft.workers.result import TrialResult
from autopeft.workers.tasks import DataError, resolve_task


@dataclass
class Encoded:
    """Token ids of one split: `ids[i]` (and `types[i]` where the model has token types), `labels[i]`."""

    ids: list[list[int]]
    types: list[list[int]] | None
    labels: list


class WorkerCache:
    """What one worker process reuses across trials. Explicit and clearable (`clear()`)."""

    def __init__(self) -> None:
        self._store: dict[tuple, Any] = {}

    def get(self, key: tuple, build):
        if key not in self._store:
            self._store[key] = build()
        return self._store[key]

    def clear(self) -> None:
        self._store.clear()


CACHE = WorkerCache()


def _fidelity_key(fidelity) -> tuple:
    return (fidelity.seed, fidelity.heldout_fraction, fidelity.train_size, fidelity.eval_size)


def task_data(task: str, fidelity, data_dir: str | None) -> TaskData:
    """The checked, split data of `task` at `fidelity` (cached)."""
    return CACHE.get(("data", task, str(data_dir), _fidelity_key(fidelity)), lambda: load_task_data(
        resolve_task(task, data_dir), seed=fidelity.seed, heldout_fraction=fidelity.heldout_fraction,
        train_size=fidelity.train_size, eval_size=fidelity.eval_size))


def check_task(model: str, task: str, fidelity, data_dir: str | None = None) -> TaskData:
    """Read and check the task's data now, so data errors surface before any training (`DataError`)."""
    return task_data(task, fidelity, data_dir)


def _tokenizer(model: str):
    from transformers import AutoTokenizer

    def build():
        tok = AutoTokenizer.from_pretrained(model)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token or tok.unk_token
        return tok

    return CACHE.get(("tokenizer", model), build)


def _encode(model: str, examples: Examples, max_length: int) -> Encoded:
    tok = _tokenizer(model)
    columns = list(zip(*examples.texts, strict=True))
    out = tok(*columns[:2], truncation=True, max_length=max_length)
    return Encoded(ids=out["input_ids"], types=out.get("token_type_ids"), labels=list(examples.labels))


def _encoded(model: str, task: str, fidelity, data_dir, split: str) -> Encoded:
    key = ("encoded", model, task, str(data_dir), _fidelity_key(fidelity), fidelity.max_seq_length, split)
    return CACHE.get(key, lambda: _encode(model, getattr(task_data(task, fidelity, data_dir), split),
                                          fidelity.max_seq_length))


def _base_model(model: str, data: TaskData):
    """(model, head parameter names): the pretrained model with a task head, loaded once per process."""
    from transformers import AutoModelForSequenceClassification

    def build():
        regression = data.task.kind == "regression"
        loaded, info = AutoModelForSequenceClassification.from_pretrained(
            model, num_labels=data.num_labels, problem_type="regression" if regression else "single_label_classification",
            output_loading_info=True)
        loaded.config.pad_token_id = _tokenizer(model).pad_token_id
        prefix = loaded.base_model_prefix + "."
        names = {n for n, _ in loaded.named_parameters()}
        head = {n for n in names if not n.startswith(prefix)} | {n for n in info["missing_keys"] if n in names}
        return loaded, frozenset(head)

    return CACHE.get(("model", model, data.task.kind, data.num_labels), build)


def _batches(lengths: list[int], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Length-grouped batches: shuffle, sort within chunks of 50 batches by length, shuffle batches.

    Without `rng` (evaluation), batches are simply consecutive in length order.
    """
    order = list(range(len(lengths)))
    if rng is None:
        order.sort(key=lambda i: lengths[i])
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    chunk = 50 * batch_size
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def _collate(enc: Encoded, idx: list[int], pad_id: int, device, regression: bool) -> dict[str, torch.Tensor]:
    """Pad one batch to its longest example: tensors of shape (batch, max_len)."""
    width = max(len(enc.ids[i]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    types = torch.zeros((len(idx), width), dtype=torch.long) if enc.types is not None else None
    for row, i in enumerate(idx):
        n = len(enc.ids[i])
        ids[row, :n] = torch.tensor(enc.ids[i])
        mask[row, :n] = 1
        if types is not None:
            types[row, :n] = torch.tensor(enc.types[i])
    batch = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        batch["token_type_ids"] = types
    batch["labels"] = torch.tensor([enc.labels[i] for i in idx], dtype=torch.float if regression else torch.long)
    return {k: v.to(device) for k, v in batch.items()}


def _predict(model, enc: Encoded, batch_size: int, pad_id: int, device, regression: bool, amp: bool) -> np.ndarray:
    model.eval()
    lengths = [len(x) for x in enc.ids]
    predictions = np.zeros(len(lengths), dtype=float if regression else int)
    with torch.inference_mode(), torch.autocast(device.type, enabled=amp):
        for idx in _batches(lengths, batch_size, None):
            logits = model(**{k: v for k, v in _collate(enc, idx, pad_id, device, regression).items()
                              if k != "labels"}).logits.float()
            predictions[idx] = (logits.squeeze(-1) if regression else logits.argmax(-1)).cpu().numpy()
    model.train()
    return predictions


def _score(predictions: np.ndarray, enc: Encoded, regression: bool) -> dict[str, float]:
    labels = np.asarray(enc.labels, dtype=float if regression else int)
    return regression_metrics(predictions, labels) if regression else classification_metrics(predictions, labels)


def _peak_memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def evaluate_plan(model: str, task: str, plan: Plan, fidelity, data_dir: str | None = None, device: str | None = None,
                  evaluate_dev: bool = False) -> TrialResult:
    """Train `plan` on `task` at `fidelity` and score it on the held-out split; never raises for a bad trial.

    `fidelity` is an `autopeft.spec.FidelitySpec`. With `evaluate_dev`, `metrics` also holds `dev_*`
    figures on the dev file (for final reporting, not for the search).
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    base = {"seed": fidelity.seed, "device": str(dev), "host": socket.gethostname(), "fidelity": fidelity.model_dump()}
    try:
        data = task_data(task, fidelity, data_dir)
        return _train_and_score(model, task, plan, fidelity, data_dir, data, dev, base, evaluate_dev)
    except DataError as exc:
        return TrialResult.failed("data_error", str(exc), **base)
    except (torch.OutOfMemoryError, MemoryError) as exc:
        return TrialResult.failed("oom", f"out of memory on {dev}: {str(exc).splitlines()[0] if str(exc) else ''}", **base)
    except Exception as exc:  # a trial must come back as a result, whatever broke in it
        return TrialResult.failed("error", f"{type(exc).__name__}: {exc}", **base)


def _train_and_score(model_name, task, plan, fidelity, data_dir, data: TaskData, dev, base, evaluate_dev) -> TrialResult:
    regression = data.task.kind == "regression"
    amp = dev.type == "cuda"
    if amp:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats(dev)
    train = _encoded(model_name, task, fidelity, data_dir, "train")
    heldout = _encoded(model_name, task, fidelity, data_dir, "heldout")
    pretrained, head_names = _base_model(model_name, data)
    pad_id = _tokenizer(model_name).pad_token_id

    torch.manual_seed(fidelity.seed)
    model = copy.deepcopy(pretrained)
    for name, module in model.named_modules():  # fresh, seeded head for every trial
        if any(p.startswith(name + ".") for p in head_names) and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    structure = structure_of(model.config)
    count = count_plan(plan, structure)
    model = apply_plan(model, plan, structure)
    head_params = 0
    for name, param in model.named_parameters():
        if any(name.endswith(h) for h in head_names):
            param.requires_grad_(True)
            head_params += param.numel()
    model.to(dev).train()

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=fidelity.learning_rate, weight_decay=0.0)
    per_epoch = math.ceil(len(train.labels) / fidelity.batch_size)
    total = fidelity.max_steps or max(1, math.ceil(fidelity.epochs * per_epoch))
    warmup = max(1, int(0.06 * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    scaler = torch.amp.GradScaler(enabled=amp)
    rng = random.Random(fidelity.seed)
    lengths = [len(x) for x in train.ids]

    curve, steps, seen, eval_seconds = [], 0, 0, 0.0
    start = time.perf_counter()
    while steps < total:
        for idx in _batches(lengths, fidelity.batch_size, rng):
            batch = _collate(train, idx, pad_id, dev, regression)
            with torch.autocast(dev.type, enabled=amp):
                loss = model(**batch).loss
            if not torch.isfinite(loss):
                return TrialResult.failed("nan_loss", f"loss became {loss.item()} at step {steps}; lower the learning rate",
                                          params=count.params, params_pct=count.pct, steps=steps, **base)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            steps += 1
            seen += len(idx)
            if steps >= total:
                break
        tick = time.perf_counter()
        metrics = _score(_predict(model, heldout, 2 * fidelity.batch_size, pad_id, dev, regression, amp), heldout, regression)
        curve.append(metrics[data.task.metric])
        eval_seconds += time.perf_counter() - tick
    train_seconds = time.perf_counter() - start - eval_seconds

    if evaluate_dev and data.dev is not None:
        tick = time.perf_counter()
        dev_enc = _encoded(model_name, task, fidelity, data_dir, "dev")
        dev_metrics = _score(_predict(model, dev_enc, 2 * fidelity.batch_size, pad_id, dev, regression, amp), dev_enc,
                             regression)
        metrics.update({f"dev_{k}": v for k, v in dev_metrics.items()})
        eval_seconds += time.perf_counter() - tick
    return TrialResult(
        metric=metrics[data.task.metric], metric_name=data.task.metric, metrics=metrics, curve=curve,
        params=count.params, params_pct=count.pct, head_params=head_params, train_seconds=train_seconds,
        eval_seconds=eval_seconds, throughput=seen / train_seconds if train_seconds else 0.0,
        peak_memory_mb=_peak_memory_mb(dev), steps=steps, split=data.split_info(fidelity.seed, fidelity.heldout_fraction),
        **base,
    )
