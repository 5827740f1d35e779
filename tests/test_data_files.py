"""Data files as distributed and as tools save them: every GLUE layout, byte-order marks, CRLF, other encodings.

The shared GLUE folder holds RTE, CoLA, SST-2 and WNLI (tests/test_data.py reads them); the other GLUE
tasks are written here in their official layout (header, column order, label values, dev file name,
MRPC's byte-order mark, quote characters that csv quoting would swallow) and read through
`resolve_task` and the data loader, as `autopeft search --task glue:NAME --data-dir DIR` reads them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autopeft.cli import app
from autopeft.store import load_study, open_db
from autopeft.workers.data import load_task_data
from autopeft.workers.tasks import DataError, resolve_task

BOM = "\ufeff"


def load(task, data_dir=None):
    return load_task_data(resolve_task(task, data_dir), seed=0, heldout_fraction=0.2, train_size=None, eval_size=None)


def every_example(data):
    """(texts, label) of every training-file row in file order, and the dev examples."""
    rows = dict(zip(data.train_rows, zip(data.train.texts, data.train.labels, strict=True), strict=True))
    rows |= dict(zip(data.heldout_rows, zip(data.heldout.texts, data.heldout.labels, strict=True), strict=True))
    return [rows[i] for i in sorted(rows)], list(zip(data.dev.texts, data.dev.labels, strict=True))


def write_glue(root: Path, folder: str, files: dict[str, str], newline: str = "\n") -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / folder / name).write_bytes(text.replace("\n", newline).encode("utf-8"))


def tsv(header: str | None, rows: list[tuple]) -> str:
    lines = ([header] if header is not None else []) + ["\t".join(map(str, r)) for r in rows]
    return "\n".join(lines) + "\n"


# Official headers (GLUE v2 release; MRPC as download_glue_data.py writes it from Microsoft's files).
MRPC_HEADER = BOM + "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
QNLI_HEADER = "index\tquestion\tsentence\tlabel"
QQP_HEADER = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
MNLI_TRAIN_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
                     "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")
MNLI_DEV_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
                   "sentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label")
QUOTED = '" the witness " , he said'  # a field that starts with a quote: csv quoting would merge lines


def test_mrpc_as_distributed_with_its_byte_order_mark_and_crlf(tmp_path):
    rows = [(i % 2, 700000 + i, 800000 + i, f"{QUOTED} {i} .", f"Referring to \"him\" {i} .") for i in range(20)]
    write_glue(tmp_path, "MRPC", {"train.tsv": tsv(MRPC_HEADER, rows), "dev.tsv": tsv(MRPC_HEADER, rows[:6])},
               newline="\r\n")  # Microsoft's msr_paraphrase files are CRLF
    data = load("glue:mrpc", tmp_path)
    train, dev = every_example(data)
    assert train == [((f"{QUOTED} {i} .", f"Referring to \"him\" {i} ."), i % 2) for i in range(20)]
    assert data.labels == ("0", "1") and data.task.metric == "f1" and len(dev) == 6 and dev[1][1] == 1
    assert data.task.dev_source == tmp_path / "MRPC" / "dev.tsv"


def test_stsb_official_layout_with_quotes_and_float_scores(tmp_path):
    rows = [(i, "main-news", "headlines", "2015", f"{i:04d}", "none", "none", f"{QUOTED} {i}", f'He "said" {i}',
             f"{(i * 0.37) % 5:.3f}") for i in range(25)]
    write_glue(tmp_path, "STS-B", {"train.tsv": tsv(STSB_HEADER, rows), "dev.tsv": tsv(STSB_HEADER, rows[:5])})
    data = load("glue:stsb", tmp_path)
    train, dev = every_example(data)
    assert [t for t, _ in train] == [(f"{QUOTED} {i}", f'He "said" {i}') for i in range(25)]
    assert [y for _, y in train] == pytest.approx([round((i * 0.37) % 5, 3) for i in range(25)])
    assert all(0.0 <= y <= 5.0 for _, y in train) and data.labels is None and data.task.kind == "regression"
    assert data.task.metric == "pearson" and len(dev) == 5


def test_qnli_and_qqp_official_layouts(tmp_path):
    qnli = [(i, f"When did \"it\" {i} begin?", f"It began in {1990 + i} .", ["entailment", "not_entailment"][i % 2])
            for i in range(20)]
    write_glue(tmp_path, "QNLI", {"train.tsv": tsv(QNLI_HEADER, qnli), "dev.tsv": tsv(QNLI_HEADER, qnli[:4])})
    data = load("glue:qnli", tmp_path)
    train, _ = every_example(data)
    assert train[3] == (('When did "it" 3 begin?', "It began in 1993 ."), 1)
    assert data.labels == ("entailment", "not_entailment") and data.task.metric == "accuracy"

    qqp = [(133273 + i, 2 * i, 2 * i + 1, f"How is {i}?", f"{QUOTED} {i}?", i % 2) for i in range(20)]
    write_glue(tmp_path, "QQP", {"train.tsv": tsv(QQP_HEADER, qqp), "dev.tsv": tsv(QQP_HEADER, qqp[:4])})
    data = load("glue:qqp", tmp_path)
    train, dev = every_example(data)
    assert train[5] == (("How is 5?", f"{QUOTED} 5?"), 1) and len(dev) == 4
    assert data.labels == ("0", "1") and data.task.metric == "f1"


def test_mnli_official_layout_reads_gold_label_and_dev_matched(tmp_path):
    gold = ["entailment", "neutral", "contradiction"]

    def row(i: int, dev: bool) -> tuple:
        parses = (f"( ( It {i} ) . )", "( ( Yes ) . )", f"(ROOT (S (NP It {i}) (. .)))", "(ROOT (S (NP Yes)))")
        votes = (gold[i % 3],) * (5 if dev else 1)
        return (i, 31193 + i, f"{31193 + i}n", "government", *parses, f"{QUOTED} {i}.", f"Yes {i}. ", *votes, gold[i % 3])

    write_glue(tmp_path, "MNLI", {"train.tsv": tsv(MNLI_TRAIN_HEADER, [row(i, False) for i in range(30)]),
                                  "dev_matched.tsv": tsv(MNLI_DEV_HEADER, [row(i, True) for i in range(6)])})
    data = load("glue:mnli", tmp_path)
    train, dev = every_example(data)
    assert train[4] == ((f"{QUOTED} 4.", "Yes 4. "), 1)  # neutral
    assert data.labels == tuple(gold) and [y for _, y in dev] == [0, 1, 2, 0, 1, 2]


def test_cola_without_header_keeps_its_columns_in_a_crlf_file(tmp_path):
    rows = [("gj04", i % 2, "" if i % 2 else "*", f"{QUOTED} {i}.") for i in range(20)]
    write_glue(tmp_path, "CoLA", {"train.tsv": tsv(None, rows), "dev.tsv": tsv(None, rows[:3])}, newline="\r\n")
    train, dev = every_example(load("glue:cola", tmp_path))
    assert train[7] == ((f"{QUOTED} 7.",), 1) and len(train) == 20 and len(dev) == 3


def test_search_runs_on_official_mrpc_and_stsb_files_and_stores_the_target_scaling(tmp_path, tiny_bert_dir):
    """The issue's failing command, `autopeft search --task glue:mrpc --data-dir DIR`, on files as distributed."""
    words = ["good", "bad", "film", "plot", "fun", "dull", "great", "slow"]
    pairs = [(" ".join(words[(i + k) % 8] for k in range(4)), " ".join(words[(i * 3 + k) % 8] for k in range(3)))
             for i in range(60)]
    mrpc = [(i % 2, i, i + 1000, a, b) for i, (a, b) in enumerate(pairs)]
    write_glue(tmp_path, "MRPC", {"train.tsv": tsv(MRPC_HEADER, mrpc), "dev.tsv": tsv(MRPC_HEADER, mrpc[:8])}, "\r\n")
    stsb = [(i, "main-news", "headlines", "2015", i, "none", "none", f'"{a}', b, f"{(i * 0.37) % 5:.3f}")
            for i, (a, b) in enumerate(pairs)]
    write_glue(tmp_path, "STS-B", {"train.tsv": tsv(STSB_HEADER, stsb), "dev.tsv": tsv(STSB_HEADER, stsb[:8])})
    url = f"sqlite:///{tmp_path / 'study.db'}"
    for name in ("mrpc", "stsb"):
        result = CliRunner().invoke(app, [
            "search", "--model", tiny_bert_dir, "--task", f"glue:{name}", "--data-dir", str(tmp_path), "--space", "lora",
            "--trials", "1", "--train-size", "48", "--max-steps", "2", "--budget-pct", "5", "--storage", url,
            "--study", name, "--executor", "inline", "--sampler", "random"])
        assert result.exit_code == 0, result.output
        (trial,) = load_study(open_db(url), name).get_trials()
        assert trial.user_attrs["result"]["status"] == "ok", trial.user_attrs["result"]["failure"]
        stored = trial.user_attrs["result"]
        assert stored["metric_name"] == {"mrpc": "f1", "stsb": "pearson"}[name]
        if name == "mrpc":
            assert stored["target_scaling"] is None
        else:  # mean and std of the 48 training scores the trial was trained on, in label units
            assert 2.0 < stored["target_scaling"]["mean"] < 3.0 and 1.0 < stored["target_scaling"]["std"] < 1.8


# --- files saved by spreadsheet tools and editors -------------------------------------------------------

ROWS = [(f"good, fun film {i}" if i % 2 else f"dull film {i}", i % 2) for i in range(20)]


def test_excel_csv_utf8_with_bom_crlf_and_empty_rows_loads(tmp_path):
    path = tmp_path / "reviews.csv"
    text = "sentence,label\r\n" + "".join(f'"{s}",{y}\r\n' for s, y in ROWS) + ",\r\n,\r\n"  # Excel: "CSV UTF-8"
    path.write_bytes((BOM + text).encode("utf-8"))
    data = load(str(path))
    texts = sorted(data.train.texts + data.heldout.texts)
    assert texts == sorted((s,) for s, _ in ROWS) and data.labels == ("0", "1")


def test_utf16_text_from_excel_or_notepad_loads(tmp_path):
    path = tmp_path / "reviews.tsv"  # Excel "Unicode Text": UTF-16 LE with a byte-order mark, tabs, CRLF
    path.write_bytes(("sentence\tlabel\r\n" + "".join(f"{s} café\t{y}\r\n" for s, y in ROWS)).encode("utf-16"))
    data = load(str(path))
    assert sorted(data.train.texts + data.heldout.texts) == sorted((f"{s} café",) for s, _ in ROWS)


def test_jsonl_with_bom_and_crlf_loads(tmp_path):
    path = tmp_path / "reviews.jsonl"
    lines = "".join(json.dumps({"text": s, "label": y}) + "\r\n" for s, y in ROWS)
    path.write_bytes((BOM + lines).encode("utf-8"))
    data = load(str(path))
    assert len(data.train) + len(data.heldout) == 20 and data.labels == ("0", "1")


@pytest.mark.parametrize("name, content, message", [
    ("latin.csv", ("sentence,label\n" + "nice film,1\n" + "un café noir,0\n" * 10).encode("latin-1"),
     "latin.csv: not UTF-8 text (byte 0xe9 at line 3); it was saved in another encoding (Latin-1 or Windows-1252?): "
     "export it from the spreadsheet as 'CSV UTF-8' (or save the text file as UTF-8), "
     "e.g. iconv -f latin1 -t utf-8 latin.csv > utf8-latin.csv"),
    ("late.tsv", ("sentence\tlabel\n" + "ok film\t1\n" * 3000 + "d\xe9j\xe0 vu\t0\n").encode("cp1252"),
     "late.tsv: not UTF-8 text (byte 0xe9 at line 3002)"),
    ("latin.jsonl", '{"text": "caf\xe9", "label": 1}\n'.encode("latin-1"), "latin.jsonl: not UTF-8 text (byte 0xe9 at line 1)"),
    ("book.csv", b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4,
     "book.csv: a zip archive (an Excel .xlsx workbook?), not CSV/TSV/JSONL text; export it from the spreadsheet as "
     "'CSV UTF-8'"),
    ("old.tsv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "old.tsv: an Excel .xls workbook, not CSV/TSV/JSONL"),
    ("blob.csv", bytes(range(256)) * 8, "blob.csv: a binary file (it holds NUL bytes), not CSV/TSV/JSONL text"),
    ("bad16.tsv", "sentence\tlabel\n".encode("utf-16") + b"\x00\xd8a\x00",
     "bad16.tsv: not valid UTF-16 text although it starts with a UTF-16 byte-order mark (byte 0x00 at line 2)"),
])
def test_other_encodings_and_binary_files_get_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load(str(path))
    assert str(info.value).startswith(str(tmp_path / message.split(":")[0]))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_dev_file_in_another_encoding_is_named(tmp_path):
    train, dev = tmp_path / "t.csv", tmp_path / "d.csv"
    train.write_text("sentence,label\n" + "".join(f"film {i},{i % 2}\n" for i in range(20)), encoding="utf-8")
    dev.write_bytes("sentence,label\nna\xefve,1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"d.csv: not UTF-8 text \(byte 0xef at line 2\)"):
        load(f"{train}?dev={dev}")


def test_a_plus_in_a_dev_path_is_a_plus(tmp_path):
    folder = tmp_path / "c++"
    folder.mkdir()
    for name in ("t.csv", "d.csv"):
        (folder / name).write_text("sentence,label\n" + "".join(f"film {i},{i % 2}\n" for i in range(20)))
    assert len(load(f"{folder / 't.csv'}?dev={folder / 'd.csv'}").dev) == 20
