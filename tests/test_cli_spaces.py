"""`autopeft spaces` from the command line, with a model directory that holds only config.json."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from autopeft.cli import app
from tests.models import TINY_CONFIGS

runner = CliRunner()


def test_spaces_lists_builtin_spaces_as_json():
    result = runner.invoke(app, ["spaces", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {r["name"] for r in rows} >= {"autopeft", "lora", "mixed"}
    assert next(r for r in rows if r["name"] == "autopeft")["families"] == ["serial", "parallel", "prefix"]


def show_json(space: str, model_name: str, tmp_path) -> dict:
    """`autopeft spaces show SPACE --format json` on a directory holding only the tiny model's config.json."""
    TINY_CONFIGS[model_name]().save_pretrained(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
    result = runner.invoke(app, ["spaces", "show", space, "--model", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_spaces_show_counts_from_a_config_only_directory(tmp_path):
    info = show_json("autopeft", "bert", tmp_path)
    assert info["num_dimensions"] == 3 + 4
    # hidden 32: sizes {0, 1, 2, 4, 8, 16, 32}; 7^3 sizes x 2^4 masks minus all-off points
    assert info["num_valid_configurations"] == 7**3 * 2**4 - 7**3 - 2**4 + 1
    assert info["min_params"] == 1 * 2 * 32  # one prefix position in one layer: 2 x hidden
    assert info["min_params_pct"] == 100 * info["min_params"] / info["base_params"]
    text = runner.invoke(app, ["spaces", "show", "lora", "--model", str(tmp_path)])
    assert text.exit_code == 0 and "valid configurations" in text.output


def test_spaces_show_bad_input_is_one_line_and_nonzero(tmp_path):
    result = runner.invoke(app, ["spaces", "show", "nope", "--model", str(tmp_path)])
    assert result.exit_code == 2
    assert "no config.json" in result.output
    TINY_CONFIGS["bert"]().save_pretrained(tmp_path)
    result = runner.invoke(app, ["spaces", "show", "nope", "--model", str(tmp_path)])
    assert result.exit_code == 2 and "no such space" in result.output
    assert "Traceback" not in result.output
