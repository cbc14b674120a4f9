"""Selective-classification and calibration metrics against hand-computed values."""

import math

import pytest
import torch

from labelreg_nlp.metrics import (
    aurc,
    classification_report,
    excess_aurc,
    expected_calibration_error,
    risk_coverage_curve,
)


def test_risk_coverage_and_aurc_by_hand():
    confidence = torch.tensor([0.7, 0.9, 0.8])
    correct = torch.tensor([True, True, False])  # sorted: 0.9 right, 0.8 wrong, 0.7 right
    coverage, risk = risk_coverage_curve(confidence, correct)
    torch.testing.assert_close(coverage, torch.tensor([0, 1 / 3, 2 / 3, 1], dtype=torch.float64))
    torch.testing.assert_close(risk, torch.tensor([0, 0, 1 / 2, 1 / 3], dtype=torch.float64))
    # trapezoids: 1/3 * (0 + 0)/2 + 1/3 * (0 + 1/2)/2 + 1/3 * (1/2 + 1/3)/2
    assert aurc(confidence, correct) == pytest.approx(1 / 12 + 5 / 36)
    # oracle ranks both right answers first: risk 0, 0, 1/3
    assert excess_aurc(confidence, correct) == pytest.approx(1 / 12 + 5 / 36 - 1 / 18)


def _ece_loop(confidence, correct, bins):
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidence) if (lo < c <= hi) or (b == 0 and c == 0)]
        if members:
            acc = sum(correct[i] for i in members) / len(members)
            conf = sum(confidence[i] for i in members) / len(members)
            total += len(members) / len(confidence) * abs(acc - conf)
    return total


@pytest.mark.parametrize("bins", [1, 10, 15])
def test_ece_equals_a_plain_loop(bins):
    gen = torch.Generator().manual_seed(bins)
    confidence = torch.rand(200, generator=gen).double()
    confidence[:3] = torch.tensor([0.0, 1.0, 2 / 15])  # edges: 0, 1 and a bin boundary
    correct = torch.rand(200, generator=gen) < confidence
    expected = _ece_loop(confidence.tolist(), correct.tolist(), bins)
    assert expected_calibration_error(confidence, correct, bins) == pytest.approx(expected, abs=1e-12)


def test_report_uses_the_max_softmax_probability():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.5, 0.0]])
    labels = torch.tensor([0, 0, 0, 1])
    report = classification_report(logits, labels)
    assert report.accuracy == 0.5 and report.n == 4
    assert report.nll == pytest.approx(float(torch.nn.functional.cross_entropy(logits.double(), labels)))
    msp = torch.softmax(logits.double(), -1).max(-1).values
    correct = torch.tensor([True, False, True, False])
    assert report.aurc == pytest.approx(aurc(msp, correct))
    assert report.ece == pytest.approx(expected_calibration_error(msp, correct))
    assert set(report.as_dict()) == {"n", "accuracy", "nll", "ece", "aurc", "eaurc"}


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="equal length"):
        aurc(torch.rand(3), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN or inf"):
        aurc(torch.tensor([0.5, math.nan]), torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="empty"):
        aurc(torch.empty(0), torch.empty(0, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"confidences in \[0, 1\]"):
        expected_calibration_error(torch.tensor([1.5]), torch.tensor([True]))
    with pytest.raises(ValueError, match="num_bins must be >= 1, got 0"):
        expected_calibration_error(torch.tensor([0.5]), torch.tensor([True]), 0)
