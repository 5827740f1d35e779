"""Fine-tune and evaluate one plan on a language-model task: `evaluate_lm_plan(...) -> TrialResult`.

`autopeft.workers.evaluate.evaluate_plan` routes ``kind=causal-lm`` and ``kind=seq2seq`` tasks here.
Per worker process, `CACHE` keeps the tokenizer, the checked and tokenised splits and the frozen base
model; each trial's model is a copy that shares the cached weights (as for classification). A 4-/8-bit
base is loaded afresh for each trial instead.

Speed, as the classification evaluator: length-grouped batches with dynamic padding; for decoders the
embeddings and the blocks below the lowest adapted block run without autograd (`frozen`); the LM head
projects only target positions (`lm_loss`). The same AdamW + warm-up / linear-decay schedule
(`training`). On CUDA: bf16 (or fp16) base weights, fp32 adapters, optional gradient checkpointing and
4-/8-bit bases (`lm_models`). Metrics on the held-out split: ``eval_loss``, ``perplexity``,
``token_accuracy`` (token-weighted over completion tokens), and ``exact_match`` of greedy generations
when ``fidelity.max_new_tokens`` is set.
"""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path
from typing import Any

import torch

from autopeft.backends import apply_plan
from autopeft.search_spaces.counting import count_plan
from autopeft.search_spaces.model_structure import ModelError, structure_of
from autopeft.search_spaces.plan import Plan
from autopeft.spec import FidelitySpec
from autopeft.workers.batching import length_grouped_batches
from autopeft.workers.cache import CACHE
from autopeft.workers.evaluate import BaseModel, fresh_model, tokenizer
from autopeft.workers.frozen import FrozenBottom, lowest_adapted_layer
from autopeft.workers.lm_data import LMTaskData, load_lm_task_data
from autopeft.workers.lm_encode import LMEncoded, collate_lm, encode_causal, encode_seq2seq, end_token_id
from autopeft.workers.lm_loss import generation_metrics, head_on_targets_only, score, token_losses
from autopeft.workers.lm_models import (
    PEFT_TASK_TYPES,
    adapters_in_fp32,
    check_lm_model,
    check_precision,
    enable_checkpointing,
    load_lm,
    precision_name,
)
from autopeft.workers.lm_tasks import resolve_lm_task
from autopeft.workers.resources import crash_failure, peak_memory_mb, reset_peak_memory
from autopeft.workers.result import TrialResult
from autopeft.workers.tasks import DataError
from autopeft.workers.training import adamw_with_schedule, optimizer_step, total_steps


def _data_key(task: str, fidelity: FidelitySpec) -> tuple:
    return (task, fidelity.seed, fidelity.heldout_fraction, fidelity.train_size, fidelity.eval_size)


def lm_task_data(task: str, fidelity: FidelitySpec) -> LMTaskData:
    """The checked, split rows of a language-model `task` at `fidelity` (cached per process); `DataError`."""
    return CACHE.get(("lm-data", *_data_key(task, fidelity)), lambda: load_lm_task_data(
        resolve_lm_task(task), seed=fidelity.seed, heldout_fraction=fidelity.heldout_fraction,
        train_size=fidelity.train_size, eval_size=fidelity.eval_size))


def lm_encoded(model: str, task: str, fidelity: FidelitySpec, split: str) -> LMEncoded:
    """Token ids and loss masks of one split (`train`, `heldout` or `dev`), cached; `DataError` for rows that cannot be used."""
    def build() -> LMEncoded:
        data = lm_task_data(task, fidelity)
        encode = encode_seq2seq if data.task.kind == "seq2seq" else encode_causal
        return encode(tokenizer(model), getattr(data, split), fidelity.max_seq_length, f"{task} ({split} split)")

    return CACHE.get(("lm-encoded", model, *_data_key(task, fidelity), fidelity.max_seq_length, split), build)


def check_lm_fidelity(metric: str, fidelity: FidelitySpec) -> None:
    """`DataError` when `metric` cannot be computed at `fidelity` (exact_match needs generation)."""
    if metric == "exact_match" and fidelity.max_new_tokens is None:
        raise DataError("metric exact_match compares generated answers, so it needs fidelity.max_new_tokens "
                        "(e.g. --max-new-tokens 16 or fidelity: {max_new_tokens: 16}); set it or use eval_loss")


def check_lm_task(model: str, task: str, fidelity: FidelitySpec, device: str | None = None) -> LMTaskData:
    """Everything about a language-model task that can be wrong, checked before any training.

    Rows, the model kind (`ModelError` for an encoder-only model on causal-lm, ...), the metric at this
    fidelity, and the tokenised train / held-out / dev splits (chat template, rows too long). With
    `device` (where trials will run), also the precision settings (`ModelError`: 4-bit on a CPU).
    """
    data = lm_task_data(task, fidelity)
    check_lm_fidelity(data.task.metric, fidelity)
    check_lm_model(model, data.task.kind)
    if device is not None:
        check_precision(fidelity, torch.device(device))
    for split in ("train", "heldout", *(("dev",) if data.dev is not None else ())):
        lm_encoded(model, task, fidelity, split)
    if data.task.metric == "exact_match" and all(r is None for r in lm_encoded(model, task, fidelity, "heldout").references):
        raise DataError(f"{task}: metric exact_match needs rows with an answer (prompt/completion, messages or "
                        "input/target); text rows have none, and no held-out row has one")
    return data


def base_lm(model: str, kind: str, fidelity: FidelitySpec, device: torch.device) -> BaseModel:
    """The frozen pretrained language model (not quantised) on `device`, loaded once per process."""
    return CACHE.get(("lm-model", model, kind, str(device)), lambda: BaseModel(
        load_lm(model, kind, fidelity, device, tokenizer(model).pad_token_id), frozenset()))


def evaluate_lm_plan(model: str, task: str, plan: Plan, fidelity: FidelitySpec, data_dir: str | Path | None = None,
                     device: str | None = None, evaluate_dev: bool = False) -> TrialResult:
    """Train `plan` on a language-model `task` at `fidelity` and score it on the held-out split; never raises.

    Arguments as `autopeft.workers.evaluate.evaluate_plan` (`data_dir` is unused: file tasks name their
    paths). Bad data or settings come back before any training as a failed `TrialResult` with one line.
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    base = {"seed": fidelity.seed, "device": str(dev), "host": socket.gethostname(), "fidelity": fidelity.model_dump()}
    try:
        check_precision(fidelity, dev)
        data = check_lm_task(model, task, fidelity)
        return _train_and_score(model, task, plan, fidelity, data, dev, base, evaluate_dev)
    except DataError as exc:
        return TrialResult.failed("data_error", str(exc), **base)
    except ModelError as exc:
        return TrialResult.failed("error", str(exc), **base)
    except Exception as exc:  # a trial must come back as a result, whatever broke in it
        return TrialResult.failed(*crash_failure(exc, dev), **base)
    finally:
        if dev.type == "cuda":
            torch.cuda.empty_cache()


def _truncation(encs: dict[str, LMEncoded]) -> dict[str, int]:
    counts = {}
    for split, enc in encs.items():
        counts[split] = enc.truncated
        counts[f"{split}_dropped"] = enc.dropped
    return counts


def _train_and_score(model_name: str, task: str, plan: Plan, fidelity: FidelitySpec, data: LMTaskData,
                     dev: torch.device, base: dict[str, Any], evaluate_dev: bool) -> TrialResult:
    kind = data.task.kind
    seq2seq = kind == "seq2seq"
    tok = tokenizer(model_name)
    encs = {"train": lm_encoded(model_name, task, fidelity, "train"), "heldout": lm_encoded(model_name, task, fidelity, "heldout")}
    train, heldout = encs["train"], encs["heldout"]
    if fidelity.quantization == "none":
        cached = base_lm(model_name, kind, fidelity, dev)
        reset_peak_memory(dev)
        model = fresh_model(cached, fidelity.seed)  # shares the frozen weights; no head to re-initialise
    else:  # a quantised base is loaded for each trial: its bitsandbytes weights are not shared between copies
        reset_peak_memory(dev)
        model = load_lm(model_name, kind, fidelity, dev, tok.pad_token_id)
    if fidelity.gradient_checkpointing:
        enable_checkpointing(model)
    structure = structure_of(model.config)
    count = count_plan(plan, structure)
    model = apply_plan(model, plan, structure, task_type=PEFT_TASK_TYPES[kind])
    trainable = adapters_in_fp32(model)
    model.train()
    # Encoder-decoder models run the shared embeddings again in the decoder, after the encoder blocks:
    # the no-grad bottom would switch autograd off for the whole decoder, so it is for decoders only.
    bottom = FrozenBottom(model, structure, None if seq2seq else lowest_adapted_layer(plan))
    no_grad_layers = lowest_adapted_layer(plan) if bottom.active else 0
    head_only = not seq2seq and head_on_targets_only(model)
    pad_id, end_id = tok.pad_token_id, end_token_id(tok)

    total = total_steps(len(train), fidelity.batch_size, fidelity.epochs, fidelity.max_steps)
    optimizer, scheduler = adamw_with_schedule(trainable, fidelity.learning_rate, total)
    scaler = torch.amp.GradScaler(enabled=next(model.parameters()).dtype == torch.float16)
    rng = random.Random(fidelity.seed)
    torch.manual_seed(fidelity.seed)  # dropout

    def evaluate_split(enc: LMEncoded) -> dict[str, float]:
        metrics = score(model, enc, 2 * fidelity.batch_size, pad_id, dev, head_only)
        if fidelity.max_new_tokens is not None:
            metrics.update(generation_metrics(model, tok, enc, 2 * fidelity.batch_size, fidelity.max_new_tokens, dev, end_id))
        return metrics

    curve, steps, seen, eval_seconds = [], 0, 0, 0.0
    metrics: dict[str, float] = {}
    start = time.perf_counter()
    try:
        while steps < total:
            for idx in length_grouped_batches(train.lengths, fidelity.batch_size, rng):
                batch = collate_lm(train, idx, pad_id, dev)
                with torch.enable_grad():
                    loss_sum, tokens, _ = token_losses(model, batch, seq2seq, head_only)
                    loss = loss_sum / tokens
                if not torch.isfinite(loss):
                    return TrialResult.failed("nan_loss", f"loss became {loss.item()} at step {steps}; lower the learning rate",
                                              params=count.params, params_pct=count.pct, steps=steps,
                                              truncated=_truncation(encs), **base)
                optimizer_step(loss, optimizer, scheduler, scaler, trainable)
                steps += 1
                seen += len(idx)
                if steps >= total:
                    break
            tick = time.perf_counter()
            metrics = evaluate_split(heldout)
            curve.append(metrics[data.task.metric])
            eval_seconds += time.perf_counter() - tick
        train_seconds = time.perf_counter() - start - eval_seconds
        if evaluate_dev and data.dev is not None:
            tick = time.perf_counter()
            encs["dev"] = lm_encoded(model_name, task, fidelity, "dev")
            metrics.update({f"dev_{k}": v for k, v in evaluate_split(encs["dev"]).items()})
            eval_seconds += time.perf_counter() - tick
    finally:
        bottom.remove()
    return TrialResult(
        metric=metrics[data.task.metric], metric_name=data.task.metric, metrics=metrics, curve=curve,
        params=count.params, params_pct=count.pct, head_params=0, train_seconds=train_seconds,
        eval_seconds=eval_seconds, throughput=seen / train_seconds if train_seconds > 0 else 0.0,
        peak_memory_mb=peak_memory_mb(dev), steps=steps, no_grad_layers=no_grad_layers,
        truncated=_truncation(encs), precision=precision_name(fidelity, dev), split=data.split_info(), **base,
    )
