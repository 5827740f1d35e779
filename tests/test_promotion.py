"""The successive-halving promotion rule (pure functions) on hand-made rung tables."""

from __future__ import annotations

import math

import pytest

from autopeft.promotion import Decision, crowding_distances, decide, rank_order, rung_steps


@pytest.mark.parametrize(("max_steps", "eta", "min_steps", "expected"), [
    (90, 3, 10, [10, 30, 90]),
    (100, 3, 10, [11, 33, 100]),
    (100, 3, None, [11, 33, 100]),  # default: three rungs
    (81, 3, 1, [1, 3, 9, 27, 81]),
    (64, 2, 8, [8, 16, 32, 64]),
    (64, 2, 9, [16, 32, 64]),  # the lowest rung is at least min_steps
    (40, 3, 40, [40]),  # one rung: no promotion decisions at all
    (4, 3, None, [1, 4]),  # the default floor is 1 step: two rungs
    (2, 3, None, [2]),  # too few steps for a ladder
    (8, 2, None, [2, 4, 8]),
])
def test_rung_ladder_counts_down_from_the_search_fidelity(max_steps, eta, min_steps, expected):
    assert rung_steps(max_steps, eta, min_steps) == expected


def test_rung_ladder_rejects_what_cannot_be_a_ladder():
    with pytest.raises(ValueError, match="eta: expected an integer >= 2, got 1"):
        rung_steps(10, 1)
    with pytest.raises(ValueError, match="min_steps: expected a number in"):
        rung_steps(10, 3, 11)


def test_crowding_distance_of_a_front_has_infinite_ends_and_normalised_gaps():
    # a front sorted by params: (metric, params %)
    front = [(0.6, 0.1), (0.7, 0.2), (0.8, 0.5), (0.9, 1.1)]
    d = crowding_distances(front)
    assert d[0] == math.inf and d[3] == math.inf
    assert d[1] == pytest.approx((0.8 - 0.6) / 0.3 + (0.5 - 0.1) / 1.0)
    assert d[2] == pytest.approx((0.9 - 0.7) / 0.3 + (1.1 - 0.2) / 1.0)


def test_rank_order_is_front_by_front_then_crowding_then_metric():
    points = [
        (0.80, 0.50),  # 0: front 1, interior
        (0.70, 0.10),  # 1: front 1, cheapest end
        (0.90, 1.00),  # 2: front 1, best-metric end
        (0.75, 0.60),  # 3: dominated by 0 -> front 2
        (0.60, 0.20),  # 4: dominated by 1 -> front 2
        (0.50, 0.90),  # 5: dominated by 0 and 3 -> front 3
        (0.85, 0.70),  # 6: front 1, interior
    ]
    order = rank_order(points)
    # front 1 = {1, 0, 6, 2}: ends 2 (metric 0.90) then 1 (0.70) by metric; interior by crowding:
    # 0: (0.85-0.70)/0.2 + (0.7-0.1)/0.9 = 1.4167; 6: (0.90-0.80)/0.2 + (1.0-0.5)/0.9 = 1.0556
    assert order == [2, 1, 0, 6, 3, 4, 5]


def test_first_result_at_a_rung_is_always_promoted():
    assert decide((0.55, 3.0), [], eta=3) == Decision(promote=True, rank=1, of=1, keep=1)


def test_top_ceil_n_over_eta_of_the_rung_are_promoted():
    recorded = [(0.80, 0.5), (0.70, 0.5), (0.60, 0.5), (0.50, 0.5), (0.40, 0.5)]  # one params stratum
    # with 6 results and eta 3, ceil(6/3) = 2 go on: only the metric decides at equal params
    assert decide((0.75, 0.5), recorded, eta=3) == Decision(promote=True, rank=2, of=6, keep=2)
    assert decide((0.65, 0.5), recorded, eta=3) == Decision(promote=False, rank=3, of=6, keep=2)
    assert decide((0.65, 0.5), recorded, eta=2) == Decision(promote=True, rank=3, of=6, keep=3)


def test_a_cheap_configuration_with_a_modest_metric_is_promoted_because_it_is_non_dominated():
    recorded = [(0.80, 1.0), (0.78, 0.9), (0.79, 0.95), (0.60, 0.9), (0.62, 1.0)]
    cheap = decide((0.55, 0.01), recorded, eta=3)  # lowest params of all: an end of the first front
    assert cheap.promote and cheap.rank <= cheap.keep == 2
    dominated = decide((0.77, 0.95), recorded, eta=3)  # beaten by (0.78, 0.9): second front
    assert not dominated.promote and dominated.rank == 4


def test_candidate_loses_ties_against_equal_earlier_results():
    assert decide((0.7, 0.5), [(0.7, 0.5), (0.7, 0.5)], eta=3) == Decision(promote=False, rank=3, of=3, keep=1)
