"""The dashboard shows a study's refinement (`autopeft refine`) beside its search values: JSON API,
figure, live update, the studies list without the linked study, and no writes to the DB."""

from __future__ import annotations

import hashlib
import statistics

import optuna
import plotly.graph_objects as go
import pytest
from fastapi.testclient import TestClient

from autopeft.dashboard import create_app
from autopeft.refine_compare import compare
from autopeft.store import load_study, pareto_trials
from autopeft.store.linked import read_refinement
from benchmarks.dashboard_synthetic import build_study
from tests.models import TINY_CONFIGS
from tests.refined import add_refinement


@pytest.fixture
def db(tmp_path):
    """Study `tiny` whose refinement lifts its cheapest front trial above the costliest; study `plain` unrefined."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    model = tmp_path / "tiny-bert"
    TINY_CONFIGS["bert"]().save_pretrained(model)
    path = tmp_path / "studies.db"
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    build_study(storage, "tiny", str(model), n_trials=24, failed_fraction=0.1, seed=4, bulk=True, budget_pct=100)
    build_study(storage, "plain", str(model), n_trials=6, failed_fraction=0.0, seed=6, bulk=True)
    front = pareto_trials(load_study(storage, "tiny"))
    assert len(front) >= 3
    top = max(t.values[0] for t in front)
    values = {t.number: [t.values[0] - 0.01, t.values[0] + 0.01 * (k % 3)] for k, t in enumerate(front[1:])}
    values[front[0].number] = [top + 0.05, top + 0.03, top + 0.04]  # the cheapest becomes the best
    add_refinement(storage, "tiny", values, failed=1)
    return path, storage, front, values


def ids(client) -> dict[str, int]:
    return {s["name"]: s["study_id"] for s in client.get("/api/studies").json()}


def test_study_api_returns_refined_values_and_the_reordering(db):
    path, storage, front, values = db
    with TestClient(create_app(f"sqlite:///{path}")) as client:
        listed = client.get("/api/studies").json()
        assert sorted(s["name"] for s in listed) == ["plain", "tiny"]  # the linked study is not a study of its own
        by_name = {s["name"]: s for s in listed}
        assert by_name["tiny"]["refinements"] == ["tiny--refined"] and by_name["plain"]["refinements"] == []

        data = client.get(f"/api/studies/{by_name['tiny']['study_id']}").json()
        refined = data["refinement"]
        assert refined["name"] == "tiny--refined" and refined["source"] == "tiny"
        assert refined["metric"] == "dev_accuracy" and refined["split"] == "dev"
        assert (refined["complete"], refined["failed"]) == (sum(map(len, values.values())), 1)
        assert [p["trial"] for p in refined["points"]] == [p["number"] for p in data["pareto_front"]["front"]]
        for p in refined["points"]:
            assert p["refined_mean"] == pytest.approx(statistics.fmean(values[p["trial"]]))
            assert p["refined_sd"] == pytest.approx(statistics.stdev(values[p["trial"]]))
            assert p["refined_n"] == len(values[p["trial"]])
        expected = compare([(t.number, t.values[0], t.values[1]) for t in front],
                           read_refinement(storage, "tiny--refined").values)
        assert refined["swaps"] == [list(s) for s in expected.swaps] and refined["dropped"] == expected.dropped
        assert refined["reorders"] and refined["dropped"] == [t.number for t in front[1:]]
        assert refined["note"].startswith("the refined front reorders the search front")
        assert client.get(f"/api/studies/{by_name['plain']['study_id']}").json()["refinement"] is None


def test_figure_draws_refined_points_with_error_bars(db):
    path, _, front, values = db
    with TestClient(create_app(f"sqlite:///{path}")) as client:
        figs = client.get(f"/api/studies/{ids(client)['tiny']}/figures").json()
        go.Figure(figs["pareto"])  # valid plotly
        traces = {t["name"]: t for t in figs["pareto"]["data"]}
        points = traces[f"refined mean ± sd ({len(front)})"]
        assert points["customdata"] == [t.number for t in front]
        assert points["error_y"]["array"] == pytest.approx([statistics.stdev(values[t.number]) for t in front])
        assert points["marker"]["symbol"] == ["diamond"] + ["diamond-open"] * (len(front) - 1)
        assert traces["refined front"]["x"] == [front[0].values[1]]
        assert figs["refinement"]["reorders"] is True
        plain = client.get(f"/api/studies/{ids(client)['plain']}/figures").json()
        assert not any(t["name"].startswith("refined") for t in plain["pareto"]["data"]) and plain["refinement"] is None


def test_new_refined_runs_show_up_and_browsing_writes_nothing(db):
    path, storage, front, values = db
    with TestClient(create_app(f"sqlite:///{path}")) as client:
        study_id = ids(client)["tiny"]
        first = client.get(f"/api/studies/{study_id}").json()
        etag = client.get(f"/api/studies/{study_id}").headers["etag"]
        assert client.get(f"/api/studies/{study_id}", headers={"If-None-Match": etag}).status_code == 304
        linked = load_study(storage, "tiny--refined")
        cheapest = front[0]
        linked.add_trial(optuna.trial.create_trial(values=[0.5, cheapest.values[1]],
                                                   user_attrs={"source_trial": cheapest.number, "seed": 7}))
        second = client.get(f"/api/studies/{study_id}").json()
        assert second["version"] > first["version"]
        point = next(p for p in second["refinement"]["points"] if p["trial"] == cheapest.number)
        assert point["refined_n"] == 4 and point["refined_mean"] == pytest.approx(statistics.fmean([*values[cheapest.number], 0.5]))

        storage.engine.dispose()
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        for url in ("/", f"/studies/{study_id}", f"/api/studies/{study_id}", f"/api/studies/{study_id}/figures",
                    "/api/studies"):
            assert client.get(url).status_code == 200
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
        linked_id = linked._study_id
        assert client.get(f"/api/studies/{linked_id}").status_code == 404


def test_study_page_in_a_browser_shows_the_refined_table_and_note(db):
    import shutil

    sync_api = pytest.importorskip("playwright.sync_api")
    from benchmarks.dashboard_screenshots import CHROMIUM, CHROMIUM_ARGS, serve

    if shutil.which(CHROMIUM) is None:
        pytest.skip("Chromium is not installed (make system-deps installs it)")
    path, storage, front, _ = db
    storage.engine.dispose()
    errors: list[str] = []
    with serve(f"sqlite:///{path}") as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(f"{base}/")
            page.wait_for_selector(".badge.refined")
            page.goto(f"{base}/studies/1")
            page.wait_for_selector("body[data-ready='1']")
            note = page.locator("#refinement-note")
            assert "reorders the search front" in note.inner_text() and "reorder" in note.get_attribute("class")
            rows = page.locator("#refined-table tbody tr")
            assert rows.count() == len(front) and page.locator("#refined-table tr.dropped").count() == len(front) - 1
            assert rows.first.locator("td").first.inner_text() == str(front[0].number)
        finally:
            browser.close()
    assert errors == []
