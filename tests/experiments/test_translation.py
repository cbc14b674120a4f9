"""The IWSLT14 pipeline (scripts/nmt.py): prepare on a fake release, tiny train + evaluate, compare."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labelreg_nlp.experiments.corpora import synthetic_pairs
from labelreg_nlp.experiments.iwslt14 import TEST_SETS, ReleaseError, read_release
from labelreg_nlp.experiments.translation import PrepareOptions, compare_table, paired_sides, read_results
from labelreg_nlp.integrations.fairseq_command import user_dir
from labelreg_nlp.metrics import ScoredPredictions, aurc

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


def _nmt(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "nmt.py"), *args], env=ENV, capture_output=True,
                          text=True, timeout=timeout, check=False)


def fake_release(folder: Path, n_train: int = 400, n_test: int = 6) -> Path:
    """The raw IWSLT14 de-en layout: tagged training talks and xml dev/test sets."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = synthetic_pairs(n_train + len(TEST_SETS) * n_test, seed=3)
    train, rest = pairs[:n_train], pairs[n_train:]
    for i, lang in enumerate(("de", "en")):
        lines = ['<doc docid="1" genre="lectures">', "<url>http://www.ted.com/talks/x.html</url>",
                 "<keywords>talks, science</keywords>", "<speaker>Jane Doe</speaker>", "<talkid>1</talkid>",
                 f"<title>{'Ein Vortrag' if i == 0 else 'A talk'}</title>",
                 f"<description>{'Über Hunde.' if i == 0 else 'About dogs.'}</description>",
                 "<reviewer href=\"x\">R</reviewer>", "<translator href=\"y\">T</translator>"]
        lines += [p[i] for p in train] + ["</doc>"]
        (folder / f"train.tags.de-en.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for k, name in enumerate(TEST_SETS):
            segs = [f'<seg id="{j + 1}"> {p[i].replace(chr(39), chr(0x2019))} </seg>'
                    for j, p in enumerate(rest[k * n_test:(k + 1) * n_test])]
            xml = ['<?xml version="1.0" encoding="UTF-8"?>', "<mteval>", f'<srcset setid="{name}" srclang="de">',
                   '<doc docid="1" genre="lectures">', "<talkid>1</talkid>", *segs, "</doc>", "</srcset>", "</mteval>"]
            (folder / f"{name}.de-en.{lang}.xml").write_text("\n".join(xml) + "\n", encoding="utf-8")
    return folder


def test_read_release_follows_the_recipe(tmp_path):
    raw = fake_release(tmp_path / "de-en", n_train=10, n_test=2)
    splits = read_release(raw)
    train = synthetic_pairs(10 + 10, seed=3)
    # metadata lines dropped, <title>/<description> tags stripped (their text kept, as sed does)
    assert splits["train"][0] == ("Ein Vortrag", "A talk")
    assert splits["train"][1] == ("Über Hunde.", "About dogs.")
    assert splits["train"][2:] == train[:10]
    assert splits["test"] == train[10:]  # five sets in recipe order, ’ written back as '


def test_read_release_names_missing_and_malformed_files(tmp_path):
    raw = fake_release(tmp_path / "de-en", n_train=10, n_test=2)
    (raw / "IWSLT14.TED.tst2011.de-en.en.xml").unlink()
    with pytest.raises(ReleaseError, match=r"missing IWSLT14 file: .*IWSLT14.TED.tst2011.de-en.en.xml"):
        read_release(raw)
    (raw / "IWSLT14.TED.tst2011.de-en.en.xml").write_text("<seg id=1> no end\n")
    with pytest.raises(ReleaseError, match=r"tst2011.de-en.en.xml: malformed <seg> line"):
        read_release(raw)
    (raw / "train.tags.de-en.en").write_text("one line\n")
    with pytest.raises(ReleaseError, match=r"train.tags.de-en: 12 source lines but 1 target lines"):
        read_release(raw)
    result = _nmt("prepare", "--raw-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.strip() == f"error: IWSLT14 release folder not found: {tmp_path / 'nope'}"


def test_compare_table_mean_and_sample_std(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in [
        {"criterion": "ls", "seed": 1, "bleu": 30.0, "seconds_per_epoch": 10.0, "best_valid_nll": 4.0},
        {"criterion": "maxsup", "seed": 1, "bleu": 31.0}]))
    b.write_text("".join(json.dumps(r) + "\n" for r in [
        {"criterion": "ls", "seed": 2, "bleu": 32.0, "seconds_per_epoch": 13.0, "best_valid_nll": 4.5},
        {"criterion": "maxsup", "seed": 2, "bleu": 31.5}, {"criterion": "maxsup", "seed": 10, "bleu": 28.0},
        {"criterion": "maxsup", "seed": 10, "bleu": 33.0},  # a re-run: the last result counts
        {"criterion": "maxsup", "seed": 3, "bleu": 32.5}, {"criterion": "none", "seed": 1, "bleu": 29.0}]))
    table = compare_table(read_results([a, b])).splitlines()
    assert table[2] == "| none | 1 | 1 | 29.00 ± 0.00 | 29.00 | - | - |"
    assert table[3] == "| ls | 2 | 1, 2 | 31.00 ± 1.41 | 30.00, 32.00 | 11.5 | 4.250 |"
    assert table[4] == "| maxsup | 4 | 1, 2, 3, 10 | 32.00 ± 0.91 | 31.00, 31.50, 32.50, 33.00 | - | - |"
    result = _nmt("compare", str(a), str(b))
    assert result.returncode == 0 and table[4] in result.stdout.splitlines()
    assert "(no paired comparison: none, seed 1: its run saved no token scores" in result.stdout
    asked = _nmt("compare", str(a), str(b), "--baseline", "ls")
    assert asked.returncode == 2 and "saved no token scores" in asked.stderr
    kept = b.read_text()
    clobber = _nmt("compare", str(a), str(b), "--json", str(b))
    assert clobber.returncode == 2 and "is one of the results files read" in clobber.stderr and b.read_text() == kept
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"bleu": 1}\n')
    assert _nmt("compare", str(bad)).stderr.strip() == f"error: {bad}:1: a result needs 'criterion' and 'bleu'"


def test_paired_sides_name_each_settings_predictions_baseline_first():
    records = [{"criterion": c, "seed": seed, "bleu": 1.0, "run": f"{c}-{seed}", "token_scores": f"p/{c}-{seed}"}
               for seed in (2, 1) for c in ("maxsup", "ls", "none")]
    assert paired_sides(records) == ["none=p/none-1,p/none-2", "ls=p/ls-1,p/ls-2", "maxsup=p/maxsup-1,p/maxsup-2"]
    assert paired_sides(records, "ls")[0] == "ls=p/ls-1,p/ls-2"
    with pytest.raises(ValueError, match="baseline 'lspp' is not among the settings"):
        paired_sides(records, "lspp")
    del records[0]["token_scores"]
    with pytest.raises(ValueError, match="maxsup, seed 2: its run saved no token scores"):
        paired_sides(records)


def test_prepare_options_match_the_recipe():
    opts = PrepareOptions()
    assert (opts.bpe_merges, opts.length_ratio, opts.max_words, opts.valid_every, opts.lowercase) == (10000, 1.5, 175, 23, True)


@pytest.mark.slow
def test_prepare_train_evaluate_compare_end_to_end(tmp_path):
    raw = fake_release(tmp_path / "de-en")
    out = tmp_path / "prep"
    prep = _nmt("prepare", "--raw-dir", str(raw), "--out", str(out), "--bpe-merges", "200")
    assert prep.returncode == 0, prep.stderr[-3000:]
    sizes = json.loads(prep.stdout.strip().splitlines()[-1])["sizes"]
    # 400 talks lines + the title and description lines; every 23rd becomes validation
    assert sizes == {"train": 402 - 402 // 23, "valid": 402 // 23, "test": 30}
    assert (out / "ref" / "test.en").read_text().splitlines()[0] == synthetic_pairs(430, seed=3)[400][1].lower()
    again = _nmt("prepare", "--raw-dir", str(raw), "--out", str(out), "--bpe-merges", "200")
    assert "already prepared" in again.stdout
    run = _nmt("compare", "--run", "--data", str(out), "--criteria", "ls,maxsup", "--seeds", "1", "--recipe", "tiny",
               "--tiny-dim", "32", "--tiny-layers", "1", "--max-epoch", "2", "--cpu")
    assert run.returncode == 0, run.stderr[-3000:]
    records = read_results([out / "results.jsonl"])
    assert [(r["criterion"], r["seed"], r["epochs"]) for r in records] == [("ls", 1, 2), ("maxsup", 1, 2)]
    assert all(r["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a") for r in records)
    assert all(len(Path(r["hypotheses"]).read_text().splitlines()) == 30 for r in records)
    assert "| ls | 1 | 1 |" in run.stdout and "| maxsup | 1 | 1 |" in run.stdout
    # and paired against the first setting from what evaluate saved for labelreg-nlp compare
    assert "### against ls:" in run.stdout and "| bleu | maxsup |" in run.stdout and "| eaurc | maxsup |" in run.stdout
    saved = out / "predictions" / records[1]["run"]
    assert (saved / "test.hyp").read_text() == Path(records[1]["hypotheses"]).read_text()
    assert (saved / "test.ref").read_text() == (out / "ref" / "test.en").read_text()
    assert json.loads((saved / "results.json").read_text())["seed"] == 1
    # token confidence: every target token of the test split, its mean NLL = fairseq-validate's nll_loss
    maxsup_run = records[1]["run"]
    assert maxsup_run.startswith("maxsup-a0.1-seed1-") and records[1]["settings"]["max_epoch"] == 2
    scored = ScoredPredictions.load(out / "predictions" / maxsup_run / "test.npz")
    assert (out / "predictions" / maxsup_run / "valid.npz").is_file()
    assert records[1]["token_aurc_msp"] == pytest.approx(aurc(scored.scores["msp"], scored.correct), abs=1e-4)
    validate = subprocess.run(
        [sys.executable, "-m", "fairseq_cli.validate", str(out / "data-bin"), "--path", records[1]["checkpoint"],
         "--user-dir", user_dir(), "--task", "translation", "--valid-subset", "test", "--cpu", "--max-tokens", "4096",
         "--required-batch-size-multiple", "1"],
        env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert validate.returncode == 0, validate.stderr[-3000:]
    logged = re.search(r"valid on 'test' subset \| .*?\| nll_loss ([\d.]+) \| total (\d+) \| n_correct (\d+)",
                       validate.stdout + validate.stderr)
    assert logged, (validate.stdout + validate.stderr)[-2000:]
    assert len(scored) == int(logged[2]) and int(scored.correct.sum()) == int(logged[3])
    assert float(-scored.target_log_prob.mean()) / math.log(2) == pytest.approx(float(logged[1]), abs=1.5e-3)
    rerun = _nmt("compare", "--run", "--data", str(out), "--criteria", "ls", "--seeds", "1", "--recipe", "tiny",
                 "--tiny-dim", "32", "--tiny-layers", "1", "--max-epoch", "2", "--cpu")
    assert "already evaluated, skipped" in rerun.stdout


def test_prepare_refuses_unknown_arguments(tmp_path):
    result = _nmt("prepare", "--out", str(tmp_path), "--typo")
    assert result.returncode == 2 and result.stderr.strip() == "error: unrecognized arguments: --typo"


def test_read_parallel_aligns_lines_and_names_bad_files(tmp_path):
    from labelreg_nlp.experiments.translation import read_parallel

    (tmp_path / "a.de").write_text("Hallo Welt \nGuten Tag\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("Hello world\n Good day\n", encoding="utf-8")
    assert read_parallel(tmp_path / "a.de", tmp_path / "a.en") == [("Hallo Welt", "Hello world"), ("Guten Tag", "Good day")]
    (tmp_path / "b.en").write_text("only one\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"a.de has 2 lines but .*b.en has 1"):
        read_parallel(tmp_path / "a.de", tmp_path / "b.en")
    with pytest.raises(FileNotFoundError, match=r"parallel text file not found: .*c.en"):
        read_parallel(tmp_path / "a.de", tmp_path / "c.en")


@pytest.mark.slow
def test_runs_are_keyed_by_their_options_never_mixed_and_resume(tmp_path):
    """A run with alpha 0.1 is never resumed, evaluated or recorded as alpha 0.3; a re-run refuses;
    a stopped run resumes to the epochs of an uninterrupted one; a failing fairseq-train is one
    line and leaves no run folder."""
    raw = fake_release(tmp_path / "de-en", n_train=200, n_test=4)
    out = tmp_path / "prep"
    assert _nmt("prepare", "--raw-dir", str(raw), "--out", str(out), "--bpe-merges", "100").returncode == 0
    tiny = ["--data", str(out), "--recipe", "tiny", "--tiny-dim", "16", "--tiny-layers", "1", "--cpu", "--max-epoch", "2"]
    first = _nmt("train", "--criterion", "ls", "--alpha", "0.1", *tiny)
    assert first.returncode == 0, first.stderr[-3000:]
    (run,) = (out / "checkpoints").iterdir()
    assert run.name.startswith("ls-a0.1-seed1-") and json.loads((run / "run.json").read_text())["status"] == "finished"
    again = _nmt("train", "--criterion", "ls", "--alpha", "0.1", *tiny)
    assert again.returncode == 2 and "already holds a finished run" in again.stderr
    wrong = _nmt("evaluate", "--criterion", "ls", "--alpha", "0.3", "--no-token-scores", *tiny)
    assert wrong.returncode == 2 and f"the runs there: {run.name}: alpha 0.1 (now 0.3)" in wrong.stderr
    resumed_other = _nmt("train", "--criterion", "ls", "--alpha", "0.3", "--resume", *tiny)
    assert resumed_other.returncode == 2 and "alpha 0.1 (now 0.3)" in resumed_other.stderr
    assert not (out / "results.jsonl").exists()

    cut = _nmt("train", "--criterion", "ols", "--stop-after-epoch", "1", *tiny)
    assert cut.returncode == 0 and "stopped after epoch 1" in cut.stdout, cut.stderr[-3000:]
    refused = _nmt("train", "--criterion", "ols", *tiny)
    assert refused.returncode == 2 and "already holds a stopped run" in refused.stderr
    resumed = _nmt("train", "--criterion", "ols", "--resume", *tiny)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    stats = json.loads(resumed.stdout.strip().splitlines()[-1])
    straight = _nmt("train", "--criterion", "ols", "--seed", "2", *tiny)
    assert stats["epochs"] == json.loads(straight.stdout.strip().splitlines()[-1])["epochs"] == 2
    assert "| epoch 001 |" not in resumed.stdout  # epoch 1 was not trained again

    for alpha in ("0.1", "0.3"):
        if alpha == "0.3":
            assert _nmt("train", "--criterion", "ls", "--alpha", alpha, *tiny).returncode == 0
        evaluated = _nmt("evaluate", "--criterion", "ls", "--alpha", alpha, "--beam", "1", "--no-token-scores", *tiny)
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    table = _nmt("compare", str(out / "results.jsonl")).stdout
    assert "| ls (alpha 0.1) | 1 | 1 |" in table and "| ls (alpha 0.3) | 1 | 1 |" in table

    failed = _nmt("train", "--criterion", "maxsup", *tiny, "--no-such-fairseq-flag")
    assert failed.returncode == 2
    assert "fairseq-train failed" in failed.stderr and "unrecognized arguments: --no-such-fairseq-flag" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    assert not list((out / "checkpoints").glob("maxsup*")) and list((out / "logs").glob("maxsup*.train.log"))
