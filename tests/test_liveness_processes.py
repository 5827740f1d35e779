"""Real search processes (`tests/search_driver.py`, synthetic trials) that die or share one SQLite study:
a resume never ends while trials it counted may belong to a dead process, and leaves a live one's alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from optuna.trial import TrialState

from autopeft.store import load_study, open_db
from tests.models import TINY_CONFIGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def model_dir(tmp_path):
    TINY_CONFIGS["bert"]().save_pretrained(tmp_path / "model")
    return str(tmp_path / "model")


def driver(url, model_dir, trials, heartbeat, seed, *options):
    """Start a search process (see `tests.search_driver` for `options`); its stdout is a pipe of lines."""
    cmd = [sys.executable, "-m", "tests.search_driver", url, model_dir, str(trials), str(heartbeat), str(seed),
           *map(str, options)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""})


STORAGES: dict = {}  # url -> storage: one engine per DB for the whole test


def trials_of(url):
    try:
        storage = STORAGES.get(url) or STORAGES.setdefault(url, open_db(url))
        return load_study(storage, "s").get_trials()
    except Exception:  # the study does not exist yet
        return []


def wait_until(condition, what, timeout=300):  # generous: process start-up on a loaded 2-core machine
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def read_until(proc, text, timeout=120):
    """Lines of `proc`'s stdout up to the first one containing `text`."""
    lines, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        assert line, f"the process ended before printing {text!r}: {lines} {proc.stderr.read()}"
        lines.append(line.rstrip("\n"))
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} within {timeout} s: {lines}")


def test_driver_killed_and_rerun_at_once_ends_with_the_target_complete_and_nothing_running(tmp_path, model_dir):
    """The issue's scenario: the rerun starts while the dead driver's heartbeat is still fresh (grace 3 x 2 s),
    so it counts the dead driver's RUNNING trial towards its target; it must wait, fail and retry it."""
    url, go = f"sqlite:///{tmp_path / 'kill.db'}", tmp_path / "go"
    first = driver(url, model_dir, 6, 2, 1, "--hold", tmp_path / "never", "--hold-from", 2)  # trial 2 hangs
    second = driver(url, model_dir, 6, 2, 2, "--go", go)  # the rerun, imports done ahead
    assert read_until(second, "ready")[-1] == "ready"
    running = lambda: [t for t in trials_of(url) if t.state == TrialState.RUNNING and "driver" in t.user_attrs]  # noqa: E731
    complete = lambda: [t for t in trials_of(url) if t.state == TrialState.COMPLETE]  # noqa: E731
    wait_until(lambda: len(running()) == 1 and len(complete()) == 2, "2 complete trials and 1 running")
    first.send_signal(signal.SIGKILL)
    first.wait()
    go.touch()
    killed = running()[0]
    before = {t.number: t.values for t in complete()}

    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    lines = out.splitlines()
    assert "recovered 0" in lines  # the dead driver still looked alive when the rerun started
    assert f"trial {killed.number}: its search process stopped; failed and queued again" in lines

    trials = trials_of(url)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 6
    assert TrialState.RUNNING not in {t.state for t in trials}
    assert {n: v for n, v in before.items()} == {t.number: t.values for t in done if t.number in before}
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [(t.number, t.user_attrs["failure"]["kind"]) for t in failed] == [(killed.number, "stale")]
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params and retry.user_attrs["attempt"] == 1
    # no configuration evaluated twice but the retried one
    assert Counter(tuple(sorted(t.params.items())) for t in done).most_common(1)[0][1] == 1
    assert killed.params not in [t.params for t in done if t.number != retry.number]


def test_a_live_drivers_running_trial_is_waited_for_not_failed_and_counts(tmp_path, model_dir):
    """Driver B starts while driver A (alive, beating every 2 s) runs the trial that would complete the target:
    B waits past A's grace period (6 s) without failing it, and ends once A's trial completes."""
    url, release = f"sqlite:///{tmp_path / 'live.db'}", tmp_path / "release"
    a = driver(url, model_dir, 1, 2, 1, "--hold", release)  # its one trial waits for `release`
    wait_until(lambda: [t.state for t in trials_of(url) if "driver" in t.user_attrs] == [TrialState.RUNNING],
               "driver A's trial to run")
    b = driver(url, model_dir, 1, 2, 2)
    assert "recovered 0" in read_until(b, "recovered")
    read_until(b, "waiting for 1 trial(s) of another search process")
    time.sleep(8)  # B sweeps every second; A's trial stays RUNNING past the 6 s of 3 missed beats
    assert b.poll() is None
    assert [t.state for t in trials_of(url)] == [TrialState.RUNNING]

    release.touch()
    out_b, err_b = b.communicate(timeout=60)
    out_a, err_a = a.communicate(timeout=60)
    assert (a.returncode, b.returncode) == (0, 0), err_a + err_b
    (trial,) = trials_of(url)
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["driver"] == out_a.splitlines()[0].split()[1]  # A's, B asked none
    assert "1 trials complete in the study" in out_b.splitlines()
