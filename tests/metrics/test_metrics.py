"""Selective-classification and calibration metrics against hand-computed values, brute force
over tie orders, and torchmetrics."""

import itertools
import math

import pytest
import torch

from labelreg_nlp.metrics import (
    aurc,
    coverage_at_risk,
    excess_aurc,
    expected_calibration_error,
    oracle_aurc,
    reliability_bins,
    risk_at_coverage,
    risk_coverage_curve,
    selective_risks,
)


def test_risk_coverage_and_aurc_by_hand():
    confidence = torch.tensor([0.7, 0.9, 0.8])
    correct = torch.tensor([True, True, False])  # sorted: 0.9 right, 0.8 wrong, 0.7 right
    curve = risk_coverage_curve(confidence, correct)
    torch.testing.assert_close(curve.coverage, torch.tensor([1 / 3, 2 / 3, 1], dtype=torch.float64))
    torch.testing.assert_close(curve.risk, torch.tensor([0, 1 / 2, 1 / 3], dtype=torch.float64))
    torch.testing.assert_close(curve.threshold, torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64))
    assert aurc(confidence, correct) == pytest.approx((0 + 1 / 2 + 1 / 3) / 3)
    # the oracle ranks both right answers first: risks 0, 0, 1/3
    assert oracle_aurc(correct) == pytest.approx(1 / 9)
    assert excess_aurc(confidence, correct) == pytest.approx((1 / 2 + 1 / 3) / 3 - 1 / 9)


def test_tied_confidences_form_one_threshold():
    # 0.9 right; a tie of three at 0.5 (one wrong); 0.1 wrong
    confidence = torch.tensor([0.5, 0.9, 0.5, 0.1, 0.5])
    correct = torch.tensor([False, True, True, False, True])
    curve = risk_coverage_curve(confidence, correct)
    torch.testing.assert_close(curve.coverage, torch.tensor([0.2, 0.8, 1.0], dtype=torch.float64))
    torch.testing.assert_close(curve.risk, torch.tensor([0, 1 / 4, 2 / 5], dtype=torch.float64))
    # inside the tie the expected error count grows by 1/3 per prediction
    expected = torch.tensor([0, (1 / 3) / 2, (2 / 3) / 3, 1 / 4, 2 / 5], dtype=torch.float64)
    torch.testing.assert_close(selective_risks(confidence, correct), expected)


def _ordered_aurc(correct_in_rank_order: list[bool]) -> float:
    """Geifman's AURC of predictions already in rank order (no ties involved)."""
    errors, total = 0, 0.0
    for i, ok in enumerate(correct_in_rank_order, start=1):
        errors += not ok
        total += errors / i
    return total / len(correct_in_rank_order)


def _mean_over_tie_orders(confidence: list[float], correct: list[bool]) -> float:
    """Brute force: the AURC averaged over every order of every group of tied predictions."""
    levels = sorted(set(confidence), reverse=True)
    groups = [[ok for c, ok in zip(confidence, correct) if c == level] for level in levels]
    orders = [list(itertools.permutations(g)) for g in groups]
    values = [_ordered_aurc([ok for part in combo for ok in part]) for combo in itertools.product(*orders)]
    return sum(values) / len(values)


@pytest.mark.parametrize("seed", range(6))
def test_aurc_is_the_mean_over_tie_orders_and_ignores_input_order(seed):
    gen = torch.Generator().manual_seed(seed)
    confidence = torch.randint(0, 3, (8,), generator=gen).double() / 2  # three levels: many ties
    correct = torch.rand(8, generator=gen) < 0.6
    expected = _mean_over_tie_orders(confidence.tolist(), correct.tolist())
    assert aurc(confidence, correct) == pytest.approx(expected, abs=1e-12)
    for _ in range(5):  # the order of the input must not matter
        perm = torch.randperm(8, generator=gen)
        assert aurc(confidence[perm], correct[perm]) == pytest.approx(expected, abs=1e-12)
        assert coverage_at_risk(confidence[perm], correct[perm], 0.3) == coverage_at_risk(confidence, correct, 0.3)


def test_saturated_msp_ties_are_not_ranked_by_position():
    """Four predictions at a float32 MSP of 1.0, two of them wrong: listing the wrong ones first
    or last must not change the AURC (an argsort of the input order would make it 0.73 or 0.15)."""
    confidence = torch.ones(4)
    right_first = torch.tensor([True, True, False, False])
    assert aurc(confidence, right_first) == aurc(confidence, right_first.flip(0)) == pytest.approx(0.5)


def test_coverage_at_risk_and_risk_at_coverage_by_hand():
    confidence = torch.tensor([0.9, 0.8, 0.7, 0.7, 0.6])
    correct = torch.tensor([True, True, False, True, False])
    # thresholds: 0.9 -> (0.2, 0), 0.8 -> (0.4, 0), 0.7 -> (0.8, 1/4), 0.6 -> (1.0, 2/5)
    assert coverage_at_risk(confidence, correct, 0.0) == pytest.approx(0.4)
    assert coverage_at_risk(confidence, correct, 0.25) == pytest.approx(0.8)
    assert coverage_at_risk(confidence, correct, 0.5) == 1.0
    assert coverage_at_risk(torch.tensor([0.9, 0.1]), torch.tensor([False, True]), 0.05) == 0.0
    assert risk_at_coverage(confidence, correct, 0.4) == 0.0
    assert risk_at_coverage(confidence, correct, 0.5) == pytest.approx(0.25)  # the tie must come in whole
    assert risk_at_coverage(confidence, correct, 1.0) == pytest.approx(0.4)
    with pytest.raises(ValueError, match=r"risk must be in \[0, 1\], got 1.5"):
        coverage_at_risk(confidence, correct, 1.5)
    with pytest.raises(ValueError, match=r"coverage must be in \(0, 1\], got 0"):
        risk_at_coverage(confidence, correct, 0)


def _ece_loop(confidence, correct, bins):
    """torchmetrics' convention: bins [b/B, (b+1)/B) and 1.0 in a bin of its own."""
    groups = {}
    for c, ok in zip(confidence, correct):
        groups.setdefault(min(int(c * bins), bins) if c < 1 else bins, []).append((c, ok))
    return sum(len(g) / len(confidence) * abs(sum(ok for _, ok in g) / len(g) - sum(c for c, _ in g) / len(g))
               for g in groups.values())


@pytest.mark.parametrize("bins", [1, 10, 15])
def test_ece_equals_a_plain_loop_and_the_reliability_bins(bins):
    gen = torch.Generator().manual_seed(bins)
    confidence = torch.rand(200, generator=gen).double()
    confidence[:4] = torch.tensor([0.0, 1.0, 1.0, 0.5])  # edges: 0, exactly 1 and a bin boundary
    correct = torch.rand(200, generator=gen) < confidence
    expected = _ece_loop(confidence.tolist(), correct.tolist(), bins)
    assert expected_calibration_error(confidence, correct, bins) == pytest.approx(expected, abs=1e-12)
    rb = reliability_bins(confidence, correct, bins)
    assert int(rb.count.sum()) == 200 and int(rb.count[-1]) == 2
    assert float((rb.count * (rb.accuracy - rb.confidence).abs()).sum() / 200) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("classes", [2, 7])
def test_ece_equals_torchmetrics_multiclass_on_the_probabilities(classes):
    from torchmetrics.functional.classification import multiclass_calibration_error

    gen = torch.Generator().manual_seed(classes)
    logits = torch.randn(300, classes, generator=gen, dtype=torch.float64) * 3
    logits[:20, 0] += 60.0  # saturated rows: probability 1.0 in float64 too
    labels = torch.randint(0, classes, (300,), generator=gen)
    probs = logits.softmax(-1)
    msp, predicted = probs.max(-1)
    expected = multiclass_calibration_error(probs, labels, num_classes=classes, n_bins=15)
    # torchmetrics' multiclass path computes in float32, the binary one we call keeps float64
    assert expected_calibration_error(msp, predicted == labels, 15) == pytest.approx(float(expected), abs=1e-6)


def test_report_uses_the_max_softmax_probability():
    from labelreg_nlp.metrics import ScoredPredictions, evaluate_confidence

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.5, 0.0]])
    labels = torch.tensor([0, 0, 0, 1])
    report = evaluate_confidence(ScoredPredictions.from_logits(logits, labels))
    assert report.accuracy == 0.5 and report.n == 4
    assert report.nll == pytest.approx(float(torch.nn.functional.cross_entropy(logits.double(), labels)))
    msp = torch.softmax(logits.double(), -1).max(-1).values
    correct = torch.tensor([True, False, True, False])
    assert report.row("msp").aurc == pytest.approx(aurc(msp, correct))
    assert report.ece == pytest.approx(expected_calibration_error(msp, correct))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="equal length"):
        aurc(torch.rand(3), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN or inf"):
        aurc(torch.tensor([0.5, math.nan]), torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="empty"):
        aurc(torch.empty(0), torch.empty(0, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"confidences in \[0, 1\]"):
        expected_calibration_error(torch.tensor([1.5]), torch.tensor([True]))
    with pytest.raises(ValueError, match="num_bins must be an integer >= 1, got 0"):
        expected_calibration_error(torch.tensor([0.5]), torch.tensor([True]), 0)
