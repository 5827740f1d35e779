"""SearchSpec: YAML + overrides (flag > file > default), one-line errors naming the field path."""

from __future__ import annotations

import pytest

from autopeft.spec import SpecError, build_spec, load_spec


def write(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_defaults_file_and_flags_take_precedence_in_order(tmp_path):
    path = write(tmp_path, "model: m\nbudget: {max_params_pct: 0.5}\nfidelity: {train_size: 300, epochs: 2}\n")
    spec = load_spec(path, {"fidelity.train_size": 100, "fidelity.epochs": None})
    assert spec.model == "m"
    assert spec.budget.max_params_pct == 0.5  # file
    assert spec.fidelity.train_size == 100  # flag beats file
    assert spec.fidelity.epochs == 2  # None flag = not given
    assert spec.fidelity.batch_size == 32  # default
    assert spec.optimizer.sampler == "mobo"


@pytest.mark.parametrize(
    "text, message",
    [
        ('model: m\nbudget: {max_params_pct: "ten"}\n', 'budget.max_params_pct: expected a number in (0, 100], got "ten"'),
        ("model: m\nbudget: {max_params_pct: 250}\n", "budget.max_params_pct: expected a number in (0, 100], got 250"),
        ("model: m\nfidelity: {batch_size: 0}\n",
         "fidelity.batch_size: expected a positive integer, got 0"),
        ("model: m\noptimizer: {sampler: bayes}\n", 'optimizer.sampler: expected one of mobo, autopeft, botorch, gp, tpe, nsga2, random, '
                                                      'got "bayes"'),
        ("model: m\nfidelty: {epochs: 1}\n", "fidelty: unknown field; expected one of: model, task"),
        ("model: m\nfidelity: {epoch: 1}\n", "fidelity.epoch: unknown field; expected one of: train_size"),
        ("task: glue:rte\n", "model: required field is missing"),
        ("- a\n- b\n", "expected a mapping of spec fields at the top level, got list"),
        ("model: [unclosed\n", "not valid YAML (line 2)"),
    ],
)
def test_bad_file_gives_one_line_error_naming_the_field(tmp_path, text, message):
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_spec_file_is_reported(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_flags_alone_make_a_spec():
    spec = build_spec({}, {"model": "dir", "space": "autopeft", "execution.trials": 7})
    assert (spec.model, spec.space, spec.execution.trials) == ("dir", "autopeft", 7)
