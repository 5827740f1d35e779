"""The user guide's spec reference is the one generated from the spec's field docs."""

from __future__ import annotations

import os
from pathlib import Path

from autopeft.spec import SearchSpec, reference_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_user_guide_holds_the_current_spec_reference():
    assert reference_markdown() in (ROOT / "docs" / "user-guide.md").read_text()


def test_reference_lists_every_leaf_field():
    text = reference_markdown()
    assert "| `budget.max_params_pct` | `1.0` |" in text and "| `model` | required |" in text
    sections = [name for name, f in SearchSpec.model_fields.items() if hasattr(f.annotation, "model_fields")]
    for section in sections:
        for field in SearchSpec.model_fields[section].annotation.model_fields:
            assert f"`{section}.{field}`" in text


def test_user_guide_training_snippet_runs_on_an_export(tmp_path, tiny_bert_dir):
    """The guide's peft snippet, as written, on an exported trial: adapter and the new head train, with
    nothing set by hand (the export carries task_type and modules_to_save)."""
    import re

    from autopeft.export import export_plan
    from autopeft.heads import trial_head
    from autopeft.search_spaces import count_plan, load_config, structure_of
    from autopeft.search_spaces.plan import Plan

    guide = (ROOT / "docs" / "user-guide.md").read_text()
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", guide, re.S) if "PeftConfig.from_pretrained" in b)
    structure = structure_of(load_config(tiny_bert_dir))
    plan = Plan.from_dict({"format": "autopeft-plan/v1", "num_layers": structure.num_layers, "modules": [
        {"family": "lora", "sizes": [4, 0, 2, 0], "targets": "qv", "alpha": 8.0}]})
    head = trial_head("glue:sst2", {"head_params": 2 * 32 + 2, "head_modules": ["classifier"]}, load_config(tiny_bert_dir))
    export_plan(plan, structure, "peft", tmp_path / "adapter", model=tiny_bert_dir, head=head)
    assert "config.task_type" not in snippet and "modules_to_save =" not in snippet
    scope: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(snippet, "user-guide.md", "exec"), scope)
    finally:
        os.chdir(cwd)
    model = scope["model"]
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    adapter = sum(v for n, v in trainable.items() if "lora_" in n)
    head = sum(v for n, v in trainable.items() if "classifier" in n)
    assert adapter == count_plan(plan, structure).params
    assert head == 2 * 32 + 2  # hidden 32 -> 2 labels, the head trains too
    assert sum(trainable.values()) == adapter + head
