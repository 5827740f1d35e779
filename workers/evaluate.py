"""Fine-tune and evaluate one plan at one fidelity: `evaluate_plan(...) -> TrialResult`.

Per worker process, `CACHE` (see `autopeft.workers.cache`) keeps what does not change between
trials: the tokenizer, the task's checked and tokenised splits, and the base model with its task
head. Each trial's model is built from that cached model in memory, never reloaded from disk: its
frozen weights are the cached tensors themselves (nothing writes to them: they get no gradient and no
optimizer state), its head is a fresh, seeded copy.

Speed: length-grouped batches with dynamic padding (`batching`); the embeddings and the blocks below
the lowest adapted block run without autograd (`frozen`); mixed precision (bf16, or fp16 with loss
scaling) and TF32 on CUDA only; on CPU the process's `torch.set_num_threads` is respected (never
changed here). Training: AdamW (no weight decay) on adapter and head weights, linear warm-up over 6%
of the steps then linear decay to 0, gradient norm clipped at 1.0. Regression heads are trained on
targets standardised with the training split's mean and std (`autopeft.workers.targets`); predictions
are mapped back and scored on the labels' own scale.
"""

from __future__ import annotations

import contextlib
import copy
import random
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from autopeft.backends import apply_plan
from autopeft.heads import head_modules
from autopeft.search_spaces.counting import count_plan
from autopeft.search_spaces.model_structure import ModelError, load_config, model_not_found, structure_of
from autopeft.search_spaces.plan import Plan
from autopeft.spec import FidelitySpec
from autopeft.workers.batching import Encoded, collate, encode, length_grouped_batches
from autopeft.workers.cache import CACHE
from autopeft.workers.data import TaskData, load_task_data
from autopeft.workers.frozen import FrozenBottom, lowest_adapted_layer
from autopeft.workers.lm_tasks import lm_kind
from autopeft.workers.metrics import classification_metrics, regression_metrics
from autopeft.workers.resources import crash_failure, one_line, peak_memory_mb, reset_peak_memory
from autopeft.workers.result import TrialResult
from autopeft.workers.targets import TargetScaling
from autopeft.workers.tasks import DataError, resolve_task
from autopeft.workers.training import adamw_with_schedule, optimizer_step, total_steps


def _data_key(task: str, fidelity: FidelitySpec, data_dir) -> tuple:
    return (task, str(data_dir), fidelity.seed, fidelity.heldout_fraction, fidelity.train_size, fidelity.eval_size)


def task_data(task: str, fidelity: FidelitySpec, data_dir: str | Path | None = None) -> TaskData:
    """The checked, split data of `task` at `fidelity` (cached per process); raises `DataError`."""
    return CACHE.get(("data", *_data_key(task, fidelity, data_dir)), lambda: load_task_data(
        resolve_task(task, data_dir), seed=fidelity.seed, heldout_fraction=fidelity.heldout_fraction,
        train_size=fidelity.train_size, eval_size=fidelity.eval_size))


def check_task(model: str, task: str, fidelity: FidelitySpec, data_dir: str | Path | None = None,
               device: str | None = None) -> TaskData:
    """Read and check the task's data now, so data errors surface before any training (`DataError`).

    Language-model tasks (`lm_evaluate.check_lm_task`) also check the model kind, the metric at this
    fidelity and, given the `device` trials run on, the precision settings (`ModelError`). Rows the
    task's ``unlabeled=drop`` left out are counted on stderr (`TaskData.notes`), once per search.
    """
    if lm_kind(task) is not None:
        from autopeft.workers.lm_evaluate import check_lm_task

        return check_lm_task(model, task, fidelity, device)
    data = task_data(task, fidelity, data_dir)
    for note in data.notes:
        print(f"note: {note}", file=sys.stderr)
    return data


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_model(model: str) -> None:
    """Check that `model` can be trained here (weights and a tokenizer), so a search fails before any trial.

    A directory needs weights (`save_pretrained` output); a config.json alone is enough for parameter
    counts only. Raises `ModelError` with one line.
    """
    load_config(model)  # a missing directory or an unreachable hub model, in one line
    path = Path(model)
    if path.is_dir() and not any((path / name).is_file() for name in WEIGHT_FILES):
        raise ModelError(f"{model}: no model weights ({' or '.join(WEIGHT_FILES[::2])}); a search trains the model, so "
                         "pass a directory written by save_pretrained (a config.json alone only serves `autopeft spaces`)")
    try:
        tokenizer(model)
    except Exception as exc:  # transformers raises OSError, ValueError or TypeError for an unusable tokenizer
        if not path.is_dir() and isinstance(exc, OSError):
            raise model_not_found(model, exc) from None
        raise ModelError(f"{model}: cannot load a tokenizer ({one_line(exc, 160)}); pass a model directory saved "
                         "with its tokenizer (tokenizer.json or vocab files)") from None


def tokenizer(model: str):
    """The model's tokenizer (cached), with a pad token (EOS or UNK for models that have none)."""
    from transformers import AutoTokenizer

    def build():
        tok = AutoTokenizer.from_pretrained(model)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token or tok.unk_token
        return tok

    return CACHE.get(("tokenizer", model), build)


def encoded(model: str, task: str, fidelity: FidelitySpec, data_dir, split: str) -> Encoded:
    """Token ids of one split (`train`, `heldout` or `dev`) of `task` at `fidelity` (cached)."""
    key = ("encoded", model, *_data_key(task, fidelity, data_dir), fidelity.max_seq_length, split)
    return CACHE.get(key, lambda: encode(tokenizer(model), getattr(task_data(task, fidelity, data_dir), split),
                                         fidelity.max_seq_length))


@dataclass(frozen=True)
class BaseModel:
    """A pretrained model with a task head, every weight frozen; `head` names the head's parameters."""

    model: nn.Module
    head: frozenset[str]


@contextlib.contextmanager
def quiet_loading():
    """transformers at error level without progress bars, then as before: loading a checkpoint into a fresh task
    head is what a trial is for, so its load report (5.x) or "newly initialized" warning (4.x) says nothing new."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def base_model(model: str, data: TaskData, device: torch.device) -> BaseModel:
    """The pretrained model with a head for `data`'s task on `device`, loaded once per process."""
    from transformers import AutoModelForSequenceClassification

    def build() -> BaseModel:
        regression = data.task.kind == "regression"
        with quiet_loading():
            # fp32 weights whatever the checkpoint's dtype (transformers 5 loads a bf16 checkpoint as bf16):
            # on CUDA the compute runs under autocast, the weights and the optimizer stay fp32
            loaded, info = AutoModelForSequenceClassification.from_pretrained(
                model, num_labels=data.num_labels, output_loading_info=True, ignore_mismatched_sizes=True,
                problem_type="regression" if regression else "single_label_classification", dtype=torch.float32)
        loaded.config.pad_token_id = tokenizer(model).pad_token_id
        prefix = loaded.base_model_prefix + "."
        names = {n for n, _ in loaded.named_parameters()}
        fresh = set(info["missing_keys"]) | {m[0] if isinstance(m, tuple) else m for m in info["mismatched_keys"]}
        head = {n for n in names if not n.startswith(prefix)} | (fresh & names)
        loaded.requires_grad_(False)
        return BaseModel(loaded.to(device), frozenset(head))

    return CACHE.get(("model", model, data.task.kind, data.num_labels, str(device)), build)


def fresh_model(base: BaseModel, seed: int) -> nn.Module:
    """A trial's model: the cached frozen weights shared (not copied), the head copied and re-initialised
    with `seed` (the model's own `_init_weights`, as when a head is created by `from_pretrained`)."""
    params = dict(base.model.named_parameters())
    memo = {id(p): p for name, p in params.items() if name not in base.head}
    model = copy.deepcopy(base.model, memo)
    torch.manual_seed(seed)
    owners = {name.rpartition(".")[0] for name in base.head}
    for name, module in model.named_modules():
        if name in owners:
            if hasattr(model, "_init_weights"):
                model._init_weights(module)
            elif hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return model


def _predict(model: nn.Module, enc: Encoded, batch_size: int, pad_id: int, device, regression: bool, amp,
             scaling: TargetScaling | None = None) -> np.ndarray:
    """Predictions of shape (n,): class indices, or floats for regression (in label units with `scaling`)."""
    model.eval()
    predictions = np.zeros(len(enc), dtype=float if regression else int)
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        for idx in length_grouped_batches(enc.lengths, batch_size, None):
            logits = model(**collate(enc, idx, pad_id, device, regression, with_labels=False)).logits.float()
            predictions[idx] = (logits.squeeze(-1) if regression else logits.argmax(-1)).cpu().numpy()
    model.train()
    return scaling.original(predictions) if scaling is not None else predictions


def _score(predictions: np.ndarray, enc: Encoded, regression: bool) -> dict[str, float]:
    labels = np.asarray(enc.labels, dtype=float if regression else int)
    return regression_metrics(predictions, labels) if regression else classification_metrics(predictions, labels)


AMP_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    """Autocast dtype on CUDA (bf16 where supported, else fp16); None (full precision) elsewhere."""
    if device.type != "cuda":
        return None
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def evaluate_plan(model: str, task: str, plan: Plan, fidelity: FidelitySpec, data_dir: str | Path | None = None,
                  device: str | None = None, evaluate_dev: bool = False, standardise_targets: bool = True) -> TrialResult:
    """Train `plan` on `task` at `fidelity` and score it on the held-out split; never raises for a bad trial.

    `model` is a Hugging Face model name or directory; `task` a task name (`autopeft.workers.tasks`);
    `device` e.g. ``"cpu"`` or ``"cuda:0"`` (default: CUDA when available). With `evaluate_dev`,
    `metrics` also holds ``dev_*`` figures on the dev split (for final reporting, not for the search).
    A regression head is trained on standardised targets (mean and std in `target_scaling`);
    `standardise_targets=False` trains it on the raw labels instead (for before/after benchmarks only).
    A failure comes back as a `TrialResult` with `status="failed"` and `failure={kind, message}`.
    Language-model tasks (``kind=causal-lm|seq2seq``) are trained by `lm_evaluate.evaluate_lm_plan`.
    """
    if lm_kind(task) is not None:
        from autopeft.workers.lm_evaluate import evaluate_lm_plan

        return evaluate_lm_plan(model, task, plan, fidelity, data_dir, device, evaluate_dev)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    base = {"seed": fidelity.seed, "device": str(dev), "host": socket.gethostname(), "fidelity": fidelity.model_dump()}
    try:
        data = task_data(task, fidelity, data_dir)
        return _train_and_score(model, task, plan, fidelity, data_dir, data, dev, base, evaluate_dev,
                                standardise_targets)
    except DataError as exc:
        return TrialResult.failed("data_error", str(exc), **base)
    except Exception as exc:  # a trial must come back as a result, whatever broke in it
        return TrialResult.failed(*crash_failure(exc, dev), **base)
    finally:
        if dev.type == "cuda":
            torch.cuda.empty_cache()


def _train_and_score(model_name: str, task: str, plan: Plan, fidelity: FidelitySpec, data_dir, data: TaskData,
                     dev: torch.device, base: dict[str, Any], evaluate_dev: bool, standardise_targets: bool) -> TrialResult:
    regression = data.task.kind == "regression"
    amp = _amp_dtype(dev)
    base = {**base, "precision": "fp32" if amp is None else f"{AMP_NAMES[amp]}-autocast"}
    train = encoded(model_name, task, fidelity, data_dir, "train")
    scaling = TargetScaling.fit(data.train.labels) if regression and standardise_targets else None
    if scaling is not None:
        base = {**base, "target_scaling": scaling.to_dict()}
        train = Encoded(train.ids, train.types, scaling.standardise(train.labels))  # the cached split stays raw
    heldout = encoded(model_name, task, fidelity, data_dir, "heldout")
    cached = base_model(model_name, data, dev)
    pad_id = tokenizer(model_name).pad_token_id
    reset_peak_memory(dev)

    model = fresh_model(cached, fidelity.seed)
    structure = structure_of(model.config)
    count = count_plan(plan, structure)
    model = apply_plan(model, plan, structure)
    head_params = 0
    for name, param in model.named_parameters():
        if any(name == h or name.endswith("." + h) for h in cached.head):
            param.requires_grad_(True)
            head_params += param.numel()
    model.to(dev).train()
    lowest = lowest_adapted_layer(plan)
    bottom = FrozenBottom(model, structure, lowest)
    no_grad_layers = lowest if bottom.active else 0

    trainable = [p for p in model.parameters() if p.requires_grad]
    total = total_steps(len(train), fidelity.batch_size, fidelity.epochs, fidelity.max_steps)
    optimizer, scheduler = adamw_with_schedule(trainable, fidelity.learning_rate, total)
    scaler = torch.amp.GradScaler(enabled=amp == torch.float16)
    rng = random.Random(fidelity.seed)
    torch.manual_seed(fidelity.seed)  # dropout

    curve, steps, seen, eval_seconds = [], 0, 0, 0.0
    metrics: dict[str, float] = {}
    start = time.perf_counter()
    while steps < total:
        for idx in length_grouped_batches(train.lengths, fidelity.batch_size, rng):
            batch = collate(train, idx, pad_id, dev, regression)
            with torch.enable_grad(), torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                loss = model(**batch).loss
            if not torch.isfinite(loss):
                bottom.remove()
                return TrialResult.failed("nan_loss", f"loss became {loss.item()} at step {steps}; lower the learning rate",
                                          params=count.params, params_pct=count.pct, head_params=head_params,
                                          steps=steps, **base)
            optimizer_step(loss, optimizer, scheduler, scaler, trainable)
            steps += 1
            seen += len(idx)
            if steps >= total:
                break
        tick = time.perf_counter()
        metrics = _score(_predict(model, heldout, 2 * fidelity.batch_size, pad_id, dev, regression, amp, scaling), heldout,
                         regression)
        curve.append(metrics[data.task.metric])
        eval_seconds += time.perf_counter() - tick
    train_seconds = time.perf_counter() - start - eval_seconds

    if evaluate_dev and data.dev is not None:
        tick = time.perf_counter()
        dev_enc = encoded(model_name, task, fidelity, data_dir, "dev")
        dev_metrics = _score(_predict(model, dev_enc, 2 * fidelity.batch_size, pad_id, dev, regression, amp, scaling),
                             dev_enc, regression)
        metrics.update({f"dev_{k}": v for k, v in dev_metrics.items()})
        eval_seconds += time.perf_counter() - tick
    bottom.remove()
    return TrialResult(
        metric=metrics[data.task.metric], metric_name=data.task.metric, metrics=metrics, curve=curve,
        params=count.params, params_pct=count.pct, head_params=head_params,
        head_modules=list(head_modules(cached.model, cached.head)), train_seconds=train_seconds,
        eval_seconds=eval_seconds, throughput=seen / train_seconds if train_seconds > 0 else 0.0,
        peak_memory_mb=peak_memory_mb(dev), steps=steps, no_grad_layers=no_grad_layers,
        split=data.split_info(), **base,
    )
