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
from autopeft.study import load_study, open_storage
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
    return [s.study_name for s in open_storage(url).get_all_studies()]


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
    trials = load_study(open_storage(url), "s").get_trials()
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
