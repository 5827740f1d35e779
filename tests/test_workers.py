"""Workers: one trial trained and scored on real GLUE files with a tiny model; failures as values."""

from __future__ import annotations

import pytest
import torch

from autopeft.search_spaces import ModulePlan, Plan, count_plan, load_config, structure_of
from autopeft.spec import FidelitySpec
from autopeft.workers import CACHE, TrialResult, evaluate_plan
from autopeft.workers import evaluate as evaluate_module

LORA_TOP = Plan(4, (ModulePlan("lora", (0, 0, 8, 8), targets="qv"),))
FAST = FidelitySpec(train_size=96, eval_size=48, epochs=1, batch_size=16, learning_rate=5e-3, max_seq_length=48)


def test_trial_result_has_exact_params_metrics_and_split(tiny_bert_dir, glue_dir):
    result = evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST, data_dir=glue_dir)
    assert result.status == "ok", result.failure
    assert result.params == count_plan(LORA_TOP, structure_of(load_config(tiny_bert_dir))).params == 2 * 8 * 2 * 64
    assert result.head_params == 32 * 2 + 2  # classifier: hidden x labels + bias
    assert result.metric_name == "accuracy" and 0.0 <= result.metric <= 1.0
    assert set(result.metrics) == {"accuracy", "f1", "matthews"}
    assert result.split["heldout"] == 48 and result.split["train"] == 96 and result.split["stratified"]
    assert result.steps == 6 and len(result.curve) == 1 and result.curve[-1] == result.metric
    assert result.train_seconds > 0 and result.throughput > 0 and result.peak_memory_mb > 0
    assert TrialResult.from_dict(result.to_dict()) == result


@pytest.mark.parametrize("family", [ModulePlan("serial", (0, 8, 8, 8)), ModulePlan("prefix", (4, 4, 0, 0)),
                                    ModulePlan("ia3", (1, 1, 1, 1))])
def test_every_library_path_trains(tiny_bert_dir, glue_dir, family):
    plan = Plan(4, (family,))
    result = evaluate_plan(tiny_bert_dir, "glue:rte", plan, FAST.model_copy(update={"max_steps": 2}), data_dir=glue_dir)
    assert result.status == "ok", result.failure
    assert result.params == count_plan(plan, structure_of(load_config(tiny_bert_dir))).params
    assert result.steps == 2


def test_same_plan_data_fidelity_and_seed_give_the_same_metric(tiny_bert_dir, glue_dir):
    runs = [evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST, data_dir=glue_dir) for _ in range(2)]
    assert runs[0].metrics == runs[1].metrics and runs[0].curve == runs[1].curve
    other_seed = evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST.model_copy(update={"seed": 1}), data_dir=glue_dir)
    assert other_seed.split != runs[0].split or other_seed.curve != runs[0].curve


def test_training_changes_only_adapter_and_head_weights_and_cache_is_reused(tiny_bert_dir, glue_dir, monkeypatch):
    captured = {}
    real_apply = evaluate_module.apply_plan

    def spy(model, plan, structure):
        built = real_apply(model, plan, structure)
        captured["model"] = built
        captured["before"] = {n: p.detach().clone() for n, p in built.named_parameters()}
        return built

    monkeypatch.setattr(evaluate_module, "apply_plan", spy)
    evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST, data_dir=glue_dir)
    model, before = captured["model"], captured["before"]
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_" in n or "classifier" in n for n in changed)
    assert any("lora_" in n for n in changed) and any("classifier" in n for n in changed)
    # The base model is cached once per process; each trial trains a copy, the cached weights stay put.
    cached, _ = evaluate_module._base_model(tiny_bert_dir, evaluate_module.task_data("glue:sst2", FAST, glue_dir))
    assert not any(name.startswith("base_model") for name, _ in cached.named_parameters())


def test_layers_below_the_lowest_adapter_build_no_autograd_graph(tiny_bert_dir, glue_dir, monkeypatch):
    requires = {}
    real_apply = evaluate_module.apply_plan

    def spy(model, plan, structure):
        built = real_apply(model, plan, structure)
        for i, layer in enumerate(built.base_model.model.bert.encoder.layer):
            layer.register_forward_hook(
                lambda m, a, out, i=i: requires.__setitem__(i, requires.get(i, False) or out[0].requires_grad))
        return built

    monkeypatch.setattr(evaluate_module, "apply_plan", spy)
    evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST.model_copy(update={"max_steps": 1}), data_dir=glue_dir)
    assert requires[0] is False and requires[1] is False  # below layer 2: no graph
    assert requires[2] is True and requires[3] is True


def test_missing_data_is_a_structured_data_error(tiny_bert_dir, glue_dir):
    result = evaluate_plan(tiny_bert_dir, "glue:stsb", LORA_TOP, FAST, data_dir=glue_dir)  # no STS-B files here
    assert result.status == "failed" and result.failure["kind"] == "data_error"
    assert "STS-B/train.tsv: data file not found" in result.failure["message"]


def test_out_of_memory_and_nan_are_reported_with_their_kind(tiny_bert_dir, glue_dir, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(evaluate_module, "_train_and_score", oom)
    result = evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST, data_dir=glue_dir)
    assert result.failure["kind"] == "oom" and "Tried to allocate" in result.failure["message"]
    monkeypatch.undo()

    CACHE.clear()
    result = evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST.model_copy(update={"learning_rate": 1e30}),
                           data_dir=glue_dir)
    assert result.status == "failed" and result.failure["kind"] == "nan_loss", result.failure
