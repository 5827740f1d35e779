"""The dashboard's JSON API and pages through FastAPI's TestClient: counts, exports, escaping,
read-only access, tokens; and the `autopeft dashboard` command's refusals."""

from __future__ import annotations

import hashlib
import json

import optuna
import pytest
from fastapi.testclient import TestClient
from optuna.trial import TrialState
from typer.testing import CliRunner

from autopeft.cli import app as cli_app
from autopeft.cli.dashboard import is_loopback
from autopeft.dashboard import create_app
from autopeft.export import export_trial
from autopeft.objective import ACCURACY
from autopeft.optional import ADAPTERS_EXTRA, adapters_available
from autopeft.spec import build_spec
from autopeft.store import StudyError, create_study, load_study, pareto_trials
from benchmarks.dashboard_synthetic import build_study
from tests.extras import ADAPTERS
from tests.models import TINY_CONFIGS

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """A study DB with a normal study and one whose name, plan summary and error text are HTML."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tmp = tmp_path_factory.mktemp("dash-api")
    model = tmp / "tiny-bert"
    TINY_CONFIGS["bert"]().save_pretrained(model)
    path = tmp / "studies.db"
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    build_study(storage, "tiny-lora", str(model), n_trials=24, running=1, failed_fraction=0.2, seed=5, bulk=True)
    evil = create_study(storage, EVIL, build_spec({}, {"model": str(model)}), ACCURACY)
    done = load_study(storage, "tiny-lora").get_trials(states=(TrialState.COMPLETE,))[0]
    evil.add_trial(optuna.trial.create_trial(
        values=done.values, params=done.params, distributions=done.distributions,
        user_attrs={**done.user_attrs, "plan_summary": f"lora {EVIL}"}))
    evil.add_trial(optuna.trial.create_trial(
        state=TrialState.FAIL, params=done.params, distributions=done.distributions,
        user_attrs={**done.user_attrs, "failure": {"kind": "crash", "message": f"<img src=x onerror=alert(2)> {EVIL}"}}))
    storage.engine.dispose()
    return path, storage


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def client(db):
    path, _ = db
    with TestClient(create_app(f"sqlite:///{path}")) as c:
        yield c


def study_id(client, name):
    return next(s["study_id"] for s in client.get("/api/studies").json() if s["name"] == name)


def test_studies_lists_counts(client, db):
    _, storage = db
    study = load_study(storage, "tiny-lora")
    trials = study.get_trials()
    rows = {s["name"]: s for s in client.get("/api/studies").json()}
    assert set(rows) == {"tiny-lora", EVIL}
    s = rows["tiny-lora"]
    assert s["trials"] == len(trials) == 24
    assert s["states"] == {state: sum(t.state.name.lower() == state for t in trials)
                           for state in {t.state.name.lower() for t in trials}}
    assert s["states"]["running"] == 1 and s["states"]["fail"] >= 1
    assert s["pareto_size"] == len(pareto_trials(study))
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.values[0])
    assert (s["best_trial"], s["best_metric"]) == (best.number, best.values[0])


def test_study_data_front_matches_autopeft_pareto(client, db):
    _, storage = db
    study = load_study(storage, "tiny-lora")
    data = client.get(f"/api/studies/{study_id(client, 'tiny-lora')}").json()
    front = data["pareto_front"]
    assert [p["number"] for p in front["front"]] == [t.number for t in pareto_trials(study)]
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(front["front"]) + len(front["dominated"]) == len(complete)
    assert len(front["failed"]) == data["summary"]["states"]["fail"]
    assert front["budget_pct"] == 1.0
    assert data["hypervolume"]["numbers"] == [t.number for t in complete]
    assert data["layer_map"]["numbers"] == [p["number"] for p in front["front"]]
    assert data["spec"]["model"].endswith("tiny-bert")


def test_figures_endpoint_and_etag(client):
    sid = study_id(client, "tiny-lora")
    response = client.get(f"/api/studies/{sid}/figures")
    figs = response.json()
    assert {"pareto", "hypervolume", "layer_map", "version", "summary"} <= set(figs)
    states = figs["summary"]["states"]
    assert sum(len(t["x"]) for t in figs["pareto"]["data"]) == states["complete"] + states["fail"]
    again = client.get(f"/api/studies/{sid}/figures", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


def test_trials_table_filters(client):
    sid = study_id(client, "tiny-lora")
    page = client.get(f"/api/studies/{sid}/trials", params={"state": "complete", "sort": "metric", "order": "desc",
                                                            "limit": 5}).json()
    metrics = [r["metric"] for r in page["rows"]]
    assert len(metrics) == 5 and metrics == sorted(metrics, reverse=True)
    assert page["total"] == 24 and page["matched"] < 24
    pareto = client.get(f"/api/studies/{sid}/trials", params={"pareto": "true"}).json()
    assert all(r["pareto"] for r in pareto["rows"]) and pareto["matched"] >= 1
    assert client.get(f"/api/studies/{sid}/trials", params={"family": "ia3"}).json()["matched"] == 0
    assert client.get(f"/api/studies/{sid}/trials", params={"family": "lokr"}).json()["matched"] == 0
    assert client.get(f"/api/studies/{sid}/trials", params={"family": "dora"}).status_code == 422
    # the family filter's choices come from the registry, through the page shell
    assert 'data-families="lora,ia3,serial,parallel,prefix,loha,lokr"' in client.get(f"/studies/{sid}").text
    assert client.get(f"/api/studies/{sid}/trials", params={"state": "bogus"}).status_code == 422
    assert client.get(f"/api/studies/{sid}/trials", params={"sort": "__class__"}).status_code == 422


def test_trial_detail(client, db):
    _, storage = db
    sid = study_id(client, "tiny-lora")
    trials = load_study(storage, "tiny-lora").get_trials()
    done = next(t for t in trials if t.state == TrialState.COMPLETE)
    detail = client.get(f"/api/studies/{sid}/trials/{done.number}").json()
    assert detail["metric"] == done.values[0] and detail["params"] == done.user_attrs["params"]
    assert detail["metrics"] == done.user_attrs["metrics"] and detail["fidelity"] == done.user_attrs["fidelity"]
    assert detail["resources"]["host"] == done.user_attrs["host"]
    assert detail["plan_layers"]["sizes"]["lora"] == done.user_attrs["plan"]["modules"][0]["sizes"]
    assert set(detail["exports"]) == {"peft", "yaml"}  # a LoRA plan: peft built it (no AdapterHub button)
    failed = next(t for t in trials if t.state == TrialState.FAIL)
    detail = client.get(f"/api/studies/{sid}/trials/{failed.number}").json()
    assert detail["failure"] == failed.user_attrs["failure"] and detail["exports"] == {}
    assert client.get(f"/api/studies/{sid}/trials/{done.number}/figure").json()["data"][0]["type"] == "heatmap"
    assert client.get(f"/api/studies/{sid}/trials/999").status_code == 404
    assert client.get("/api/studies/999").status_code == 404
    assert client.get("/studies/999").status_code == 404


@pytest.mark.parametrize("fmt", ["peft", pytest.param("adapters", marks=ADAPTERS), "yaml"])
def test_export_downloads_exactly_what_autopeft_export_writes(client, db, tmp_path, fmt):
    _, storage = db
    study = load_study(storage, "tiny-lora")
    number = pareto_trials(study)[0].number
    expected = export_trial(study, number, fmt, tmp_path).path
    response = client.get(f"/api/studies/{study_id(client, 'tiny-lora')}/trials/{number}/export/{fmt}")
    assert response.status_code == 200
    assert response.content == expected.read_bytes()
    assert response.headers["content-disposition"] == f'attachment; filename="{expected.name}"'


@pytest.mark.skipif(adapters_available(), reason="the answer where the adapters extra is not installed")
def test_adapters_export_without_the_extra_is_refused_with_the_line_that_names_it(client, db):
    number = pareto_trials(load_study(db[1], "tiny-lora"))[0].number
    response = client.get(f"/api/studies/{study_id(client, 'tiny-lora')}/trials/{number}/export/adapters")
    assert response.status_code == 409
    assert response.json()["detail"] == (f"cannot export trial {number} as adapters: the AdapterHub export format "
                                          f"(--format adapters) needs AdapterHub `adapters`, which is not installed; "
                                          f"{ADAPTERS_EXTRA} (it brings the transformers 4.57 line that adapters requires)")


def test_export_refuses_other_formats_paths_and_unfinished_trials(client, db):
    _, storage = db
    sid = study_id(client, "tiny-lora")
    trials = load_study(storage, "tiny-lora").get_trials()
    done = next(t for t in trials if t.state == TrialState.COMPLETE).number
    for bad in ("json", "%2e%2e", "%2e%2e%2fstudies.db", "..%2F..%2Fetc%2Fpasswd", "peft%2F..%2F..%2Fstudies.db"):
        assert client.get(f"/api/studies/{sid}/trials/{done}/export/{bad}").status_code in (404, 422), bad
    assert client.get(f"/api/studies/{sid}/trials/{done}/export/peft/../../../studies.db").status_code in (404, 422)
    failed = next(t for t in trials if t.state == TrialState.FAIL).number
    response = client.get(f"/api/studies/{sid}/trials/{failed}/export/peft")
    assert response.status_code == 409 and "not complete" in response.json()["detail"]


def test_html_is_escaped(client):
    sid = study_id(client, EVIL)
    page = client.get(f"/studies/{sid}")
    assert page.status_code == 200
    assert EVIL not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    trial = client.get(f"/studies/{sid}/trials/1").text
    assert EVIL not in trial
    assert "script-src 'self'" in page.headers["content-security-policy"]  # no inline script can run
    # the JSON keeps the raw text; the page script puts it into textContent only
    assert client.get(f"/api/studies/{sid}/trials/1").json()["failure"]["message"].endswith(EVIL)
    js = client.get("/static/dashboard.js").text
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js


def test_assets_docs_and_openapi(client):
    js = client.get("/static-vendor/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000 and "text/javascript" in js.headers["content-type"]
    assert client.get("/static/dashboard.css").status_code == 200
    docs = client.get("/docs").text
    assert "/api/studies/{study_id}/trials/{number}/export/{fmt}" in docs and "cdn" not in docs.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/studies", "/api/studies/{study_id}", "/api/studies/{study_id}/figures",
            "/api/studies/{study_id}/trials", "/api/studies/{study_id}/trials/{number}"} <= set(paths)
    for page in ("/", f"/studies/{study_id(client, 'tiny-lora')}"):
        assert "http" not in client.get(page).text  # every asset from this server


def test_browsing_leaves_the_db_unchanged(db, tmp_path):
    path, _ = db
    before = digest(path)
    with TestClient(create_app(f"sqlite:///{path}")) as c:
        for s in c.get("/api/studies").json():
            sid = s["study_id"]
            for url in (f"/studies/{sid}", f"/api/studies/{sid}", f"/api/studies/{sid}/figures",
                        f"/api/studies/{sid}/trials?sort=metric"):
                assert c.get(url).status_code == 200
            for n in range(s["trials"]):
                c.get(f"/api/studies/{sid}/trials/{n}")
                c.get(f"/api/studies/{sid}/trials/{n}/export/yaml")
        assert c.post("/api/studies").status_code == 405
    assert digest(path) == before
    missing = tmp_path / "missing.db"
    with pytest.raises(StudyError, match="no such file"):
        create_app(f"sqlite:///{missing}")
    assert not missing.exists()


def test_the_storage_connection_cannot_write(client):
    import sqlalchemy

    engine = client.app.state.reader.engine
    with pytest.raises(sqlalchemy.exc.OperationalError, match="readonly"), engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE studies SET study_name = 'x'"))


def test_token_is_required_when_set(db):
    path, _ = db
    with TestClient(create_app(f"sqlite:///{path}", token="s3cret")) as c:
        assert c.get("/api/studies").status_code == 401
        assert c.get("/").status_code == 401
        assert c.get("/api/studies", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/studies", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        first = c.get("/?token=s3cret", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/"
        assert "httponly" in first.headers["set-cookie"].lower()
        assert c.get("/api/studies").status_code == 200  # the cookie now carries it


def test_allowed_hosts_reject_other_host_headers(db):
    path, _ = db
    with TestClient(create_app(f"sqlite:///{path}", allowed_hosts=["127.0.0.1", "localhost"]),
                    base_url="http://127.0.0.1:8765") as c:
        assert c.get("/api/studies").status_code == 200
        assert c.get("/api/studies", headers={"Host": "evil.example:8765"}).status_code == 400


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                ("127.0.0.2", True), ("0.0.0.0", False), ("::", False),
                                                ("192.168.1.5", False), ("myhost", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::"])
def test_cli_refuses_a_non_loopback_host_without_token(db, host, monkeypatch):
    path, _ = db
    monkeypatch.delenv("AUTOPEFT_DASHBOARD_TOKEN", raising=False)
    result = CliRunner().invoke(cli_app, ["dashboard", "--storage", f"sqlite:///{path}", "--host", host])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--token" in lines[0]
    assert "AUTOPEFT_DASHBOARD_TOKEN" in lines[0]


def test_cli_reports_a_missing_db_in_one_line(tmp_path):
    result = CliRunner().invoke(cli_app, ["dashboard", "--storage", f"sqlite:///{tmp_path / 'none.db'}"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "no such file" in result.output


def test_cli_serves_with_a_token_from_the_environment(db, monkeypatch):
    """A non-loopback host is accepted with the token in the environment (uvicorn.run is stubbed)."""
    path, _ = db
    seen = {}
    monkeypatch.setenv("AUTOPEFT_DASHBOARD_TOKEN", "tok")
    monkeypatch.setattr("uvicorn.run", lambda app, host, port, **kw: seen.update(app=app, host=host, port=port))
    monkeypatch.setattr("autopeft.cli.dashboard._check_port", lambda host, port: None)
    result = CliRunner().invoke(cli_app, ["dashboard", "--storage", f"sqlite:///{path}", "--host", "0.0.0.0",
                                          "--port", "9999"])
    assert result.exit_code == 0, result.output
    assert seen["host"] == "0.0.0.0" and seen["port"] == 9999
    assert TestClient(seen["app"]).get("/api/studies").status_code == 401


def test_json_api_round_trips(client):
    """Every API answer is plain JSON (scriptable)."""
    sid = study_id(client, "tiny-lora")
    for url in ("/api/studies", f"/api/studies/{sid}", f"/api/studies/{sid}/trials"):
        assert json.loads(client.get(url).content) is not None


LINK = '<a href="https://evil.example/x">click</a>'


@pytest.fixture(scope="module")
def linky(db, tmp_path_factory):
    """A copy of the DB with a study whose plan family, plan summary and failure text are plotly links."""
    path, storage = db
    copy = tmp_path_factory.mktemp("dash-links") / "links.db"
    copy.write_bytes(path.read_bytes())
    target = optuna.storages.RDBStorage(f"sqlite:///{copy}")
    done = load_study(storage, "tiny-lora").get_trials(states=(TrialState.COMPLETE,))[0]
    plan = json.loads(json.dumps(done.user_attrs["plan"]))
    plan["modules"][0]["family"] = LINK
    spec = load_study(storage, "tiny-lora").user_attrs
    study = optuna.create_study(storage=target, study_name="links", directions=["maximize", "minimize"])
    for key, value in spec.items():
        study.set_user_attr(key, value)
    study.add_trial(optuna.trial.create_trial(values=done.values, params=done.params, distributions=done.distributions,
                                              user_attrs={**done.user_attrs, "plan": plan, "plan_summary": f"lora {LINK}"}))
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.FAIL, params=done.params, distributions=done.distributions,
        user_attrs={**done.user_attrs, "failure": {"kind": "crash", "message": LINK}}))
    target.engine.dispose()
    with TestClient(create_app(f"sqlite:///{copy}")) as c:
        yield c, study_id(c, "links")


def _texts(figure) -> str:
    return json.dumps(figure)


def test_figure_text_from_the_db_is_plain_text(linky):
    """Plotly reads `<a href>` in hover text, labels and titles as a link: DB text reaches it as entities."""
    c, sid = linky
    escaped = "&lt;a href=\"https://evil.example/x\"&gt;click&lt;/a&gt;"
    figs = c.get(f"/api/studies/{sid}/figures").json()
    for name in ("pareto", "layer_map"):
        text = json.dumps(figs[name], ensure_ascii=False)
        assert "<a " not in text and "evil.example" in text, name
    pareto = {t["name"].split(" (")[0]: t for t in figs["pareto"]["data"]}
    front_text = pareto["Pareto front"]["text"] + pareto["dominated"]["text"]
    assert f"lora {escaped}" in front_text
    assert pareto["failed"]["text"][0].endswith(f"<br>crash: {escaped}")  # our own <br> stays markup
    layer_map = figs["layer_map"]
    assert escaped in {t["name"] for t in layer_map["data"]}
    assert any(a["text"].startswith(f"<b>{escaped}</b>") for a in layer_map["layout"]["annotations"])
    plan = c.get(f"/api/studies/{sid}/trials/0/figure").json()
    assert "<a " not in json.dumps(plan) and any(label.startswith(escaped) for label in plan["data"][0]["y"])
    # the JSON API keeps the raw text (the page puts it into textContent)
    detail = c.get(f"/api/studies/{sid}/trials/0").json()
    assert detail["summary"] == f"lora {LINK}" and detail["exports"] == {}  # an unknown family: not exportable


def test_plain_escapes_markup_and_template_fields():
    from autopeft.dashboard.figures import plain

    assert plain("a & <b>%{x}</b>") == "a &amp; &lt;b&gt;%&#123;x}&lt;/b&gt;"
    assert plain("lora r=8") == "lora r=8"


@pytest.mark.parametrize(("url", "location"), [
    ("//evil.example/x?token=s3cret", "/evil.example/x"),
    ("/%2F%2Fevil.example/x?token=s3cret", "/evil.example/x"),
    ("/%5C%5Cevil.example?token=s3cret&a=1", "/evil.example?a=1"),
    ("/\\\\evil.example?token=s3cret", "/evil.example"),
    ("/studies/1?token=s3cret&x=2", "/studies/1?x=2"),
])
def test_token_redirect_stays_on_this_server(db, url, location):
    path, _ = db
    with TestClient(create_app(f"sqlite:///{path}", token="s3cret")) as c:
        response = c.get(f"http://testserver{url}", follow_redirects=False)  # the path as sent: //evil.example/x
        assert response.status_code == 303 and response.headers["location"] == location
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'self'" in response.headers["content-security-policy"]


def test_refusals_carry_the_security_headers(db):
    path, _ = db
    with TestClient(create_app(f"sqlite:///{path}", token="s3cret", allowed_hosts=["127.0.0.1"]),
                    base_url="http://127.0.0.1:8765") as c:
        answers = [c.get("/api/studies", follow_redirects=False),
                   c.get("/api/studies", headers={"Host": "evil.example"}, follow_redirects=False),
                   c.get("/api/studies", headers={"Authorization": "Bearer s3cret"})]
        assert [r.status_code for r in answers] == [401, 400, 200]
        for response in answers:
            assert response.headers["content-security-policy"] == answers[2].headers["content-security-policy"]
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
