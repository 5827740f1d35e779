"""The `adapters` extra: nothing imports it at import time, and every choice that needs it, made in an
environment without it, ends in one line naming the extra (non-zero exit, before any training)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from autopeft.optional import ADAPTERS_EXTRA, MissingExtra, adapters_available, require_adapters
from benchmarks.dashboard_synthetic import build_study, write_model_dir

ROOT = Path(__file__).resolve().parents[1]
WITHOUT_ADAPTERS = pytest.mark.skipif(adapters_available(), reason="shows what happens where the adapters extra is "
                                      "not installed (the core env)")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real `autopeft` command in a fresh interpreter (as a user runs it)."""
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-m", "autopeft.cli.main", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and ADAPTERS_EXTRA in lines[0]
    return lines[0]


def test_importing_every_autopeft_module_does_not_import_adapters():
    # The mapped packages (search_spaces, workers, dashboard) live outside autopeft/: walk each one's own path.
    code = ("import importlib, json, pkgutil, sys\n"
            "names = []\n"
            "for top in ('autopeft', 'autopeft.search_spaces', 'autopeft.workers', 'autopeft.dashboard'):\n"
            "    package = importlib.import_module(top)\n"
            "    for m in pkgutil.walk_packages(package.__path__, top + '.'):\n"
            "        importlib.import_module(m.name)\n"
            "        names.append(m.name)\n"
            "print(json.dumps({'names': names, 'adapters': 'adapters' in sys.modules}))")
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                    cwd=ROOT).stdout)
    assert {"autopeft.backends", "autopeft.export", "autopeft.search_spaces.counting", "autopeft.workers.evaluate",
            "autopeft.dashboard.app", "autopeft.cli.studies", "autopeft.runner", "autopeft.refine_run"} <= set(out["names"])
    assert out["adapters"] is False


@WITHOUT_ADAPTERS
def test_search_in_the_autopeft_space_names_the_extra_before_any_training(tmp_path, tiny_bert_dir, glue_dir):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    result = cli("search", "--model", tiny_bert_dir, "--task", "glue:sst2", "--data-dir", glue_dir, "--space", "autopeft",
                 "--trials", "2", "--executor", "inline", "--storage", url, cwd=tmp_path)
    line = one_error_line(result)
    assert line.startswith("error: space 'autopeft' (serial, parallel, prefix) needs AdapterHub `adapters`")
    assert not optuna.get_all_study_names(url)  # nothing was created, nothing trained


@WITHOUT_ADAPTERS
def test_export_and_refine_of_adapters_plans_name_the_extra(tmp_path):
    model = write_model_dir(tmp_path / "tiny-bert")
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = build_study(url, "paper", model, n_trials=6, space="autopeft", budget_pct=100.0)
    number = next(t.number for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE)

    exported = cli("export", "paper", "--trial", str(number), "--format", "adapters", "--out", str(tmp_path / "out"),
                   "--storage", url, cwd=tmp_path)
    assert one_error_line(exported).startswith("error: the AdapterHub export format (--format adapters) needs")
    assert not (tmp_path / "out").exists()
    assert cli("export", "paper", "--trial", str(number), "--format", "yaml", "--out", str(tmp_path / "yaml"),
               "--storage", url, cwd=tmp_path).returncode == 0  # the plan itself needs no library

    refined = cli("refine", "paper", "--storage", url, cwd=tmp_path)
    assert one_error_line(refined).startswith("error: refining study 'paper' (trial(s) ")
    assert "paper--refined" not in optuna.get_all_study_names(url)


@WITHOUT_ADAPTERS
def test_spaces_show_counts_an_adapters_space_without_the_library_and_names_the_extra(tmp_path):
    model = write_model_dir(tmp_path / "tiny-bert")
    result = cli("spaces", "show", "autopeft", "--model", model, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "smallest: 64 params" in result.stdout  # one prefix position in one layer: 2 x hidden 32
    assert result.stdout.strip().splitlines()[-1] == (
        f"serial, parallel, prefix: built by AdapterHub adapters, not installed here; searching this space needs "
        f"{ADAPTERS_EXTRA}")


@WITHOUT_ADAPTERS
def test_an_adapters_that_does_not_import_is_reported_in_one_line(tmp_path, monkeypatch):
    """adapters installed against another transformers fails inside its own import: the message says so."""
    package = tmp_path / "adapters"
    package.mkdir()
    (package / "__init__.py").write_text("from transformers import NoSuchClassInThisRelease\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "adapters", raising=False)
    with pytest.raises(MissingExtra) as info:
        require_adapters("space 'mixed' (serial)")
    message = str(info.value)
    assert "\n" not in message and message.startswith("space 'mixed' (serial) needs AdapterHub `adapters`, which "
                                                      "does not import with transformers ")
    assert message.endswith(f"{ADAPTERS_EXTRA} installs the versions it needs")
    monkeypatch.delitem(sys.modules, "adapters", raising=False)
