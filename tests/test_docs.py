"""The user guide's spec reference is the one generated from the spec's field docs."""

from __future__ import annotations

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
