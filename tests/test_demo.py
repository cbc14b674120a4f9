"""The README's first command (scripts/demo.py), on a small budget."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labelreg_nlp.corpora import gettext_pairs, synthetic_pairs

REPO = Path(__file__).resolve().parent.parent


def test_synthetic_corpus_is_parallel_and_deterministic():
    a, b = synthetic_pairs(50, seed=4), synthetic_pairs(50, seed=4)
    assert a == b and len(a) == 50
    assert all(de.endswith(".") and en.endswith(".") and de != en for de, en in a)


def test_gettext_pairs_reads_mo_files(tmp_path):
    """A catalog written in the test: cleaning rules and German/English order."""
    import struct

    messages = {"": "Content-Type: text/plain; charset=UTF-8\n", "Open the file": "Datei öffnen", "same": "same", "%s and %d and %x": "%s und %d und %x",
                "Save all changes now": "Alle Änderungen jetzt speichern"}
    keys = sorted(messages)
    ids = b"".join(k.encode() + b"\0" for k in keys)
    strs = b"".join(messages[k].encode() + b"\0" for k in keys)
    n, header = len(keys), 7 * 4
    key_start, val_start = header + 16 * n, header + 16 * n + len(ids)
    offsets, pos = [], 0
    for k in keys:
        offsets += [len(k.encode()), key_start + pos]
        pos += len(k.encode()) + 1
    voffsets, pos = [], 0
    for k in keys:
        voffsets += [len(messages[k].encode()), val_start + pos]
        pos += len(messages[k].encode()) + 1
    data = struct.pack("<7I", 0x950412DE, 0, n, header, header + 8 * n, 0, 0)
    data += struct.pack(f"<{2 * n}I", *offsets) + struct.pack(f"<{2 * n}I", *voffsets) + ids + strs
    (tmp_path / "x.mo").write_bytes(data)
    (tmp_path / "broken.mo").write_bytes(b"not a catalog")
    assert gettext_pairs(tmp_path) == [("Datei öffnen", "Open the file"),
                                       ("Alle Änderungen jetzt speichern", "Save all changes now")]


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    pytest.importorskip("fairseq")
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--workdir", str(tmp_path), "--minutes", "0.15",
         "--max-pairs", "1500", "--valid-size", "100", "--test-size", "100", "--bpe-merges", "300",
         "--embed-dim", "32", "--layers", "1", "--heads", "2", "--log-interval", "10"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "| criterion | alpha |" in out.stdout and "signature: nrefs:1" in out.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["criterion"] for r in results["rows"]] == ["ls", "maxsup"]
    assert all(0.0 <= r["bleu"] <= 100.0 and r["updates"] > 0 for r in results["rows"])
    assert len((tmp_path / "checkpoints" / "maxsup" / "generate" / "test.detok.en").read_text().splitlines()) == 100


def test_demo_rejects_bad_arguments():
    for bad, msg in ((["--criteria", "ls,foo"], "unknown ['foo']"), (["--alpha", "1.5"], "--alpha must be in [0, 1]"),
                     (["--minutes", "0"], "--minutes must be > 0")):
        out = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), *bad], capture_output=True, text=True)
        assert out.returncode == 2 and msg in out.stderr
