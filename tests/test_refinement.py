"""Pure parts of `autopeft refine`: aggregation over seeds, the search-vs-refined comparison, the fidelity."""

from __future__ import annotations

import math
import statistics

import pytest

from autopeft.refine_compare import RefinedValue, aggregate, compare
from autopeft.refine_run import parse_fidelity, seeds_for
from autopeft.spec import FidelitySpec, SpecError
from autopeft.store.linked import refined_name


def refined(values: dict[int, list[float]]) -> dict[int, RefinedValue]:
    return aggregate((trial, seed, v) for trial, vs in values.items() for seed, v in enumerate(vs))


def test_aggregate_mean_and_sample_sd_per_source_trial():
    runs = [(3, 0, 0.70), (3, 1, 0.74), (3, 2, 0.78), (5, 0, 0.9), (3, 1, 0.10), (5, 1, math.nan)]
    out = aggregate(runs)
    assert set(out) == {3, 5}
    three = out[3]
    assert three.seeds == (0, 1, 2) and three.values == (0.70, 0.74, 0.78)  # the duplicate (3, 1) is ignored
    assert three.mean == pytest.approx(0.74) and three.sd == pytest.approx(statistics.stdev([0.70, 0.74, 0.78]))
    assert three.sd == pytest.approx(0.04) and three.n == 3
    assert (out[5].n, out[5].mean, out[5].sd) == (1, 0.9, None)  # NaN skipped; one seed has no sd


def test_compare_finds_swaps_and_points_that_leave_the_front():
    front = [(1, 0.70, 0.1), (2, 0.75, 0.2), (3, 0.80, 0.3)]  # search: metric rises with params
    result = compare(front, refined({1: [0.72, 0.72], 2: [0.80, 0.78], 3: [0.76, 0.78]}))
    assert [p.trial for p in result.points] == [1, 2, 3]
    assert result.swaps == [(2, 3)] and result.dropped == [3] and result.reorders
    by = {p.trial: p for p in result.points}
    assert by[2].refined_mean == pytest.approx(0.79) and by[2].refined_n == 2
    assert by[3].delta == pytest.approx(0.77 - 0.80)
    assert [by[t].refined_front for t in (1, 2, 3)] == [True, True, False]
    note = result.note()
    assert "reorders the search front" in note and "#2 above #3" in note and "no longer Pareto-optimal: #3" in note
    data = result.to_dict()
    assert data["swaps"] == [[2, 3]] and data["reorders"] is True and data["refined"] == 3


def test_compare_keeps_order_and_skips_unrefined_trials():
    front = [(4, 0.80, 0.3), (1, 0.70, 0.1), (2, 0.75, 0.2)]
    result = compare(front, refined({1: [0.60, 0.62], 4: [0.79]}))
    assert [p.trial for p in result.points] == [1, 2, 4]  # cheapest first
    assert not result.reorders and result.swaps == [] and result.dropped == []
    assert result.refined == 2 and result.points[1].refined_mean is None and result.points[1].refined_front is None
    assert result.note() == "the refined values keep the search front's order"
    assert compare(front, {}).note().startswith("no trial of the search front is refined")


def test_a_refined_tie_drops_the_costlier_point_without_a_swap():
    result = compare([(1, 0.70, 0.1), (2, 0.75, 0.2)], refined({1: [0.74], 2: [0.74]}))
    assert result.swaps == [] and result.dropped == [2] and result.reorders


def test_refined_name():
    assert refined_name("bert-sst2") == "bert-sst2--refined"


BASE = FidelitySpec(train_size=2000, max_steps=100, epochs=2.0, learning_rate=2e-3, seed=3)


def test_full_fidelity_is_the_whole_train_set_without_a_step_cap():
    full = parse_fidelity("full", BASE)
    assert (full.train_size, full.max_steps) == (None, None)
    assert (full.epochs, full.learning_rate, full.seed, full.eval_size) == (2.0, 2e-3, 3, BASE.eval_size)
    assert parse_fidelity(None, BASE) == full
    assert seeds_for(full, 3) == [3, 4, 5]


def test_inline_and_file_fidelities_override_the_search_fidelity(tmp_path):
    inline = parse_fidelity("train_size=5000, max_steps=null,epochs=3", BASE)
    assert (inline.train_size, inline.max_steps, inline.epochs, inline.learning_rate) == (5000, None, 3.0, 2e-3)
    plain = tmp_path / "fidelity.yaml"
    plain.write_text("train_size: 800\nseed: 10\n")
    assert (parse_fidelity(str(plain), BASE).train_size, parse_fidelity(str(plain), BASE).max_steps) == (800, 100)
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: x\nfidelity:\n  max_steps: 7\n")
    assert parse_fidelity(str(spec), BASE).max_steps == 7


@pytest.mark.parametrize("text, message", [
    ("train_size=-3", "fidelity.train_size: expected a positive integer, got -3"),
    ("trainsize=10", "fidelity.trainsize: unknown field; expected one of: train_size"),
    ("epochs", "--fidelity: expected full, a YAML file of fidelity fields or key=value pairs, got 'epochs'"),
    ("epochs=1,oops", "--fidelity: expected key=value pairs separated by commas, got 'oops'"),
])
def test_bad_fidelity_names_the_field(text, message):
    with pytest.raises(SpecError) as err:
        parse_fidelity(text, BASE)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_fidelity_file_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="expected a mapping of fidelity fields, got list"):
        parse_fidelity(str(path), BASE)
