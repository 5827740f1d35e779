"""Synthetic language-model data that a small model can learn: answer = the prompt's words reversed.

For the learning checks in the tests and for `autopeft bench evaluate --kind causal-lm`: a vocabulary
of common words, 2 to `max_words` words per row (so rows differ in length), seeded.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ("red green blue cat dog bird tree house river stone one two three four five six seven eight nine "
         "ten black white water fire light dark sun moon star road").split()


def reversal_rows(n: int, seed: int = 0, shape: str = "pair", max_words: int = 5) -> list[dict]:
    """`n` rows whose answer is the prompt's words reversed, as JSONL objects.

    `shape`: ``pair`` ({"prompt","completion"}), ``chat`` ({"messages"}: user, assistant) or
    ``seq2seq`` ({"input","target"}). Words are drawn without repetition from `WORDS`.
    """
    if shape not in ("pair", "chat", "seq2seq"):
        raise ValueError(f"shape: expected pair, chat or seq2seq, got {shape!r}")
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = rng.sample(WORDS, rng.randint(2, max_words))
        question, answer = " ".join(words), " ".join(reversed(words))
        if shape == "pair":
            rows.append({"prompt": f"reverse: {question} =", "completion": f" {answer}"})
        elif shape == "chat":
            rows.append({"messages": [{"role": "user", "content": f"reverse: {question}"},
                                      {"role": "assistant", "content": answer}]})
        else:
            rows.append({"input": question, "target": answer})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> str:
    """Write `rows` one JSON object a line (UTF-8); returns the path as a string."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)
