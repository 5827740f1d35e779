"""Dashboard plot and table data: pure functions checked against hand-computed values; figures
validated against plotly's schema; the fast trial reader against Optuna's own API."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import optuna
import plotly.graph_objects as go
import pytest
from optuna.trial import TrialState

from autopeft.dashboard import figures
from autopeft.dashboard.data import (
    TrialQuery,
    hypervolume_info,
    layer_map_info,
    pareto_front_info,
    plan_info,
    trial_table,
)
from autopeft.pareto import hypervolume
from autopeft.store import load_study, pareto_trials, summarize
from autopeft.store.connect import open_readonly
from autopeft.store.reader import StudyReader, TrialRow
from benchmarks.dashboard_synthetic import build_study
from tests.models import TINY_CONFIGS

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def plan(**sizes):
    return {"format": "autopeft-plan/v1", "num_layers": 4,
            "modules": [{"family": f, "sizes": s} for f, s in sizes.items()]}


def row(number, state="complete", metric=None, pct=None, plan_dict=None, minutes=None, failure=None, summary=""):
    complete = T0 + dt.timedelta(minutes=number if minutes is None else minutes)
    return TrialRow(number=number, state=state, metric=metric, params_pct=pct, params=None if pct is None else int(pct * 1e4),
                    summary=summary or f"plan {number}", plan_json=json.dumps(plan_dict) if plan_dict else None,
                    failure=failure, start=T0, complete=complete if state in ("complete", "fail") else None)


ROWS = [
    row(0, metric=0.8, pct=0.1, plan_dict=plan(lora=[0, 4, 8, 8]), minutes=5),
    row(1, metric=0.7, pct=0.05, plan_dict=plan(lora=[0, 0, 0, 4], serial=[2, 0, 0, 0]), minutes=1),
    row(2, metric=0.75, pct=0.2, plan_dict=plan(lora=[8, 8, 8, 8])),
    row(3, state="fail", pct=0.3, failure={"kind": "oom", "message": "CUDA out of memory"}),
    row(4, state="running", pct=0.02),
    row(5, metric=0.9, pct=2.0, plan_dict=plan(lora=[16, 16, 16, 16])),  # above the 1% budget
]


def test_pareto_front_info_splits_front_dominated_failed():
    info = pareto_front_info(ROWS, budget_pct=1.0)
    assert [p.number for p in info.front] == [1, 0, 5]  # cheapest first
    assert [p.number for p in info.dominated] == [2]
    assert [(p.number, p.note) for p in info.failed] == [(3, "oom: CUDA out of memory")]
    assert info.failed_y == pytest.approx(0.7 - 0.05 * 0.2)
    assert info.budget_pct == 1.0


def test_hypervolume_info_by_number_and_by_time():
    info = hypervolume_info(ROWS, reference=(0.5, 1.0))
    assert info.numbers == [0, 1, 2, 5]
    # trial 0 alone: (1 - 0.1) * (0.8 - 0.5); with trial 1 add (0.1 - 0.05) * (0.7 - 0.5); 2 dominated; 5 over budget
    assert info.by_number == pytest.approx([0.27, 0.28, 0.28, 0.28])
    # completion order: 1 (minute 1), 2 (minute 2), 0 (minute 5), 5
    assert info.times == [(T0 + dt.timedelta(minutes=m)).isoformat() for m in (1, 2, 5, 5)]
    assert info.by_time[0] == pytest.approx(0.19)
    # trial 2 (0.75 at 0.2) adds the strip 0.2..1.0 x 0.05 to trial 1's 0.19
    assert info.by_time[1] == pytest.approx(0.19 + 0.8 * 0.05)
    assert info.by_time[2:] == pytest.approx([0.28, 0.28])


def test_layer_map_info_sizes_and_usage():
    info = layer_map_info([ROWS[1], ROWS[0]])
    assert info.num_layers == 4 and info.numbers == [1, 0]
    assert info.families == ["lora", "serial"]
    assert info.sizes["lora"] == [[0, 0, 0, 4], [0, 4, 8, 8]]
    assert info.sizes["serial"] == [[2, 0, 0, 0], [0, 0, 0, 0]]
    assert info.usage["lora"] == [0.0, 0.5, 0.5, 1.0]
    assert info.usage["serial"] == [0.5, 0.0, 0.0, 0.0]


def test_layer_map_info_of_no_trials_is_empty():
    info = layer_map_info([])
    assert info.families == [] and info.numbers == [] and info.num_layers == 0


def test_plan_info_orders_families_and_keeps_options():
    data = {"format": "autopeft-plan/v1", "num_layers": 4, "modules": [
        {"family": "prefix", "sizes": [0, 0, 0, 0]},
        {"family": "serial", "sizes": [8, 0, 0, 8]},
        {"family": "lora", "sizes": [2, 2, 0, 0], "targets": "qv", "alpha": 16.0}]}
    info = plan_info(data, "summary")
    assert info.families == ["lora", "serial"]  # FAMILIES order; unused prefix left out
    assert info.sizes == {"lora": [2, 2, 0, 0], "serial": [8, 0, 0, 8]}
    assert info.options == {"lora": {"targets": "qv", "alpha": 16.0}, "serial": {}}


@pytest.mark.parametrize(("query", "numbers"), [
    (TrialQuery(), [0, 1, 2, 3, 4, 5]),
    (TrialQuery(state="complete"), [0, 1, 2, 5]),
    (TrialQuery(family="serial"), [1]),
    (TrialQuery(min_metric=0.75), [0, 2, 5]),
    (TrialQuery(min_metric=0.7, max_metric=0.8, max_params_pct=0.15), [0, 1]),
    (TrialQuery(sort="metric", descending=True), [5, 0, 2, 1, 3, 4]),  # no metric: last, by number
    (TrialQuery(sort="params_pct"), [4, 1, 0, 2, 3, 5]),
    (TrialQuery(sort="metric", offset=1, limit=2), [2, 0]),
    (TrialQuery(pareto_only=True), [0, 1, 5]),
])
def test_trial_table_filters_sorts_pages(query, numbers):
    page = trial_table(ROWS, query, pareto=frozenset({0, 1, 5}))
    assert [r["number"] for r in page.rows] == numbers
    assert page.total == len(ROWS)


def test_trial_table_row_fields():
    page = trial_table(ROWS, TrialQuery(state="fail"), pareto=frozenset())
    assert page.matched == 1
    assert page.rows[0]["failure"] == "oom: CUDA out of memory" and page.rows[0]["metric"] is None


def test_figures_are_valid_plotly_and_match_the_data():
    front = pareto_front_info(ROWS, 1.0)
    pareto = figures.pareto_figure(front, "accuracy")
    go.Figure(pareto)  # raises on any property plotly does not know
    dominated, failed, line = pareto["data"]
    assert line["customdata"] == [1, 0, 5] and line["line"]["shape"] == "hv"
    assert dominated["customdata"] == [2] and failed["customdata"] == [3]
    assert pareto["layout"]["xaxis"]["type"] == "log"
    assert pareto["layout"]["shapes"][0]["x0"] == 1.0
    go.Figure(figures.hypervolume_figure(hypervolume_info(ROWS, (0.5, 1.0))))
    layer = figures.layer_map_figure(layer_map_info([ROWS[1], ROWS[0]]))
    go.Figure(layer)
    assert [t["name"] for t in layer["data"]] == ["lora", "serial"]
    assert layer["data"][0]["text"][1] == ["", "4", "8", "8"]
    go.Figure(figures.plan_figure(plan_info(plan(lora=[0, 4, 8, 8]))))


# --- against a real study: the fast reader and the summary agree with Optuna --------------------------
@pytest.fixture(scope="module")
def real_study(tmp_path_factory):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tmp = tmp_path_factory.mktemp("dash-data")
    model = tmp / "tiny-bert"
    TINY_CONFIGS["bert"]().save_pretrained(model)
    url = f"sqlite:///{tmp / 'studies.db'}"
    storage = optuna.storages.RDBStorage(url)
    build_study(storage, "tiny", str(model), n_trials=30, running=2, failed_fraction=0.15, seed=3, bulk=True)
    return url, storage


def test_reader_rows_match_optuna_trials(real_study):
    url, storage = real_study
    trials = load_study(storage, "tiny").get_trials()
    reader = StudyReader(open_readonly(url))
    (info,) = reader.studies()
    rows = reader.rows(info.study_id)
    assert [r.number for r in rows] == [t.number for t in trials]
    for r, t in zip(rows, trials, strict=True):
        assert r.state == t.state.name.lower()
        assert r.summary == t.user_attrs["plan_summary"] and r.plan == t.user_attrs["plan"]
        assert r.params == t.user_attrs["params"]
        assert r.failure == t.user_attrs.get("failure")
        assert r.start == t.datetime_start and r.complete == t.datetime_complete
        if t.state == TrialState.COMPLETE:
            assert (r.metric, r.params_pct) == tuple(t.values)


def test_study_summary_from_reader_rows_matches_optunas_trials(real_study):
    """The one summary (store.summarize over reader rows) against figures computed from Optuna's own trials."""
    url, storage = real_study
    study = load_study(storage, "tiny")
    trials = study.get_trials()
    reader = StudyReader(open_readonly(url))
    (info,) = reader.studies()
    got = summarize(info, reader.rows(info.study_id))
    assert got.states == dict(Counter(t.state.name.lower() for t in trials)) and got.trials == len(trials)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    reference = info.objective.reference_point(info.spec.budget.max_params_pct)
    within = [t for t in done if t.values[1] <= reference[1]]
    best = max(within, key=lambda t: (t.values[0], -t.values[1], -t.number))
    assert (got.best_metric, got.best_trial) == (best.values[0], best.number)
    assert got.hypervolume == pytest.approx(hypervolume([tuple(t.values) for t in done], reference, True))
    assert got.pareto_size == len(pareto_trials(study)) > 0
    stamps = [t.datetime_complete or t.datetime_start for t in trials if t.datetime_complete or t.datetime_start]
    assert got.last_update == max(stamps).isoformat(timespec="seconds")


def test_reader_picks_up_new_and_finished_trials(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    model = tmp_path / "tiny-bert"
    TINY_CONFIGS["bert"]().save_pretrained(model)
    url = f"sqlite:///{tmp_path / 'live.db'}"
    storage = optuna.storages.RDBStorage(url)
    study = build_study(storage, "live", str(model), n_trials=4, running=1, failed_fraction=0.0)
    reader = StudyReader(open_readonly(url))
    version, rows = reader.snapshot(1)
    assert [r.state for r in rows] == ["complete"] * 3 + ["running"]
    assert reader.snapshot(1)[0] == version  # nothing changed: same version
    running = study.get_trials(states=(TrialState.RUNNING,))[0]
    study.tell(running.number, [0.9, running.user_attrs["params_pct"]])
    version2, rows = reader.snapshot(1)
    assert version2 > version and rows[-1].state == "complete" and rows[-1].metric == 0.9
    new = study.ask()
    new.set_user_attr("plan_summary", "new one")
    version3, rows = reader.snapshot(1)
    assert version3 > version2 and rows[-1].number == 4 and rows[-1].summary == "new one"


def test_bulk_insert_writes_what_add_trials_writes(tmp_path):
    """The benchmark's fast path (`bulk_add_trials`) leaves the same trials as Optuna's `Study.add_trials`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    model = tmp_path / "tiny-bert"
    TINY_CONFIGS["bert"]().save_pretrained(model)
    loaded = []
    for name, bulk in (("slow", False), ("bulk", True)):
        url = f"sqlite:///{tmp_path / name}.db"
        build_study(optuna.storages.RDBStorage(url), "s", str(model), n_trials=8, running=1, failed_fraction=0.3,
                    seed=11, bulk=bulk)
        loaded.append([{k: v for k, v in vars(t).items() if k != "_trial_id"}
                       for t in optuna.load_study(study_name="s", storage=url).get_trials()])
    assert loaded[0] == loaded[1]


def test_trial_detail_reads_the_runners_result_attribute():
    from autopeft.dashboard.data import trial_detail

    trial = optuna.trial.create_trial(
        params={}, distributions={}, values=[0.8, 0.5], user_attrs={
            "plan": {"format": "autopeft-plan/v1", "num_layers": 1, "modules": []}, "params": 10, "params_pct": 0.5,
            "result": {"metric": 0.8, "metrics": {"accuracy": 0.8}, "host": "node-7", "train_seconds": 3.5,
                       "fidelity": {"max_steps": 20}, "params": 10, "failure": None},
        })
    detail = trial_detail(trial, study_id=1, pareto=True)
    assert detail["metrics"] == {"accuracy": 0.8} and detail["resources"]["host"] == "node-7"
    assert detail["timings"]["train_seconds"] == 3.5 and detail["fidelity"] == {"max_steps": 20}
    assert "result" not in detail["other"]
