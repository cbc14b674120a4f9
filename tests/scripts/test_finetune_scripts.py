"""The fine-tuning scripts end to end, as a user runs them (subprocess), on tiny data."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labelreg_nlp.experiments.corpora import synthetic_pairs
from labelreg_nlp.experiments.packaged_data import minilm_path
from labelreg_nlp.metrics import ScoredPredictions, aurc

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / script), *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory) -> Path:
    """A 1-layer BERT from a config with the packaged MiniLM tokenizer, saved like a hub model."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    path = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _reviews_csv(path: Path, n: int = 60) -> Path:
    words = {"good": ["great", "fine", "lovely", "superb"], "bad": ["awful", "dull", "poor", "boring"]}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment"])
        for i in range(n):
            label = "good" if i % 2 else "bad"
            writer.writerow([f"a {words[label][i % 4]} film number {i}", label])
    return path


@pytest.mark.parametrize("method", ["ols", "lspp"])
def test_text_classification_end_to_end(tmp_path, tiny_classifier, method):
    data = _reviews_csv(tmp_path / "reviews.csv")
    result = _run("finetune_text_classification.py", "--model_name_or_path", str(tiny_classifier),
                  "--dataset", str(data), "--text_column", "review", "--label_column", "sentiment",
                  "--method", method, "--num_train_epochs", "2", "--per_device_train_batch_size", "8",
                  "--learning_rate", "1e-3", "--output_dir", str(tmp_path / "out"), "--disable_tqdm", "true")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["method"] == method and results["num_labels"] == 2
    assert results["train_examples"] == 48  # 60 split 48 / 6 / 6
    test = results["test"]
    assert test["n"] == 6 and 0 <= test["accuracy"] <= 1 and test["nll"] > 0
    assert 0 <= test["ece"] <= 1 and 0 <= test["eaurc"] <= test["aurc"] <= 1
    assert f"| {method} |" in result.stdout
    # the saved logits give the same numbers through the evaluate CLI
    saved = {split: ScoredPredictions.load(tmp_path / "out" / "predictions" / f"{split}.npz")
             for split in ("validation", "test")}
    assert len(saved["validation"]) == 6 and len(saved["test"]) == 6
    assert aurc(saved["test"].scores["msp"], saved["test"].correct) == pytest.approx(test["aurc"])
    assert results["confidence"]["pnorm"]["picked_on"] == "validation" and "aurc_pnorm" in test
    evaluated = subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "evaluate", str(tmp_path / "out")],
                               env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert f"| msp | {test['aurc']:.4f} |" in evaluated.stdout
    # the final model and the method's state are saved: what neighbours reads, names from id2label
    assert (tmp_path / "out" / "labelreg_state.pt").is_file() and (tmp_path / "out" / "config.json").is_file()
    shown = subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "neighbours", str(tmp_path / "out"), "--top", "1"],
                           env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.startswith(f"{method}: 2 classes") and "| `bad` |" in shown.stdout


def test_text_classification_errors_are_one_line(tmp_path):
    missing = _run("finetune_text_classification.py", "--dataset", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: data file not found: {tmp_path / 'nope.csv'}"
    data = _reviews_csv(tmp_path / "reviews.csv")
    no_column = _run("finetune_text_classification.py", "--dataset", str(data))
    assert no_column.returncode == 2
    assert no_column.stderr.strip() == f"error: {data} has no column 'text' (columns: review, sentiment)"


@pytest.mark.parametrize("method", [["maxsup", "--alpha", "0.1"], ["lls", "--lls_rank", "8", "--labelreg_lr", "0.01"]])
def test_seq2seq_end_to_end(tmp_path, method):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"de": de, "en": en}) + "\n" for de, en in synthetic_pairs(120)))
    result = _run("finetune_seq2seq.py", "--train_file", str(data), "--source_column", "de", "--target_column", "en",
                  "--method", *method, "--scratch_vocab_size", "60", "--scratch_d_model", "32",
                  "--scratch_layers", "1", "--num_beams", "2", "--max_target_length", "16",
                  "--per_device_train_batch_size", "16", "--num_train_epochs", "2",
                  "--output_dir", str(tmp_path / "out"), "--disable_tqdm", "true")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["sizes"] == {"test": 12, "validation": 12, "train": 96}
    assert 0 <= results["bleu"] <= 100 and results["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    hypotheses = (tmp_path / "out" / "test.hyp").read_text().splitlines()
    assert len(hypotheses) == 12
    assert "BLEU" in result.stdout and "signature: nrefs:1" in result.stdout
    token = results["token_confidence"]
    scored = ScoredPredictions.load(tmp_path / "out" / "predictions" / "test.npz")
    assert token["n"] == len(scored) > 12  # every target token of the 12 test pairs, end of sentence included
    assert token["aurc"] == pytest.approx(aurc(scored.scores["msp"], scored.correct))
    assert (tmp_path / "out" / "predictions" / "validation.npz").is_file()
    assert "test tokens (teacher forcing): accuracy" in result.stdout


def test_seq2seq_errors_are_one_line(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"de": "Hallo", "en": "Hello"}) + "\n")
    result = _run("finetune_seq2seq.py", "--train_file", str(data))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {data} has no column 'source' (columns: de, en)"
    bad_type = _run("finetune_seq2seq.py", "--train_file", str(tmp_path / "pairs.txt"))
    assert bad_type.stderr.strip() == f"error: data file not found: {tmp_path / 'pairs.txt'}"


@pytest.mark.parametrize("script", ["finetune_text_classification.py", "finetune_seq2seq.py", "finetune_causal_lm.py"])
def test_help_explains_every_option(script):
    result = _run(script, "--help")
    assert result.returncode == 0
    for option in ("--model_name_or_path", "--method", "--alpha", "--alpha_end", "--ols_topk", "--num_train_epochs",
                   "--results_file", "--max_train_samples"):
        assert option in result.stdout
    assert "offline" in result.stdout


@pytest.mark.slow
def test_text_classification_real_default(tmp_path):
    """The embedded default: pretrained MiniLM on the 10,248 Rotten Tomatoes snippets, kept to
    120 of the epoch's 321 steps (the whole epoch is measured in docs/fine-tuning.md)."""
    result = _run("finetune_text_classification.py", "--method", "maxsup", "--output_dir", str(tmp_path),
                  "--disable_tqdm", "true", "--max_steps", "120", timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["train_examples"] == 10248 and results["test"]["n"] == 1280
    assert results["test"]["accuracy"] > 0.70  # a pretrained encoder, not chance (0.58 = majority class)


def _classify(tmp_path: Path, model: Path, out: str, *extra: str) -> subprocess.CompletedProcess:
    data = tmp_path / "reviews.csv"
    if not data.exists():
        _reviews_csv(data)
    return _run("finetune_text_classification.py", "--model_name_or_path", str(model), "--dataset", str(data),
                "--text_column", "review", "--label_column", "sentiment", "--method", "ols", "--num_train_epochs", "2",
                "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--output_dir", str(tmp_path / out),
                "--disable_tqdm", "true", *extra)


@pytest.mark.slow
def test_text_classification_runs_are_never_overwritten_and_resume_exactly(tmp_path, tiny_classifier):
    """A re-run into a folder holding a run refuses; --resume_from_checkpoint last continues it
    after checking every result-changing option; stopping at step 5 and resuming gives the
    uninterrupted run's test logits (OLS state, optimizer, schedule and data order restored)."""
    import torch

    from labelreg_nlp.metrics import load_arrays

    straight = _classify(tmp_path, tiny_classifier, "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    manifest = json.loads((tmp_path / "straight" / "run.json").read_text())
    assert manifest["status"] == "finished" and manifest["options"]["labelreg.method"] == "ols"
    assert manifest["options"]["training.learning_rate"] == 0.001 and "training.output_dir" not in manifest["options"]
    before = (tmp_path / "straight" / "results.json").read_text()
    again = _classify(tmp_path, tiny_classifier, "straight")
    assert again.returncode == 2 and "already holds a finished run" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and (tmp_path / "straight" / "results.json").read_text() == before
    changed = _classify(tmp_path, tiny_classifier, "straight", "--resume_from_checkpoint", "last", "--learning_rate",
                        "2e-3", "--method", "ls")
    assert changed.returncode == 2
    assert "training.learning_rate 0.001 (now 0.002)" in changed.stderr and "method 'ols' (now 'ls')" in changed.stderr

    cut = _classify(tmp_path, tiny_classifier, "cut", "--stop_after_steps", "5")
    assert cut.returncode == 0, cut.stderr[-3000:]
    assert "stopped after step 5 of 12" in cut.stdout and not (tmp_path / "cut" / "results.json").exists()
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["status"] == "stopped"
    resumed = _classify(tmp_path, tiny_classifier, "cut", "--resume_from_checkpoint", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = load_arrays(tmp_path / "straight" / "predictions" / "test.npz")["logits"]
    b = load_arrays(tmp_path / "cut" / "predictions" / "test.npz")["logits"]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # a wrong resume moves them by ~1e-1

    missing = _classify(tmp_path, tiny_classifier, "cut", "--resume_from_checkpoint", str(tmp_path / "nope"))
    assert missing.returncode == 2 and f"--resume_from_checkpoint {tmp_path / 'nope'}: no such checkpoint folder" in missing.stderr
    replaced = _classify(tmp_path, tiny_classifier, "cut", "--overwrite", "--method", "maxsup")
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert json.loads((tmp_path / "cut" / "results.json").read_text())["method"] == "maxsup"
    inside = _run("finetune_text_classification.py", "--model_name_or_path", str(tiny_classifier), "--dataset",
                  str(tmp_path / "reviews.csv"), "--text_column", "review", "--label_column", "sentiment",
                  "--output_dir", str(tmp_path), "--overwrite")
    assert inside.returncode == 2 and "lies inside --output_dir" in inside.stderr


@pytest.mark.slow
def test_seq2seq_stop_and_resume_equals_an_uninterrupted_run(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"de": de, "en": en}) + "\n" for de, en in synthetic_pairs(120)))

    def seq2seq(out: str, *extra: str) -> subprocess.CompletedProcess:
        return _run("finetune_seq2seq.py", "--train_file", str(data), "--source_column", "de", "--target_column", "en",
                    "--method", "lls", "--scratch_vocab_size", "60", "--scratch_d_model", "32", "--scratch_layers", "1",
                    "--num_beams", "2", "--max_target_length", "16", "--per_device_train_batch_size", "16",
                    "--num_train_epochs", "2", "--output_dir", str(tmp_path / out), "--disable_tqdm", "true", *extra)

    straight = seq2seq("straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    cut = seq2seq("cut", "--stop_after_steps", "7")
    assert cut.returncode == 0 and "stopped after step 7 of 12" in cut.stdout, cut.stderr[-3000:]
    assert seq2seq("cut").returncode == 2  # neither flag: refused
    resumed = seq2seq("cut", "--resume_from_checkpoint", "True")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("straight", "cut"))
    assert a["bleu"] == b["bleu"]
    assert a["token_confidence"]["nll"] == pytest.approx(b["token_confidence"]["nll"], rel=1e-5)
    assert (tmp_path / "straight" / "test.hyp").read_text() == (tmp_path / "cut" / "test.hyp").read_text()


def _texts_file(path: Path, n: int = 60) -> Path:
    """``n`` short texts with a pattern to learn (numbers counting up), as JSONL."""
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
    rows = [{"body": " ".join(words[(i + j) % 8] for j in range(3 + i % 5))} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _causal(tmp_path: Path, out: str, *extra: str) -> subprocess.CompletedProcess:
    data = _texts_file(tmp_path / "texts.jsonl") if not (tmp_path / "texts.jsonl").exists() else tmp_path / "texts.jsonl"
    return _run("finetune_causal_lm.py", "--dataset", str(data), "--text_column", "body", "--scratch_vocab_size", "40",
                "--scratch_hidden", "16", "--scratch_layers", "1", "--per_device_train_batch_size", "8",
                "--num_train_epochs", "2", "--logging_steps", "1", "--output_dir", str(tmp_path / out),
                "--disable_tqdm", "true", *extra)


@pytest.mark.parametrize("options", [["--method", "lls", "--lls_rank", "4", "--fused_linear", "--packing"],
                                     ["--method", "ols", "--lora", "--lora_r", "2"]])
def test_causal_lm_end_to_end(tmp_path, options):
    result = _causal(tmp_path, "out", *options)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["sizes"] == {"test": 6, "validation": 6, "train": 48}
    assert results["method"] == options[1] and results["lora"] == ("--lora" in options)
    assert results["packing"] == ("--packing" in options)
    scored = ScoredPredictions.load(tmp_path / "out" / "predictions" / "test.npz")
    token = results["test_tokens"]
    assert token["n"] == len(scored) > 6
    assert token["aurc"] == pytest.approx(aurc(scored.scores["msp"], scored.correct))
    assert token["nll"] == pytest.approx(-float(scored.target_log_prob.mean()), rel=1e-5)
    assert (tmp_path / "out" / "predictions" / "validation.npz").is_file()
    assert f"| {options[1]} |" in result.stdout
    evaluated = subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "evaluate", str(tmp_path / "out")],
                               env=ENV, capture_output=True, text=True)
    assert evaluated.returncode == 0 and f"| msp | {token['aurc']:.4f} |" in evaluated.stdout


def test_causal_lm_errors_are_one_line(tmp_path):
    missing = _causal(tmp_path, "a", "--text_column", "nope")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'texts.jsonl'} has no column 'nope' (columns: body)"
    unbounded = _causal(tmp_path, "b", "--padding_free")
    assert unbounded.returncode == 2 and "--padding_free without --packing" in unbounded.stderr.splitlines()[-1]
    assert not (tmp_path / "b").exists()  # nothing claimed
    rerun = [_causal(tmp_path, "c", "--max_steps", "1") for _ in range(2)]
    assert rerun[0].returncode == 0 and rerun[1].returncode == 2
    assert "already holds a finished run" in rerun[1].stderr.splitlines()[-1]
