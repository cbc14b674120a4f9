"""Confidence metrics (torch only): selective classification (risk-coverage, AURC, E-AURC),
calibration (ECE) and a one-call classification report."""

from .calibration import expected_calibration_error
from .report import ClassificationReport, classification_report
from .selective import aurc, excess_aurc, risk_coverage_curve

__all__ = [
    "ClassificationReport",
    "aurc",
    "classification_report",
    "excess_aurc",
    "expected_calibration_error",
    "risk_coverage_curve",
]
