"""What a new user is likely to get wrong ends in one line saying what to do: exit code, one line, no traceback.

Every case runs the real `autopeft` command (in-process through Typer's runner, or as a process where the
environment or a signal matters) and checks that nothing in the study DB is lost or left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from autopeft.cli import app
from autopeft.store import load_study, open_db
from tests.models import TINY_CONFIGS

runner = CliRunner()


def one_line(result, code: int = 2) -> str:
    """The single output line of a failed command (asserting the exit code and that there is one line)."""
    text = result.output.strip()
    assert result.exit_code == code, result.output
    assert "\n" not in text and "Traceback" not in text, text
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return text


def search_flags(model: str, glue_dir: str, url: str, *extra: str) -> list[str]:
    return ["search", "--model", model, "--task", "glue:sst2", "--data-dir", glue_dir, "--space", "lora",
            "--trials", "1", "--train-size", "64", "--max-steps", "2", "--budget-pct", "5", "--storage", url,
            "--study", "s", "--executor", "inline", "--sampler", "random", *extra]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


# --- model -------------------------------------------------------------------------------------------


def test_hub_model_offline_says_to_pass_a_local_directory(tmp_path):
    for args in (["spaces", "show", "lora", "--model", "bert-base-uncased"],
                 ["search", "--model", "bert-base-uncased", "--storage", f"sqlite:///{tmp_path / 'a.db'}"]):
        line = one_line(runner.invoke(app, args))
        assert line.startswith("error: bert-base-uncased: not available offline (HF_HUB_OFFLINE=1")
        assert "pass a local model directory" in line and "--model " in line


def test_hub_unreachable_fails_fast_in_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
           "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    env.pop("HTTPS_PROXY", None), env.pop("https_proxy", None)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "autopeft.cli.main", "spaces", "show", "lora", "--model", "org/model"],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "org/model: the Hugging Face hub (127.0.0.1) is unreachable; pass a local model directory" in proc.stderr
    assert "HF_HUB_OFFLINE=1" in proc.stderr
    assert time.monotonic() - started < 60  # no minutes of retries


def test_missing_model_directory_and_config_only_directory(tmp_path, glue_dir):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    line = one_line(runner.invoke(app, ["spaces", "show", "lora", "--model", str(tmp_path / "nope")]))
    assert "nope: no such directory; pass a local model directory" in line
    TINY_CONFIGS["bert"]().save_pretrained(tmp_path / "cfg")  # enough for `spaces show`, not for a search
    line = one_line(runner.invoke(app, search_flags(str(tmp_path / "cfg"), glue_dir, url)))
    assert "cfg: no model weights" in line and "save_pretrained" in line
    assert load_study_names(url) == []  # nothing was created


def load_study_names(url: str) -> list[str]:
    return [s.study_name for s in open_db(url).get_all_studies()]


# --- spec, space, data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("budgett: {max_params_pct: 1}\n", "error: budgett: unknown field; expected one of: model, task"),
    ("budget: {max_param_pct: 1}\n", "did you mean max_params_pct?"),
    ("budget: {max_params_pct: ten}\n", 'budget.max_params_pct: expected a number in (0, 100], got "ten"'),
    ("budget: 5\n", "budget: expected a mapping of max_params_pct, max_params, got 5"),
    ("execution:\n  trials: 4\n workers: 2\n", "not valid YAML (line 3)"),
    ("- a\n", "expected a mapping of spec fields at the top level, got list"),
    ("task: glue:rte\n", "model: required field is missing; set it in the spec file or pass --model"),
])
def test_spec_file_mistakes(tmp_path, text, expected):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    line = one_line(runner.invoke(app, ["search", str(spec), "--storage", f"sqlite:///{tmp_path / 's.db'}"]))
    assert expected in line


def test_missing_spec_file(tmp_path):
    assert "spec file not found" in one_line(runner.invoke(app, ["search", str(tmp_path / "spec.yaml")]))


def test_unknown_space_and_missing_data(tmp_path, tiny_bert_dir, glue_dir):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    line = one_line(runner.invoke(app, search_flags(tiny_bert_dir, glue_dir, url, "--space", "lroa")))
    assert line == ("error: lroa: no such space; built-in spaces are autopeft, llm-lora, lora, lora-variants, mixed, or pass the path of a "
                    "space YAML file")
    line = one_line(runner.invoke(app, search_flags(tiny_bert_dir, str(tmp_path / "glue"), url)))
    assert "SST-2/train.tsv: data file not found; check --data-dir" in line
    line = one_line(runner.invoke(app, search_flags(tiny_bert_dir, glue_dir, url, "--task", "data/train.csv")))
    assert "data/train.csv: data file not found" in line
    assert load_study_names(url) == []


def test_a_data_file_in_another_encoding_stops_the_search_in_one_line(tmp_path, tiny_bert_dir, glue_dir):
    data = tmp_path / "reviews.csv"
    data.write_bytes(("sentence,label\n" + "un film très ennuyeux,0\nun café noir,1\n" * 20).encode("latin-1"))
    url = f"sqlite:///{tmp_path / 'e.db'}"
    line = one_line(runner.invoke(app, search_flags(tiny_bert_dir, glue_dir, url, "--task", str(data))))
    assert line == (f"error: {data}: not UTF-8 text (byte 0xe8 at line 2); it was saved in another encoding (Latin-1 or "
                    "Windows-1252?): export it from the spreadsheet as 'CSV UTF-8' (or save the text file as UTF-8), "
                    "e.g. iconv -f latin1 -t utf-8 reviews.csv > utf8-reviews.csv")
    assert load_study_names(url) == []


# --- storage -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, expected", [
    ("sqlite:/x.db", "not a database URL; for a SQLite file write sqlite:///x.db (three slashes)"),
    ("x.db", "for a SQLite file write sqlite:///x.db"),
    ("sqlit:///x.db", "unknown database kind 'sqlit'"),
    ("sqlite:///no/such/folder/x.db", "does not exist; create it or check --storage"),
])
def test_storage_url_typos(tmp_path, monkeypatch, url, expected):
    monkeypatch.chdir(tmp_path)
    for args in (["studies", "--storage", url], ["search", "--model", "m", "--storage", url],
                 ["dashboard", "--storage", url]):
        assert expected in one_line(runner.invoke(app, args))
    assert list(tmp_path.iterdir()) == []


def test_postgres_without_a_server(tmp_path):
    url = f"postgresql+psycopg://user:secret@127.0.0.1:{closed_port()}/autopeft"
    line = one_line(runner.invoke(app, ["studies", "--storage", url]))
    assert "Connection refused" in line and "is the database server running?" in line and "secret" not in line


def test_reading_commands_never_create_a_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    for args in (["studies"], ["pareto", "s"], ["export", "s", "--trial", "0", "--out", str(tmp_path / "o")]):
        line = one_line(runner.invoke(app, [*args, "--storage", url]))
        assert "typo.db: no such file" in line and "run `autopeft search` first" in line
    assert list(tmp_path.iterdir()) == []


# --- export ------------------------------------------------------------------------------------------


def test_export_refuses_a_non_empty_folder_unless_forced(tmp_path, tiny_bert_dir, glue_dir):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    assert runner.invoke(app, search_flags(tiny_bert_dir, glue_dir, url)).exit_code == 0
    out = tmp_path / "adapter"
    out.mkdir()
    (out / "adapter_model.safetensors").write_bytes(b"trained weights")
    export = ["export", "s", "--trial", "0", "--out", str(out), "--storage", url]
    line = one_line(runner.invoke(app, export))
    assert "folder is not empty (adapter_model.safetensors); choose another --out, or pass --force" in line
    assert sorted(p.name for p in out.iterdir()) == ["adapter_model.safetensors"]
    forced = runner.invoke(app, [*export, "--force"])
    assert forced.exit_code == 0 and (out / "adapter_config.json").is_file()
    assert (out / "adapter_model.safetensors").read_bytes() == b"trained weights"
    assert "is a file" in one_line(runner.invoke(app, [*export[:5], str(out / "adapter_config.json"), *export[6:]]))
    assert "trial 7: no such trial" in one_line(runner.invoke(app, [*export[:3], "7", *export[4:], "--force"]))


# --- Ray and the dashboard ---------------------------------------------------------------------------


def test_ray_address_with_no_cluster(tmp_path, tiny_bert_dir, glue_dir):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    flags = [f for f in search_flags(tiny_bert_dir, glue_dir, url) if f not in ("--executor", "inline")]
    address = f"127.0.0.1:{closed_port()}"
    line = one_line(runner.invoke(app, [*flags, "--ray-address", address]))
    assert line.startswith(f"error: no Ray cluster at {address} (Connection refused); start one with `ray start --head")
    assert "leave out --ray-address" in line
    assert load_study_names(url) == []


def test_more_workers_than_cpu_slots_on_local_ray(tmp_path, tiny_bert_dir, glue_dir, monkeypatch):
    """Without the check, the actors that do not fit never start and their trials wait forever."""
    cpus = os.cpu_count() or 1
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"execution: {{cpus_per_trial: {cpus}, workers: 2}}\n")
    url = f"sqlite:///{tmp_path / 'w.db'}"
    flags = [f for f in search_flags(tiny_bert_dir, glue_dir, url) if f not in ("--executor", "inline")]
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    line = one_line(runner.invoke(app, [flags[0], str(spec), *flags[1:]]))
    assert f"execution.workers: 2 workers x {cpus} CPU slots (execution.cpus_per_trial) need {2 * cpus} CPUs" in line
    assert "use --workers 1" in line
    assert not (tmp_path / "w.db").exists()  # the DB is opened only after the workers fit
    import ray

    assert not ray.is_initialized()


def test_dashboard_port_in_use_names_a_free_port(tmp_path, tiny_bert_dir, glue_dir):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    assert runner.invoke(app, search_flags(tiny_bert_dir, glue_dir, url)).exit_code == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line(runner.invoke(app, ["dashboard", "--storage", url, "--port", str(port)]))
    assert line.startswith(f"error: port {port} on 127.0.0.1 is in use (another dashboard running?); pass another one, "
                           "e.g. --port ")
    suggested = int(line.rsplit(" ", 1)[1])
    assert suggested > port
    line = one_line(runner.invoke(app, ["dashboard", "--storage", url, "--host", "192.0.2.1", "--token", "t"]))
    assert "cannot listen on 192.0.2.1" in line and "--host" in line


# --- Ctrl-C ------------------------------------------------------------------------------------------


def _interrupt_after_first_trial(cmd: list[str], db: Path, env: dict, sig: int = signal.SIGINT):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.2)
        try:
            with sqlite3.connect(db) as c:
                states = dict(c.execute("select state, count(*) from trials group by state").fetchall())
        except sqlite3.Error:
            continue
        if states.get("COMPLETE", 0) >= 1 and states.get("RUNNING", 0) >= 1:
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _check_interrupted(url: str, out: str, err: str, word: str) -> None:
    assert out.strip().splitlines()[-1] == f"{word}: running trials were recorded as failed; run the same command to resume"
    assert "Traceback" not in out + err, err
    trials = load_study(open_db(url), "s").get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 1
    assert TrialState.RUNNING not in {t.state for t in trials}
    assert {t.user_attrs["failure"]["kind"] for t in trials if t.state == TrialState.FAIL} == {"interrupted"}


@pytest.mark.slow  # about 80 s on a loaded 2-core machine (process start-up, imports, first trial)
def test_ctrl_c_records_running_trials_and_keeps_completed_ones(tmp_path, tiny_bert_dir, glue_dir):
    db = tmp_path / "c.db"
    url = f"sqlite:///{db}"
    cmd = [sys.executable, "-m", "autopeft.cli.main", *search_flags(tiny_bert_dir, glue_dir, url),
           "--trials", "50", "--train-size", "512", "--max-steps", "40"]
    code, out, err = _interrupt_after_first_trial(cmd, db, {**os.environ, "HF_HUB_OFFLINE": "1"})
    assert code == 130, err
    _check_interrupted(url, out, err, "interrupted")


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_stopping_a_ray_search_records_running_trials(tmp_path, tiny_bert_dir, glue_dir, sig, code, word):
    """Ray cannot force-cancel actor tasks: the busy actors are killed instead, and the trials recorded."""
    db = tmp_path / "c.db"
    url = f"sqlite:///{db}"
    flags = [f for f in search_flags(tiny_bert_dir, glue_dir, url) if f not in ("--executor", "inline")]
    cmd = [sys.executable, "-m", "autopeft.cli.main", *flags, "--trials", "50", "--train-size", "2000",
           "--max-steps", "300", "--workers", "2"]
    returncode, out, err = _interrupt_after_first_trial(cmd, db, {**os.environ, "HF_HUB_OFFLINE": "1"}, sig)
    assert returncode == code, err
    _check_interrupted(url, out, err, word)


# --- secrets, markup, leftovers, duplicate keys (issue 17) ---------------------------------------------

PASSWORD = "Pw-s3cret"


def with_password(url: str) -> str:
    """The test server's URL with a password (the server trusts loopback, so any password is accepted)."""
    return url.replace("://postgres@", f"://postgres:{PASSWORD}@", 1)


def db_text(url: str) -> str:
    """Every row of every table of the DB at `url`, as text."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return "\n".join(str(row) for table in sa.inspect(engine).get_table_names()
                             for row in conn.execute(sa.text(f'select * from "{table}"')))
    finally:
        engine.dispose()


def test_a_db_password_is_never_stored_printed_or_served(postgres_url, tiny_bert_dir, glue_dir, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from autopeft.dashboard import create_app

    url = with_password(postgres_url)
    shown = url.replace(PASSWORD, "***")
    result = runner.invoke(app, search_flags(tiny_bert_dir, glue_dir, url))
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert f"starting study s in {shown}:" in result.output and f"--storage {shown}" in result.output
    stored = load_study(open_db(url), "s")
    assert stored.user_attrs["spec"]["storage"]["url"] == shown
    assert PASSWORD not in db_text(postgres_url)

    # resuming needs no URL from the DB: the one given now (here from the spec file) is used
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"storage: {{url: '{url}', study: s}}\n")
    flags = search_flags(tiny_bert_dir, glue_dir, url)
    del flags[flags.index("--storage"):flags.index("--storage") + 2]
    result = runner.invoke(app, [flags[0], str(spec), *flags[1:]])
    assert result.exit_code == 0, result.output
    assert f"resuming study s in {shown}:" in result.output and PASSWORD not in result.output

    # a study stored by an older version kept the password: the dashboard redacts it on the way out
    stored.set_user_attr("spec", {**stored.user_attrs["spec"], "storage": {"url": url, "study": "s"}})
    assert PASSWORD in db_text(postgres_url)
    with TestClient(create_app(url)) as client:
        sid = client.get("/api/studies").json()[0]["study_id"]
        answers = [client.get(path) for path in ("/api/studies", f"/api/studies/{sid}", f"/api/studies/{sid}/figures",
                                                 f"/api/studies/{sid}/trials", f"/api/studies/{sid}/trials/0")]
        assert [a.status_code for a in answers] == [200] * 5
        assert answers[1].json()["spec"]["storage"]["url"] == shown
        assert not any(PASSWORD in a.text for a in answers)
    seen = {}
    monkeypatch.setattr("uvicorn.run", lambda web, host, port, **kw: seen.update(port=port))
    monkeypatch.setattr("autopeft.cli.dashboard._check_port", lambda host, port: None)
    result = runner.invoke(app, ["dashboard", "--storage", url, "--port", "9998"])
    assert result.exit_code == 0 and seen == {"port": 9998}, result.output
    assert f"(read-only: {shown})" in result.output and PASSWORD not in result.output
    for args in (["studies"], ["pareto", "s"], ["export", "s", "--trial", "0", "--format", "yaml",
                                                "--out", str(tmp_path / "out")]):
        result = runner.invoke(app, [*args, "--storage", url])
        assert result.exit_code == 0 and PASSWORD not in result.output, result.output


@pytest.mark.parametrize("url", [f"postgresql://u:{PASSWORD}@127.0.0.1:notaport/db",
                                 f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:{closed_port()}/db",
                                 f"postgresql+psycopg://u:{PASSWORD}@@127.0.0.1/db?x=/",
                                 f"postgresql+psycopg://u@127.0.0.1:{closed_port()}/db?password={PASSWORD}",
                                 f"mysqll://u:{PASSWORD}@127.0.0.1/db"])
def test_a_bad_storage_url_never_echoes_its_password(tmp_path, monkeypatch, url):
    monkeypatch.chdir(tmp_path)
    for args in (["studies"], ["search", "--model", "m"], ["dashboard"], ["pareto", "s"]):
        line = one_line(runner.invoke(app, [*args, "--storage", url]))
        assert line.startswith("error: ") and PASSWORD not in line and "***" in line
    assert list(tmp_path.iterdir()) == []


def bracket_task(folder: Path) -> str:
    """`data[v2]/x.csv` under `folder`: 200 SST-2 sentences as a CSV task file (a relative path)."""
    import csv

    from tests.tiny_model import GLUE_DIR

    rows = [line.rstrip("\n").split("\t") for line in (Path(GLUE_DIR) / "SST-2" / "train.tsv").open()][1:201]
    (folder / "data[v2]").mkdir()
    with (folder / "data[v2]" / "x.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["sentence", "label"], *rows])
    return "data[v2]/x.csv"


def test_names_and_paths_with_brackets_are_printed_literally(tmp_path, monkeypatch, tiny_bert_dir, glue_dir):
    """Rich markup in a study name, a task path or a plan summary is text, not markup (no MarkupError)."""
    import optuna

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m[v2]").symlink_to(tiny_bert_dir)
    task, name, url = bracket_task(tmp_path), "[/x] y", f"sqlite:///{tmp_path / 'b.db'}"
    flags = search_flags("m[v2]", glue_dir, url, "--task", task, "--study", name)
    result = runner.invoke(app, flags)
    assert result.exit_code == 0, result.output
    assert f"starting study {name} in {url}: m[v2] on {task}, space lora" in result.output
    assert f"Pareto front of {name}" in result.output and f"autopeft export {name} --trial 0" in result.output
    study = load_study(open_db(url), name)
    done = study.get_trials()[0]
    study.add_trial(optuna.trial.create_trial(  # a plan summary that is markup, on the front (fewer params)
        values=[done.values[0], done.values[1] / 2], params=done.params, distributions=done.distributions,
        user_attrs={**done.user_attrs, "plan_summary": "lora [bold]r8[/bold] [/x]"}))
    result = runner.invoke(app, ["studies", "--storage", url])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if name in line)
    assert "m[v2]" in row and task in row
    result = runner.invoke(app, ["pareto", name, "--storage", url])
    assert result.exit_code == 0, result.output
    assert f"Pareto front of {name}" in result.output and "lora [bold]r8[/bold] [/x]" in result.output
    result = runner.invoke(app, ["spaces", "show", "lora", "--model", "m[v2]"])
    assert result.exit_code == 0 and "lora on m[v2] (bert" in result.output, result.output


@pytest.mark.parametrize("mistake, expected", [
    ("spec", 'optimizer.surrogate: expected gp or saas, got "gauss"'),
    ("flag", "execution.trials: expected a positive integer, got 0"),
    ("model", "nope: no such directory; pass a local model directory"),
    ("data", "SST-2/train.tsv: data file not found; check --data-dir"),
    ("duplicate", "key 'execution' appears twice (line 3, first at line 1)"),
    ("warm-start", "warm_start: no study named 'other' in this storage"),
])
def test_a_failed_check_leaves_no_db_behind(tmp_path, monkeypatch, tiny_bert_dir, glue_dir, mistake, expected):
    """The default `sqlite:///autopeft.db` is created only once every check passed."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    spec = tmp_path / "spec.yaml"
    spec.write_text({"spec": "optimizer: {surrogate: gauss}\n",
                     "duplicate": "execution:\n  executor: inline\nexecution:\n  trials: 1\n"}.get(mistake, "{}\n"))
    flags = [f for f in search_flags(tiny_bert_dir, glue_dir, "x") if f not in ("--storage", "x")]
    extra = {"flag": ["--trials", "0"], "model": ["--model", str(tmp_path / "nope")],
             "data": ["--data-dir", str(tmp_path / "glue")], "warm-start": ["--warm-start", "other"]}.get(mistake, [])
    line = one_line(runner.invoke(app, [flags[0], str(spec), *flags[1:], *extra]))
    assert expected in line
    assert list(work.iterdir()) == []


def test_duplicate_keys_in_a_spec_are_refused_with_the_key_and_line(tmp_path, tiny_bert_dir):
    """Plain YAML keeps the last `execution:` block: `executor: inline` would be dropped without a word."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: m\nexecution:\n  executor: inline\ntask: glue:rte\nexecution:\n  workers: 2\n")
    line = one_line(runner.invoke(app, ["search", str(spec), "--storage", f"sqlite:///{tmp_path / 'd.db'}"]))
    assert line == (f"error: {spec}: key 'execution' appears twice (line 5, first at line 2); the second would "
                    "silently replace the first: keep one and merge their fields")
    spec.write_text("model: m\nfidelity: {train_size: 64, train_size: 128}\n")
    assert "key 'train_size' appears twice (line 2, first at line 2)" in one_line(runner.invoke(app, ["search", str(spec)]))
    space = tmp_path / "space.yaml"
    from autopeft.search_spaces.space import SPACES_DIR

    space.write_text((SPACES_DIR / "lora.yaml").read_text() + "name: lora2\n")
    line = one_line(runner.invoke(app, ["spaces", "show", str(space), "--model", tiny_bert_dir]))
    assert "space.yaml: key 'name' appears twice" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml", "spec.yaml"]
