"""What the Hugging Face fine-tuning scripts share: command-line parsing with one-line errors,
sample limits, the results file."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .records import DataError


def parse_and_run(dataclass_types: tuple[type, ...], defaults: dict[str, Any], run: Callable[..., int],
                  description: str, argv: list[str] | None = None) -> int:
    """Parse ``argv`` into the dataclasses (``--help`` lists every field) with ``defaults`` for
    fields the user leaves out, call ``run(*dataclasses)``. A :class:`DataError` (bad path,
    missing column, model that cannot be loaded) or a ``ValueError`` from the options (an alpha
    outside [0, 1], a negative weight) becomes one line ``error: ...`` and exit status 2."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(dataclass_types, description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(**defaults)
    try:
        parsed = parser.parse_args_into_dataclasses(args=argv)
        return run(*parsed)
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def limit_splits(splits: dict[str, list], max_train: int | None, max_eval: int | None) -> None:
    """Keep the first ``max_train`` training and ``max_eval`` validation/test examples, in place."""
    if max_train:
        splits["train"] = splits["train"][:max_train]
    if max_eval:
        for name in ("validation", "test"):
            if name in splits:
                splits[name] = splits[name][:max_eval]


def write_results(path: str | Path, results: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
