"""T5 and decoder LLMs through the real CLI: `spaces show` on config-only directories (T5, Llama with
llm-lora), a T5 search end to end, llm-lora's peft export, and the one line for a space that trains nothing."""

from __future__ import annotations

import json

import pytest
import torch
from optuna.trial import TrialState
from typer.testing import CliRunner

from autopeft.cli import app
from autopeft.export import export_plan
from autopeft.search_spaces import ModulePlan, Plan, count_plan, load_config, load_space, structure_of
from autopeft.search_spaces.counting import check_buildable
from autopeft.search_spaces.model_structure import LinearLayer, ModelStructure
from autopeft.store import load_study, open_db
from tests.models import TINY_CONFIGS, TINY_LM_CONFIGS
from tests.tiny_model import _save_tokenizer

runner = CliRunner()


def _show(space: str, config, tmp_path) -> dict:
    config.save_pretrained(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
    result = runner.invoke(app, ["spaces", "show", space, "--model", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_spaces_show_lora_on_t5_counts_encoder_and_decoder_layers(tmp_path):
    info = _show("lora", TINY_LM_CONFIGS["t5"][0](), tmp_path)  # 2 encoder + 3 decoder blocks, d_model 32
    assert info["num_layers"] == 5
    assert info["stacks"] == [{"path": "encoder.block", "layers": [0, 1]}, {"path": "decoder.block", "layers": [2, 4]}]
    assert info["min_params"] == 2 * 2 * (32 + 32)  # rank 2 on q and v of one encoder block
    # largest: rank 16 on every linear layer; encoder 4 attention + wi/wo, decoder 8 attention + wi/wo
    enc, dec = 4 * 16 * 64 + 2 * 16 * (32 + 48), 8 * 16 * 64 + 2 * 16 * (32 + 48)
    assert info["max_params"] == 2 * enc + 3 * dec
    text = runner.invoke(app, ["spaces", "show", "lora", "--model", str(tmp_path)])
    assert text.exit_code == 0 and "5 layers: encoder 0-1, decoder 2-4" in text.output, text.output
    assert "smallest: 256 params" in text.output


def test_spaces_show_attention_on_t5_is_not_zero(tmp_path):
    (tmp_path / "attention.yaml").write_text(
        "name: t5-attention\nmodules:\n  - {family: lora, sizes: [0, 2], per_layer: true, targets: [attention]}\n")
    info = _show(str(tmp_path / "attention.yaml"), TINY_LM_CONFIGS["t5"][0](), tmp_path / "model")
    assert info["min_params"] == 4 * 2 * (32 + 32)  # q/k/v/o of one encoder block (SelfAttention)
    assert info["max_params"] == 2 * 4 * 2 * 64 + 3 * 8 * 2 * 64  # decoders add EncDecAttention


def test_spaces_show_llm_lora_on_a_config_only_llama(tmp_path):
    info = _show("llm-lora", TINY_CONFIGS["llama"](), tmp_path)  # hidden 32, 4 heads, 2 kv heads, inter 64
    assert info["num_layers"] == 4 and info["num_dimensions"] == 4 + 4 + 3
    attn = (32 + 32) + (32 + 16) + (32 + 16) + (32 + 32)  # q, k, v, o per unit rank
    mlp = 2 * (32 + 64) + (64 + 32)  # gate, up, down
    assert info["min_params"] == 4 * mlp if 4 * mlp < 4 * attn else 4 * attn
    dora = 32 + 16 + 16 + 32 + 64 + 64 + 32  # DoRA magnitudes: each layer's output size
    assert info["max_params"] == 4 * (32 * (attn + mlp) + dora)
    assert info["num_valid_configurations"] == 3 * 2 * 2 * (5**8 - 1)


def test_llm_lora_peft_export_loads_with_the_recorded_count(tmp_path):
    from peft import PeftConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = TINY_CONFIGS["llama"]()
    structure = structure_of(config)
    space = load_space("llm-lora", structure)
    params = {**{f"attn.size.{i}": r for i, r in enumerate((4, 0, 8, 8))},
              **{f"mlp.size.{i}": r for i, r in enumerate((16, 16, 0, 4))},
              "attn.alpha": 32, "attn.use_dora": True, "attn.use_rslora": False}
    plan = space.decode(params)
    assert [m.targets for m in plan.modules] == ["attention", "mlp"]
    assert all(m.option("use_dora") and m.alpha == 32 for m in plan.modules)
    export_plan(plan, structure, "peft", tmp_path / "out", model="tiny-llama")
    loaded = PeftConfig.from_pretrained(str(tmp_path / "out"))
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_config(config), loaded)
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert sum(trainable.values()) == count_plan(plan, structure).params
    assert not any(".layers.1.self_attn" in n or ".layers.2.mlp" in n for n in trainable)
    assert trainable["base_model.model.model.layers.0.mlp.up_proj.lora_A.default.weight"] == 16 * 32
    assert trainable["base_model.model.model.layers.3.self_attn.q_proj.lora_A.default.weight"] == 8 * 32


def test_two_lora_modules_on_overlapping_groups_are_one_line():
    structure = structure_of(TINY_CONFIGS["llama"]())
    plan = Plan(4, (ModulePlan("lora", (4, 0, 0, 0), targets="attention"),
                    ModulePlan("lora", (4, 0, 0, 0), targets="all-linear")))
    with pytest.raises(ValueError, match="both target self_attn.q_proj in layer 0; give each module its own"):
        count_plan(plan, structure)
    two = Plan(4, (ModulePlan("lora", (4, 0, 0, 0), targets="attention"), ModulePlan("lora", (4, 0, 0, 0), targets="mlp")))
    with pytest.raises(ValueError, match="adapters cannot express lora on several target groups; use the peft format"):
        check_buildable(two, "adapters")
    mixed = Plan(4, (two.modules[0], ModulePlan("lora", (4, 0, 0, 0), targets="mlp", options={"use_dora": True})))
    with pytest.raises(ValueError, match="lora: its modules on attention and mlp differ in use_dora, use_rslora; peft"):
        export_plan(mixed, structure, "peft", "/nonexistent")
    with pytest.raises(ValueError, match="appears twice on the same targets"):
        Plan(4, (ModulePlan("lora", (4, 0, 0, 0)), ModulePlan("lora", (0, 4, 0, 0))))


def test_a_t5_search_runs_end_to_end(tmp_path, glue_dir, one_torch_thread):
    from transformers import T5Config, T5ForSequenceClassification

    vocab = _save_tokenizer(tmp_path / "t5", None)
    torch.manual_seed(0)
    T5ForSequenceClassification(T5Config(vocab_size=vocab, d_model=32, d_ff=48, num_layers=2, num_decoder_layers=2,
                                         num_heads=4, d_kv=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=3,
                                         num_labels=2)).save_pretrained(tmp_path / "t5")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    result = runner.invoke(app, ["search", "--model", str(tmp_path / "t5"), "--task", "glue:sst2", "--data-dir", glue_dir,
                                 "--space", "lora", "--trials", "2", "--train-size", "32", "--max-steps", "2",
                                 "--budget-pct", "5", "--storage", url, "--study", "t5", "--executor", "inline",
                                 "--seed", "0"])
    assert result.exit_code == 0, result.output
    trials = load_study(open_db(url), "t5").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    structure = structure_of(load_config(str(tmp_path / "t5")))
    for t in trials:  # the recorded count is the plan's, over 2 encoder + 2 decoder layers
        plan = Plan.from_dict(t.user_attrs["plan"])
        assert plan.num_layers == 4 and t.user_attrs["result"]["params"] == count_plan(plan, structure).params


def test_a_space_whose_smallest_configuration_trains_nothing_is_one_line():
    from autopeft.optim import make_sampler

    # A model whose blocks hold no layer the qv group knows: the lora space's smallest point has 0 parameters.
    structure = ModelStructure(model_type="toy", layers_path="blocks", num_layers=2, hidden_size=8,
                               intermediate_size=8, num_attention_heads=2, num_kv_heads=2, head_dim=4,
                               base_params=1000, linears=(LinearLayer("mix.a", 8, 8),))
    space = load_space("lora", structure)
    with pytest.raises(ValueError, match="expected a smallest configuration with trainable parameters, got 0"):
        make_sampler("mobo", space, budget_pct=5.0)


def test_dashboard_rows_keep_both_lora_modules_of_an_llm_lora_plan():
    from autopeft.dashboard.data import plan_info

    plan = Plan(5, (ModulePlan("lora", (4, 0, 8, 8, 0), targets="attention"),
                    ModulePlan("lora", (0, 16, 0, 0, 4), targets="mlp"))).to_dict()
    info = plan_info(plan)
    assert info.families == ["lora:attention", "lora:mlp"] and info.num_layers == 5
    assert info.sizes == {"lora:attention": [4, 0, 8, 8, 0], "lora:mlp": [0, 16, 0, 0, 4]}
    assert info.options["lora:mlp"]["targets"] == "mlp"
