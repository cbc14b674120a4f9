"""Confidence metrics: selective classification (risk-coverage, AURC, E-AURC, coverage at risk),
calibration (ECE via torchmetrics, reliability bins), confidence scores with pNorm's logit
normalization, and saved predictions for ``labelreg-nlp evaluate``."""

from .calibration import ReliabilityBins, expected_calibration_error, reliability_bins
from .confidence import P_GRID, SCORES, confidence_scores, pnorm_confidence
from .evaluation import ConfidenceReport, PNormChoice, evaluate_confidence, format_report, pnorm_scores, select_pnorm
from .prediction_files import load_arrays, save_arrays, save_logits
from .scored import ScoredPredictions
from .selective import (
    RiskCoverage,
    aurc,
    coverage_at_risk,
    excess_aurc,
    oracle_aurc,
    risk_at_coverage,
    risk_coverage_curve,
    selective_risks,
)

__all__ = [
    "P_GRID",
    "SCORES",
    "ConfidenceReport",
    "PNormChoice",
    "ReliabilityBins",
    "RiskCoverage",
    "ScoredPredictions",
    "aurc",
    "confidence_scores",
    "coverage_at_risk",
    "evaluate_confidence",
    "excess_aurc",
    "expected_calibration_error",
    "format_report",
    "load_arrays",
    "oracle_aurc",
    "pnorm_confidence",
    "pnorm_scores",
    "reliability_bins",
    "risk_at_coverage",
    "risk_coverage_curve",
    "save_arrays",
    "save_logits",
    "select_pnorm",
    "selective_risks",
]
