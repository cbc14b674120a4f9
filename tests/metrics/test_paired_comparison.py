"""Paired comparisons: the bootstrap interval's coverage, identical runs, order invariance, the
seed interval, Holm's correction, and `labelreg-nlp compare` on saved runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from labelreg_nlp.metrics import ScoredPredictions
from labelreg_nlp.metrics.paired_comparison import SCORE_METRICS, compare_runs, metric_value


def synthetic_run(correct: torch.Tensor, gen: torch.Generator) -> ScoredPredictions:
    """Predictions over 3 classes whose correctness is ``correct``, with MSP confidences that
    lean towards the correct ones."""
    n = correct.numel()
    labels = torch.zeros(n, dtype=torch.long)
    predictions = torch.where(correct, labels, torch.ones_like(labels))
    msp = (0.4 + 0.3 * correct.double() + 0.3 * torch.rand(n, generator=gen, dtype=torch.float64)).clamp(max=0.999)
    log_p = torch.where(correct, msp.log(), ((1 - msp) / 2).log())
    scores = {"msp": msp, "max_logit": msp.log(), "neg_entropy": msp, "margin": 2 * msp - 1}  # stand-ins
    return ScoredPredictions(labels, predictions, log_p, scores, msp.expand(10, n).clone())


def test_the_bootstrap_interval_covers_the_true_difference_at_the_nominal_rate():
    """500 simulated pairs of runs on 400 test examples, the method right with probability 0.75
    and the baseline 0.70 (paired through a shared draw): the 95% interval of the accuracy
    difference covers the true 0.05 in 95% +- 3 points of them."""
    gen = torch.Generator().manual_seed(0)
    covered = 0
    for sim in range(500):
        u = torch.rand(400, generator=gen)
        noise = torch.rand(400, generator=gen) < 0.2  # the method also errs and succeeds elsewhere
        base = u < 0.70
        other = torch.where(noise, torch.rand(400, generator=gen) < 0.75, u < 0.75)
        row, = compare_runs([synthetic_run(base, gen)], {"m": [synthetic_run(other, gen)]}, metrics=["accuracy"],
                            samples=1000, seed=sim)
        covered += row.low <= 0.05 <= row.high
    assert 0.92 <= covered / 500 <= 0.98, covered


def test_identical_runs_show_no_difference_on_every_metric():
    gen = torch.Generator().manual_seed(1)
    run = synthetic_run(torch.rand(300, generator=gen) < 0.6, gen)
    rows = compare_runs([run, run], {"same": [run, run]}, samples=50)
    assert [r.metric for r in rows] == list(SCORE_METRICS)
    for r in rows:
        assert r.difference == 0 and r.low == 0 and r.high == 0 and r.p_value == 1.0
        assert r.seed_low == 0 and r.seed_high == 0 and r.seeds == 2
        assert r.verdict == "no detectable difference"


def test_the_order_of_the_examples_changes_nothing():
    gen = torch.Generator().manual_seed(2)
    base = synthetic_run(torch.rand(200, generator=gen) < 0.6, gen)
    other = synthetic_run(torch.rand(200, generator=gen) < 0.7, gen)
    perm = torch.randperm(200, generator=gen)

    def permuted(run):
        return ScoredPredictions(run.labels[perm], run.predictions[perm], run.target_log_prob[perm],
                                 {k: v[perm] for k, v in run.scores.items()}, run.pnorm[:, perm])

    a = compare_runs([base], {"m": [other]}, samples=100)
    b = compare_runs([permuted(base)], {"m": [permuted(other)]}, samples=100)
    for x, y in zip(a, b):
        assert (x.low, x.high, x.p_value, x.verdict) == pytest.approx((y.low, y.high, y.p_value, y.verdict))
        assert x.difference == pytest.approx(y.difference, abs=1e-12)


def test_a_clear_difference_is_found_and_its_direction_read_per_metric():
    gen = torch.Generator().manual_seed(3)
    weak = [synthetic_run(torch.rand(500, generator=gen) < 0.5, gen) for _ in range(3)]
    strong = [synthetic_run(torch.rand(500, generator=gen) < 0.8, gen) for _ in range(3)]
    rows = {r.metric: r for r in compare_runs(weak, {"strong": strong}, samples=300)}
    assert rows["accuracy"].verdict == "better" and rows["accuracy"].seed_low > 0
    assert rows["nll"].difference < 0 and rows["nll"].verdict == "better"  # lower NLL is better
    reverse = {r.metric: r for r in compare_runs(strong, {"weak": weak}, samples=300)}
    assert reverse["accuracy"].verdict == "worse"
    assert metric_value(strong[0], "accuracy") == pytest.approx(float(strong[0].correct.double().mean()))


def test_runs_on_other_examples_or_other_seed_counts_are_refused():
    gen = torch.Generator().manual_seed(4)
    a, b = synthetic_run(torch.rand(50, generator=gen) < 0.5, gen), synthetic_run(torch.rand(60, generator=gen) < 0.5, gen)
    with pytest.raises(ValueError, match="m was not scored on the same test examples"):
        compare_runs([a], {"m": [b]}, samples=10)
    with pytest.raises(ValueError, match="m has 2 seed\\(s\\), the baseline 1"):
        compare_runs([a], {"m": [a, a]}, samples=10)


def test_seeds_on_their_own_test_sets_are_resampled_each_on_its_own():
    """Seed 2 drew another test split, on which both sides are the same run: every resampled
    difference is seed 1's alone halved (seed 1's set keeps its draw), so are the interval and
    the difference, and the p-value is unchanged."""
    gen = torch.Generator().manual_seed(6)
    base, method = (synthetic_run(torch.rand(300, generator=gen) < p, gen) for p in (0.6, 0.8))
    same = synthetic_run(torch.rand(200, generator=gen) < 0.7, gen)  # 200 examples: another test set
    alone = compare_runs([base], {"m": [method]}, samples=300, seed=5)
    mixed = compare_runs([base, same], {"m": [method, same]}, samples=300, seed=5)
    for a, b in zip(alone, mixed):
        assert (b.difference, b.low, b.high) == pytest.approx((a.difference / 2, a.low / 2, a.high / 2), abs=1e-12)
        assert b.p_value == a.p_value and b.seeds == 2
    with pytest.raises(ValueError, match="m was not scored on the same test examples as the baseline"):
        compare_runs([base, same], {"m": [same, method]}, samples=10)  # seed 1's run on seed 2's set


def _save_runs(tmp_path, name, probs, seeds):
    gen = torch.Generator().manual_seed(hash(name) % 1000)
    paths = []
    for p, seed in zip(probs, seeds):
        folder = tmp_path / f"{name}-seed{seed}"
        synthetic_run(torch.rand(300, generator=gen) < p, gen).save(folder / "predictions" / "test.npz")
        (folder / "results.json").write_text(json.dumps({"method": name, "seed": seed}))
        paths.append(str(folder))
    return paths


def test_the_cli_pairs_by_seed_and_writes_json_and_figures(tmp_path):
    base = _save_runs(tmp_path, "ls", [0.5, 0.55, 0.5], [0, 1, 2])
    other = _save_runs(tmp_path, "maxsup", [0.85, 0.8, 0.85], [2, 0, 1])  # listed in another seed order
    out = subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "compare", "ls=" + ",".join(base),
                          "maxsup=" + ",".join(other), "--samples", "200", "--json", str(tmp_path / "c.json"),
                          "--plots", str(tmp_path / "fig")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "| accuracy | maxsup |" in out.stdout and "(3 seeds) | better |" in out.stdout
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["baseline"] == "ls" and len(saved["rows"]) == 5
    assert (tmp_path / "fig" / "diff_accuracy.png").is_file() and (tmp_path / "fig" / "diff_eaurc.png").is_file()
    twice = subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "compare", "ls=" + ",".join(base),
                            "maxsup=" + ",".join(other[:2] + [base[0]])], capture_output=True, text=True)
    assert twice.returncode == 2 and twice.stderr == "error: maxsup has two runs of seed 0\n"
    fewer = subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "compare", "ls=" + ",".join(base),
                            "maxsup=" + other[0]], capture_output=True, text=True)
    assert fewer.returncode == 2 and fewer.stderr.startswith("error: maxsup has 1 run(s), ls 3")


@pytest.mark.parametrize("metric", ["ece", "aurc", "eaurc"])
def test_the_resampled_metrics_equal_the_metrics_of_each_resample(metric):
    """The vectorized ECE/AURC/E-AURC over a [B, n] index matrix (resamples repeat examples, so
    confidences tie) = the metrics package's own function on each resample."""
    from labelreg_nlp.metrics.paired_comparison import _vectorized

    gen = torch.Generator().manual_seed(5)
    run = synthetic_run(torch.rand(40, generator=gen) < 0.6, gen)
    run.scores["msp"][:10] = 0.5  # ties among distinct examples too, some right and some wrong
    run.scores["msp"][10] = 1.0  # a confidence of exactly 1 (its own ECE bin)
    index = torch.randint(0, 40, (25, 40), generator=gen)
    got = _vectorized(metric, 15)(run, index)
    expected = torch.tensor([metric_value(run, metric, row) for row in index], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


def test_seeds_are_read_as_each_script_records_them(tmp_path):
    from labelreg_nlp.analysis.comparison_runs import recorded_seed

    layouts = {"tc": {"method": "ls", "seed": 2}, "image": {"config": {"seed": 3, "method": "ls"}},
               "none": {"method": "ls"}, "nmt": {"criterion": "maxsup", "seed": 1}}
    for name, saved in layouts.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(saved))
    (tmp_path / "nmt" / "predictions").mkdir()
    assert [recorded_seed(tmp_path / n) for n in ("tc", "image", "none")] == [2, 3, None]
    assert recorded_seed(tmp_path / "nmt" / "predictions") == 1  # the results.json of the folder above
    assert recorded_seed(tmp_path / "missing") is None


def test_bootstrap_p_values_never_reach_zero_and_too_few_resamples_are_named():
    """p = 2 (k + 1) / (samples + 1): a difference no resample crosses still has p = 2 / 201;
    with 5 rows and 20 resamples Holm cannot pass 0.05, which the report says with the fix."""
    from labelreg_nlp.analysis.comparison_runs import report_comparison

    gen = torch.Generator().manual_seed(7)
    weak, strong = (synthetic_run(torch.rand(500, generator=gen) < p, gen) for p in (0.3, 0.9))
    row, = compare_runs([weak], {"strong": [strong]}, metrics=["accuracy"], samples=200)
    assert row.low > 0 and row.p_value == pytest.approx(2 / 201) and row.verdict == "better"
    rows = compare_runs([weak], {"strong": [strong]}, samples=20)
    assert all(r.verdict == "no detectable difference" for r in rows)
    text = report_comparison("weak", rows, 0.95, 20)
    assert "With 5 rows and 20 resamples no row can reach a Holm p of 0.05" in text and "--samples 199 or more" in text
    assert "no row can reach" not in report_comparison("weak", rows, 0.95, 199)
