"""`autopeft bench evaluate --kind causal-lm` end to end on a tiny Llama: both sides run, figures printed and written."""

from __future__ import annotations

import json
import re

import pytest
import torch
from typer.testing import CliRunner

from autopeft.cli import app
from tests.tiny_lm import save_tiny_llama


@pytest.fixture(autouse=True)
def keep_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_bench_causal_lm_prints_both_sides_and_writes_json(tmp_path):
    pytest.importorskip("trl")
    model = save_tiny_llama(tmp_path / "llama")
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "evaluate", "--kind", "causal-lm", "--model", model, "--train-size", "32",
                                      "--max-steps", "2", "--threads", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert re.fullmatch(r"speedup: \d+\.\d\dx, held-out loss ratio: \d+\.\d{4}", lines[-1]), lines[-1]
    assert any(line.startswith("SFTTrainer + peft: ") for line in lines)
    figures = json.loads(out.read_text())
    assert figures["steps"] == 2 and figures["plan"] == "lora r8@L2-3 qv a16" and figures["model"] == model
    mean = figures["mean"]
    assert mean["speedup"] == mean["trl_seconds"] / mean["autopeft_seconds"] > 0
    assert mean["loss_ratio"] == pytest.approx(mean["autopeft_loss"] / mean["trl_loss"])
    assert mean["trl_loss"] == pytest.approx(mean["trl_own_eval_loss"], rel=0.05)  # same data, other averaging


def test_bench_evaluate_refuses_an_unknown_kind_in_one_line():
    result = CliRunner().invoke(app, ["bench", "evaluate", "--kind", "ranking"])
    assert result.exit_code != 0 and "--kind: expected classification or causal-lm, got 'ranking'" in result.output
