"""`autopeft search` on a causal-LM task through the real CLI (inline executor, real SQLite, tiny random Llama)."""

from __future__ import annotations

import json

import pytest
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner

from autopeft.cli import app
from autopeft.store import load_study, open_db
from autopeft.store.attrs import trial_result
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
    trials = load_study(open_db(spec["storage"]["url"]), "lm").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        recorded = trial_result(t.user_attrs)
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


def test_a_minimised_loss_runs_through_search_study_pareto_and_dashboard(tmp_path, llama, one_torch_thread):
    """eval_loss is minimised: the study, `autopeft pareto`/`studies` and the dashboard API all show the
    lower-left front (lowest loss for fewest params) and the lowest loss as the best."""
    from fastapi.testclient import TestClient

    from autopeft.dashboard import create_app
    from autopeft.pareto import hypervolume

    data = write_jsonl(tmp_path / "sft.jsonl", reversal_rows(80))
    url = f"sqlite:///{tmp_path / 'min.db'}"
    # the random tiny Llama starts above the uniform-prediction loss ln V (the default ceiling): set one
    (tmp_path / "min.yaml").write_text(yaml.safe_dump({"objectives": {"metric_ceiling": 40.0}}))
    result = runner.invoke(app, ["search", str(tmp_path / "min.yaml"), "--model", llama, "--task",
                                 f"{data}?kind=causal-lm", "--space", "lora", "--trials", "6", "--executor", "inline",
                                 "--budget-pct", "20", "--max-steps", "4", "--train-size", "64", "--storage", url,
                                 "--study", "min", "--sampler", "random", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "eval_loss ↓" in result.output
    study = load_study(open_db(url), "min")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    objective = study.user_attrs["objective"]
    assert objective["metric"] == "eval_loss" and objective["direction"] == "minimize"
    assert objective["reference"] == 40.0
    done = [(t.number, t.values[0], t.values[1]) for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert len(done) == 6 and len({round(loss, 6) for _, loss, _ in done}) > 1

    def dominated(loss, pct):
        return any(l2 <= loss and p2 <= pct and (l2, p2) != (loss, pct) for _, l2, p2 in done)

    lower_left = sorted(n for n, loss, pct in done if not dominated(loss, pct))
    pareto = runner.invoke(app, ["pareto", "min", "--storage", url, "--format", "json"])
    assert pareto.exit_code == 0, pareto.output
    assert sorted(r["trial"] for r in json.loads(pareto.output)) == lower_left
    best = min(loss for _, loss, pct in done if pct <= 20)
    studies = json.loads(runner.invoke(app, ["studies", "--storage", url, "--format", "json"]).output)
    assert studies[0]["best_metric"] == pytest.approx(best) and studies[0]["direction"] == "minimize"
    expected_hv = hypervolume([(loss, pct) for _, loss, pct in done], (objective["reference"], 20.0), maximize=False)
    assert studies[0]["hypervolume"] == pytest.approx(expected_hv) and expected_hv > 0

    with TestClient(create_app(url)) as client:
        (summary,) = client.get("/api/studies").json()
        assert summary["best_metric"] == pytest.approx(best) and summary["direction"] == "minimize"
        assert summary["best_trial"] in lower_left and summary["hypervolume"] == pytest.approx(expected_hv)
        page = client.get(f"/api/studies/{summary['study_id']}").json()
        assert sorted(p["number"] for p in page["pareto_front"]["front"]) == lower_left
        assert page["hypervolume"]["by_number"][-1] == pytest.approx(expected_hv)
        rows = client.get(f"/api/studies/{summary['study_id']}/trials?limit=100").json()["rows"]
        assert len(rows) == 6 and all(r["device"] == "cpu" and r["precision"] == "fp32" for r in rows)
        assert all(r["peak_memory_mb"] > 0 for r in rows)  # shown in the trials table beside the device


def test_a_minimised_metric_defaults_its_ceiling_to_a_uniform_prediction(llama):
    import math

    from transformers import AutoConfig

    from autopeft.runner import SearchError
    from autopeft.search_setup import search_objective
    from autopeft.spec import build_spec

    vocab = AutoConfig.from_pretrained(llama).vocab_size
    spec = build_spec({}, {"model": llama, "task": "x.jsonl?kind=causal-lm"})
    metrics = ("eval_loss", "perplexity", "token_accuracy")
    loss = search_objective(spec, "eval_loss", metrics)
    assert (loss.direction, loss.reference) == ("minimize", pytest.approx(math.log(vocab)))
    ppl = search_objective(build_spec({}, {"model": llama, "objectives.metric": "perplexity"}), "eval_loss", metrics)
    assert (ppl.metric, ppl.direction, ppl.reference) == ("perplexity", "minimize", float(vocab))
    acc = search_objective(build_spec({}, {"model": llama, "objectives.metric": "token_accuracy",
                                           "objectives.metric_floor": 0.2}), "eval_loss", metrics)
    assert (acc.direction, acc.reference) == ("maximize", 0.2)
    with pytest.raises(SearchError, match="objectives.metric: expected auto or one of eval_loss"):
        search_objective(build_spec({}, {"model": llama, "objectives.metric": "accuracy"}), "eval_loss", metrics)


@pytest.mark.parametrize(("section", "message"), [
    ({"fidelity": {"quantization": "4bit"}}, "fidelity.quantization: 4bit needs a CUDA GPU"),
    ({"objectives": {"metric": "exact_match"}}, "metric exact_match compares generated answers"),
])
def test_a_causal_lm_search_that_cannot_train_here_is_one_line_before_any_trial(tmp_path, llama, section, message):
    data = write_jsonl(tmp_path / "sft.jsonl", reversal_rows(30))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(section))
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    result = runner.invoke(app, ["search", str(tmp_path / "bad.yaml"), "--model", llama, "--task", f"{data}?kind=causal-lm",
                                 "--space", "lora", "--trials", "2", "--executor", "inline", "--storage", url])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    import optuna

    assert [s.n_trials for s in optuna.get_all_study_summaries(open_db(url))] in ([], [0])  # nothing trained


def test_a_seq2seq_search_on_t5_adapts_encoder_and_decoder_layers(tmp_path, one_torch_thread):
    from autopeft.search_spaces import Plan, count_plan, load_config, structure_of
    from tests.tiny_lm import save_tiny_t5

    t5 = save_tiny_t5(tmp_path / "t5", layers=2)  # 2 encoder + 2 decoder blocks: layers 0-1 and 2-3
    data = write_jsonl(tmp_path / "s2s.jsonl", reversal_rows(60, shape="seq2seq"))
    url = f"sqlite:///{tmp_path / 's2s.db'}"
    result = runner.invoke(app, ["search", "--model", t5, "--task", f"{data}?kind=seq2seq", "--space", "llm-lora",
                                 "--trials", "3", "--train-size", "32", "--max-steps", "2", "--budget-pct", "50",
                                 "--storage", url, "--study", "s2s", "--executor", "inline", "--seed", "0"])
    assert result.exit_code == 0, result.output
    trials = load_study(open_db(url), "s2s").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    structure = structure_of(load_config(t5))
    for t in trials:
        plan = Plan.from_dict(t.user_attrs["plan"])
        assert plan.num_layers == 4 and [m.targets for m in plan.modules] == ["attention", "mlp"]
        assert t.user_attrs["result"]["params"] == count_plan(plan, structure).params > 0
        assert t.user_attrs["result"]["metric_name"] == "eval_loss"
