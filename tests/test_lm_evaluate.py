"""The language-model evaluator: tiny random Llama and T5 models learn synthetic tasks; bad input is one line
before any training."""

from __future__ import annotations

import math

import pytest
import torch

from autopeft.backends import apply_plan
from autopeft.search_spaces import ModelError, ModulePlan, Plan, count_plan, load_config, structure_of
from autopeft.spec import FidelitySpec, SpecError, build_spec
from autopeft.workers import CACHE, check_task, evaluate_plan
from autopeft.workers.lm_encode import encode_causal
from autopeft.workers.lm_evaluate import lm_task_data
from autopeft.workers.lm_loss import score
from autopeft.workers.lm_models import check_precision
from autopeft.workers.tasks import DataError
from tests.tiny_lm import CHAT_TEMPLATE, minilm_tokenizer, reversal_rows, save_tiny_llama, save_tiny_t5, write_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOP3 = Plan(4, (ModulePlan("lora", (0, 8, 8, 8), targets="all-linear"),))
FAST = FidelitySpec(train_size=256, eval_size=32, batch_size=16, learning_rate=1e-2, max_seq_length=64, max_steps=60)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("llama"), chat_template=CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def llama_no_template(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("llama-plain"))


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    return save_tiny_t5(tmp_path_factory.mktemp("t5"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm-data")
    constant = [{"messages": r["messages"][:1] + [{"role": "assistant", "content": "yes"}]}
                for r in reversal_rows(200, seed=2, shape="chat")]
    return {"pairs": write_jsonl(root / "rev.jsonl", reversal_rows(300)) + "?kind=causal-lm",
            "chat": write_jsonl(root / "chat.jsonl", reversal_rows(100, shape="chat")) + "?kind=causal-lm",
            "yes": write_jsonl(root / "yes.jsonl", constant) + "?kind=causal-lm&metric=exact_match",
            "s2s": write_jsonl(root / "rev_s2s.jsonl", reversal_rows(300, shape="seq2seq")) + "?kind=seq2seq",
            "dev": write_jsonl(root / "rev.jsonl", reversal_rows(300)) + f"?kind=causal-lm&dev={root / 'dev.jsonl'}",
            "dev_file": write_jsonl(root / "dev.jsonl", reversal_rows(20, seed=9))}


def test_a_decoder_learns_the_reversal_task_on_completion_tokens(llama, data):
    before = evaluate_plan(llama, data["pairs"], TOP3, FAST.model_copy(update={"max_steps": 1}))
    after = evaluate_plan(llama, data["pairs"], TOP3, FAST)
    assert before.ok and after.ok, (before.failure, after.failure)
    assert after.metric_name == "eval_loss" and after.metric == after.metrics["eval_loss"]
    assert after.metric < 0.8 * before.metric  # held-out token-mean cross-entropy falls
    assert after.metrics["token_accuracy"] > before.metrics["token_accuracy"] + 0.1
    assert after.metrics["perplexity"] == pytest.approx(math.exp(after.metric))
    assert after.params == count_plan(TOP3, structure_of(load_config(llama))).params and after.head_params == 0
    assert after.no_grad_layers == 1 and after.steps == 60
    assert len(after.curve) == 4 and after.curve[-1] == after.metric < after.curve[0]  # 16 steps a pass, 4 passes
    assert after.truncated == {"train": 0, "train_dropped": 0, "heldout": 0, "heldout_dropped": 0}
    assert after.precision == "fp32" and after.device == "cpu"
    assert after.split["train"] == 256 and after.split["heldout"] == 30 and after.split["shapes"] == ["pair"]


def test_held_out_loss_is_the_token_mean_of_the_models_own_loss(llama, data):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(llama).eval()
    tok = minilm_tokenizer()
    enc = encode_causal(tok, lm_task_data(data["pairs"], FAST).heldout, 64, "heldout")
    total, tokens = 0.0, 0
    with torch.no_grad():
        for ids, labels in zip(enc.ids, enc.labels, strict=True):
            n = sum(1 for y in labels[1:] if y != -100)
            total += n * model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss.item()
            tokens += n
    for head_only in (True, False):  # LM head on target positions only, or the model's own full logits
        metrics = score(model, enc, 8, tok.pad_token_id, torch.device("cpu"), head_only)
        assert metrics["eval_loss"] == pytest.approx(total / tokens, rel=1e-5)
        assert 0.0 <= metrics["token_accuracy"] <= 1.0


def test_exact_match_of_greedy_answers_on_chat_rows(llama, data):
    fidelity = FAST.model_copy(update={"train_size": 160, "max_steps": 30, "max_new_tokens": 4, "epochs": 1})
    result = evaluate_plan(llama, data["yes"], TOP3, fidelity)
    assert result.ok, result.failure
    assert result.metric_name == "exact_match" and result.metric >= 0.9  # "yes" then the end token (a broken path: 0)
    assert result.metrics["eval_loss"] < 0.5 and result.split["shapes"] == ["chat"]


def test_epochs_make_a_curve_and_dev_is_scored_on_request(llama, data):
    fidelity = FAST.model_copy(update={"train_size": 64, "max_steps": None, "epochs": 2})
    result = evaluate_plan(llama, data["dev"], TOP3, fidelity, evaluate_dev=True)
    assert result.ok, result.failure
    assert result.steps == 8 and len(result.curve) == 2 and result.curve[-1] == result.metric
    assert {"dev_eval_loss", "dev_perplexity", "dev_token_accuracy"} <= set(result.metrics)
    assert result.truncated["dev"] == 0


def test_gradient_checkpointing_trains_the_same_model(llama, data):
    fidelity = FAST.model_copy(update={"max_steps": 5})
    plain = evaluate_plan(llama, data["pairs"], TOP3, fidelity)
    checkpointed = evaluate_plan(llama, data["pairs"], TOP3, fidelity.model_copy(update={"gradient_checkpointing": True}))
    assert plain.ok and checkpointed.ok, checkpointed.failure
    assert checkpointed.metric == pytest.approx(plain.metric, rel=1e-4)


def test_t5_learns_with_lora_on_its_encoder_blocks(t5, data):
    # T5's layers are numbered encoder first (0-3), then decoder (4-7): this plan adapts encoder blocks 1-3.
    plan = Plan(8, (ModulePlan("lora", (0, 8, 8, 8, 0, 0, 0, 0), targets="all-linear"),))
    before = evaluate_plan(t5, data["s2s"], plan, FAST.model_copy(update={"max_steps": 1}))
    after = evaluate_plan(t5, data["s2s"], plan, FAST.model_copy(update={"max_new_tokens": 8}))
    assert before.ok and after.ok, (before.failure, after.failure)
    assert after.metric < 0.92 * before.metric and 0.0 <= after.metrics["exact_match"] <= 1.0
    assert after.no_grad_layers == 0  # the shared embeddings run again in the decoder: no no-grad bottom
    # The count is exact, and only encoder blocks hold LoRA.
    from transformers import T5ForConditionalGeneration

    structure = structure_of(load_config(t5))
    model = apply_plan(T5ForConditionalGeneration.from_pretrained(t5), plan, structure, task_type="SEQ_2_SEQ_LM")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == after.params
    assert trainable and all(".encoder.block." in n for n in trainable)


def _no_model_loaded() -> bool:
    return not any(k[0] == "lm-model" for k in CACHE.keys())


def test_an_encoder_only_model_for_causal_lm_is_one_line_before_training(tiny_bert_dir, data):
    CACHE.clear()
    with pytest.raises(ModelError, match="bert is an encoder-only model, with no causal language-model head"):
        check_task(tiny_bert_dir, data["pairs"], FAST)
    result = evaluate_plan(tiny_bert_dir, data["pairs"], TOP3, FAST)
    assert result.failure["kind"] == "error" and "encoder-only" in result.failure["message"] and result.steps == 0
    assert _no_model_loaded()


def test_the_model_kind_must_match_the_task_kind(llama, t5, data):
    with pytest.raises(ModelError, match="kind=seq2seq needs an encoder-decoder model \\(T5, BART\\), and llama is not one"):
        check_task(llama, data["s2s"], FAST)
    with pytest.raises(ModelError, match="t5 is an encoder-decoder model; use kind=seq2seq"):
        check_task(t5, data["pairs"], FAST)


def test_quantization_on_a_cpu_is_one_line_before_training(llama, data):
    CACHE.clear()
    four_bit = FAST.model_copy(update={"quantization": "4bit"})
    result = evaluate_plan(llama, data["pairs"], TOP3, four_bit, device="cpu")
    assert result.status == "failed" and result.steps == 0 and _no_model_loaded()
    assert result.failure["message"] == ("fidelity.quantization: 4bit needs a CUDA GPU (bitsandbytes), and this trial "
                                         "runs on cpu; set quantization: none")
    with pytest.raises(ModelError, match="8bit needs a CUDA GPU"):
        check_task(llama, data["pairs"], FAST.model_copy(update={"quantization": "8bit"}), device="cpu")
    check_precision(FAST, torch.device("cpu"))  # none: fine anywhere


def test_exact_match_without_max_new_tokens_is_one_line(llama, data):
    with pytest.raises(DataError, match="metric exact_match compares generated answers, so it needs fidelity.max_new_tokens"):
        check_task(llama, data["yes"], FAST)
    result = evaluate_plan(llama, data["yes"], TOP3, FAST)
    assert result.failure["kind"] == "data_error" and result.steps == 0


def test_exact_match_on_text_rows_is_one_line(llama, tmp_path):
    task = write_jsonl(tmp_path / "text.jsonl", [{"text": f"row {i} of plain text"} for i in range(20)])
    with pytest.raises(DataError, match="metric exact_match needs rows with an answer"):
        check_task(llama, f"{task}?kind=causal-lm&metric=exact_match", FAST.model_copy(update={"max_new_tokens": 4}))


def test_chat_rows_with_a_tokenizer_without_a_template_are_one_line(llama_no_template, data):
    CACHE.clear()
    with pytest.raises(DataError, match=r"chat.jsonl\?kind=causal-lm \(train split\): messages rows need a chat template"):
        check_task(llama_no_template, data["chat"], FAST)
    result = evaluate_plan(llama_no_template, data["chat"], TOP3, FAST)
    assert result.failure["kind"] == "data_error" and _no_model_loaded()


def test_rows_all_longer_than_max_seq_length_are_one_line(llama, data):
    with pytest.raises(DataError, match="every one of the 256 rows is longer than fidelity.max_seq_length=4 tokens"):
        check_task(llama, data["pairs"], FAST.model_copy(update={"max_seq_length": 4}))


def test_the_new_fidelity_fields_validate_with_field_paths():
    spec = build_spec({"model": "m", "fidelity": {"max_new_tokens": 16, "gradient_checkpointing": True, "quantization": "4bit"}})
    assert (spec.fidelity.max_new_tokens, spec.fidelity.gradient_checkpointing, spec.fidelity.quantization) == (16, True, "4bit")
    with pytest.raises(SpecError, match='fidelity.quantization: expected none, 4bit or 8bit, got "2bit"'):
        build_spec({"model": "m", "fidelity": {"quantization": "2bit"}})
    with pytest.raises(SpecError, match="fidelity.max_new_tokens: expected an integer in \\(0, 4096\\], got 0"):
        build_spec({"model": "m", "fidelity": {"max_new_tokens": 0}})
