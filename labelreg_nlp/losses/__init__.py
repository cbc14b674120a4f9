"""The losses, torch only: one module per method family, the logit-statistics kernel they share,
alpha schedules, the method registry and the method-by-name :class:`TokenLoss`."""

from .base import MethodLoss, ScheduledAlphaLoss
from .checks import check_alpha
from .fused_linear import fused_linear_loss, fused_linear_parts
from .learned import LearnedTargetLoss
from .lls import LearnableLabelSmoothing, LLSOptions
from .lspp import LabelSmoothingPlusPlus, LSPPOptions
from .maxsup import MaxSupLoss, MaxSupOptions, maxsup_loss, maxsup_parts, soft_target_parts
from .online import OLSOptions, OnlineLabelSmoothing
from .online_dense import DenseSoftLabels
from .online_sparse import SparseSoftLabels
from .options import OptionField, option_fields
from .parts import LossParts
from .registry import METHODS, Method, get_method, methods_table, register_method
from .schedules import ConstantSchedule, LinearSchedule, make_schedule
from .smoothing import (
    CrossEntropyOptions,
    LabelSmoothingLoss,
    LabelSmoothingOptions,
    label_smoothing_loss,
    label_smoothing_parts,
    smoothing_coefficient,
)
from .token_loss import TokenLoss

__all__ = [
    "METHODS",
    "ConstantSchedule",
    "CrossEntropyOptions",
    "DenseSoftLabels",
    "LabelSmoothingPlusPlus",
    "LearnableLabelSmoothing",
    "LearnedTargetLoss",
    "LLSOptions",
    "LSPPOptions",
    "LabelSmoothingLoss",
    "LabelSmoothingOptions",
    "LinearSchedule",
    "LossParts",
    "MaxSupLoss",
    "MaxSupOptions",
    "Method",
    "MethodLoss",
    "OLSOptions",
    "OnlineLabelSmoothing",
    "OptionField",
    "ScheduledAlphaLoss",
    "SparseSoftLabels",
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
    "option_fields",
    "register_method",
    "smoothing_coefficient",
    "soft_target_parts",
]
