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
from .schedules import ConstantSchedule, LinearSchedule, make_schedule

__version__ = "0.1.0"

__all__ = [
    "ConstantSchedule",
    "LinearSchedule",
    "LossParts",
    "check_alpha",
    "label_smoothing_loss",
    "label_smoothing_parts",
    "make_schedule",
    "maxsup_loss",
    "maxsup_parts",
    "smoothing_coefficient",
    "soft_target_parts",
]
