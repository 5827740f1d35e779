"""`autopeft refine` end to end: a real SQLite study from a real tiny search, real tiny training per
(front trial, seed), the linked study's contents, resuming, Ctrl-C, `pareto`/`studies` output, errors."""

from __future__ import annotations

import csv
import io
import itertools
import json
import shutil
import statistics

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from autopeft.cli import app
from autopeft.executors import InlineExecutor
from autopeft.objective import ACCURACY
from autopeft.refine_run import Refiner, evaluate_run, prepare_refinement
from autopeft.spec import build_spec
from autopeft.store import create_study, load_study, open_db, pareto_trials, stored_spec
from autopeft.store.attrs import trial_result
from autopeft.store.linked import read_refinement
from autopeft.workers.ray_pool import WorkerLost
from tests.refined import add_refinement

runner = CliRunner()
FIDELITY = "train_size=96,max_steps=3"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # models fit/train faster on one thread here


@pytest.fixture(scope="module")
def task(tmp_path_factory, glue_dir):
    """A small SST-2 sample as a file task with a dev file: 300 training rows, 120 dev rows."""
    tmp = tmp_path_factory.mktemp("refine-task")
    train = open(f"{glue_dir}/SST-2/train.tsv").read().splitlines()[:301]
    dev = open(f"{glue_dir}/SST-2/dev.tsv").read().splitlines()[:121]
    (tmp / "train.tsv").write_text("\n".join(train) + "\n")
    (tmp / "dev.tsv").write_text("\n".join(dev) + "\n")
    return f"{tmp / 'train.tsv'}?dev={tmp / 'dev.tsv'}"


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_bert_dir, task):
    """A finished 3-trial search (study `s`, seed 1) in a SQLite file; tests copy it."""
    path = tmp_path_factory.mktemp("refine-search") / "study.db"
    result = runner.invoke(app, [
        "search", "--model", tiny_bert_dir, "--task", task, "--space", "lora", "--trials", "3", "--train-size", "64",
        "--max-steps", "2", "--budget-pct", "5", "--storage", f"sqlite:///{path}", "--study", "s",
        "--executor", "inline", "--sampler", "random", "--seed", "1"])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def url(searched, tmp_path):
    for suffix in ("", "-wal", "-shm"):  # the study DB is in WAL mode
        if searched.with_name(searched.name + suffix).exists():
            shutil.copy(searched.with_name(searched.name + suffix), tmp_path / f"study.db{suffix}")
    return f"sqlite:///{tmp_path / 'study.db'}"


def refine(url, *args):
    return runner.invoke(app, ["refine", "s", "--storage", url, "--executor", "inline", *args])


def test_refine_records_every_front_trial_at_every_seed_on_the_dev_set(url):
    result = refine(url, "--seeds", "2", "--fidelity", FIDELITY)
    assert result.exit_code == 0, result.output
    storage = open_db(url)
    source = load_study(storage, "s")
    front = pareto_trials(source)
    linked = load_study(storage, "s--refined")
    attrs = linked.user_attrs
    assert attrs["refinement_of"] == "s" and attrs["seeds"] == [1, 2]
    assert (attrs["metric"], attrs["split"]) == ("dev_accuracy", "dev")
    search_fidelity = stored_spec(source).fidelity.model_dump(mode="json")
    assert attrs["fidelity"] == {**search_fidelity, "train_size": 96, "max_steps": 3}
    assert source.user_attrs["refinements"] == ["s--refined"]

    trials = linked.get_trials()
    assert len(trials) == len(front) * 2 and all(t.state == TrialState.COMPLETE for t in trials)
    by_number = {t.number: t for t in front}
    pairs = {(t.user_attrs["source_trial"], t.user_attrs["seed"]) for t in trials}
    assert pairs == set(itertools.product(by_number, [1, 2]))
    for t in trials:
        src, r = by_number[t.user_attrs["source_trial"]], trial_result(t.user_attrs)
        assert t.user_attrs["plan"] == src.user_attrs["plan"] and t.params == src.params
        assert t.values == [r["metrics"]["dev_accuracy"], src.values[1]]
        assert (r["fidelity"]["seed"], r["fidelity"]["train_size"], r["fidelity"]["max_steps"]) == (t.user_attrs["seed"], 96, 3)
        assert (r["steps"], r["split"]["train"], r["split"]["dev"]) == (3, 96, 120)
        assert round(t.values[0] * 120, 6).is_integer()  # an accuracy over the 120 dev rows

    refinement = read_refinement(storage, "s--refined")
    for number in by_number:
        stored = [t.values[0] for t in sorted(trials, key=lambda t: t.user_attrs["seed"])
                  if t.user_attrs["source_trial"] == number]
        value = refinement.values[number]
        assert value.values == tuple(stored) and value.mean == pytest.approx(statistics.fmean(stored))
        assert value.sd == pytest.approx(statistics.stdev(stored))
    assert "Pareto front of s (search fidelity) and s--refined" in result.output
    assert "refined mean ± sd" in result.output and "note: the refined" in result.output

    # `autopeft pareto` shows both; `autopeft studies` lists the refinement with its source only
    rows = json.loads(runner.invoke(app, ["pareto", "s", "--storage", url, "--format", "json"]).stdout)
    assert [r["trial"] for r in rows] == [t.number for t in front]
    for r in rows:
        value = refinement.values[r["trial"]]
        assert (r["refined_mean"], r["refined_sd"], r["refined_n"]) == (value.mean, value.sd, 2)
        assert r["refined_delta"] == pytest.approx(value.mean - r["metric"]) and r["refined_front"] in (True, False)
    table = csv.DictReader(io.StringIO(runner.invoke(app, ["pareto", "s", "--storage", url, "--format", "csv"]).stdout))
    assert {"refined_mean", "refined_sd", "refined_n", "refined_front"} <= set(table.fieldnames)
    listing = json.loads(runner.invoke(app, ["studies", "--storage", url, "--format", "json"]).stdout)
    assert [(s["name"], s["refinements"]) for s in listing] == [("s", ["s--refined"])]
    shown = runner.invoke(app, ["studies", "--storage", url]).output
    assert "↳ refined: s--refined" in shown


def test_rerunning_skips_completed_pairs_and_more_seeds_add_runs(url):
    assert refine(url, "--seeds", "1", "--fidelity", FIDELITY).exit_code == 0
    storage = open_db(url)
    front = len(pareto_trials(load_study(storage, "s")))
    first = {t.number: (t.values, t.user_attrs["source_trial"]) for t in load_study(storage, "s--refined").get_trials()}
    assert len(first) == front

    more = refine(url, "--seeds", "2")  # the stored fidelity is reused
    assert more.exit_code == 0, more.output
    assert f"{front} of {2 * front} run(s) already complete" in more.output
    trials = load_study(storage, "s--refined").get_trials()
    assert len(trials) == 2 * front and all(first[n] == (trials[n].values, trials[n].user_attrs["source_trial"])
                                            for n in first)
    assert {t.user_attrs["seed"] for t in trials[front:]} == {2}
    assert load_study(storage, "s--refined").user_attrs["seeds"] == [1, 2]

    again = refine(url, "--seeds", "2")
    assert again.exit_code == 0 and f"{2 * front} of {2 * front} run(s) already complete" in again.output
    assert "seed" not in again.output.split("already complete")[1].split("Pareto front")[0]  # nothing ran
    assert len(load_study(storage, "s--refined").get_trials()) == 2 * front

    other = refine(url, "--seeds", "1", "--fidelity", "train_size=64,max_steps=2")
    assert other.exit_code == 2 and "refines at another fidelity (max_steps, train_size differ)" in other.output
    assert "--name" in other.output


def test_ctrl_c_and_a_lost_worker_leave_nothing_running(url, tiny_bert_dir, task):
    storage = open_db(url)
    session = prepare_refinement(storage, "s", seeds=2, fidelity=FIDELITY, execution={"executor": "inline"})
    assert session.done_before == 0 and len(session.todo) == session.total >= 2
    answers = iter(["lost", "real", "interrupt"])

    def evaluate(payload):
        answer = next(answers)
        if answer == "lost":
            return WorkerLost("worker died: RayActorError")
        if answer == "interrupt":
            raise KeyboardInterrupt
        return evaluate_run(tiny_bert_dir, task, None, payload)

    events: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        Refiner(session, InlineExecutor(evaluate), on_event=events.append).run()
    trials = load_study(storage, "s--refined").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE]  # nothing RUNNING, nothing failed
    assert any("worker lost, retrying" in e for e in events)
    again = prepare_refinement(storage, "s", seeds=2, execution={"executor": "inline"})
    assert again.done_before == 1 and len(again.todo) == again.total - 1
    done = (trials[0].user_attrs["source_trial"], trials[0].user_attrs["seed"])
    assert done not in {r.key for r in again.todo}


def test_a_task_without_dev_set_refines_on_the_held_out_split(url, task):
    storage = open_db(url)
    source = load_study(storage, "s")
    spec = build_spec(stored_spec(source).model_dump(mode="json"), {"task": task.split("?")[0]})
    nodev = create_study(storage, "nodev", spec, ACCURACY)
    for t in pareto_trials(source):
        nodev.add_trial(t)
    session = prepare_refinement(storage, "nodev", seeds=1, fidelity=FIDELITY)
    assert (session.split, session.metric) == ("heldout", "accuracy")
    assert load_study(storage, "nodev--refined").user_attrs["split"] == "heldout"


def test_pareto_marks_a_refined_front_that_reorders_the_search_front(url):
    storage = open_db(url)
    source = load_study(storage, "s")
    spec = build_spec(stored_spec(source).model_dump(mode="json"))
    made = create_study(storage, "known", spec, ACCURACY)
    plan_trial = source.get_trials()[0]
    for k, (metric, pct) in enumerate([(0.70, 0.1), (0.75, 0.2), (0.80, 0.3)]):
        made.add_trial(optuna.trial.create_trial(values=[metric, pct], user_attrs={
            "plan": plan_trial.user_attrs["plan"], "plan_summary": f"plan {k}", "params": 100 * (k + 1)}))
    add_refinement(storage, "known", {0: [0.72, 0.72], 1: [0.80, 0.78], 2: [0.76, 0.78]}, failed=1)

    table = runner.invoke(app, ["pareto", "known", "--storage", url])
    assert table.exit_code == 0, table.output
    assert "0.7900 ± 0.0141" in table.output and "no (dominated)" in table.output
    assert ("note: the refined front reorders the search front: 1 pair(s) swap order by metric (#1 above #2); "
            "no longer Pareto-optimal: #2") in table.output
    assert "3 of 3 front trial(s), 6 run(s) complete, 1 failed" in table.output
    as_json = runner.invoke(app, ["pareto", "known", "--storage", url, "--format", "json"])
    rows = json.loads(as_json.stdout)
    assert [(r["trial"], r["refined_mean"], r["refined_front"]) for r in rows] == [
        (0, pytest.approx(0.72), True), (1, pytest.approx(0.79), True), (2, pytest.approx(0.77), False)]
    assert "reorders the search front" in as_json.stderr

    add_refinement(storage, "known", {0: [0.60], 1: [0.70], 2: [0.90]}, name="known-full")
    newest = runner.invoke(app, ["pareto", "known", "--storage", url])
    assert "known-full" in newest.output and "keep the search front's order" in newest.output
    chosen = runner.invoke(app, ["pareto", "known", "--storage", url, "--refinement", "known--refined"])
    assert "reorders the search front" in chosen.output


@pytest.mark.parametrize("args, message", [
    (["refine", "nope"], "no study named 'nope'"),
    (["refine", "s", "--fidelity", "train_size=0"], "fidelity.train_size: expected a positive integer, got 0"),
    (["refine", "s", "--fidelity", "batchsize=8"], "fidelity.batchsize: unknown field"),
    (["refine", "s", "--executor", "slurm"], "execution.executor: expected ray or inline"),
    (["refine", "s", "--seeds", "0"], "--seeds: expected a positive integer, got 0"),
    (["refine", "empty"], "study 'empty' has no completed trials to refine"),
    (["refine", "s", "--name", "empty"], "study 'empty' exists and is not a refinement of 's'"),
    (["refine", "known--refined"], "is a refinement of 'known'"),
    (["refine", "known"], "study 'known': trial(s) 0 record no plan to re-run"),
    (["pareto", "known--refined"], "holds the `autopeft refine` runs of study 'known', not a search; pass 'known'"),
    (["pareto", "s", "--refinement", "empty"], "--refinement: study 'empty' is not a refinement of 's'"),
])
def test_bad_input_is_one_line_and_nonzero(url, args, message):
    storage = open_db(url)
    spec = build_spec(stored_spec(load_study(storage, "s")).model_dump(mode="json"))
    create_study(storage, "empty", spec, ACCURACY)
    known = create_study(storage, "known", spec, ACCURACY)
    known.add_trial(optuna.trial.create_trial(values=[0.5, 0.1]))
    add_refinement(storage, "known", {0: [0.5]})
    result = runner.invoke(app, [*args, "--storage", url])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert "s--refined" not in [s.study_name for s in storage.get_all_studies()]


def test_refine_on_a_postgresql_study(url, postgres_url):
    source = load_study(open_db(url), "s")
    pg = open_db(postgres_url)
    copy = create_study(pg, "s", build_spec(stored_spec(source).model_dump(mode="json")), ACCURACY)
    for t in source.get_trials():
        copy.add_trial(t)
    result = runner.invoke(app, ["refine", "s", "--storage", postgres_url, "--executor", "inline", "--seeds", "1",
                                 "--fidelity", FIDELITY])
    assert result.exit_code == 0, result.output
    front = pareto_trials(load_study(pg, "s"))
    linked = load_study(pg, "s--refined")
    assert {t.user_attrs["source_trial"] for t in linked.get_trials()} == {t.number for t in front}
    assert all(t.state == TrialState.COMPLETE for t in linked.get_trials())
    rows = json.loads(runner.invoke(app, ["pareto", "s", "--storage", postgres_url, "--format", "json"]).stdout)
    assert all(r["refined_n"] == 1 and r["refined_sd"] is None for r in rows)


@pytest.mark.slow  # Ray start-up and two actors loading torch: about a minute on 2 shared cores
def test_refine_runs_on_local_ray_workers(url):
    result = runner.invoke(app, ["refine", "s", "--storage", url, "--seeds", "2", "--fidelity", FIDELITY,
                                 "--executor", "ray", "--workers", "2"])
    assert result.exit_code == 0, result.output
    storage = open_db(url)
    front = pareto_trials(load_study(storage, "s"))
    trials = load_study(storage, "s--refined").get_trials()
    assert len(trials) == 2 * len(front) and all(t.state == TrialState.COMPLETE for t in trials)
    # the same runs inline give the same dev values: seeds fix the data, the head and the order
    inline = refine(url, "--seeds", "2", "--name", "s--inline", "--fidelity", FIDELITY)
    assert inline.exit_code == 0, inline.output
    on_ray = {(t.user_attrs["source_trial"], t.user_attrs["seed"]): t.values[0] for t in trials}
    here = {(t.user_attrs["source_trial"], t.user_attrs["seed"]): t.values[0]
            for t in load_study(storage, "s--inline").get_trials()}
    assert here == pytest.approx(on_ray)
