"""Language-model tasks: task options, row shapes, completion-only loss masks, chat templates, truncation, metrics."""

from __future__ import annotations

import math

import pytest

from autopeft.workers.lm_data import load_lm_task_data, read_lm_examples
from autopeft.workers.lm_encode import IGNORE, encode_causal, encode_seq2seq
from autopeft.workers.lm_tasks import LMTaskSpec, lm_kind, resolve_lm_task
from autopeft.workers.metrics import METRIC_DIRECTIONS, exact_match, lm_metrics, normalize_answer
from autopeft.workers.tasks import DataError, resolve_task
from tests.tiny_lm import CHAT_TEMPLATE, minilm_tokenizer, reversal_rows, write_jsonl


@pytest.fixture(scope="module")
def tok():
    return minilm_tokenizer(CHAT_TEMPLATE)


def examples(tmp_path, rows, kind="causal-lm", options=""):
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    return read_lm_examples(resolve_lm_task(f"{path}?kind={kind}{options}").train_source,
                            resolve_lm_task(f"{path}?kind={kind}{options}"))


def test_the_task_syntax_names_kind_metric_columns_and_dev(tmp_path):
    task = resolve_task("file:data/sft.jsonl?kind=causal-lm")
    assert isinstance(task, LMTaskSpec) and task.kind == "causal-lm" and task.metric == "eval_loss"
    assert task.metrics == ("eval_loss", "perplexity", "token_accuracy", "exact_match")
    s2s = resolve_task("pairs.csv?kind=seq2seq&input=question&target=answer&metric=exact_match&dev=dev.csv")
    assert (s2s.kind, s2s.input_column, s2s.target_column, s2s.metric, s2s.file_format) == (
        "seq2seq", "question", "answer", "exact_match", "csv")
    assert str(s2s.dev_source) == "dev.csv"
    assert lm_kind("x.jsonl?kind=causal-lm") == "causal-lm" and lm_kind("x.csv?kind=regression") is None
    assert lm_kind("glue:sst2") is None and lm_kind("x.jsonl") is None


@pytest.mark.parametrize("task, message", [
    ("x.jsonl?kind=causal-lm&metric=accuracy", "metric: expected one of eval_loss, perplexity, token_accuracy, exact_match"),
    ("x.jsonl?kind=causal-lm&label=y", "unknown option(s) label for a language-model task"),
    ("x.jsonl?kind=causal-lm&input=q", "input=/target= name seq2seq columns"),
    ("x.txt?kind=causal-lm", "expected a .jsonl, .csv or .tsv file"),
    ("x.jsonl?kind=causal-lm&dev=d.csv", "dev: expected a jsonl file"),
    ("x.jsonl?kind=lm", "kind: expected classification, regression, causal-lm or seq2seq, got 'lm'"),
])
def test_task_mistakes_are_one_line(task, message):
    with pytest.raises(DataError) as err:
        resolve_task(task)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_prompt_completion_rows_train_on_the_completion_and_the_end_token_only(tmp_path, tok):
    enc = encode_causal(tok, examples(tmp_path, [{"prompt": "reverse: red cat =", "completion": " cat red"}]), 64, "t")
    ids, labels = enc.ids[0], enc.labels[0]
    assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "reverse", ":", "red", "cat", "=", "cat", "red", "[SEP]"]
    assert labels == [IGNORE] * 6 + ids[6:]  # BOS and prompt masked; completion and end token trained
    assert enc.prompts[0] == ids[:6] and enc.references[0] == " cat red"
    assert enc.target_tokens == 3 and enc.truncated == enc.dropped == 0


def test_chat_rows_train_on_assistant_turns_rendered_with_the_template(tmp_path, tok):
    rows = [{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                          {"role": "assistant", "content": "hello"}, {"role": "user", "content": "colour?"},
                          {"role": "assistant", "content": "blue sky"}]}]
    enc = encode_causal(tok, examples(tmp_path, rows), 64, "t")
    tokens = tok.convert_ids_to_tokens(enc.ids[0])
    trained = [t for t, y in zip(tokens, enc.labels[0], strict=True) if y != IGNORE]
    assert trained == ["hello", "[SEP]", "blue", "sky", "[SEP]"]
    assert tokens[:3] == ["system", ":", "be"]  # no BOS added: the template writes its own special tokens
    prompt = tok.convert_ids_to_tokens(enc.prompts[0])  # generation input: everything before the last answer
    assert prompt[-4:] == ["colour", "?", "assistant", ":"] and "blue" not in prompt
    assert enc.references[0] == "blue sky"


def test_text_rows_train_on_every_token_and_have_no_reference(tmp_path, tok):
    enc = encode_causal(tok, examples(tmp_path, [{"text": "one two three"}]), 64, "t")
    assert enc.labels[0][0] == IGNORE and enc.labels[0][1:] == enc.ids[0][1:]
    assert enc.prompts == [None] and enc.references == [None]


def test_long_rows_are_cut_and_counted_and_rows_left_without_targets_are_dropped(tmp_path, tok):
    rows = [{"prompt": "a b", "completion": " c d e f"},          # 1 + 2 + 4 + 1 = 8 tokens
            {"prompt": "one two three four five six", "completion": " x"},  # prompt alone fills 7
            {"prompt": "a", "completion": " b"}]
    enc = encode_causal(tok, examples(tmp_path, rows), 6, "t")
    assert enc.truncated == 2 and enc.dropped == 1 and len(enc) == 2
    assert [len(r) for r in enc.ids] == [6, 4]
    assert enc.references[0] == " c d e f"  # the prompt still fits: generation can still be scored


def test_every_row_longer_than_max_seq_length_is_an_error(tmp_path, tok):
    rows = [{"prompt": "a b c d", "completion": " e f"}, {"prompt": "a b c", "completion": " d e f"}]
    with pytest.raises(DataError, match=r"every one of the 2 rows is longer than fidelity.max_seq_length=4 tokens "
                                        r"\(the shortest has 8\); raise max_seq_length"):
        encode_causal(tok, examples(tmp_path, rows), 4, "t")


def test_chat_rows_need_a_tokenizer_with_a_chat_template(tmp_path):
    rows = reversal_rows(2, shape="chat")
    with pytest.raises(DataError, match="messages rows need a chat template, and this model's tokenizer has none"):
        encode_causal(minilm_tokenizer(None), examples(tmp_path, rows), 64, "sft.jsonl (train split)")


@pytest.mark.parametrize("row, message", [
    ({"prompt": "q"}, "rows.jsonl:2: a prompt without a completion"),
    ({"prompt": "q", "completion": "  "}, "rows.jsonl:2: empty completion"),
    ({"prompt": "q", "completion": 3}, "completion is a int; expected a string"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "messages has no assistant turn"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}, "an assistant turn is empty"),
    ({"messages": "hi"}, "messages: expected a non-empty JSON list"),
    ({"question": "q"}, "expected prompt+completion, messages or text for causal-lm, got 'question'"),
])
def test_rows_that_cannot_be_trained_on_are_one_line_errors(tmp_path, row, message):
    with pytest.raises(DataError) as err:
        examples(tmp_path, [{"prompt": "a", "completion": " b"}, row])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_seq2seq_rows_read_named_columns_and_refuse_empty_targets(tmp_path, tok):
    rows = [{"q": "red cat", "a": "cat red"}]
    enc = encode_seq2seq(tok, examples(tmp_path, rows, "seq2seq", "&input=q&target=a"), 64, "t")
    assert tok.convert_ids_to_tokens(enc.ids[0]) == ["[CLS]", "red", "cat", "[SEP]"]
    assert tok.convert_ids_to_tokens(enc.labels[0]) == ["[CLS]", "cat", "red", "[SEP]"]
    assert enc.seq2seq and enc.references == ["cat red"] and enc.lengths == [8]
    with pytest.raises(DataError, match="rows.jsonl:1: empty target"):
        examples(tmp_path, [{"input": "x", "target": ""}], "seq2seq")
    with pytest.raises(DataError, match="expected columns 'input' and 'target' for seq2seq"):
        examples(tmp_path, [{"prompt": "x", "completion": "y"}], "seq2seq")


def test_csv_rows_work_like_jsonl(tmp_path, tok):
    path = tmp_path / "rows.csv"
    path.write_text('prompt,completion\n"reverse: red cat =", cat red\n', encoding="utf-8")
    task = resolve_lm_task(f"{path}?kind=causal-lm")
    (example,) = read_lm_examples(task.train_source, task)
    assert (example.shape, example.prompt, example.completion, example.line) == ("pair", "reverse: red cat =", " cat red", 2)


def test_the_heldout_split_is_seeded_and_independent_of_train_size(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", reversal_rows(100))
    task = resolve_lm_task(f"{path}?kind=causal-lm")
    full = load_lm_task_data(task, seed=0, heldout_fraction=0.1, train_size=None, eval_size=None)
    small = load_lm_task_data(task, seed=0, heldout_fraction=0.1, train_size=20, eval_size=None)
    assert len(full.heldout) == 10 and len(full.train) == 90 and len(small.train) == 20
    assert full.heldout_rows == small.heldout_rows and set(small.train_rows) <= set(full.train_rows)
    assert set(full.train_rows).isdisjoint(full.heldout_rows)
    other = load_lm_task_data(task, seed=1, heldout_fraction=0.1, train_size=None, eval_size=None)
    assert other.heldout_rows != full.heldout_rows
    assert full.split_info()["shapes"] == ["pair"] and not full.split_info()["stratified"]


def test_lm_metrics_directions_and_exact_match():
    m = lm_metrics(loss_sum=6.0, tokens=4, correct=1)
    assert m == {"eval_loss": 1.5, "perplexity": pytest.approx(math.exp(1.5)), "token_accuracy": 0.25}
    assert math.isnan(lm_metrics(0.0, 0, 0)["eval_loss"])
    assert {k: METRIC_DIRECTIONS[k] for k in ("eval_loss", "perplexity", "token_accuracy", "exact_match")} == {
        "eval_loss": "minimize", "perplexity": "minimize", "token_accuracy": "maximize", "exact_match": "maximize"}
    assert all(METRIC_DIRECTIONS[k] == "maximize" for k in ("accuracy", "f1", "matthews", "pearson", "spearman"))
    assert normalize_answer("  Cat\t RED \n") == "cat red"
    assert exact_match(["cat red", "Dog  ", "x"], [" Cat Red", "dog", "y"]) == pytest.approx(2 / 3)


def test_a_plus_in_a_language_model_dev_path_is_a_plus(tmp_path):
    """LM tasks parse their options like every file task (one parser): `+` stays a plus."""
    folder = tmp_path / "c++"
    folder.mkdir()
    train = write_jsonl(folder / "train.jsonl", reversal_rows(10))
    dev = write_jsonl(folder / "dev.jsonl", reversal_rows(5, seed=1))
    spec = resolve_lm_task(f"{train}?kind=causal-lm&dev={dev}")
    assert spec.dev_source == folder / "dev.jsonl"
