"""Confidence metrics for selective classification and calibration (torch only).

* Risk-coverage curve: sort predictions by confidence, highest first; after the i-th (0-based)
  prediction the coverage is ``(i + 1) / n`` and the risk the error rate among the first
  ``i + 1``; the point ``(0, 0)`` is prepended.
* AURC: area under that curve by the trapezoid rule; E-AURC: AURC minus the AURC of an oracle
  confidence that ranks every correct prediction above every error.
* ECE: ``sum_b |B_b| / n * |accuracy(B_b) - mean confidence(B_b)|`` over ``num_bins``
  equal-width confidence bins ``(lo, hi]`` (Guo et al., 2017; 15 bins by default).

The confidence used by the scripts is the maximum softmax probability (MSP).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor


def _check(confidence: Tensor, correct: Tensor) -> tuple[Tensor, Tensor]:
    if confidence.dim() != 1 or tuple(correct.shape) != tuple(confidence.shape):
        raise ValueError(
            f"confidence and correct must be 1-D of equal length, got {tuple(confidence.shape)} and {tuple(correct.shape)}"
        )
    if confidence.numel() == 0:
        raise ValueError("no predictions to evaluate (empty confidence tensor)")
    if not bool(torch.isfinite(confidence).all()):
        raise ValueError("confidence holds NaN or inf values")
    return confidence.double(), correct.bool()


def risk_coverage_curve(confidence: Tensor, correct: Tensor) -> tuple[Tensor, Tensor]:
    """(coverage, risk), each of length n + 1 starting at (0, 0)."""
    confidence, correct = _check(confidence, correct)
    order = torch.argsort(confidence, descending=True, stable=True)
    errors = (~correct[order]).double().cumsum(0)
    seen = torch.arange(1, confidence.numel() + 1, dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([zero, seen / confidence.numel()]), torch.cat([zero, errors / seen])


def aurc(confidence: Tensor, correct: Tensor) -> float:
    """Area under the risk-coverage curve (trapezoid rule); lower is better."""
    coverage, risk = risk_coverage_curve(confidence, correct)
    return float(torch.trapezoid(risk, coverage))


def excess_aurc(confidence: Tensor, correct: Tensor) -> float:
    """E-AURC: AURC minus the oracle's AURC for the same predictions."""
    _, correct_b = _check(confidence, correct)
    return aurc(confidence, correct) - aurc(correct_b.double(), correct_b)


def expected_calibration_error(confidence: Tensor, correct: Tensor, num_bins: int = 15) -> float:
    """ECE over ``num_bins`` equal-width bins ``(lo, hi]`` of [0, 1]; confidences must lie in [0, 1]."""
    if int(num_bins) < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins!r}")
    confidence, correct = _check(confidence, correct)
    if bool((confidence < 0).any()) or bool((confidence > 1).any()):
        raise ValueError("ECE needs confidences in [0, 1] (probabilities)")
    # bin b holds (b/B, (b+1)/B]; a confidence of exactly 0 goes to the first bin
    bins = (torch.ceil(confidence * num_bins).long() - 1).clamp(0, num_bins - 1)
    n = confidence.numel()
    conf_sum = torch.zeros(num_bins, dtype=torch.float64).index_add_(0, bins, confidence)
    acc_sum = torch.zeros(num_bins, dtype=torch.float64).index_add_(0, bins, correct.double())
    return float((acc_sum - conf_sum).abs().sum() / n)


@dataclass
class ClassificationReport:
    """What the scripts report on a test split; ``nll`` is the mean natural-log cross-entropy."""

    n: int
    accuracy: float
    nll: float
    ece: float
    aurc: float
    eaurc: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def classification_report(logits: Tensor, labels: Tensor, num_bins: int = 15) -> ClassificationReport:
    """Accuracy, NLL, ECE and (E-)AURC with the maximum softmax probability as confidence."""
    if logits.dim() != 2 or labels.dim() != 1 or logits.size(0) != labels.size(0):
        raise ValueError(f"expected logits [N, K] and labels [N], got {tuple(logits.shape)} and {tuple(labels.shape)}")
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    confidence, predicted = log_probs.exp().max(dim=-1)
    correct = predicted == labels
    return ClassificationReport(
        n=int(labels.numel()),
        accuracy=float(correct.double().mean()),
        nll=float(torch.nn.functional.nll_loss(log_probs, labels)),
        ece=expected_calibration_error(confidence, correct, num_bins),
        aurc=aurc(confidence, correct),
        eaurc=excess_aurc(confidence, correct),
    )
