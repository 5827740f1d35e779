"""Every attribute autopeft writes reads whole in optuna-dashboard (it cuts non-string JSON at 1,024
characters), and autopeft's own readers read studies written that way and the old way (one `result`)."""

from __future__ import annotations

import json
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
from fastapi.testclient import TestClient
from optuna.trial import TrialState
from typer.testing import CliRunner

from autopeft.cli import app
from autopeft.dashboard.app import create_app
from autopeft.export import trial_format
from autopeft.objective import ACCURACY
from autopeft.search_spaces import ModulePlan, Plan
from autopeft.spec import build_spec
from autopeft.store import create_study, load_study, open_db, stored_spec, summarize
from autopeft.store.attrs import LIMIT, RESULT_PARTS, readable, result_attrs, storable, trial_attr, trial_result
from autopeft.store.reader import StudyReader
from tests.extras import ADAPTERS
from tests.models import TINY_CONFIGS

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def search_flags(model: str, data_dir: str, url: str, space: str = "lora", budget: str = "5") -> list[str]:
    return ["search", "--model", model, "--task", "glue:sst2", "--data-dir", data_dir, "--space", space,
            "--trials", "2", "--train-size", "64", "--max-steps", "2", "--budget-pct", budget, "--storage", url,
            "--study", "s", "--executor", "inline", "--sampler", "random", "--seed", "1"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_bert_dir, glue_dir):
    """A real 2-trial search whose data folder has a long path (so its spec is over 1,024 characters)."""
    tmp = tmp_path_factory.mktemp("attrs")
    data = tmp / ("glue-" + "x" * 200)
    data.symlink_to(glue_dir)
    url = f"sqlite:///{tmp / 'study.db'}"
    result = runner.invoke(app, search_flags(tiny_bert_dir, str(data), url))
    assert result.exit_code == 0, result.output
    return url, result.output


def wsgi_get(wsgi_app, path: str):
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(PATH_INFO=path, REQUEST_METHOD="GET", QUERY_STRING="")
    status: list[str] = []
    body = b"".join(wsgi_app(environ, lambda s, headers, exc_info=None: status.append(s)))
    assert status[0].startswith("200"), (status, body[:300])
    return json.loads(body)


def check_shown_whole(shown: list[dict], attrs: dict) -> None:
    """optuna-dashboard's `[{key, value}]` of `attrs`: every value parses back to what was stored."""
    assert {a["key"] for a in shown} == set(attrs)
    for a in shown:
        stored = attrs[a["key"]]
        if isinstance(stored, str):
            assert a["value"] == stored
            if readable(stored) is not stored:  # a long value kept as JSON text: it parses whole
                assert json.loads(a["value"]) == readable(stored)
        else:
            assert len(json.dumps(stored)) <= LIMIT, a["key"]
            assert json.loads(a["value"]) == stored, a["key"]


def optuna_dashboard_shows_whole(url: str, skip: tuple[str, ...] = ()) -> dict:
    """Open the studies of `url` (but `skip`) with optuna-dashboard's own WSGI app in-process, check every
    attribute reads whole; returns {name: optuna-dashboard's study detail}."""
    import optuna_dashboard

    wsgi_app = optuna_dashboard.wsgi(url)
    details = {}
    for listed in wsgi_get(wsgi_app, "/api/studies")["study_summaries"]:
        if listed["study_name"] in skip:
            continue
        study = optuna.load_study(study_name=listed["study_name"], storage=url)
        check_shown_whole(listed["user_attrs"], study.user_attrs)
        detail = wsgi_get(wsgi_app, f"/api/studies/{listed['study_id']}")
        check_shown_whole(detail["user_attrs"], study.user_attrs)
        trials = {t.number: t for t in study.get_trials()}
        assert {t["number"] for t in detail["trials"]} == set(trials)
        for shown in detail["trials"]:
            check_shown_whole(shown["user_attrs"], trials[shown["number"]].user_attrs)
        details[listed["study_name"]] = detail
    return details


def test_optuna_dashboard_shows_every_attribute_of_a_real_search_whole(searched):
    url, output = searched
    detail = optuna_dashboard_shows_whole(url)["s"]
    assert [d for d in detail["directions"]] == ["maximize", "minimize"] and len(detail["best_trials"]) >= 1
    study = load_study(open_db(url), "s")
    assert isinstance(study.user_attrs["spec"], str)  # over the limit: kept as JSON text, shown whole
    for t in study.get_trials():
        assert {"result", "fidelity", "data_split", "curve"} <= set(t.user_attrs)
        assert "fidelity" not in t.user_attrs["result"] and "split" not in t.user_attrs["result"]
    assert "--format peft" in output  # the closing hint names the format of the LoRA trial


def test_our_readers_read_the_split_result_and_the_long_spec(searched, tmp_path):
    url, _ = searched
    storage = open_db(url)
    study = load_study(storage, "s")
    reader = StudyReader(storage)
    info = reader.search("s")
    assert stored_spec(study).data_dir.endswith("x" * 200) and info.spec.data_dir.endswith("x" * 200)
    assert summarize(info, reader.rows(info.study_id)).states == {"complete": 2}
    trial = study.get_trials()[0]
    result = trial_result(trial.user_attrs)
    assert result["fidelity"]["max_steps"] == 2 and result["split"]["train"] == 64 and len(result["curve"]) >= 1
    assert result["head_modules"] == ["classifier"] and result["metric"] == trial.values[0]

    with TestClient(create_app(url)) as client:
        (listed,) = client.get("/api/studies").json()
        assert listed["name"] == "s"
        detail = client.get(f"/api/studies/{listed['study_id']}/trials/{trial.number}").json()
    assert detail["fidelity"]["max_steps"] == 2 and detail["metrics"] == result["metrics"]
    assert detail["other"]["split"]["train"] == 64 and detail["other"]["curve"] == result["curve"]
    assert "result" not in detail["other"] and "data_split" not in detail["other"]


def as_old_study(url: str, source: str, name: str) -> optuna.Study:
    """A copy of study `source` with its attributes written the way autopeft did before: the spec and the
    plan as JSON objects whatever their length, one `result` holding the whole worker result (no head_modules)."""
    storage = open_db(url)
    src = load_study(storage, source)
    old = create_study(storage, name, None, ACCURACY)
    old.set_user_attr("spec", {**stored_spec(src).model_dump(mode="json"), "storage": {"url": url, "study": name}})
    for t in src.get_trials():
        result = {k: v for k, v in trial_result(t.user_attrs).items() if k != "head_modules"}
        attrs = {k: readable(v) for k, v in t.user_attrs.items() if k not in ("result", *RESULT_PARTS.values())}
        old.add_trial(optuna.trial.create_trial(values=t.values, params=t.params, distributions=t.distributions,
                                                user_attrs={**attrs, "result": result}))
    return old


def test_old_studies_still_read_export_and_refine(searched, tmp_path, tiny_bert_dir):
    from peft import PeftConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    url, _ = searched
    old = as_old_study(url, "s", "old")
    assert isinstance(old.user_attrs["spec"], dict) and len(json.dumps(old.user_attrs["spec"])) > LIMIT
    trial = old.get_trials()[0]
    assert "fidelity" in trial.user_attrs["result"] and "data_split" not in trial.user_attrs
    assert trial_result(trial.user_attrs) == trial.user_attrs["result"]
    assert stored_spec(old).data_dir.endswith("x" * 200)

    with TestClient(create_app(url)) as client:
        sid = next(s["study_id"] for s in client.get("/api/studies").json() if s["name"] == "old")
        detail = client.get(f"/api/studies/{sid}/trials/{trial.number}").json()
        assert detail["fidelity"]["max_steps"] == 2 and detail["other"]["split"]["train"] == 64
        assert set(detail["exports"]) == {"peft", "yaml"}
        exported = json.loads(client.get(detail["exports"]["peft"]).content)
    assert (exported["task_type"], exported["modules_to_save"]) == ("SEQ_CLS", ["classifier"])

    out = tmp_path / "adapter"
    done = runner.invoke(app, ["export", "old", "--trial", str(trial.number), "--out", str(out), "--storage", url])
    assert done.exit_code == 0, done.output
    model = get_peft_model(AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2),
                           PeftConfig.from_pretrained(str(out)))
    head_params = trial.user_attrs["result"]["head_params"]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trial.user_attrs["params"] + head_params

    refined = runner.invoke(app, ["refine", "old", "--seeds", "1", "--fidelity", "train_size=64,max_steps=2",
                                  "--storage", url, "--executor", "inline"])
    assert refined.exit_code == 0, refined.output
    runs = load_study(open_db(url), "old--refined").get_trials()
    assert runs and all(t.state == TrialState.COMPLETE for t in runs)
    assert all(trial_attr(t.user_attrs, "plan") == trial_attr(old.get_trials()[t.user_attrs["source_trial"]].user_attrs,
                                                                "plan") for t in runs)
    assert all(trial_result(t.user_attrs)["fidelity"]["max_steps"] == 2 for t in runs)
    optuna_dashboard_shows_whole(url, skip=("old",))  # the refinement of the old study writes the new way
    import optuna_dashboard

    shown = wsgi_get(optuna_dashboard.wsgi(url), "/api/studies")["study_summaries"]
    spec = next(a["value"] for s in shown if s["study_name"] == "old" for a in s["user_attrs"] if a["key"] == "spec")
    with pytest.raises(json.JSONDecodeError):  # what issue 16 saw: an old long attribute is cut
        json.loads(spec)


def test_a_long_plan_is_kept_as_text_and_every_reader_gets_the_plan(tmp_path):
    """An 80-layer model: a mixed plan's JSON is over the limit; the dashboard's rows, trial page, buttons
    and exports, and the search's hint read it."""
    model = tmp_path / "deep"
    config = TINY_CONFIGS["bert"]()
    config.num_hidden_layers = 80
    config.save_pretrained(model)  # a config alone serves parameter counts and exports
    url = f"sqlite:///{tmp_path / 'deep.db'}"
    study = create_study(open_db(url), "deep", build_spec({}, {"model": str(model)}), ACCURACY)
    plans = {"lora": Plan(80, (ModulePlan("lora", tuple(8 * (i % 3) for i in range(80)), alpha=16),)),
             "mixed": Plan(80, (ModulePlan("serial", (12,) * 80), ModulePlan("parallel", (24,) * 80),
                                ModulePlan("prefix", (16,) * 80)))}
    for plan in plans.values():
        attrs = {"plan": storable(plan.to_dict()), "plan_summary": plan.summary(), "params": 1, "params_pct": 0.1,
                 **result_attrs({"status": "ok", "metric": 0.8, "curve": [0.7, 0.8], "fidelity": {"max_steps": 2}})}
        study.add_trial(optuna.trial.create_trial(values=[0.8, 0.1], user_attrs=attrs))
    trials = study.get_trials()
    assert [isinstance(t.user_attrs["plan"], str) for t in trials] == [False, True]
    assert [trial_format(t.user_attrs) for t in trials] == ["peft", "adapters"]

    rows = StudyReader(open_db(url)).rows(study._study_id)
    assert [Plan.from_dict(r.plan) for r in rows] == list(plans.values())
    with TestClient(create_app(url)) as client:
        sid = client.get("/api/studies").json()[0]["study_id"]
        lora, mixed = (client.get(f"/api/studies/{sid}/trials/{n}").json() for n in (0, 1))
        assert Plan.from_dict(mixed["plan"]) == plans["mixed"] and len(mixed["plan_layers"]["sizes"]["serial"]) == 80
        assert (set(lora["exports"]), set(mixed["exports"])) == ({"peft", "yaml"}, {"adapters", "yaml"})
        assert Plan.from_text(client.get(mixed["exports"]["yaml"]).text) == plans["mixed"]
        assert json.loads(client.get(lora["exports"]["peft"]).content)["task_type"] == "SEQ_CLS"
        assert client.get(f"/api/studies/{sid}/trials/1/figure").status_code == 200
    optuna_dashboard_shows_whole(url)


def test_storable_keeps_short_values_and_round_trips_long_ones():
    short, long = {"a": [1, 2]}, {"curve": [0.123456789] * 200}
    assert storable(short) is short and storable("text") == "text" and storable(3) == 3
    assert isinstance(storable(long), str) and readable(storable(long)) == long
    assert readable("lora r8@L0-3") == "lora r8@L0-3" and readable("{not json") == "{not json"
    parts = result_attrs({"status": "ok", "metric": 0.5, "curve": [0.1] * 300, "split": {"train": 5}})
    assert set(parts) == {"result", "curve", "data_split"} and isinstance(parts["curve"], str)
    assert trial_result(parts) == {"status": "ok", "metric": 0.5, "curve": [0.1] * 300, "split": {"train": 5}}


@ADAPTERS
def test_the_closing_hint_of_a_mixed_search_names_a_format_that_exports_it(tmp_path, tiny_bert_dir, glue_dir):
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    result = runner.invoke(app, search_flags(tiny_bert_dir, glue_dir, url, space="mixed", budget="100"))
    assert result.exit_code == 0, result.output
    hint = next(line for line in result.output.splitlines() if line.startswith("export the best configuration"))
    command = hint.split(": ", 1)[1].split()
    number, fmt = int(command[command.index("--trial") + 1]), command[command.index("--format") + 1]
    trial = load_study(open_db(url), "s").get_trials()[number]
    assert fmt == trial_format(trial.user_attrs) and fmt in ("peft", "adapters")
    exported = runner.invoke(app, [*command[1:command.index("--out")], "--out", str(tmp_path / "out"), "--storage", url])
    assert exported.exit_code == 0, exported.output  # the hinted command works as printed
    if len(set(Plan.from_dict(trial_attr(trial.user_attrs, "plan")).families)) > 1:  # seed 1: LoRA + parallel + prefix
        assert fmt == "adapters"  # what issue 16 saw: the hint said peft, which cannot express such a plan
    if fmt == "adapters":
        assert json.loads((tmp_path / "out" / "adapter_config.json").read_text())["head"]["modules"] == ["classifier"]
