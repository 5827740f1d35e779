"""Workers: one trial trained and scored with a tiny random BERT on real GLUE files; failures as values."""

from __future__ import annotations

import json

import pytest
import torch

from autopeft.search_spaces import ModulePlan, Plan, count_plan, load_config, structure_of
from autopeft.spec import FidelitySpec
from autopeft.workers import CACHE, FAILURE_KINDS, TrialResult, evaluate_plan
from autopeft.workers import evaluate as evaluate_module
from tests.extras import ADAPTERS, plan_params

LORA_TOP = Plan(4, (ModulePlan("lora", (0, 0, 8, 8), targets="qv"),))
FAST = FidelitySpec(train_size=96, eval_size=48, epochs=1, batch_size=16, learning_rate=5e-3, max_seq_length=48)


def params_of(plan: Plan, model_dir: str) -> int:
    return count_plan(plan, structure_of(load_config(model_dir))).params


def test_trial_result_has_exact_params_metrics_split_and_timings(tiny_bert_dir, glue_dir):
    result = evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST, data_dir=glue_dir)
    assert result.status == "ok" and result.ok, result.failure
    assert result.params == params_of(LORA_TOP, tiny_bert_dir) == 2 * 8 * (32 + 32) * 2  # 2 layers x (q, v) x r(in+out)
    assert result.params_pct == pytest.approx(100 * result.params / structure_of(load_config(tiny_bert_dir)).base_params)
    assert result.head_params == 32 * 2 + 2  # classifier: hidden x labels + bias (the pooler is pretrained, frozen)
    assert result.metric_name == "accuracy" and 0.0 <= result.metric <= 1.0
    assert set(result.metrics) == {"accuracy", "f1", "matthews"} and -1 <= result.metrics["matthews"] <= 1
    assert result.split["heldout"] == 48 and result.split["train"] == 96 and result.split["stratified"]
    assert result.split["source"].endswith("SST-2/train.tsv") and len(result.split["heldout_rows_sha1"]) == 40
    assert result.steps == 6 and result.curve == [result.metric]  # ceil(96 / 16) steps, one pass
    assert result.no_grad_layers == 2 and result.seed == 0 and result.device == "cpu" and result.host
    assert result.fidelity == FAST.model_dump()
    assert result.train_seconds > 0 and result.eval_seconds > 0 and result.peak_memory_mb > 50
    assert result.throughput == pytest.approx(96 / result.train_seconds)
    assert TrialResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_epochs_make_a_curve_and_max_steps_caps_training(tiny_bert_dir, glue_dir):
    two = evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST.model_copy(update={"epochs": 2}), data_dir=glue_dir)
    assert two.steps == 12 and len(two.curve) == 2 and two.curve[-1] == two.metric
    capped = evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST.model_copy(update={"epochs": 2, "max_steps": 8}),
                           data_dir=glue_dir)
    assert capped.steps == 8 and len(capped.curve) == 2  # 6 steps, then 2 of the second pass
    longer = evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST.model_copy(update={"max_steps": 9}), data_dir=glue_dir)
    assert longer.steps == 9 and len(longer.curve) == 2  # max_steps overrides epochs=1


FAMILY_PLANS = {m.family: Plan(4, (m,)) for m in (
    ModulePlan("serial", (0, 8, 8, 8)), ModulePlan("parallel", (0, 0, 4, 4)), ModulePlan("prefix", (0, 4, 4, 0)),
    ModulePlan("ia3", (1, 1, 1, 1)), ModulePlan("lora", (0, 4, 0, 8), targets="all-linear"),
)}


@pytest.mark.parametrize("family", plan_params(FAMILY_PLANS))
def test_every_family_trains_with_exact_params(tiny_bert_dir, glue_dir, family):
    plan = FAMILY_PLANS[family]
    (module,) = plan.modules
    result = evaluate_plan(tiny_bert_dir, "glue:rte", plan, FAST.model_copy(update={"max_steps": 2}), data_dir=glue_dir)
    assert result.status == "ok", result.failure
    assert result.params == params_of(plan, tiny_bert_dir) > 0
    assert result.steps == 2 and result.no_grad_layers == min(module.layers)


@ADAPTERS
def test_a_union_of_adapter_families_trains(tiny_bert_dir, glue_dir):
    plan = Plan(4, (ModulePlan("serial", (0, 0, 8, 8)), ModulePlan("prefix", (0, 2, 2, 0))))
    result = evaluate_plan(tiny_bert_dir, "glue:sst2", plan, FAST.model_copy(update={"max_steps": 2}), data_dir=glue_dir)
    assert result.status == "ok", result.failure
    assert result.params == params_of(plan, tiny_bert_dir) and result.no_grad_layers == 1


def test_same_plan_data_fidelity_and_seed_give_the_same_metric(tiny_bert_dir, glue_dir):
    fidelity = FAST.model_copy(update={"epochs": 2})
    runs = [evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, fidelity, data_dir=glue_dir) for _ in range(2)]
    CACHE.clear()  # a fresh worker process: reloads everything, same numbers
    runs.append(evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, fidelity, data_dir=glue_dir))
    assert runs[0].metrics == runs[1].metrics == runs[2].metrics and runs[0].curve == runs[1].curve == runs[2].curve
    assert runs[0].split == runs[2].split
    other = evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, fidelity.model_copy(update={"seed": 1}), data_dir=glue_dir)
    assert other.split["heldout_rows_sha1"] != runs[0].split["heldout_rows_sha1"]


def _spy_on_apply(monkeypatch, captured: dict):
    real_apply = evaluate_module.apply_plan

    def spy(model, plan, structure):
        built = real_apply(model, plan, structure)
        captured["model"] = built
        captured["before"] = {n: p.detach().clone() for n, p in built.named_parameters()}
        return built

    monkeypatch.setattr(evaluate_module, "apply_plan", spy)


@pytest.mark.parametrize("plan, adapter_marker", [
    (LORA_TOP, "lora_"),
    pytest.param(Plan(4, (ModulePlan("prefix", (0, 4, 4, 0)),)), "prefix_tuning", marks=ADAPTERS),
])
def test_training_changes_only_adapter_and_head_weights(tiny_bert_dir, glue_dir, monkeypatch, plan, adapter_marker):
    captured: dict = {}
    _spy_on_apply(monkeypatch, captured)
    result = evaluate_plan(tiny_bert_dir, "glue:sst2", plan, FAST, data_dir=glue_dir)
    assert result.status == "ok", result.failure
    model, before = captured["model"], captured["before"]
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert all(adapter_marker in n or "classifier" in n for n in changed), changed
    assert any(adapter_marker in n for n in changed) and any("classifier" in n for n in changed)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == result.params + result.head_params


def test_trials_share_the_cached_frozen_weights_and_never_write_them(tiny_bert_dir, glue_dir, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    CACHE.clear()
    captured: dict = {}
    _spy_on_apply(monkeypatch, captured)
    evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST, data_dir=glue_dir)
    cached = next(v for k, v in zip(CACHE.keys(), CACHE._store.values(), strict=True) if k[0] == "model").model
    on_disk = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    for name, param in cached.named_parameters():
        assert not param.requires_grad
        if not name.startswith("classifier"):
            assert torch.equal(param, on_disk.get_parameter(name)), name  # trained trial left it untouched
    query = captured["model"].base_model.model.bert.encoder.layer[2].attention.self.query.base_layer.weight
    assert query is cached.bert.encoder.layer[2].attention.self.query.weight  # shared, not copied

    def no_disk(*args, **kwargs):
        raise AssertionError("the second trial must not load the model from disk")

    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained", no_disk)
    assert evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST, data_dir=glue_dir).status == "ok"
    CACHE.clear()
    assert CACHE.keys() == []


def test_regression_and_multiclass_file_tasks(tiny_bert_dir, tmp_path):
    words = ["good", "bad", "film", "movie", "great", "boring", "fun", "dull"]
    reg = tmp_path / "scores.csv"
    reg.write_text("a,b,score\n" + "".join(f"{words[i % 8]} {words[(i * 3) % 8]},{words[(i + 1) % 8]},{i % 5}.5\n"
                                             for i in range(60)))
    result = evaluate_plan(tiny_bert_dir, f"file:{reg}?text=a,b&label=score&kind=regression", LORA_TOP,
                           FAST.model_copy(update={"max_steps": 3}))
    assert result.status == "ok", result.failure
    assert result.metric_name == "pearson" and set(result.metrics) == {"pearson", "spearman"}
    assert -1 <= result.metric <= 1 and result.head_params == 32 + 1 and not result.split["stratified"]

    three = tmp_path / "topics.jsonl"
    three.write_text("".join(json.dumps({"text": f"{words[i % 8]} film", "topic": ["x", "y", "z"][i % 3]}) + "\n"
                             for i in range(60)))
    result = evaluate_plan(tiny_bert_dir, f"{three}?label=topic&metric=f1", LORA_TOP, FAST.model_copy(update={"max_steps": 3}))
    assert result.status == "ok" and result.metric_name == "f1" and result.head_params == 32 * 3 + 3
    assert result.split["labels"] == ["x", "y", "z"]


def test_dev_metrics_are_reported_apart_from_the_search_metric(tiny_bert_dir, glue_dir):
    result = evaluate_plan(tiny_bert_dir, "glue:wnli", LORA_TOP, FAST.model_copy(update={"max_steps": 2}),
                           data_dir=glue_dir, evaluate_dev=True)
    assert result.status == "ok", result.failure
    assert {"dev_accuracy", "dev_f1", "dev_matthews", "accuracy"} <= set(result.metrics)
    assert result.split["dev"] == 71 and result.metric == result.metrics["accuracy"]


def test_data_errors_are_structured_failures(tiny_bert_dir, glue_dir, tmp_path):
    result = evaluate_plan(tiny_bert_dir, "glue:stsb", LORA_TOP, FAST, data_dir=glue_dir)  # no STS-B files here
    assert result.status == "failed" and not result.ok and result.failure["kind"] == "data_error"
    assert "STS-B/train.tsv: data file not found" in result.failure["message"]
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,label\n" + "a,1\nb,x\n" * 10)
    result = evaluate_plan(tiny_bert_dir, f"{bad}?kind=regression", LORA_TOP, FAST)
    assert result.failure == {"kind": "data_error",
                              "message": f"{bad}: regression label 'x' is not a number; regression needs numeric labels"}


@pytest.mark.parametrize("error, kind, text", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore"), "oom", "Tried to allocate 2.00 GiB"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: you tried"), "oom",
     "can't allocate memory"),
    (MemoryError(), "oom", "MemoryError"),
    (ValueError("something odd\nsecond line"), "error", "ValueError: something odd"),
])
def test_exceptions_in_a_trial_come_back_with_their_kind(tiny_bert_dir, glue_dir, monkeypatch, error, kind, text):
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(evaluate_module, "_train_and_score", broken)
    result = evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST, data_dir=glue_dir)
    assert result.status == "failed" and result.failure["kind"] == kind and kind in FAILURE_KINDS
    assert text in result.failure["message"] and "\n" not in result.failure["message"]


def test_a_diverging_loss_is_a_nan_loss_failure(tiny_bert_dir, glue_dir):
    huge = FAST.model_copy(update={"learning_rate": 1e30})  # model_copy skips validation (the spec caps lr at 1)
    result = evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, huge, data_dir=glue_dir)
    assert result.status == "failed" and result.failure["kind"] == "nan_loss", result.failure
    assert "lower the learning rate" in result.failure["message"] and result.metric is None
    assert result.params == params_of(LORA_TOP, tiny_bert_dir) and 0 < result.steps < 6


def test_a_bf16_checkpoint_trains_with_fp32_weights_and_the_same_metric(tiny_bert_dir, glue_dir, tmp_path):
    """transformers 5 loads a checkpoint in its own dtype; the evaluator asks for fp32, so a bf16-saved model
    trains like its fp32 original (same weights up to bf16 rounding) and records precision fp32 on a CPU."""
    import shutil

    from transformers import AutoModelForSequenceClassification

    bf16_dir = tmp_path / "bf16"
    shutil.copytree(tiny_bert_dir, bf16_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, dtype=torch.float32)
    model.to(torch.bfloat16).save_pretrained(bf16_dir)
    CACHE.clear()
    result = evaluate_plan(str(bf16_dir), "glue:sst2", LORA_TOP, FAST, data_dir=glue_dir)
    assert result.ok and result.precision == "fp32", result.failure
    data = evaluate_module.task_data("glue:sst2", FAST, glue_dir)
    base = evaluate_module.base_model(str(bf16_dir), data, torch.device("cpu"))
    assert {p.dtype for p in base.model.parameters()} == {torch.float32}
    reference = evaluate_plan(tiny_bert_dir, "glue:sst2", LORA_TOP, FAST, data_dir=glue_dir)
    assert result.metric == pytest.approx(reference.metric, abs=0.1)  # bf16 rounding of the weights only


def test_a_crashed_trial_is_named_by_kind_and_device_on_one_line():
    from autopeft.workers.resources import crash_failure

    cpu = torch.device("cpu")
    kind, message = crash_failure(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 9 GB\nmore"), cpu)
    assert kind == "oom" and message.startswith("out of memory on cpu: RuntimeError: DefaultCPUAllocator")
    assert "\n" not in message
    assert crash_failure(ValueError("bad shape"), cpu) == ("error", "ValueError: bad shape")
