"""Open a data file as text, whichever tool saved it, or say in one line why it cannot be read.

Read as saved by editors, spreadsheet tools and the GLUE download script: UTF-8 with or without a
byte-order mark (MRPC's ``train.tsv`` starts with one; Excel's "CSV UTF-8" writes one), UTF-16 with
a byte-order mark (Excel's "Unicode Text", Windows Notepad's "UTF-16"), and any line endings (LF,
CRLF, CR; callers open rows with ``newline=""`` semantics). Anything else raises `DataError` with one
line naming the file, what is wrong and the fix: text in another encoding (Latin-1, Windows-1252:
the offending byte and its line), a binary file, a spreadsheet workbook (``.xlsx``, ``.xls``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from autopeft.workers.tasks import DataError

SNIFF_BYTES = 8192
_WORKBOOKS = {b"PK\x03\x04": "a zip archive (an Excel .xlsx workbook?)",
              b"\xd0\xcf\x11\xe0": "an Excel .xls workbook"}
_EXPORT = "export it from the spreadsheet as 'CSV UTF-8' (or save the text file as UTF-8)"


def text_encoding(path: Path) -> str:
    """The codec that reads `path`: ``"utf-16"`` after a UTF-16 byte-order mark, else ``"utf-8-sig"``
    (UTF-8, dropping a byte-order mark if there is one). `DataError` for a workbook or a binary file."""
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    for magic, what in _WORKBOOKS.items():
        if head.startswith(magic):
            raise DataError(f"{path}: {what}, not CSV/TSV/JSONL text; {_EXPORT}")
    if b"\x00" in head:
        raise DataError(f"{path}: a binary file (it holds NUL bytes), not CSV/TSV/JSONL text; {_EXPORT}")
    return "utf-8-sig"


def decode_problem(path: Path, encoding: str) -> str:
    """One line: where `path` stops being valid `encoding` text (byte and line) and how to fix it."""
    raw = path.read_bytes()
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].decode(encoding, errors="replace").count("\n") + 1
        where = f"byte 0x{raw[exc.start]:02x} at line {line}"
    else:  # decoded whole now: it changed while it was read
        where = "it changed while it was read"
    if encoding == "utf-16":
        return f"{path}: not valid UTF-16 text although it starts with a UTF-16 byte-order mark ({where}); {_EXPORT}"
    return (f"{path}: not UTF-8 text ({where}); it was saved in another encoding (Latin-1 or Windows-1252?): "
            f"{_EXPORT}, e.g. iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}")


@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """`path` opened for reading as text in its encoding (`text_encoding`), line endings untranslated
    (``newline=""``, as `csv` wants); a decoding error while it is read becomes `DataError` (one line)."""
    encoding = text_encoding(path)
    try:
        with path.open(encoding=encoding, newline="") as f:
            yield f
    except UnicodeDecodeError:
        raise DataError(decode_problem(path, encoding)) from None
