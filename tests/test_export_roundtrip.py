"""An export reproduces the trial: loaded the standard way it trains the adapter and the head the trial
trained (trainable = params + head_params), and a save / reload round trip gives identical logits."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from autopeft.backends import trainable_parameters
from autopeft.export import export_plan
from autopeft.heads import sequence_head, trial_head
from autopeft.search_spaces import ModulePlan, Plan, count_plan, structure_of
from tests.extras import ADAPTERS
from tests.models import TINY_CONFIGS, TINY_LM_CONFIGS

# name → (config factory, task, family); the task decides the head and peft's task type
CASES = {
    "bert-sst2-lora": (TINY_CONFIGS["bert"], "glue:sst2", "lora"),
    "roberta-regression-ia3": (TINY_CONFIGS["roberta"], "scores.tsv?kind=regression", "ia3"),
    "llama-rte-lora": (TINY_CONFIGS["llama"], "glue:rte", "lora"),
    "llama-causal-lm-lora": (TINY_CONFIGS["llama"], "sft.jsonl?kind=causal-lm", "lora"),
    "t5-seq2seq-lora": (TINY_LM_CONFIGS["t5"][0], "pairs.jsonl?kind=seq2seq", "lora"),
}
TASK_TYPES = {"glue:sst2": "SEQ_CLS", "glue:rte": "SEQ_CLS", "scores.tsv?kind=regression": "SEQ_CLS",
              "sft.jsonl?kind=causal-lm": "CAUSAL_LM", "pairs.jsonl?kind=seq2seq": "SEQ_2_SEQ_LM"}


def _plan(structure, family: str) -> Plan:
    sizes = tuple(2 if i % 2 == 0 else 0 for i in range(structure.num_layers))
    if family == "ia3":
        return Plan(structure.num_layers, (ModulePlan("ia3", tuple(int(bool(s)) for s in sizes)),))
    return Plan(structure.num_layers, (ModulePlan(family, sizes, alpha=8),))


def _save_base(tmp_path, config, head) -> str:
    """A 'pretrained' checkpoint without a task head (its head is created fresh on each load, as for a
    real classification run)."""
    torch.manual_seed(0)
    cls = transformers.AutoModel if head.task_type == "SEQ_CLS" else getattr(transformers, head.model_class)
    path = tmp_path / "base"
    cls.from_config(config).save_pretrained(path)
    return str(path)


def _load(head, path: str, seed: int):
    torch.manual_seed(seed)  # a different fresh head each load
    cls = getattr(transformers, head.model_class)
    kwargs = {"num_labels": head.num_labels} if head.num_labels else {}
    return cls.from_pretrained(path, **kwargs).eval()


def _inputs(head):
    ids = torch.tensor([[5, 17, 33, 8, 2, 1], [9, 4, 61, 70, 3, 3]])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if head.task_type == "SEQ_2_SEQ_LM":
        inputs["decoder_input_ids"] = ids[:, :3]
    return inputs


def _train(model) -> None:
    """Stand-in for training: move every trainable weight (adapter and head alike)."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.5 * torch.randn(p.shape, generator=generator))


def _trial(case: str):
    factory, task, family = CASES[case]
    config = factory()
    if task.startswith("glue:") or "classification" in task or "regression" in task:
        config.pad_token_id = config.pad_token_id if config.pad_token_id is not None else 0
    structure = structure_of(config)
    plan = _plan(structure, family)
    modules, head_params = sequence_head(config, 1 if "regression" in task else 2)
    result = {"head_params": head_params, "head_modules": list(modules)} if TASK_TYPES[task] == "SEQ_CLS" else \
        {"head_params": 0}
    return config, structure, plan, trial_head(task, result, config), task


@pytest.mark.parametrize("case", sorted(CASES))
def test_peft_export_trains_and_saves_what_the_trial_trained(tmp_path, case):
    from peft import PeftConfig, PeftModel, get_peft_model

    config, structure, plan, head, task = _trial(case)
    base = _save_base(tmp_path, config, head)
    export_plan(plan, structure, "peft", tmp_path / "export", model=base, head=head)

    loaded = PeftConfig.from_pretrained(str(tmp_path / "export"))  # the standard way, nothing set by hand
    assert loaded.task_type == TASK_TYPES[task]
    assert (loaded.modules_to_save or None) == (list(head.modules) or None)
    model = get_peft_model(_load(head, loaded.base_model_name_or_path, seed=1), loaded)
    assert trainable_parameters(model) == count_plan(plan, structure).params + head.params
    assert (head.params > 0) == (TASK_TYPES[task] == "SEQ_CLS")

    _train(model)
    model.eval()
    with torch.no_grad():
        before = model(**_inputs(head)).logits
    model.save_pretrained(tmp_path / "trained")
    reloaded = PeftModel.from_pretrained(_load(head, base, seed=2), str(tmp_path / "trained")).eval()
    with torch.no_grad():
        after = reloaded(**_inputs(head)).logits
    assert torch.equal(before, after)


def test_without_the_head_the_reloaded_classifier_is_a_new_one(tmp_path):
    """What the export did before: no task type, no modules_to_save; the head is lost on reload."""
    from peft import PeftConfig, PeftModel, get_peft_model

    config, structure, plan, head, _ = _trial("bert-sst2-lora")
    base = _save_base(tmp_path, config, head)
    export_plan(plan, structure, "peft", tmp_path / "export", model=base)  # no head
    model = get_peft_model(_load(head, base, seed=1), PeftConfig.from_pretrained(str(tmp_path / "export")))
    assert trainable_parameters(model) == count_plan(plan, structure).params  # the head stayed frozen
    _train(model)
    model.eval()
    model.save_pretrained(tmp_path / "trained")
    reloaded = PeftModel.from_pretrained(_load(head, base, seed=2), str(tmp_path / "trained")).eval()
    with torch.no_grad():
        assert not torch.equal(model(**_inputs(head)).logits, reloaded(**_inputs(head)).logits)


ADAPTERS_PLANS = {
    "serial": lambda n: Plan(n, (ModulePlan("serial", tuple(8 if i % 2 else 0 for i in range(n))),)),
    "parallel+prefix+lora": lambda n: Plan(n, (ModulePlan("parallel", (4,) * n), ModulePlan("prefix", (2,) * n),
                                               ModulePlan("lora", (4,) * n, alpha=8))),
}


@ADAPTERS
@pytest.mark.parametrize("plan_name", sorted(ADAPTERS_PLANS))
def test_adapters_export_names_the_head_and_the_round_trip_keeps_the_logits(tmp_path, plan_name):
    import adapters

    config, structure, _, head, _ = _trial("bert-sst2-lora")
    plan = ADAPTERS_PLANS[plan_name](structure.num_layers)
    base = _save_base(tmp_path, config, head)
    path = export_plan(plan, structure, "adapters", tmp_path / "export", model=base, head=head)
    stated = json.loads(path.read_text())["head"]
    assert stated == {"task_type": "SEQ_CLS", "model_class": "AutoModelForSequenceClassification",
                      "modules": ["classifier"], "params": 2 * 32 + 2, "num_labels": 2}

    def build(seed: int):
        model = getattr(transformers, stated["model_class"]).from_pretrained(base, num_labels=stated["num_labels"])
        torch.manual_seed(seed)
        model.classifier.reset_parameters()  # a fresh head, as a new run gets
        adapters.init(model)
        return model

    model = build(seed=1)
    model.add_adapter("exported", config=str(path))
    model.train_adapter("exported")
    for name in stated["modules"]:  # what the file says the trial trained besides the adapter
        model.get_submodule(name).requires_grad_(True)
    assert trainable_parameters(model) == count_plan(plan, structure).params + stated["params"]

    _train(model)
    model.eval()
    with torch.no_grad():
        before = model(**_inputs(head)).logits
    model.save_adapter(str(tmp_path / "trained"), "exported")  # with the static head (AdapterHub saves it)
    reloaded = build(seed=2)
    reloaded.load_adapter(str(tmp_path / "trained"), set_active=True)
    reloaded.eval()
    with torch.no_grad():
        assert torch.equal(before, reloaded(**_inputs(head)).logits)
