"""Every Python code block of the recipe pages runs, in order, as written (one namespace per page,
from a scratch working folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["language-models.md"]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


@pytest.mark.parametrize("page", PAGES)
def test_every_python_block_runs(page, tmp_path, monkeypatch):
    pytest.importorskip("trl")
    pytest.importorskip("peft")
    pytest.importorskip("lightning")
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(DOCS / page)
    assert len(blocks) >= 5
    namespace: dict = {"__name__": "__doc_recipe__"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{page} block {i + 1}", "exec"), namespace)
        except Exception as error:  # name the block, then fail with the error
            raise AssertionError(f"{page}, code block {i + 1} failed: {type(error).__name__}: {error}") from error
    assert (tmp_path / "runs" / "sft-lls").is_dir()  # the blocks wrote where they say
