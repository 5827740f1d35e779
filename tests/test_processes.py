"""Real `autopeft search` processes: a driver killed with SIGKILL, and two drivers on one PostgreSQL study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from optuna.trial import TrialState

from autopeft.store import load_study, open_db


def search_cmd(model, glue_dir, url, trials, *extra):
    return [sys.executable, "-m", "autopeft.cli.main", "search", "--model", model, "--task", "glue:sst2",
            "--data-dir", glue_dir, "--space", "lora", "--trials", str(trials), "--train-size", "64",
            "--max-steps", "3", "--budget-pct", "5", "--storage", url, "--study", "p", "--executor", "inline",
            "--sampler", "random", *extra]


def env_with_heartbeat(seconds: float) -> dict:
    return {**os.environ, "AUTOPEFT_HEARTBEAT_SECONDS": str(seconds), "HF_HUB_OFFLINE": "1"}


def trials_of(url) -> list:
    """The study's trials, read through an engine closed right after: a connection this test process keeps
    open would map the SQLite WAL index that the search processes delete and recreate, and read it stale."""
    storage = open_db(url)
    try:
        return load_study(storage, "p").get_trials()
    finally:
        storage.engine.dispose()


def completed(url):
    return [t for t in trials_of(url) if t.state == TrialState.COMPLETE]


def test_driver_killed_mid_search_resumes_without_losing_or_double_counting(tmp_path, tiny_bert_dir, glue_dir):
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    env = env_with_heartbeat(0.5)
    first = subprocess.Popen(search_cmd(tiny_bert_dir, glue_dir, url, 6), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not (tmp_path / "kill.db").exists() or len(_safe_completed(url)) < 2):
        time.sleep(0.3)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = {t.number: t.values for t in completed(url)}
    assert len(before) >= 2
    time.sleep(2)  # the dead driver's heartbeat goes stale (3 x 0.5 s)

    second = subprocess.run(search_cmd(tiny_bert_dir, glue_dir, url, 6), env=env, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr
    trials = trials_of(url)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 6
    assert {n: v for n, v in before.items()} == {t.number: t.values for t in done if t.number in before}
    assert [t.number for t in trials] == list(range(len(trials)))
    assert TrialState.RUNNING not in {t.state for t in trials}
    for stale in (t for t in trials if t.state == TrialState.FAIL):
        assert stale.user_attrs["failure"]["kind"] == "stale"
        assert any(t.user_attrs.get("retry_of") == stale.number for t in trials)


@pytest.mark.slow
def test_driver_killed_and_rerun_at_once_reaches_the_target_with_no_running_trial(tmp_path, tiny_bert_dir, glue_dir):
    """Issue 14's run: the rerun starts inside the dead driver's grace period (3 x 20 s), counts its RUNNING trial
    towards the target, and must not end before failing and retrying it (it used to stop at 5 COMPLETE + 1 RUNNING)."""
    url = f"sqlite:///{tmp_path / 'rerun.db'}"
    env = env_with_heartbeat(20)
    first = subprocess.Popen(search_cmd(tiny_bert_dir, glue_dir, url, 6), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (len(_safe_completed(url)) >= 2 and _running(url)):
        time.sleep(0.3)
    first.send_signal(signal.SIGKILL)
    first.wait()
    (killed,) = _running(url)
    before = {t.number: t.values for t in completed(url)}

    second = subprocess.run(search_cmd(tiny_bert_dir, glue_dir, url, 6), env=env, capture_output=True, text=True,
                            timeout=600)
    assert second.returncode == 0, second.stderr
    assert "left running by a stopped process" not in second.stdout  # the dead driver still looked alive
    assert f"trial {killed.number}: its search process stopped; failed and queued again" in second.stdout
    trials = trials_of(url)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 6 and TrialState.RUNNING not in {t.state for t in trials}
    assert before == {t.number: t.values for t in done if t.number in before}
    assert [(t.number, t.user_attrs["failure"]["kind"]) for t in trials if t.state == TrialState.FAIL] == \
        [(killed.number, "stale")]
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert len({tuple(sorted(t.params.items())) for t in done}) == 6  # no configuration evaluated twice but it


def _running(url):
    try:
        trials = trials_of(url)
    except Exception:  # the study may not exist yet
        return []
    return [t for t in trials if t.state == TrialState.RUNNING and "driver" in t.user_attrs]


def _safe_completed(url):
    try:
        return completed(url)
    except Exception:  # the study may not exist yet
        return []


def test_two_drivers_on_one_postgres_study_share_the_work(postgres_url, tiny_bert_dir, glue_dir):
    env = env_with_heartbeat(2)
    procs = [subprocess.Popen(search_cmd(tiny_bert_dir, glue_dir, postgres_url, 8, "--seed", str(i)), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    trials = load_study(open_db(postgres_url), "p").get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert [t.number for t in trials] == list(range(len(trials)))  # no gaps, no duplicates
    assert len({t._trial_id for t in trials}) == len(trials)
    # Each driver stops at the target; a race between counting and asking can add one trial per extra driver.
    assert 8 <= len(done) <= 9
    assert all(t.state != TrialState.FAIL for t in trials)  # neither driver took the other's trials as stale
    assert len({t.user_attrs["driver"] for t in done}) == 2
    assert all(t.values[0] == t.user_attrs["result"]["metric"] for t in done)


@pytest.fixture(autouse=True)
def _no_cuda(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


def _open_at_once(url, barrier):
    barrier.wait()
    try:
        open_db(url).engine.dispose()
        return "ok"
    except Exception as exc:  # the one line the search would print
        return str(exc)


def test_searches_started_at_once_on_a_new_sqlite_file_all_open_it(tmp_path):
    """Four processes open one new SQLite file at the same moment, 10 times over: each gets the study DB (before
    the folder lock, about one round in five failed with "not a study database" or Optuna's alembic_version
    UNIQUE constraint, as CI once did)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        for round_ in range(10):
            url = f"sqlite:///{tmp_path / f'new{round_}.db'}"
            barrier = manager.Barrier(4)
            assert pool.starmap(_open_at_once, [(url, barrier)] * 4) == ["ok"] * 4
            storage = open_db(url)
            assert storage.get_all_studies() == []
            storage.engine.dispose()
