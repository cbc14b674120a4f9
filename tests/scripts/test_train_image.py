"""scripts/train_image_classifier.py end to end on scikit-learn's digits: every method, a falling
loss, an interrupted-and-resumed run equal to an uninterrupted one, and bad inputs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from labelreg_nlp.losses.registry import METHODS
from labelreg_nlp.metrics import load_arrays

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train_image_classifier.py"
pytest.importorskip("sklearn")


def _script():
    spec = importlib.util.spec_from_file_location("train_image_classifier", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(out: Path, *args: str) -> int:
    base = ["--data", "digits", "--epochs", "2", "--width", "8", "--batch-size", "64", "--lr", "0.1",
            "--no-progress", "--probe-examples", "500", "--output-dir", str(out)]
    return _script().main([*base, *args])


@pytest.mark.parametrize("method", tuple(METHODS))
def test_every_method_trains_and_reports(method, tmp_path):
    assert run(tmp_path, "--method", method, *(["--alpha", "0.0"] if method == "none" else [])) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    losses = [row["train_loss"] for row in results["history"]]
    assert len(losses) == 2 and losses[1] < losses[0]
    test = results["test"]
    assert test["accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert 0 <= test["ece"] <= 1 and 0 <= test["aurc"] <= 1 and -1 < test["r2"] <= 1
    assert test["linear_probe_accuracy"] > 0.5
    saved = load_arrays(tmp_path / "predictions" / "test.npz")
    assert saved["logits"].shape == (449, 10)
    assert float((saved["logits"].argmax(-1) == saved["labels"]).double().mean()) == pytest.approx(test["accuracy"])
    assert (tmp_path / "features_pca.png").stat().st_size > 1000


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    """OLS (state at period ends), Mixup+CutMix (random draws) and a scheduled alpha: the resumed
    run's test logits are the uninterrupted run's, bit for bit."""
    args = ("--method", "ols", "--mixup", "0.8", "--cutmix", "1.0", "--epochs", "3")
    assert run(tmp_path / "straight", *args) == 0
    assert run(tmp_path / "cut", *args, "--stop-after", "1") == 0
    assert not (tmp_path / "cut" / "results.json").exists()
    assert run(tmp_path / "cut", *args, "--resume") == 0
    a = load_arrays(tmp_path / "straight" / "predictions" / "test.npz")["logits"]
    b = load_arrays(tmp_path / "cut" / "predictions" / "test.npz")["logits"]
    assert torch.equal(a, b)
    history = json.loads((tmp_path / "cut" / "results.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3]


def test_resume_refuses_another_method(tmp_path, capsys):
    assert run(tmp_path, "--method", "ls", "--stop-after", "1") == 0
    assert run(tmp_path, "--method", "maxsup", "--resume") == 2
    assert "was saved by a run of method 'ls', not 'maxsup'" in capsys.readouterr().err


def test_npz_data_and_vit(tmp_path):
    g = np.random.default_rng(0)
    y = np.arange(120) % 3
    x = (g.random((120, 8, 8)) * 0.3 + y[:, None, None] / 3).astype(np.float32)  # class sets the brightness
    np.savez(tmp_path / "data.npz", x_train=x[:90], y_train=y[:90], x_test=x[90:], y_test=y[90:])
    assert run(tmp_path / "out", "--data", f"npz:{tmp_path / 'data.npz'}", "--model", "vit", "--width", "16",
               "--val-fraction", "0.2", "--plot-classes", "0") == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["num_classes"] == 3 and results["test_examples"] == 30 and results["validation_examples"] == 18


def test_help_and_clear_errors(tmp_path):
    help_text = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--method", "--mixup", "--cutmix", "--resume", "--ols-hard-weight", "--lspp-rank", "--data-dir"):
        assert flag in help_text
    bad = subprocess.run([sys.executable, str(SCRIPT), "--data-dir", str(tmp_path), "--no-progress"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert f"Fashion-MNIST not found in {tmp_path}" in bad.stderr and "apt-get install dataset-fashion-mnist" in bad.stderr
    bad = subprocess.run([sys.executable, str(SCRIPT), "--data", "cifar"], capture_output=True, text=True)
    assert "--data must be fashion-mnist, digits, npz:PATH or folder:PATH, got 'cifar'" in bad.stderr
