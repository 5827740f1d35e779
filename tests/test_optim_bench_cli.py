"""`autopeft bench optimizers` end to end on a user problem (MODULE:ATTR) over a tiny model config."""

from __future__ import annotations

import csv
import json
import textwrap

from typer.testing import CliRunner

from autopeft.cli import app
from tests.models import TINY_CONFIGS


def test_bench_optimizers_on_a_user_problem(tmp_path, monkeypatch):
    model_dir = tmp_path / "tiny-bert"
    TINY_CONFIGS["bert"]().save_pretrained(model_dir)
    (tmp_path / "my_problem.py").write_text(textwrap.dedent(f"""
        class Recorded:
            space = "autopeft"
            model = {str(model_dir)!r}
            metric_floor = 0.5

            def evaluate(self, plan):
                layers = sum(1 for m in plan["modules"] for s in m["sizes"] if s)
                if layers == 3:
                    return float("nan")  # a configuration without a recorded result
                return 0.5 + 0.04 * layers

        PROBLEM = Recorded()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(app, [
        "bench", "optimizers", "--problem", "my_problem:PROBLEM", "--samplers", "random,tpe", "--trials", "12",
        "--seeds", "2", "--budget-pct", "5", "--json", str(out / "r.json"), "--csv", str(out / "r.csv"),
        "--html", str(out / "r.html"),
    ])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "r.json").read_text())
    assert data["problem"] == "my_problem:PROBLEM" and data["samplers"] == ["random", "tpe"]
    assert data["checkpoints"] == [10] and data["seeds"] == [0, 1]
    assert all(len(curve) == 12 for per_seed in data["curves"].values() for curve in per_seed)
    for s in data["summaries"]:
        assert 0.0 < s["hv_mean"]["10"] <= 1.0
        assert s["reached_95"] >= 1  # the best sampler reaches 95% of its own best on each seed
    rows = list(csv.DictReader((out / "r.csv").open()))
    assert [r["sampler"] for r in rows] == ["random", "tpe"]
    assert "plotly" in (out / "r.html").read_text()[:100_000].lower()
    # the raw runs are kept: merging result files re-summarises them without running anything
    merged = CliRunner().invoke(app, ["bench", "optimizers", "--merge", str(out / "r.json"), "--json", str(out / "m.json")])
    assert merged.exit_code == 0, merged.output
    assert json.loads((out / "m.json").read_text())["summaries"] == data["summaries"]
    # --reach-within continues the runs that had not reached 95% of the best by --trials
    longer = CliRunner().invoke(app, [
        "bench", "optimizers", "--problem", "my_problem:PROBLEM", "--samplers", "random,tpe", "--trials", "12",
        "--seeds", "2", "--budget-pct", "5", "--reach-within", "40", "--reach-samplers", "random",
        "--json", str(out / "l.json"),
    ])
    assert longer.exit_code == 0, longer.output
    data = json.loads((out / "l.json").read_text())
    lengths = {(r["sampler"], r["seed"]): len(r["points"]) for r in data["runs"]}
    unreached = {(s["sampler"], seed) for s in data["summaries"] for seed, n in enumerate(s["trials_to_95"]) if n is None}
    assert all(12 <= n <= 40 for n in lengths.values())
    assert all(n == 12 for (sampler, _), n in lengths.items() if sampler == "tpe")  # only random continues
    assert all(lengths[k] == 40 for k in unreached if k[0] == "random")  # never reached: ran to the cap
    assert all(len(curve) == 12 for per_seed in data["curves"].values() for curve in per_seed)
    for s in data["summaries"]:
        for seed, n in enumerate(s["trials_to_95"]):
            if n is not None:
                assert n == lengths[s["sampler"], seed] or lengths[s["sampler"], seed] == 12  # stopped when reached


def test_bench_optimizers_refuses_bad_input():
    runner = CliRunner()
    bad = runner.invoke(app, ["bench", "optimizers", "--samplers", "mobo,cmaes", "--trials", "4"])
    assert bad.exit_code == 2 and "expected names from mobo" in bad.output
    bad = runner.invoke(app, ["bench", "optimizers", "--problem", "no_such_module:X", "--trials", "4"])
    assert bad.exit_code == 2 and "cannot import module" in bad.output
