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


@pytest.mark.parametrize("stops", [(1,), (2,), (1, 2)], ids=["after-1", "after-2", "after-1-then-2"])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, stops):
    """OLS (state at period ends), Mixup+CutMix (random draws) and a scheduled alpha, stopped after
    any epoch (and again after resuming): the resumed run's test logits are the uninterrupted
    run's, bit for bit."""
    args = ("--method", "ols", "--mixup", "0.8", "--cutmix", "1.0", "--epochs", "3")
    assert run(tmp_path / "straight", *args) == 0
    for i, stop in enumerate(stops):
        assert run(tmp_path / "cut", *args, "--stop-after", str(stop), *(["--resume"] if i else [])) == 0
        assert not (tmp_path / "cut" / "results.json").exists()
    assert run(tmp_path / "cut", *args, "--resume") == 0
    a = load_arrays(tmp_path / "straight" / "predictions" / "test.npz")["logits"]
    b = load_arrays(tmp_path / "cut" / "predictions" / "test.npz")["logits"]
    assert torch.equal(a, b)
    history = json.loads((tmp_path / "cut" / "results.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3]


def test_a_folder_holding_a_run_is_refused_unless_resume_or_overwrite(tmp_path, capsys):
    """The run manifest names every option that changes the result; a re-run refuses, --resume
    checks each option (the refusal names all that differ), --overwrite starts anew."""
    assert run(tmp_path, "--method", "ls", "--stop-after", "1") == 0
    manifest = json.loads((tmp_path / "run.json").read_text())
    assert manifest["status"] == "stopped" and manifest["options"]["method"] == "ls"
    assert {"alpha", "epochs", "batch_size", "width", "data", "seed", "lr"} <= set(manifest["options"])
    checkpoint = (tmp_path / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert run(tmp_path, "--method", "ls") == 2  # no flag: refused, nothing replaced
    err = capsys.readouterr().err
    assert "already holds a stopped run (method 'ls', alpha 0.1, seed 0, epochs 2)" in err and "--resume" in err
    assert len(err.strip().splitlines()) == 1 and (tmp_path / "checkpoint.pt").read_bytes() == checkpoint
    assert run(tmp_path, "--method", "maxsup", "--alpha", "0.3", "--width", "16", "--resume") == 2
    err = capsys.readouterr().err
    assert "alpha 0.1 (now 0.3)" in err and "method 'ls' (now 'maxsup')" in err and "width 8 (now 16)" in err
    for changed in (["--epochs", "3"], ["--batch-size", "32"], ["--data", "fashion-mnist", "--data-dir", str(tmp_path)]):
        assert run(tmp_path, "--method", "ls", "--resume", *changed) == 2
    assert (tmp_path / "checkpoint.pt").read_bytes() == checkpoint
    assert run(tmp_path, "--method", "ls", "--resume", "--overwrite") == 2
    assert "exclude each other" in capsys.readouterr().err
    assert run(tmp_path, "--method", "maxsup", "--overwrite") == 0
    assert json.loads((tmp_path / "run.json").read_text())["options"]["method"] == "maxsup"
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "finished"
    assert json.loads((tmp_path / "results.json").read_text())["config"]["method"] == "maxsup"


def test_folders_and_files_that_are_not_runs(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for flags in ([], ["--overwrite"], ["--resume"]):
        assert run(tmp_path / "mine", *flags) == 2
        assert "holds files but no run.json" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert run(tmp_path / "cut", "--stop-after", "1") == 0
    (tmp_path / "cut" / "checkpoint.pt").write_bytes(b"truncated")
    assert run(tmp_path / "cut", "--resume") == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt is not an image-classifier checkpoint: torch cannot read it" in err
    assert len(err.strip().splitlines()) == 1


def test_images_as_users_have_them(tmp_path, capsys):
    """RGBA images (4 channels, channels last) train on 4 channels; a shape whose channel axis
    cannot be told, one-hot labels and a damaged file are one-line errors naming the file."""
    g = np.random.default_rng(0)
    y = np.arange(40) % 2
    rgba = (g.random((40, 8, 8, 4)) * 0.3 + y[:, None, None, None] / 2).astype(np.float32)
    np.savez(tmp_path / "rgba.npz", x_train=rgba[:30], y_train=y[:30], x_test=rgba[30:], y_test=y[30:])
    assert run(tmp_path / "out", "--data", f"npz:{tmp_path / 'rgba.npz'}", "--plot-classes", "0") == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["num_classes"] == 2
    np.savez(tmp_path / "cube.npz", x_train=rgba[:30, :3, :, :3], y_train=y[:30], x_test=rgba[30:, :3, :, :3],
             y_test=y[30:])
    np.savez(tmp_path / "onehot.npz", x_train=rgba[:30], y_train=np.eye(2)[y[:30]], x_test=rgba[30:], y_test=y[30:])
    (tmp_path / "cut.npz").write_bytes((tmp_path / "rgba.npz").read_bytes()[:500])
    for name, message in (("cube", "cannot tell the channel axis of shape (30, 3, 8, 3)"),
                          ("onehot", "y_train must be a 1-d array of integer class indices"),
                          ("cut", "cut.npz is not a readable .npz (truncated or damaged")):
        assert run(tmp_path / name, "--data", f"npz:{tmp_path / name}.npz") == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / name).exists()  # bad data leaves no run folder behind
    # a folder of mixed grey, palette and RGBA PNGs reads as RGB, as a viewer shows them
    from PIL import Image

    for split, n in (("train", 6), ("test", 2)):
        for label in ("a", "b"):
            folder = tmp_path / "pics" / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = (g.random((8, 8, 4)) * 255).astype(np.uint8)
                image = Image.fromarray(pixels, "RGBA")
                image = {0: image, 1: image.convert("L"), 2: image.convert("P")}[i % 3]
                image.save(folder / f"{i}.png")
    from labelreg_nlp.experiments.image_data import load_image_data

    data = load_image_data(f"folder:{tmp_path / 'pics'}")
    assert tuple(data.x_train.shape) == (12, 3, 8, 8) and data.classes == ("a", "b")
    (tmp_path / "pics" / "train" / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        load_image_data(f"folder:{tmp_path / 'pics'}")


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


def test_the_alpha_schedule_is_the_authors_per_epoch_values(tmp_path):
    """MaxSup's 0.1 -> 0.2 (MaxSup paper, Appendix E): alpha_e = 0.1 + 0.1 e / (E - 1) over E
    epochs, the last epoch at 0.2 (15 epochs: ..., 0.1857, 0.1929, 0.2)."""
    from labelreg_nlp.losses.schedules import LinearSchedule

    authors = [0.1 + 0.1 * e / 14 for e in range(15)]
    assert [LinearSchedule(0.1, 0.2, 15)(e) for e in range(15)] == pytest.approx(authors)
    assert run(tmp_path, "--method", "maxsup", "--alpha-end", "0.2", "--epochs", "3", "--plot-classes", "0") == 0
    history = json.loads((tmp_path / "results.json").read_text())["history"]
    assert [row["alpha"] for row in history] == pytest.approx([0.1, 0.15, 0.2])
