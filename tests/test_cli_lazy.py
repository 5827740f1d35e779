"""The CLI imports a command's module (and torch, optuna, ray, transformers) only when that command runs."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "optuna", "ray", "transformers", "peft", "sqlalchemy")


def run_in_fresh_python(code: str) -> dict:
    """Run `code` in a new interpreter (nothing imported yet); it prints one JSON object."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_lists_every_command_without_importing_one():
    info = run_in_fresh_python(f"""
import json, sys
from typer.testing import CliRunner
from autopeft.cli import app
top = CliRunner().invoke(app, ["--help"])
bench = CliRunner().invoke(app, ["bench", "--help"])
print(json.dumps({{"codes": [top.exit_code, bench.exit_code], "top": top.output, "bench": bench.output,
                  "heavy": [m for m in {HEAVY!r} if m in sys.modules],
                  "commands": sorted(m for m in sys.modules if m.startswith("autopeft.cli.") and m not in
                                     ("autopeft.cli.app", "autopeft.cli.lazy"))}}))
""")
    assert info["codes"] == [0, 0]
    assert info["heavy"] == [] and info["commands"] == []
    for name in ("search", "studies", "pareto", "export", "dashboard", "refine", "spaces", "bench", "spec-reference"):
        assert f" {name} " in info["top"], name
    assert "Search for the best PEFT configurations" in info["top"]
    for name in ("evaluate", "scaling", "optimizers"):
        assert f" {name} " in info["bench"], name


def test_listed_help_is_the_commands_own_help():
    """The one-line help shown before import is the docstring (or group help) of the command that runs."""
    import click
    import typer.main

    from autopeft.cli.app import _BenchCommands, _Commands, app

    root = typer.main.get_command(app)
    ctx = click.Context(root)
    for group_class, group in ((_Commands, root), (_BenchCommands, root.get_command(ctx, "bench"))):
        for name in group_class.lazy:
            listed = group.get_command(ctx, name).help
            real = group._load(name)
            assert listed and listed == real.help, name


def test_a_command_runs_and_a_typo_gets_a_suggestion(tmp_path):
    from typer.testing import CliRunner

    from autopeft.cli import app

    result = CliRunner().invoke(app, ["serch"])
    assert result.exit_code == 2 and "Did you mean 'search'" in result.output
    result = CliRunner().invoke(app, ["studies", "--storage", f"sqlite:///{tmp_path / 'none.db'}"])
    assert result.exit_code != 0 and "none.db" in result.output
    assert not (tmp_path / "none.db").exists()
