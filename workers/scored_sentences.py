"""A regression task with a real signal, built from SST-2 sentences (no regression data ships with GLUE here).

Each sentence's score is computed from its words: a word's positivity is its smoothed share of
positive SST-2 training rows, ``(positive + 1) / (rows + 2)`` over every row of SST-2 ``train.tsv``
that holds it (words in fewer than `MIN_ROWS` rows are skipped); a sentence's raw score is the mean
positivity of its words (0.5 when none is known); its ``score`` is 5 x the share of the training
sentences with a lower raw score (0–5, three decimals, as STS-B writes scores: mean ~2.5, std ~1.44).
The score follows sentiment but is graded, not binary, and a model has to read the words to predict it.

Written as ``train.tsv`` / ``dev.tsv`` with columns ``sentence  label  score`` (``label``: SST-2's own
0/1), so the same sentences serve a classification task (``?label=label``) and a regression task
(``?label=score&kind=regression``) of exactly the same size: see `task`.
"""

from __future__ import annotations

import bisect
import csv
import random
import re
from pathlib import Path

MIN_ROWS = 5
MIN_WORDS = 4  # sentences, not SST-2's short phrase rows
_WORD = re.compile(r"[a-z']+")


def _rows(path: Path) -> list[tuple[str, int]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [(r["sentence"].strip(), int(r["label"])) for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def word_positivity(rows: list[tuple[str, int]]) -> dict[str, float]:
    """Smoothed share of positive rows per word, over (sentence, 0/1 label) rows."""
    counts: dict[str, list[int]] = {}
    for sentence, label in rows:
        for word in set(_WORD.findall(sentence.lower())):
            c = counts.setdefault(word, [0, 0])
            c[0] += label
            c[1] += 1
    return {w: (pos + 1) / (n + 2) for w, (pos, n) in counts.items() if n >= MIN_ROWS}


def raw_score(sentence: str, positivity: dict[str, float]) -> float:
    """Mean positivity of the sentence's known words, in [0, 1]; 0.5 when it has none."""
    known = [positivity[w] for w in _WORD.findall(sentence.lower()) if w in positivity]
    return sum(known) / len(known) if known else 0.5


def write_scored_sst2(sst2_dir: str | Path, out_dir: str | Path, train_size: int = 2000, dev_size: int = 872,
                      seed: int = 0) -> Path:
    """Write `out_dir`/train.tsv (`train_size` SST-2 training sentences of `MIN_WORDS`+ words, seeded) and
    `out_dir`/dev.tsv (the first `dev_size` rows of SST-2 dev.tsv), scored as the module says; returns `out_dir`."""
    sst2_dir, out_dir = Path(sst2_dir), Path(out_dir)
    rows = _rows(sst2_dir / "train.tsv")
    positivity = word_positivity(rows)
    sentences = sorted({r for r in rows if len(r[0].split()) >= MIN_WORDS})
    train = random.Random(seed).sample(sentences, min(train_size, len(sentences)))
    dev = _rows(sst2_dir / "dev.tsv")[:dev_size]
    ranks = sorted(raw_score(s, positivity) for s, _ in train)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, split in (("train.tsv", train), ("dev.tsv", dev)):
        lines = ["sentence\tlabel\tscore"]
        for sentence, label in split:
            score = 5 * bisect.bisect_left(ranks, raw_score(sentence, positivity)) / len(ranks)
            lines.append(f"{sentence}\t{label}\t{score:.3f}")
        (out_dir / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_dir


def task(out_dir: str | Path, kind: str = "regression", metric: str | None = None) -> str:
    """The task string for the files `write_scored_sst2` wrote: the score as regression, or SST-2's 0/1 label."""
    out_dir = Path(out_dir)
    label = "score&kind=regression" if kind == "regression" else "label"
    return (f"file:{out_dir / 'train.tsv'}?text=sentence&label={label}&dev={out_dir / 'dev.tsv'}"
            + (f"&metric={metric}" if metric else ""))
