"""Read the local data files the fine-tuning scripts accept: .csv, .tsv, .json, .jsonl.

Errors are :class:`DataError` with a one-line message naming the file and what is wrong, so the
scripts can print them as they are.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")


class DataError(ValueError):
    """A missing file, an unsupported format or a missing column."""


def read_records(path: str | Path) -> list[dict]:
    """Rows of a .csv/.tsv (header line), .jsonl (one object per line) or .json (a list of
    objects, or ``{"data": [...]}``) file, read as a spreadsheet shows them.

    CSV as spreadsheets export it: a byte-order mark is dropped, the delimiter (``,`` ``;``
    tab ``|``) is detected from the header, and a row with more or fewer cells than the header
    is an error naming its line (rather than a shifted column). JSON Lines: every line must be
    an object; an error names the line.

    Args:
        path: the file.

    Returns:
        One dict per row.

    Raises:
        DataError: one line naming the file (and line) and what is wrong.
    """
    file = Path(path)
    if file.is_dir():
        raise DataError(f"{path} is a folder, not a data file")
    if not file.is_file():
        raise DataError(f"data file not found: {path}")
    suffix = file.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r} (use {', '.join(SUFFIXES)})")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    if suffix in (".csv", ".tsv"):
        return _read_delimited(text, path, "\t" if suffix == ".tsv" else None)
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: not JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: expected a JSON object per line, got {type(row).__name__}")
            rows.append(row)
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: cannot parse: {error}") from None
    if isinstance(data, dict) and "data" in data:
        data = data["data"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected a JSON list of objects (or {{'data': [...]}})")
    return data


def _read_delimited(text: str, path: str | Path, delimiter: str | None) -> list[dict]:
    lines = text.splitlines()
    if delimiter is None:  # as spreadsheets export: the header's most frequent of , ; tab |
        header = next((line for line in lines if line.strip()), "")
        counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
        delimiter = max(counts, key=counts.get) if max(counts.values()) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        rows = list(reader)
    except csv.Error as error:
        raise DataError(f"{path}: cannot parse: {error}") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [name.strip() for name in rows[0]]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise DataError(f"{path}: the header names column {duplicated[0]!r} twice")
    out = []
    for number, row in enumerate(rows[1:], 2):
        if len(row) != len(header):
            raise DataError(f"{path}: row {number} has {len(row)} cells, the header {len(header)} "
                            f"({delimiter!r}-separated; quote cells that hold the delimiter)")
        out.append(dict(zip(header, row)))
    return out


def select_columns(rows: list[dict], columns: dict[str, str], where: str) -> list[dict]:
    """Rows renamed to ``columns`` keys from their values (``{"text": "review"}`` reads column
    ``review`` as ``text``); a missing column is an error naming it and the columns present."""
    if not rows:
        raise DataError(f"{where} holds no examples")
    for column in columns.values():
        if column not in rows[0]:
            raise DataError(f"{where} has no column {column!r} (columns: {', '.join(map(str, rows[0]))})")
    return [{name: row[column] for name, column in columns.items()} for row in rows]


def split_records(rows: list[dict], seed: int, need_validation: bool = True) -> dict[str, list[dict]]:
    """Shuffle with ``seed``; cut 10% off as test and, when ``need_validation``, another 10% as
    validation; the rest is train."""
    if len(rows) < 3:
        raise DataError(f"need at least 3 examples to split into train/validation/test, got {len(rows)}")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    shuffled = [rows[i] for i in order]
    n = max(1, len(rows) // 10)
    splits = {"test": shuffled[:n]}
    rest = shuffled[n:]
    if need_validation:
        splits["validation"], rest = rest[:n], rest[n:]
    splits["train"] = rest
    return splits
