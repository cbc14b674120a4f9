"""labelreg_nlp: label-regularization losses for token logits with padding.

The core (this package's top level) needs torch only; the fairseq, Hugging Face and vision
adapters import their frameworks lazily.
"""

from .functional import (
    LossParts,
    check_alpha,
    label_smoothing_loss,
    label_smoothing_parts,
    maxsup_loss,
    maxsup_parts,
    smoothing_coefficient,
    soft_target_parts,
)
from .metrics import aurc, classification_report, excess_aurc, expected_calibration_error
from .online_label_smoothing import OnlineLabelSmoothing
from .schedules import ConstantSchedule, LinearSchedule, make_schedule
from .token_loss import METHODS, TokenLoss

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "ConstantSchedule",
    "LinearSchedule",
    "LossParts",
    "OnlineLabelSmoothing",
    "TokenLoss",
    "aurc",
    "check_alpha",
    "classification_report",
    "excess_aurc",
    "expected_calibration_error",
    "label_smoothing_loss",
    "label_smoothing_parts",
    "make_schedule",
    "maxsup_loss",
    "maxsup_parts",
    "smoothing_coefficient",
    "soft_target_parts",
]
