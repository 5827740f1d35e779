"""`autopeft bench evaluate` end to end on a tiny model: both sides run, figures printed and written."""

from __future__ import annotations

import json
import re

import pytest
import torch
from typer.testing import CliRunner

from autopeft.cli import app


@pytest.fixture(autouse=True)
def keep_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_bench_evaluate_prints_both_sides_and_writes_json(tiny_bert_dir, glue_dir, tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "evaluate", "--model", tiny_bert_dir, "--data-dir", glue_dir,
                                      "--train-size", "64", "--max-steps", "2", "--threads", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert re.fullmatch(r"speedup: \d+\.\d\dx, metric delta: [+-]\d+\.\d\d", lines[-1]), lines[-1]
    assert any(line.startswith("autopeft evaluator: ") for line in lines)
    assert any(line.startswith("Trainer + peft: ") for line in lines)
    figures = json.loads(out.read_text())
    assert figures["steps"] == 2 and figures["train_size"] == 64 and figures["plan"] == "lora r8@L1-3 qv a16"
    mean = figures["mean"]
    assert mean["autopeft_seconds"] > 0 and mean["baseline_seconds"] > 0
    assert mean["speedup"] == mean["baseline_seconds"] / mean["autopeft_seconds"]
    assert 0 <= mean["autopeft_metric"] <= 1 and 0 <= mean["baseline_metric"] <= 1
    assert f"{mean['speedup']:.2f}x" in lines[-1]


@pytest.mark.parametrize("flags, targets", [([], "standardised"), (["--raw-targets"], "raw")])
def test_bench_evaluate_regression_case_on_scored_sst2(tiny_bert_dir, glue_dir, tmp_path, flags, targets):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "evaluate", "--model", tiny_bert_dir, "--data-dir", glue_dir, "--regression",
                                      "--train-size", "64", "--max-steps", "2", "--threads", "1", "--json", str(out),
                                      *flags])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["kind"] == "regression" and figures["metric"] == "spearman" and figures["targets"] == targets
    assert "&kind=regression" in figures["task"] and "&metric=spearman" in figures["task"]
    mean = figures["mean"]
    for side in ("autopeft", "baseline"):
        assert -1 <= mean[f"{side}_metric"] <= 1 and -1 <= mean[f"{side}_dev_metric"] <= 1
    assert f"{targets} targets)" in result.output and "held-out spearman" in result.output


def test_bench_evaluate_refuses_a_task_without_dev_split_in_one_line(tiny_bert_dir, tmp_path):
    data = tmp_path / "r.csv"
    data.write_text("sentence,label\n" + "".join(f"good film {i},{i / 10}\n" for i in range(40)))
    result = CliRunner().invoke(app, ["bench", "evaluate", "--model", tiny_bert_dir, "--task", f"{data}?kind=regression",
                                      "--train-size", "16", "--max-steps", "1", "--threads", "1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "expected a task with a dev split" in result.output
