"""Selective classification: the risk-coverage curve, AURC and E-AURC (torch only).

Sort predictions by confidence, highest first; after the i-th (0-based) prediction the coverage
is ``(i + 1) / n`` and the risk the error rate among the first ``i + 1``; the point ``(0, 0)`` is
prepended. AURC is the area under that curve by the trapezoid rule; E-AURC is AURC minus the
AURC of an oracle confidence that ranks every correct prediction above every error.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_confidence(confidence: Tensor, correct: Tensor) -> tuple[Tensor, Tensor]:
    """``confidence`` as float64 and ``correct`` as bool, or ``ValueError`` for mismatched
    shapes, no predictions, or NaN/inf confidences."""
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
    """The risk-coverage curve.

    Args:
        confidence: ``[n]`` confidence of each prediction (higher = more confident).
        correct: ``[n]`` whether each prediction is right.

    Returns:
        ``(coverage, risk)``, each of length n + 1 starting at (0, 0).

    Example:
        >>> import torch
        >>> coverage, risk = risk_coverage_curve(torch.tensor([0.9, 0.8, 0.7]), torch.tensor([True, False, True]))
        >>> [round(v, 3) for v in risk.tolist()]
        [0.0, 0.0, 0.5, 0.333]
    """
    confidence, correct = check_confidence(confidence, correct)
    order = torch.argsort(confidence, descending=True, stable=True)
    errors = (~correct[order]).double().cumsum(0)
    seen = torch.arange(1, confidence.numel() + 1, dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([zero, seen / confidence.numel()]), torch.cat([zero, errors / seen])


def aurc(confidence: Tensor, correct: Tensor) -> float:
    """Area under the risk-coverage curve (trapezoid rule); lower is better.

    Example:
        >>> import torch
        >>> round(aurc(torch.tensor([0.9, 0.8, 0.7]), torch.tensor([True, False, True])), 4)
        0.2222
    """
    coverage, risk = risk_coverage_curve(confidence, correct)
    return float(torch.trapezoid(risk, coverage))


def excess_aurc(confidence: Tensor, correct: Tensor) -> float:
    """E-AURC: AURC minus the oracle's AURC for the same predictions.

    Example:
        >>> import torch
        >>> excess_aurc(torch.tensor([0.9, 0.8]), torch.tensor([True, False]))  # already the oracle's order
        0.0
    """
    _, correct_b = check_confidence(confidence, correct)
    return aurc(confidence, correct) - aurc(correct_b.double(), correct_b)
