"""What the docs and the scripts' --help name exists: every dotted ``labelreg_nlp.`` name imports,
every ``labelreg_nlp/...`` or ``scripts/...`` path is a file, and every --help offers the
registry's methods and names only modules that exist."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labelreg_nlp.losses.registry import METHODS

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCRIPTS = ["nmt.py", "demo.py", "finetune_text_classification.py", "finetune_seq2seq.py", "train_image_classifier.py"]


def resolves(dotted: str) -> bool:
    """``labelreg_nlp.a.b.C``: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def names_in(text: str) -> tuple[set[str], set[str]]:
    dotted = {m.rstrip(".") for m in re.findall(r"labelreg_nlp(?:\.[A-Za-z_][A-Za-z0-9_]*)+", text)}
    paths = set(re.findall(r"(?:labelreg_nlp|scripts|tests)/[A-Za-z0-9_/]+\.(?:py|sh)", text))
    return dotted, paths


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_name_in_the_docs_exists(page):
    dotted, paths = names_in(page.read_text(encoding="utf-8"))
    assert not sorted(d for d in dotted if not resolves(d)), page
    # bad-inputs.md and testing.md name tests relative to tests/
    assert not sorted(p for p in paths if not (ROOT / p).is_file() and not (ROOT / "tests" / p).is_file()), page


SOURCES = sorted((ROOT / "labelreg_nlp").rglob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_name_in_the_docstrings_and_comments_exists(source):
    """Docstrings and comments name modules, classes and files that exist (a moved module or a
    renamed class leaves no stale reference)."""
    dotted, paths = names_in(source.read_text(encoding="utf-8"))
    assert not sorted(d for d in dotted if not resolves(d)), source
    assert not sorted(p for p in paths if not (ROOT / p).is_file() and not (ROOT / "tests" / p).is_file()), source


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_help_names_what_exists(script):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    for sub in re.findall(r"\{([a-z,_-]+)\}\s*\.\.\.", text):  # subcommands' own --help
        for name in sub.split(","):
            text += subprocess.run([sys.executable, str(ROOT / "scripts" / script), name, "--help"],
                                   capture_output=True, text=True, timeout=300).stdout
    dotted, paths = names_in(text)
    assert not sorted(d for d in dotted if not resolves(d)), script
    assert not sorted(p for p in paths if not (ROOT / p).is_file()), script
    for choices in re.findall(r"\{((?:none|ls|maxsup|ols|lspp|lls)(?:,[a-z]+)+)\}", text):
        assert set(choices.split(",")) == set(METHODS), (script, choices)
    assert "none, ls, maxsup or ols" not in text  # the registry has more


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_test_the_docs_name_exists(page):
    """``file.py::test_name`` (relative to tests/, or to the root) and bare ``test_name`` of
    bad-inputs.md rows (in tests/test_bad_inputs.py) name test functions that exist."""
    text = page.read_text(encoding="utf-8")
    missing = []
    for path, name in re.findall(r"([\w/]+\.py)::(\w+)", text):
        file = ROOT / path if (ROOT / path).is_file() else ROOT / "tests" / path
        if not file.is_file() or f"def {name}(" not in file.read_text():
            missing.append(f"{path}::{name}")
    if page.name == "bad-inputs.md":
        sweep = (ROOT / "tests" / "test_bad_inputs.py").read_text()
        for name in set(re.findall(r"`(test_\w+)`", text)):
            if f"def {name}(" not in sweep:
                missing.append(name)
    assert not missing, missing
