"""Tasks and data: GLUE files, local CSV/TSV/JSONL, honest splits, clear errors, official metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autopeft.workers.data import load_task_data, stratified_split
from autopeft.workers.metrics import classification_metrics, matthews, regression_metrics
from autopeft.workers.tasks import DataError, resolve_task


def load(task, data_dir=None, **kw):
    args = {"seed": 0, "heldout_fraction": 0.1, "train_size": None, "eval_size": None, **kw}
    return load_task_data(resolve_task(task, data_dir), **args)


@pytest.mark.parametrize("task, train_rows, labels, metric", [
    ("glue:rte", 2490, ("entailment", "not_entailment"), "accuracy"),
    ("glue:cola", 8551, ("0", "1"), "matthews"),
    ("glue:wnli", 635, ("0", "1"), "accuracy"),
])
def test_glue_tasks_read_every_row_and_hold_out_a_stratified_split(glue_dir, task, train_rows, labels, metric):
    data = load(task, glue_dir)
    assert len(data.train) + len(data.heldout) == train_rows
    assert data.labels == labels and data.task.metric == metric and data.dev is not None
    rate = lambda ex: sum(ex.labels) / len(ex)  # noqa: E731
    assert rate(data.heldout) == pytest.approx(rate(data.train), abs=0.02)
    assert len(data.heldout) == pytest.approx(0.1 * train_rows, abs=2)


def test_subsets_are_seeded_and_the_split_differs_by_seed(glue_dir):
    a = load("glue:sst2", glue_dir, train_size=300, eval_size=50)
    b = load("glue:sst2", glue_dir, train_size=300, eval_size=50)
    c = load("glue:sst2", glue_dir, train_size=300, eval_size=50, seed=1)
    assert (len(a.train), len(a.heldout)) == (300, 50)
    assert a.train == b.train and a.heldout == b.heldout
    assert a.train != c.train


def test_stratified_split_keeps_class_shares():
    labels = [0] * 90 + [1] * 10
    rest, held = stratified_split(labels, 0.2, seed=3, stratify=True)
    assert sorted(rest + held) == list(range(100))
    assert [labels[i] for i in held].count(1) == 2 and len(held) == 20


def test_local_csv_jsonl_and_regression_files(tmp_path):
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text("text,label\n" + "".join(f"\"good, {i}\",pos\nbad {i},neg\n" for i in range(20)))
    data = load(str(csv_path))
    assert data.labels == ("neg", "pos") and len(data.train) + len(data.heldout) == 40
    assert data.train.texts[0][0].startswith(("good, ", "bad "))

    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps({"p": f"a{i}", "h": f"b{i}", "y": i / 10}) + "\n" for i in range(30)))
    reg = load(f"{jsonl}?text=p,h&label=y&kind=regression")
    assert reg.task.kind == "regression" and reg.labels is None and reg.num_labels == 1
    assert reg.train.texts[0][1].startswith("b") and isinstance(reg.train.labels[0], float)


@pytest.mark.parametrize("content, task_suffix, message", [
    (None, "", "data file not found"),
    ("sentence,y\nhi,1\n", "", "missing column(s) label; the file has sentence, y"),
    ("sentence,label\n", "", "no examples in the file"),
    ("sentence,label\nhi,1\n", "", "too few to hold out"),
    ("sentence,label\na,1\nb,x\nc,2\n", "?kind=regression", "regression label 'x' is not a number"),
    ("sentence,label\na,1\n", "?colour=red", "unknown option(s) colour"),
])
def test_bad_data_gets_one_clear_error_before_training(tmp_path, content, task_suffix, message):
    path = tmp_path / "d.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as info:
        load(f"{path}{task_suffix}")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_dev_labels_and_unknown_tasks_are_refused(tmp_path, glue_dir):
    train, dev = tmp_path / "t.tsv", tmp_path / "d.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"s{i}\t{i % 2}\n" for i in range(20)))
    dev.write_text("sentence\tlabel\nx\t7\n")
    with pytest.raises(DataError, match="unknown label"):
        load(f"{train}?dev={dev}")
    with pytest.raises(DataError, match="unknown GLUE task"):
        resolve_task("glue:imdb", glue_dir)
    with pytest.raises(DataError, match="pass --data-dir"):
        resolve_task("glue:rte", None)


def test_metrics_match_hand_computed_values():
    pred, gold = np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1])
    m = classification_metrics(pred, gold)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    # MCC = (tp*tn - fp*fn) / sqrt(...) with tp=2, tn=1, fp=1, fn=1
    assert matthews(pred, gold) == pytest.approx((2 * 1 - 1 * 1) / np.sqrt(3 * 3 * 2 * 2))
    r = regression_metrics(np.array([1.0, 2.0, 3.0, 5.0]), np.array([2.0, 4.0, 6.0, 7.0]))
    assert r["spearman"] == pytest.approx(1.0) and 0.9 < r["pearson"] < 1.0
