"""`autopeft search` on a causal-LM task through the real CLI (inline executor, real SQLite, tiny random Llama)."""

from __future__ import annotations

import json

import pytest
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner

from autopeft.cli import app
from autopeft.study import load_study, open_storage
from tests.tiny_lm import CHAT_TEMPLATE, reversal_rows, save_tiny_llama, write_jsonl

runner = CliRunner()


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("llama"), chat_template=CHAT_TEMPLATE)


def test_a_causal_lm_search_records_lm_metrics_and_truncation(tmp_path, llama, one_torch_thread):
    rows = reversal_rows(60) + reversal_rows(60, seed=1, shape="chat")
    data = write_jsonl(tmp_path / "sft.jsonl", rows)
    spec = {"model": llama, "task": f"{data}?kind=causal-lm", "space": "lora", "budget": {"max_params_pct": 5},
            "fidelity": {"train_size": 64, "eval_size": 12, "max_steps": 3, "batch_size": 16, "max_seq_length": 64},
            "optimizer": {"sampler": "random", "seed": 0},
            "execution": {"trials": 2, "executor": "inline"},
            "storage": {"url": f"sqlite:///{tmp_path / 'lm.db'}", "study": "lm"}}
    (tmp_path / "llm.yaml").write_text(yaml.safe_dump(spec))
    result = runner.invoke(app, ["search", str(tmp_path / "llm.yaml")])
    assert result.exit_code == 0, result.output
    trials = load_study(open_storage(spec["storage"]["url"]), "lm").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        recorded = t.user_attrs["result"]
        assert recorded["metric_name"] == "eval_loss" and t.values[0] == recorded["metric"] > 0
        assert set(recorded["metrics"]) == {"eval_loss", "perplexity", "token_accuracy"}
        assert recorded["truncated"] == {"train": 0, "train_dropped": 0, "heldout": 0, "heldout_dropped": 0}
        assert recorded["head_params"] == 0 and recorded["split"]["shapes"] == ["chat", "pair"]
    json.dumps(trials[0].user_attrs["result"])  # stored as plain JSON


def test_a_causal_lm_search_on_an_encoder_only_model_is_one_line(tmp_path, tiny_bert_dir):
    data = write_jsonl(tmp_path / "sft.jsonl", reversal_rows(30))
    result = runner.invoke(app, ["search", "--model", tiny_bert_dir, "--task", f"{data}?kind=causal-lm", "--space", "lora",
                                 "--trials", "1", "--executor", "inline", "--storage", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "bert is an encoder-only model" in lines[0], result.output
