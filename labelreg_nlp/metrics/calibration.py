"""Calibration: expected calibration error over equal-width confidence bins (torch only)."""

from __future__ import annotations

import torch
from torch import Tensor

from .selective import check_confidence


def expected_calibration_error(confidence: Tensor, correct: Tensor, num_bins: int = 15) -> float:
    """ECE: ``sum_b |B_b| / n * |accuracy(B_b) - mean confidence(B_b)|`` over ``num_bins``
    equal-width bins ``(lo, hi]`` of [0, 1] (Guo et al., 2017).

    Args:
        confidence: ``[n]`` probabilities in [0, 1].
        correct: ``[n]`` whether each prediction is right.
        num_bins: number of bins (>= 1).

    Returns:
        The ECE as a float.

    Example:
        >>> import torch
        >>> expected_calibration_error(torch.tensor([0.9, 0.9], dtype=torch.float64), torch.tensor([True, False]), 10)
        0.4
    """
    if int(num_bins) < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins!r}")
    confidence, correct = check_confidence(confidence, correct)
    if bool((confidence < 0).any()) or bool((confidence > 1).any()):
        raise ValueError("ECE needs confidences in [0, 1] (probabilities)")
    # bin b holds (b/B, (b+1)/B]; a confidence of exactly 0 goes to the first bin
    bins = (torch.ceil(confidence * num_bins).long() - 1).clamp(0, num_bins - 1)
    n = confidence.numel()
    conf_sum = torch.zeros(num_bins, dtype=torch.float64).index_add_(0, bins, confidence)
    acc_sum = torch.zeros(num_bins, dtype=torch.float64).index_add_(0, bins, correct.double())
    return float((acc_sum - conf_sum).abs().sum() / n)
