"""scripts/image_sweep.sh on scikit-learn's digits: every (method, seed) run keeps its predictions,
the summary table, and the paired comparison against the first method."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("sklearn")


def sweep(out: Path, methods: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "METHODS": methods, "OMP_NUM_THREADS": "1",
           "EXTRA": "--data digits --width 8 --batch-size 64 --lr 0.1 --probe-examples 500"}
    return subprocess.run(["bash", str(ROOT / "scripts" / "image_sweep.sh"), str(out), "1", "0 1", "2"],
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_sweep_keeps_every_seed_and_compares_with_the_first_method(tmp_path):
    done = sweep(tmp_path, "ls maxsup")
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("ls", "maxsup"):
        for seed in (0, 1):
            run = tmp_path / f"{name}-s{seed}"
            assert json.loads((run / "results.json").read_text())["config"]["seed"] == seed
            assert (run / "predictions" / "test.npz").is_file()
    assert "| maxsup | 2 |" in done.stdout
    assert "### against ls:" in done.stdout and "| accuracy | maxsup |" in done.stdout and "(2 seeds)" in done.stdout
    rows = json.loads((tmp_path / "compare.json").read_text())["rows"]
    assert {r["metric"] for r in rows} == {"accuracy", "nll", "ece", "aurc", "eaurc"} and rows[0]["seeds"] == 2
    assert (tmp_path / "compare" / "diff_accuracy.png").is_file()
    unknown = sweep(tmp_path / "other", "ls mixup")
    assert unknown.returncode == 2 and "METHODS: unknown method 'mixup'" in unknown.stderr
