"""BLEU and chrF differences: sacrebleu's paired bootstrap p-value on the same files and seed,
identical systems, and `labelreg-nlp compare` on translation run folders."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
import torch

sacrebleu = pytest.importorskip("sacrebleu")
from sacrebleu.metrics import BLEU, CHRF  # noqa: E402
from sacrebleu.significance import PairedTest  # noqa: E402

from labelreg_nlp.analysis.bleu_comparison import bleu_differences  # noqa: E402
from labelreg_nlp.metrics import ScoredPredictions  # noqa: E402

WORDS = "the a cat dog sat ran on under mat log house tree big small red blue".split()


def corpus(n: int = 120, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(n)]


def noisy(references: list[str], rate: float, seed: int) -> list[str]:
    """The references with each word replaced at ``rate``."""
    rng = random.Random(seed)
    return [" ".join(w if rng.random() > rate else rng.choice(WORDS) for w in r.split()) for r in references]


def test_one_seed_per_side_gives_sacrebleus_own_paired_bootstrap_p_value():
    refs = corpus()
    base, better = noisy(refs, 0.4, 1), noisy(refs, 0.3, 2)
    test = PairedTest([("base", base), ("better", better)], {"BLEU": BLEU(), "chrF": CHRF()}, [refs],
                      test_type="bs", n_samples=1000)
    _, theirs = test()
    rows = {r.metric: r for r in bleu_differences([base], {"better": [better]}, refs, samples=1000)}
    assert rows["bleu"].p_value == pytest.approx(theirs["BLEU"][1].p_value, abs=1e-12)
    assert rows["chrf"].p_value == pytest.approx(theirs["chrF2"][1].p_value, abs=1e-12)
    assert rows["bleu"].difference == pytest.approx(theirs["BLEU"][1].score - theirs["BLEU"][0].score, abs=1e-9)
    assert rows["bleu"].low < rows["bleu"].difference < rows["bleu"].high


def test_identical_systems_differ_by_nothing():
    refs = corpus(60, seed=3)
    hyps = noisy(refs, 0.3, 4)
    for row in bleu_differences([hyps, hyps], {"same": [hyps, hyps]}, refs, samples=200):
        assert row.difference == 0 and row.low == 0 and row.high == 0 and row.seed_low == 0


def test_seeds_with_their_own_references_are_resampled_each_on_its_own():
    """Seed 2 has other references (its own test split) and the same system on both sides: the
    interval and difference are seed 1's alone halved, the p-value sacrebleu's for seed 1."""
    refs, other_refs = corpus(100, seed=7), corpus(70, seed=8)
    base, better, same = noisy(refs, 0.4, 1), noisy(refs, 0.3, 2), noisy(other_refs, 0.3, 3)
    alone = bleu_differences([base], {"m": [better]}, refs, samples=300)
    mixed = bleu_differences([base, same], {"m": [better, same]}, [refs, other_refs], samples=300)
    for a, b in zip(alone, mixed):
        assert (b.difference, b.low, b.high) == pytest.approx((a.difference / 2, a.low / 2, a.high / 2), abs=1e-5)  # float32 statistics
        assert b.p_value == a.p_value
    with pytest.raises(ValueError, match="m has 70 hypotheses for 100 references"):
        bleu_differences([base, same], {"m": [same, better]}, [refs, other_refs], samples=10)


def test_the_cli_adds_bleu_and_chrf_for_translation_runs(tmp_path):
    refs = corpus(80, seed=5)
    gen = torch.Generator().manual_seed(0)
    for name, rate in (("ls", 0.5), ("maxsup", 0.2)):
        for seed in (1, 2):
            folder = tmp_path / f"{name}-seed{seed}"
            n = 300
            labels = torch.zeros(n, dtype=torch.long)
            msp = torch.rand(n, generator=gen, dtype=torch.float64).clamp(0.05, 0.95)
            scores = {"msp": msp, "max_logit": msp, "neg_entropy": msp, "margin": msp}
            ScoredPredictions(labels, labels, msp.log(), scores, msp.expand(10, n).clone()).save(
                folder / "test.npz")
            (folder / "test.hyp").write_text("\n".join(noisy(refs, rate, seed)) + "\n")
            (folder / "test.ref").write_text("\n".join(refs) + "\n")
            (folder / "results.json").write_text(json.dumps({"seed": seed}))
    sides = [f"{name}={tmp_path / f'{name}-seed1'},{tmp_path / f'{name}-seed2'}" for name in ("ls", "maxsup")]
    out = subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "compare", *sides, "--samples", "200"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "| bleu | maxsup |" in out.stdout and "| chrf | maxsup |" in out.stdout
    assert "over 7 rows" in out.stdout  # 5 score metrics and 2 text metrics, one method


def test_the_cli_pairs_runs_whose_seeds_drew_their_own_test_split(tmp_path):
    """As the translation demo saves them: each seed its own test sentences, shared by the methods."""
    gen = torch.Generator().manual_seed(1)
    refs = {1: corpus(60, seed=11), 2: corpus(50, seed=12)}
    for name, rate in (("ls", 0.5), ("maxsup", 0.2)):
        for seed, n in ((1, 120), (2, 90)):  # tokens of each split
            folder = tmp_path / f"s{seed}" / "predictions" / name
            labels = torch.full((n,), seed, dtype=torch.long)
            msp = torch.rand(n, generator=gen, dtype=torch.float64).clamp(0.05, 0.95)
            scores = {"msp": msp, "max_logit": msp, "neg_entropy": msp, "margin": msp}
            ScoredPredictions(labels, labels, msp.log(), scores, msp.expand(10, n).clone()).save(folder / "test.npz")
            (folder / "test.hyp").write_text("\n".join(noisy(refs[seed], rate, seed)) + "\n")
            (folder / "test.ref").write_text("\n".join(refs[seed]) + "\n")
            (folder / "results.json").write_text(json.dumps({"criterion": name, "seed": seed}))
    sides = [f"{name}={tmp_path / 's2' / 'predictions' / name},{tmp_path / 's1' / 'predictions' / name}"
             for name in ("ls", "maxsup")]
    out = subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "compare", *sides, "--samples", "200"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "| bleu | maxsup |" in out.stdout and "(2 seeds)" in out.stdout
    (tmp_path / "s1" / "predictions" / "maxsup" / "test.ref").write_text("\n".join(refs[2]) + "\n")
    wrong = subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "compare", *sides, "--samples", "20"],
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "s1/predictions/maxsup: its test.ref differs from" in wrong.stderr
