"""The losses, torch only: one module per method family, the logit-statistics kernel they share,
alpha schedules, the method registry and the method-by-name :class:`TokenLoss`."""

from .base import MethodLoss, ScheduledAlphaLoss
from .fused_linear import fused_linear_loss, fused_linear_parts
from .learned import LearnedTargetLoss
from .lls import LearnableLabelSmoothing
from .lspp import LabelSmoothingPlusPlus
from .maxsup import MaxSupLoss, maxsup_loss, maxsup_parts, soft_target_parts
from .online import OnlineLabelSmoothing
from .online_dense import DenseOnlineLabelSmoothing
from .online_sparse import SparseOnlineLabelSmoothing
from .parts import LossParts, check_alpha
from .registry import METHODS, Method, Option, get_method, methods_table
from .schedules import ConstantSchedule, LinearSchedule, make_schedule
from .smoothing import LabelSmoothingLoss, label_smoothing_loss, label_smoothing_parts, smoothing_coefficient
from .token_loss import TokenLoss

__all__ = [
    "METHODS",
    "ConstantSchedule",
    "DenseOnlineLabelSmoothing",
    "LabelSmoothingPlusPlus",
    "LearnableLabelSmoothing",
    "LearnedTargetLoss",
    "LabelSmoothingLoss",
    "LinearSchedule",
    "LossParts",
    "MaxSupLoss",
    "Method",
    "MethodLoss",
    "OnlineLabelSmoothing",
    "Option",
    "ScheduledAlphaLoss",
    "SparseOnlineLabelSmoothing",
    "TokenLoss",
    "check_alpha",
    "fused_linear_loss",
    "fused_linear_parts",
    "get_method",
    "label_smoothing_loss",
    "label_smoothing_parts",
    "make_schedule",
    "maxsup_loss",
    "maxsup_parts",
    "methods_table",
    "smoothing_coefficient",
    "soft_target_parts",
]
