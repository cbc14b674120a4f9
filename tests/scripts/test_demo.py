"""The README's first command (scripts/demo.py), on a small budget."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    pytest.importorskip("fairseq")
    cmd = [sys.executable, str(REPO / "scripts" / "demo.py"), "--workdir", str(tmp_path), "--max-epoch", "2",
           "--max-pairs", "1500", "--valid-size", "100", "--test-size", "100", "--bpe-merges", "300",
           "--embed-dim", "32", "--layers", "1", "--heads", "2", "--log-interval", "10"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "| criterion | alpha |" in out.stdout and "signature: nrefs:1" in out.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["criterion"] for r in results["rows"]] == ["ls", "maxsup"]
    assert all(0.0 <= r["bleu"] <= 100.0 and r["updates"] > 0 and r["epochs"] == 2 for r in results["rows"])
    assert "ls: epoch 2/2 done" in out.stdout and "maxsup: epoch 1/2 done" in out.stdout  # one line per epoch
    assert len((tmp_path / "checkpoints" / "maxsup" / "generate" / "test.detok.en").read_text().splitlines()) == 100
    assert "| token AURC (MSP) | token AURC (pNorm) |" in out.stdout
    for name in ("ls", "maxsup"):
        saved = tmp_path / "predictions" / name
        assert {p.name for p in saved.iterdir()} == {"valid.npz", "test.npz", "test.hyp", "test.ref", "results.json"}
        assert json.loads((saved / "results.json").read_text())["seed"] == 1  # what compare pairs seeds by
    # what labelreg-nlp compare reads: token scores, hypotheses and references
    compared = subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "compare", f"ls={tmp_path / 'predictions' / 'ls'}",
                               f"maxsup={tmp_path / 'predictions' / 'maxsup'}", "--samples", "50"],
                              capture_output=True, text=True)
    assert compared.returncode == 0 and "| bleu | maxsup |" in compared.stdout, compared.stderr[-2000:]
    assert all(0 < r["token_aurc_msp"] < 1 and 0 < r["token_aurc_pnorm"] < 1 for r in results["rows"])
    # a second run into the same folder refuses; --resume keeps what finished; other options are refused
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 2 and "already holds a finished run" in again.stderr and "DEMO_ARGS=--overwrite" in again.stderr
    assert json.loads((tmp_path / "results.json").read_text()) == results
    kept = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
    assert kept.returncode == 0 and "'maxsup' finished before (--resume): kept" in kept.stdout, kept.stderr[-2000:]
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == results["rows"]
    other = subprocess.run([*cmd, "--resume", "--alpha", "0.2"], capture_output=True, text=True)
    assert other.returncode == 2 and "alpha 0.1 (now 0.2)" in other.stderr


def test_demo_rejects_bad_arguments():
    for bad, msg in ((["--criteria", "ls,foo"], "unknown ['foo']"), (["--alpha", "1.5"], "--alpha must be in [0, 1]"),
                     (["--max-epoch", "0"], "--max-epoch must be >= 1")):
        out = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), *bad], capture_output=True, text=True)
        assert out.returncode == 2 and msg in out.stderr
