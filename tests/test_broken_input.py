"""Broken data, storage and files a user will produce (issue 17, items 3-5): one line, non-zero exit, no traceback,
and nothing created, changed or lost.

Runs the real `autopeft` command (Typer's runner in-process; a process for Ctrl-C) and the real dashboard app.
Companion of tests/test_new_user_errors.py (its helpers are reused).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from fastapi.testclient import TestClient

from autopeft.cli import app
from autopeft.dashboard import create_app
from autopeft.store import load_study, open_db
from tests.test_new_user_errors import one_line, runner, search_flags

BIG = "99999999999999999999"  # above 2**63


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def read_only(path: Path):
    """`path` (file or folder) unwritable for the test: `chattr +i` (root ignores modes), else chmod."""
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        return
    if os.geteuid() == 0:
        pytest.skip("chattr +i is not available here, and root ignores file modes")
    mode = path.stat().st_mode
    path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield
    finally:
        path.chmod(mode)


def labelled_csv(path: Path) -> Path:
    """40 labelled rows, then one with an empty label (line 42) and one without the column (line 43)."""
    path.write_text("sentence,label\n" + "a good film,1\na bad film,0\n" * 20 + "no label here,\nshort row\n")
    return path


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_bert_dir, glue_dir):
    """One finished search (1 trial) on a CSV whose two unlabelled rows are dropped (`unlabeled=drop`)."""
    tmp = tmp_path_factory.mktemp("broken-input")
    csv = labelled_csv(tmp / "reviews.csv")
    url = f"sqlite:///{tmp / 'search.db'}"
    result = runner.invoke(app, search_flags(tiny_bert_dir, glue_dir, url, "--task", f"{csv}?unlabeled=drop"))
    return tmp, csv, tmp / "search.db", result


def copy_db(searched, folder: Path, journal: str = "delete") -> Path:
    """A consistent copy of the search's DB (its WAL included) as `folder/copy.db`, in `journal` mode."""
    folder.mkdir(exist_ok=True)
    copy = folder / "copy.db"
    with contextlib.closing(sqlite3.connect(searched[2])) as src, contextlib.closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
        assert dst.execute(f"PRAGMA journal_mode={journal}").fetchone() == (journal,)
    return copy


# --- item 3: rows without a label ----------------------------------------------------------------------


def test_rows_without_a_label_are_refused_with_the_file_lines_and_count(tmp_path, tiny_bert_dir, glue_dir):
    csv = labelled_csv(tmp_path / "reviews.csv")
    before = digest(csv)
    line = one_line(runner.invoke(app, search_flags(tiny_bert_dir, glue_dir, f"sqlite:///{tmp_path / 'l.db'}",
                                                    "--task", str(csv))))
    assert line == (f"error: {csv}: 2 rows have no label (column 'label' empty or absent; lines 42, 43); label them, "
                    "or add unlabeled=drop to the task's options (PATH?unlabeled=drop) to leave them out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reviews.csv"] and digest(csv) == before


def test_unlabeled_drop_leaves_them_out_with_a_note_and_the_task_stays_binary(searched):
    _, csv, db, result = searched
    assert result.exit_code == 0, result.output
    assert f"note: {csv}: left out 2 row(s) without a label (unlabeled=drop; line(s) 42, 43); 40 remain" in result.output
    (trial,) = load_study(open_db(f"sqlite:///{db}"), "s").get_trials()
    split = trial.user_attrs["data_split"]
    assert split["labels"] == ["0", "1"] and split["train"] + split["heldout"] == 40  # no '' class
    assert trial.user_attrs["result"]["metric_name"] == "accuracy"


# --- item 4: tracebacks on input a user will produce ---------------------------------------------------


def test_a_binary_data_file_is_one_line(tmp_path, tiny_bert_dir, glue_dir):
    data = tmp_path / "reviews.csv"
    data.write_bytes(b"sentence,label\n\x00\x01\x02\xff\xfe" * 50)
    line = one_line(runner.invoke(app, search_flags(tiny_bert_dir, glue_dir, f"sqlite:///{tmp_path / 'b.db'}",
                                                    "--task", str(data))))
    assert line == (f"error: {data}: a binary file (it holds NUL bytes), not CSV/TSV/JSONL text; export it from the "
                    "spreadsheet as 'CSV UTF-8' (or save the text file as UTF-8)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reviews.csv"]


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_sqlite_url_is_refused(tmp_path, monkeypatch, tiny_bert_dir, glue_dir, url):
    monkeypatch.chdir(tmp_path)
    for args in (["studies", "--storage", url], ["pareto", "s", "--storage", url],
                 search_flags(tiny_bert_dir, glue_dir, url), ["dashboard", "--storage", url]):
        assert one_line(runner.invoke(app, args)) == (f"error: storage {url}: an in-memory SQLite database, gone when "
                                                      "the command ends; pass a file, e.g. sqlite:///autopeft.db")
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_db_file_is_read_but_not_searched(searched, tmp_path, tiny_bert_dir, glue_dir):
    db = copy_db(searched, tmp_path / "ro")
    before = digest(db)
    with read_only(db):
        line = one_line(runner.invoke(app, search_flags(tiny_bert_dir, glue_dir, f"sqlite:///{db}", "--trials", "2",
                                                        "--task", f"{searched[1]}?unlabeled=drop")))
        assert line == (f"error: storage sqlite:///{db}: {db} is read-only and a search writes to it; make it writable "
                        "(chmod u+w copy.db), or pass another --storage (`autopeft studies`, `pareto`, `export` and "
                        "`dashboard` only read it)")
        listed = runner.invoke(app, ["studies", "--storage", f"sqlite:///{db}"])
        assert listed.exit_code == 0 and "1 complete" in listed.output, listed.output
    assert digest(db) == before and sorted(p.name for p in db.parent.iterdir()) == ["copy.db"]


def test_trial_numbers_beyond_64_bits_are_no_such_trial(searched, tmp_path):
    url = f"sqlite:///{searched[2]}"
    out = tmp_path / "out"
    line = one_line(runner.invoke(app, ["export", "s", "--trial", BIG, "--out", str(out), "--storage", url]))
    assert line == f"error: trial {BIG}: no such trial in study 's'; pick one from `autopeft pareto s`"
    assert not out.exists()
    with TestClient(create_app(url)) as c:
        for path in (f"/api/studies/1/trials/{BIG}", f"/api/studies/1/trials/{BIG}/figure",
                     f"/api/studies/1/trials/{BIG}/export/peft"):
            answer = c.get(path)
            assert answer.status_code == 404, path
            assert answer.json()["detail"] == f"trial {BIG}: no such trial in this study"
        assert c.get(f"/api/studies/{BIG}").status_code == 404


def test_export_out_below_a_file_is_one_line(searched, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    line = one_line(runner.invoke(app, ["export", "s", "--trial", "0", "--out", str(blocker / "sub"),
                                        "--storage", f"sqlite:///{searched[2]}"]))
    assert line == (f"error: --out {blocker / 'sub'}: {blocker} is a file, not a folder; pass a folder to write the "
                    "configuration into")
    assert blocker.read_text() == "keep me" and list(tmp_path.iterdir()) == [blocker]


def test_a_complete_trial_without_a_plan(searched, tmp_path):
    """A trial another tool added to an autopeft study: listed, not exportable, never a KeyError."""
    db = copy_db(searched, tmp_path / "db")
    url = f"sqlite:///{db}"
    optuna.load_study(study_name="s", storage=url).add_trial(optuna.trial.create_trial(values=[0.9, 1.0]))
    out = tmp_path / "out"
    line = one_line(runner.invoke(app, ["export", "s", "--trial", "1", "--out", str(out), "--storage", url]))
    assert line == "error: trial 1: records no plan (it was not run by autopeft); export another trial (see `autopeft pareto s`)"
    assert not out.exists()
    pareto = runner.invoke(app, ["pareto", "s", "--storage", url])
    assert pareto.exit_code == 0 and any(row.split("│")[1].strip() == "1" for row in pareto.output.splitlines()
                                         if row.startswith("│")), pareto.output
    with TestClient(create_app(url)) as c:
        assert c.get("/api/studies/1/trials/1").json()["exports"] == {}
        answer = c.get("/api/studies/1/trials/1/export/peft")
        assert answer.status_code == 409 and "records no plan" in answer.json()["detail"]
        assert c.get("/api/studies/1/trials/1/figure").status_code == 404


def test_ctrl_c_during_start_up_is_one_line(tmp_path, tiny_bert_dir, glue_dir):
    db = tmp_path / "c.db"
    cmd = [sys.executable, "-m", "autopeft", *search_flags(tiny_bert_dir, glue_dir, f"sqlite:///{db}")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and out == "", (out, err)
    assert err == "error: interrupted (Ctrl-C) before the command finished; run it again to complete it\n", err
    assert not db.exists()


# --- item 5: misleading errors -------------------------------------------------------------------------


def _not_optuna(path: Path, kind: str) -> str:
    if kind == "random bytes":
        path.write_bytes(os.urandom(4096))
        return "not a SQLite file"
    if kind == "empty file":
        path.write_bytes(b"")
        return "an empty file"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    return "a SQLite database without Optuna's tables; it holds notes"


@pytest.mark.parametrize("kind", ["random bytes", "empty file", "another SQLite database"])
def test_a_file_that_is_not_a_study_db_is_named_so_and_left_unchanged(tmp_path, tiny_bert_dir, glue_dir, kind):
    db = tmp_path / "studies.db"
    why = _not_optuna(db, kind)
    before, url = digest(db), f"sqlite:///{db}"
    reading = f"error: storage {url}: {db} is not an autopeft/Optuna study database ({why}); pass the file "
    for args in (["studies", "--storage", url], ["pareto", "s", "--storage", url],
                 ["export", "s", "--trial", "0", "--out", str(tmp_path / "out"), "--storage", url]):
        assert one_line(runner.invoke(app, args)) == reading + "`autopeft search` wrote, check --storage"
    line = one_line(runner.invoke(app, search_flags(tiny_bert_dir, glue_dir, url)))
    assert line == reading + "`autopeft search` wrote, or a new file name to start a study there"
    assert digest(db) == before and list(tmp_path.iterdir()) == [db]


def test_a_wal_db_in_a_read_only_folder_is_read(searched, tmp_path):
    folder = tmp_path / "shared"
    db = copy_db(searched, folder, journal="wal")
    assert sorted(p.name for p in folder.iterdir()) == ["copy.db"]  # no -wal/-shm left: reading must create none
    before, url = digest(db), f"sqlite:///{db}"
    with read_only(folder):
        listed = runner.invoke(app, ["studies", "--storage", url])
        assert listed.exit_code == 0 and "1 complete" in listed.output, listed.output
        exported = runner.invoke(app, ["export", "s", "--trial", "0", "--out", str(tmp_path / "out"), "--storage", url])
        assert exported.exit_code == 0 and (tmp_path / "out" / "adapter_config.json").is_file(), exported.output
        with TestClient(create_app(url)) as c:
            assert [s["name"] for s in c.get("/api/studies").json()] == ["s"]
    assert digest(db) == before and sorted(p.name for p in folder.iterdir()) == ["copy.db"]


def test_a_broken_config_json_is_named_broken(tmp_path, tiny_bert_dir, glue_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_bert_dir, model)
    (model / "config.json").write_text('{"model_type": "bert",')
    expected = (f"error: {model / 'config.json'}: not valid JSON (Expecting property name enclosed in double quotes at "
                "line 1, column 23); fix it, or save the model again with save_pretrained")
    assert one_line(runner.invoke(app, ["spaces", "show", "lora", "--model", str(model)])) == expected
    line = one_line(runner.invoke(app, search_flags(str(model), glue_dir, f"sqlite:///{tmp_path / 'c.db'}")))
    assert line == expected and "no such directory" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_folder_given_as_the_spec_file_is_named_a_folder(tmp_path):
    (tmp_path / "spec").mkdir()
    line = one_line(runner.invoke(app, ["search", str(tmp_path / "spec"), "--storage", f"sqlite:///{tmp_path / 's.db'}"]))
    assert line == f"error: {tmp_path / 'spec'}: is a folder, not a spec file; pass the path of a YAML spec"
    assert [p.name for p in tmp_path.iterdir()] == ["spec"]
