"""Read the local data files the fine-tuning scripts accept: .csv, .tsv, .json, .jsonl.

Errors are :class:`DataError` with a one-line message naming the file and what is wrong, so the
scripts can print them as they are.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")


class DataError(ValueError):
    """A missing file, an unsupported format or a missing column."""


def read_records(path: str | Path) -> list[dict]:
    """Rows of a .csv/.tsv (header line), .jsonl (one object per line) or .json (a list of
    objects, or ``{"data": [...]}``) file."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file not found: {path}")
    suffix = file.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r} (use {', '.join(SUFFIXES)})")
    with file.open(encoding="utf-8", newline="") as handle:
        try:
            if suffix in (".csv", ".tsv"):
                return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
            if suffix == ".jsonl":
                return [json.loads(line) for line in handle if line.strip()]
            data = json.load(handle)
        except (json.JSONDecodeError, csv.Error, UnicodeDecodeError) as error:
            raise DataError(f"{path}: cannot parse: {error}") from None
    if isinstance(data, dict) and "data" in data:
        data = data["data"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected a JSON list of objects (or {{'data': [...]}})")
    return data


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
