"""`autopeft search / studies / pareto / export` end to end: real SQLite study, real tiny training."""

from __future__ import annotations

import json

import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from autopeft.cli import app
from autopeft.search_spaces import count_plan, load_config, structure_of
from autopeft.search_spaces.plan import Plan
from autopeft.store import load_study, open_db, stored_spec
from autopeft.store.attrs import trial_result

runner = CliRunner()


@pytest.fixture
def search(tmp_path, tiny_bert_dir, glue_dir):
    url = f"sqlite:///{tmp_path / 'study.db'}"

    def flags(trials=3):
        return ["--model", tiny_bert_dir, "--task", "glue:sst2", "--data-dir", glue_dir, "--space", "lora",
                "--trials", str(trials), "--train-size", "64", "--max-steps", "2", "--budget-pct", "5",
                "--storage", url, "--study", "s", "--executor", "inline", "--sampler", "random", "--seed", "1"]

    def run(*extra, trials=3):
        return runner.invoke(app, ["search", *flags(trials), *extra])

    run.flags = flags
    return run, url


def test_search_records_every_trial_and_exports_load_in_peft(search, tmp_path, tiny_bert_dir):
    run, url = search
    result = run()
    assert result.exit_code == 0, result.output
    assert "Pareto front of s" in result.output and "autopeft export s --trial" in result.output
    study = load_study(open_db(url), "s")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    structure = structure_of(load_config(tiny_bert_dir))
    for t in trials:
        plan = Plan.from_dict(t.user_attrs["plan"])
        count = count_plan(plan, structure)
        assert (t.user_attrs["params"], t.values[1]) == (count.params, pytest.approx(count.pct))
        assert t.user_attrs["result"]["params"] == count.params and t.values[1] <= 5
        assert t.values[0] == t.user_attrs["result"]["metric"]
        assert trial_result(t.user_attrs)["fidelity"]["max_steps"] == 2 and t.user_attrs["result"]["host"]
    assert stored_spec(study).fidelity.train_size == 64

    listing = json.loads(runner.invoke(app, ["studies", "--storage", url, "--format", "json"]).output)
    assert listing[0]["name"] == "s" and listing[0]["states"] == {"complete": 3}
    front = json.loads(runner.invoke(app, ["pareto", "s", "--storage", url, "--format", "json"]).output)
    assert front and {r["trial"] for r in front} <= {0, 1, 2}

    from peft import PeftConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    number = front[0]["trial"]
    out = tmp_path / "adapter"
    exported = runner.invoke(app, ["export", "s", "--trial", str(number), "--format", "peft", "--out", str(out),
                                   "--storage", url])
    assert exported.exit_code == 0, exported.output
    recorded = trial_result(trials[number].user_attrs)
    assert "AutoModelForSequenceClassification(..., num_labels=2); the trial also trained classifier" in exported.output
    config = PeftConfig.from_pretrained(str(out))  # loaded the standard way, nothing set by hand
    model = get_peft_model(AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2), config)
    assert recorded["head_modules"] == ["classifier"] and recorded["head_params"] == 2 * 32 + 2
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == \
        trials[number].user_attrs["params"] + recorded["head_params"]


def test_resume_with_the_study_name_alone_continues_the_study(search, tmp_path):
    run, url = search
    assert run(trials=2).exit_code == 0
    result = runner.invoke(app, ["search", "--study", "s", "--storage", url, "--trials", "4"])
    assert result.exit_code == 0, result.output
    assert "resuming study s" in result.output
    trials = load_study(open_db(url), "s").get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3] and all(t.state == TrialState.COMPLETE for t in trials)
    changed = runner.invoke(app, ["search", "--study", "s", "--storage", url, "--space", "autopeft"])
    assert changed.exit_code == 2 and "study 's' was created with 'lora'" in changed.output


@pytest.mark.parametrize("args, message", [
    (["export", "missing", "--trial", "0", "--out", "x"], "no such file"),  # reading never creates the DB
    (["pareto", "missing"], "run `autopeft search` first"),
    (["studies", "--storage", "postgresql+psycopg://nobody@127.0.0.1:9/none"], "cannot open storage"),
    (["export", "s", "--trial", "0", "--out", "x", "--format", "onnx"], "--format: expected one of peft, adapters, yaml"),
])
def test_bad_input_is_one_line_and_nonzero(search, args, message):
    _, url = search
    if "--storage" not in args:
        args = [*args, "--storage", url]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_infeasible_budget_and_missing_data_fail_before_training(search, tmp_path, tiny_bert_dir):
    run, url = search
    result = run("--budget-pct", "0.0001")
    assert result.exit_code == 2 and "below the smallest configuration of space 'lora'" in result.output
    result = runner.invoke(app, ["search", "--model", tiny_bert_dir, "--task", str(tmp_path / "none.csv"),
                                 "--storage", url, "--study", "t"])
    assert result.exit_code == 2 and "data file not found" in result.output
    assert open_db(url).get_all_studies() == []  # nothing was created, nothing trained


def test_exporting_a_trial_that_is_not_complete_is_refused(search):
    run, url = search
    assert run(trials=1).exit_code == 0
    study = load_study(open_db(url), "s")
    study.ask()  # a RUNNING trial
    result = runner.invoke(app, ["export", "s", "--trial", "1", "--out", "x", "--storage", url])
    assert result.exit_code == 2 and "trial 1: is running, not complete" in result.output


def test_warm_start_evaluates_the_other_studys_front_first(search, tiny_bert_dir, glue_dir):
    run, url = search
    assert run(trials=3).exit_code == 0
    source = load_study(open_db(url), "s")
    front = {t.number: t.params for t in source.best_trials}
    result = runner.invoke(app, ["search", "--model", tiny_bert_dir, "--task", "glue:rte", "--data-dir", glue_dir,
                                 "--space", "lora", "--trials", str(len(front) + 1), "--train-size", "64",
                                 "--max-steps", "2", "--budget-pct", "5", "--storage", url, "--study", "rte",
                                 "--executor", "inline", "--warm-start", "s"])
    assert result.exit_code == 0, result.output
    trials = load_study(open_db(url), "rte").get_trials()
    firsts = trials[: len(front)]
    assert [t.params for t in firsts] == [front[int(t.user_attrs["warm_start_from"].split("#")[1])] for t in firsts]
    assert all(t.user_attrs["warm_start_from"].startswith("s#") for t in firsts)


def test_objective_metric_from_the_spec_file_is_the_one_maximised(search, tmp_path):
    run, url = search
    spec = tmp_path / "spec.yaml"
    spec.write_text("objectives: {metric: f1}\n")
    assert runner.invoke(app, ["search", str(spec), *run.flags(trials=2)]).exit_code == 0
    for t in load_study(open_db(url), "s").get_trials():
        assert t.values[0] == t.user_attrs["result"]["metrics"]["f1"]
    spec.write_text("objectives: {metric: bleu}\n")
    result = runner.invoke(app, ["search", str(spec), *run.flags(), "--study", "other"])
    assert result.exit_code == 2 and "objectives.metric: expected auto or one of accuracy, f1, matthews" in result.output


def test_successive_halving_trains_each_rung_for_real_and_fronts_show_top_rung_trials_only(search, tmp_path):
    run, url = search
    spec = tmp_path / "spec.yaml"
    spec.write_text("promotion: {enabled: true, eta: 2, min_steps: 1}\n")
    result = runner.invoke(app, ["search", str(spec), *run.flags(trials=1), "--max-steps", "4"])
    assert result.exit_code == 0, result.output
    assert "successive halving: rungs of 1, 2, 4 steps" in result.output
    trials = load_study(open_db(url), "s").get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 1 and {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    for t in trials:
        rungs = t.user_attrs["rungs"]
        assert [r["steps"] for r in rungs] == [1, 2, 4][: len(rungs)]  # the workers really trained that long
        assert t.user_attrs["steps"] == sum(r["steps"] for r in rungs)
        assert trial_result(t.user_attrs)["fidelity"]["max_steps"] == rungs[-1]["steps"] == t.user_attrs["result"]["steps"]
        assert rungs[-1]["metric"] == t.user_attrs["result"]["metric"]
    for t in complete:
        assert len(t.user_attrs["rungs"]) == 3 and t.values[0] == t.user_attrs["rungs"][-1]["metric"]
    front = json.loads(runner.invoke(app, ["pareto", "s", "--storage", url, "--format", "json"]).output)
    assert {r["trial"] for r in front} <= {t.number for t in complete}
