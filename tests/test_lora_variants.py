"""The `lora-variants` space end to end: listed, shown on a config-only Llama, searched by the real CLI on a
tiny Llama, and its DoRA / LoHa / LoKr plans exported for peft with the recorded trainable count."""

from __future__ import annotations

import json

import pytest
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner

from autopeft.cli import app
from autopeft.store import load_study, open_db
from tests.test_cli_spaces import show_json

runner = CliRunner()


def test_spaces_lists_lora_variants_with_its_families():
    rows = json.loads(runner.invoke(app, ["spaces", "--format", "json"]).output)
    row = next(r for r in rows if r["name"] == "lora-variants")
    assert row["families"] == ["lora", "loha", "lokr"]


def test_show_lora_variants_on_a_config_only_llama_directory(tmp_path):
    info = show_json("lora-variants", "llama", tmp_path)
    assert set(info["dimensions"]) == {*(f"lowrank.size.{i}" for i in range(4)), "lowrank.family", "lowrank.targets",
                                       "lowrank.alpha", "lowrank.use_dora", "lowrank.use_rslora"}
    assert info["dimensions"]["lowrank.family"] == ["lora", "loha", "lokr"]
    # 3 families x (5^4 - 1) per-layer ranks x 3 targets x 3 alphas x DoRA on/off x rsLoRA on/off
    assert info["num_valid_configurations"] == 3 * (5**4 - 1) * 3 * 3 * 2 * 2
    # LoKr r2 on q_proj (32 -> 32: w1 4x4 full, w2 rank-2 2*(8+8)) and v_proj (32 -> 16: 4x4, 2*(4+8)) of one layer
    assert (info["min_params"], info["min_plan"]) == (16 + 32 + 16 + 24, "lokr r2@L0 qv a8")
    text = runner.invoke(app, ["spaces", "show", "lora-variants", "--model", str(tmp_path)])
    assert text.exit_code == 0 and "lowrank.family" in text.output and "Traceback" not in text.output


def test_lora_variants_on_gpt2_leaves_out_the_families_conv1d_cannot_hold(tmp_path):
    info = show_json("lora-variants", "gpt2", tmp_path)
    assert "lowrank.family" not in info["dimensions"] and info["min_plan"].startswith("lora ")
    assert info["num_valid_configurations"] == (5**4 - 1) * 3 * 3 * 2 * 2


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory):
    from tests.tiny_model import save_tiny_llama

    return str(save_tiny_llama(tmp_path_factory.mktemp("tiny-llama")))


def test_search_on_lora_variants_stores_dora_loha_lokr_plans_that_export_for_peft(tmp_path, tiny_llama_dir, glue_dir):
    from peft import PeftConfig, get_peft_model
    from transformers import AutoModel

    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = {"model": tiny_llama_dir, "task": "glue:sst2", "data_dir": glue_dir, "space": "lora-variants",
            "budget": {"max_params_pct": 100},
            "fidelity": {"train_size": 32, "eval_size": 32, "max_steps": 2, "max_seq_length": 32},
            "optimizer": {"seed": 3}, "execution": {"trials": 4, "executor": "inline"},
            "storage": {"url": url, "study": "v"}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    result = runner.invoke(app, ["search", str(tmp_path / "spec.yaml")])
    assert result.exit_code == 0, result.output
    trials = load_study(open_db(url), "v").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    modules = {t.number: t.user_attrs["plan"]["modules"][0] for t in trials}
    # the seeded space-filling design covers the three families, and LoRA with DoRA (if the design changes, pick a seed)
    wanted = {"dora": [n for n, m in modules.items() if m["family"] == "lora" and m.get("use_dora")],
              "loha": [n for n, m in modules.items() if m["family"] == "loha"],
              "lokr": [n for n, m in modules.items() if m["family"] == "lokr"]}
    assert all(wanted.values()), modules
    for kind, numbers in wanted.items():
        number = numbers[0]
        out = tmp_path / f"adapter-{kind}"
        exported = runner.invoke(app, ["export", "v", "--trial", str(number), "--format", "peft", "--out", str(out),
                                       "--storage", url])
        assert exported.exit_code == 0, exported.output
        config = PeftConfig.from_pretrained(str(out))
        assert type(config).__name__ == {"dora": "LoraConfig", "loha": "LoHaConfig", "lokr": "LoKrConfig"}[kind]
        model = get_peft_model(AutoModel.from_pretrained(tiny_llama_dir), config)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert trainable == trials[number].user_attrs["params"] > 0
