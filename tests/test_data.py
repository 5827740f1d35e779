"""Tasks and data: GLUE files, the hub, local CSV/TSV/JSONL, honest splits, clear errors."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types

import pytest

from autopeft.workers.data import load_task_data, stratified_split
from autopeft.workers.tasks import GLUE_TASKS, DataError, HubSplit, resolve_task


def load(task, data_dir=None, **kw):
    args = {"seed": 0, "heldout_fraction": 0.1, "train_size": None, "eval_size": None, **kw}
    return load_task_data(resolve_task(task, data_dir), **args)


@pytest.mark.parametrize("task, train_rows, dev_rows, labels, metric", [
    ("glue:rte", 2490, 277, ("entailment", "not_entailment"), "accuracy"),
    ("glue:cola", 8551, 1043, ("0", "1"), "matthews"),
    ("glue:wnli", 635, 71, ("0", "1"), "accuracy"),
])
def test_glue_tasks_read_every_row_and_hold_out_a_stratified_split(glue_dir, task, train_rows, dev_rows, labels, metric):
    data = load(task, glue_dir)
    assert len(data.train) + len(data.heldout) == train_rows and len(data.dev) == dev_rows
    assert data.labels == labels and data.task.metric == metric
    rate = lambda ex: sum(ex.labels) / len(ex)  # noqa: E731
    assert rate(data.heldout) == pytest.approx(rate(data.train), abs=0.02)
    assert len(data.heldout) == pytest.approx(0.1 * train_rows, abs=2)
    assert set(data.train_rows).isdisjoint(data.heldout_rows)
    assert sorted(data.train_rows + data.heldout_rows) == list(range(train_rows))


def example_at(data, row: int):
    """(texts, label) of the training-file row `row`, wherever the split put it."""
    if row in data.train_rows:
        i = data.train_rows.index(row)
        return data.train.texts[i], data.train.labels[i]
    i = data.heldout_rows.index(row)
    return data.heldout.texts[i], data.heldout.labels[i]


def test_cola_has_no_header_and_rte_pairs_keep_their_columns(glue_dir):
    cola = load("glue:cola", glue_dir)
    assert example_at(cola, 0) == (("Our friends won't buy this analysis, let alone the next one we propose.",), 1)
    rte = load("glue:rte", glue_dir)
    texts, label = example_at(rte, 0)
    assert texts == ("No Weapons of Mass Destruction Found in Iraq Yet.", "Weapons of Mass Destruction Found in Iraq.")
    assert rte.labels[label] == "not_entailment"


def test_subsets_are_seeded_and_heldout_does_not_depend_on_train_size(glue_dir):
    a = load("glue:sst2", glue_dir, train_size=300, eval_size=50)
    b = load("glue:sst2", glue_dir, train_size=300, eval_size=50)
    c = load("glue:sst2", glue_dir, train_size=300, eval_size=50, seed=1)
    d = load("glue:sst2", glue_dir, train_size=100, eval_size=50)
    assert (len(a.train), len(a.heldout)) == (300, 50)
    assert a.train == b.train and a.heldout == b.heldout and a.split_info() == b.split_info()
    assert a.train != c.train and a.split_info()["heldout_rows_sha1"] != c.split_info()["heldout_rows_sha1"]
    assert d.heldout_rows == a.heldout_rows and set(d.train_rows).isdisjoint(a.heldout_rows)
    info = a.split_info()
    assert info["train"] == 300 and info["heldout"] == 50 and info["dev"] == 872 and info["seed"] == 0
    assert info["stratified"] and info["source"].endswith("SST-2/train.tsv") and info["labels"] == ["0", "1"]


def test_stratified_split_keeps_class_shares_and_one_example_per_class_in_train():
    labels = [0] * 90 + [1] * 10
    rest, held = stratified_split(labels, 0.2, seed=3, stratify=True)
    assert sorted(rest + held) == list(range(100))
    assert [labels[i] for i in held].count(1) == 2 and len(held) == 20
    rest, held = stratified_split([0, 0, 1, 1, 2], 0.9, seed=0, stratify=True)
    assert {[0, 0, 1, 1, 2][i] for i in rest} == {0, 1, 2} and len(held) == 2


def test_local_csv_tsv_jsonl_and_regression_files(tmp_path):
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text("text,label\n" + "".join(f"\"good, {i}\",pos\nbad {i},neg\n" for i in range(20)))
    data = load(f"file:{csv_path}")
    assert data.labels == ("neg", "pos") and len(data.train) + len(data.heldout) == 40
    assert data.task.name == "reviews.csv" and data.task.metric == "accuracy" and data.dev is None
    assert data.train.texts[0][0].startswith(("good, ", "bad "))
    fixed = load(f"{csv_path}?labels=pos,neg&metric=matthews")
    assert fixed.labels == ("pos", "neg") and fixed.task.metric == "matthews"

    tsv, dev = tmp_path / "t.tsv", tmp_path / "d.tsv"
    tsv.write_text("s1\ts2\ty\n" + "".join(f"a {i}\tb {i}\t{i % 3}\n" for i in range(30)))
    dev.write_text("s1\ts2\ty\nx\tz\t2\n")
    three = load(f"{tsv}?text=s1,s2&label=y&dev={dev}")
    assert three.labels == ("0", "1", "2") and three.num_labels == 3 and three.dev.labels == [2]
    assert three.dev.texts == [("x", "z")]

    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps({"p": f"a{i}", "h": f"b{i}", "y": i / 10}) + "\n" for i in range(30)))
    reg = load(f"{jsonl}?text=p,h&label=y&kind=regression")
    assert reg.task.kind == "regression" and reg.labels is None and reg.num_labels == 1
    assert reg.task.metric == "pearson" and reg.task.metrics == ("pearson", "spearman")
    assert reg.train.texts[0][1].startswith("b") and isinstance(reg.train.labels[0], float)
    assert not reg.split_info()["stratified"]


@pytest.mark.parametrize("content, task_suffix, message", [
    (None, "", "d.csv: data file not found; check --data-dir or the task path"),
    ("sentence,y\nhi,1\n", "", "d.csv: missing column(s) label; the file has sentence, y"),
    ("sentence,label\nhi,1\n", "?text=sentence,other", "missing column(s) other"),
    ("words,label\nhi,1\n", "", "no text column found"),
    ("sentence,label\n", "", "d.csv: no examples in this split"),
    ("sentence,label\nhi,1\nho,2\n", "", "too few to hold out 10% and still train"),
    ("sentence,label\n" + "a,1\n" * 5, "", "only one class ('1') in the labels"),
    ("sentence,label\na,1\nb,x\nc,2\n", "?kind=regression", "d.csv: regression label 'x' is not a number"),
    ("sentence,label\na,1\nb,nan\nc,2\n", "?kind=regression", "regression label 'nan' is not a number"),
    ("sentence,label\na,1\nb,2\nc,3\n", "?labels=1,2", "d.csv: unknown label(s) '3'; expected one of '1', '2'"),
    ("sentence,label\na,1\n", "?colour=red", "unknown option(s) colour"),
    ("sentence,label\na,1\n", "?kind=ranking", "kind: expected classification, regression, causal-lm or seq2seq, got 'ranking'"),
    ("sentence,label\na,1\n", "?metric=pearson", "metric: expected one of accuracy, f1, matthews for classification"),
    ("sentence,label\na,1\n", "?text=a,b,c", "text: expected one or two columns, got 3"),
    ("sentence,label\na,1\n", "?labels=x", "labels: expected two or more distinct labels"),
    ("sentence,label\na,1\n", "?kind=regression&labels=a,b", "a regression task has no class labels"),
])
def test_bad_data_gets_one_clear_error_before_training(tmp_path, content, task_suffix, message):
    path = tmp_path / "d.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as info:
        load(f"{path}{task_suffix}")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_jsonl_lines_and_short_rows_are_named(tmp_path):
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text('{"text": "a", "label": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"x.jsonl:2: not a JSON object"):
        load(str(jsonl))
    jsonl.write_text('{"label": 1}\n{"text": "b"}\n')
    with pytest.raises(DataError, match=r"line 1 has no column 'text'"):
        load(str(jsonl))


def test_glue_labels_outside_the_label_map_and_unknown_tasks_are_refused(tmp_path, glue_dir):
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n"
                                                + "".join(f"{i}\ta\tb\t{['entailment', 'maybe'][i % 2]}\n" for i in range(20)))
    with pytest.raises(DataError, match=r"unknown label\(s\) 'maybe'; expected one of 'entailment', 'not_entailment'"):
        load("glue:rte", tmp_path)
    (tmp_path / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n"
                                                + "".join(f"{i}\ta\tb\tentailment\n" for i in range(20)))
    with pytest.raises(DataError, match=r"RTE/dev.tsv: data file not found"):
        load("glue:rte", tmp_path)
    with pytest.raises(DataError, match="unknown GLUE task; expected one of glue:rte"):
        resolve_task("glue:imdb", glue_dir)
    with pytest.raises(DataError, match="expected glue:<name> or a .csv, .tsv or .jsonl file"):
        resolve_task("reviews.parquet")
    assert len(GLUE_TASKS) == 9
    mnli = resolve_task("glue:mnli", glue_dir)
    assert mnli.dev_source.name == "dev_matched.tsv" and mnli.labels == ("entailment", "neutral", "contradiction")
    assert resolve_task("glue:stsb", glue_dir).kind == "regression"
    assert resolve_task("glue:mrpc", glue_dir).metric == "f1"


def test_without_data_dir_the_hub_is_used_only_when_installed_and_online(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(DataError) as info:
        resolve_task("glue:sst2")
    assert str(info.value) == ("task glue:sst2: no --data-dir given and the Hugging Face hub cannot be used (the `datasets` "
                               "package is not installed); pass --data-dir pointing at a folder with SST-2/train.tsv")

    fake = types.ModuleType("datasets")
    fake.__spec__ = importlib.machinery.ModuleSpec("datasets", None)
    calls = []

    class Split:
        def __init__(self, rows):
            self.rows = rows

        def to_list(self):
            return [dict(r) for r in self.rows]

    def load_dataset(path, name, split):
        calls.append((path, name, split))
        if name == "cola":
            raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub\n(LocalEntryNotFoundError)")
        return Split([{"premise": f"p{i}", "hypothesis": f"h{i}", "label": i % 3, "idx": i} for i in range(30)])

    fake.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", fake)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"\(HF_HUB_OFFLINE is set\); pass --data-dir"):
        resolve_task("glue:mnli")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    task = resolve_task("glue:mnli")
    assert task.train_source == HubSplit("nyu-mll/glue", "mnli", "train") and task.file_format == "hub"
    data = load("glue:mnli")
    assert calls == [("nyu-mll/glue", "mnli", "train"), ("nyu-mll/glue", "mnli", "validation_matched")]
    assert data.labels == ("entailment", "neutral", "contradiction") and len(data.dev) == 30
    assert data.dev.labels[:3] == [0, 1, 2] and data.dev.texts[0] == ("p0", "h0")
    assert data.split_info()["source"] == "hub:nyu-mll/glue/mnli[train]"
    with pytest.raises(DataError) as info:
        load("glue:cola")
    assert str(info.value) == ("hub:nyu-mll/glue/cola[train]: could not be loaded from the Hugging Face hub "
                               "(ConnectionError: Couldn't reach 'nyu-mll/glue' on the Hub); pass --data-dir with the "
                               "GLUE TSV files")
