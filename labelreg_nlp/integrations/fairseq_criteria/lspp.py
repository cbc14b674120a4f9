"""``lspp_cross_entropy``: Label Smoothing++, its learned table trained by fairseq's optimizer and
checkpointed with the criterion."""

from dataclasses import dataclass

from fairseq.criterions import register_criterion

from ...losses.lspp import LSPPOptions
from .base import MethodCriterion, TokenCriterionConfig, optional_int, options_field


@dataclass
class LSPPCrossEntropyConfig(TokenCriterionConfig):
    lspp_alpha: float = options_field(LSPPOptions, "alpha")
    lspp_rank: int = options_field(LSPPOptions, "rank")
    lspp_full: bool = options_field(LSPPOptions, "full")


@register_criterion("lspp_cross_entropy", dataclass=LSPPCrossEntropyConfig)
class LSPPCrossEntropyCriterion(MethodCriterion):
    """Label Smoothing++: ``(CE(sg(t), p) + CE(sg(p), t)) / 2, t = (1-a) onehot(y) + a c_y`` per non-padding token; logs the reverse term as ``lspp_reverse`` and the
    learned rows' entropy and top mass."""

    method = "lspp"
    option_fields = {"alpha": "lspp_alpha", "rank": "lspp_rank", "full": "lspp_full"}
    penalty_log = "lspp_reverse"

    def __init__(self, task, sentence_avg, lspp_alpha=0.1, lspp_rank=0, lspp_full=False, ignore_prefix_size=0,
                 report_accuracy=False, fused_output_layer=False, no_validate_args=False):
        options = LSPPOptions(alpha=lspp_alpha, rank=optional_int(lspp_rank), full=bool(lspp_full))
        super().__init__(task, sentence_avg, options, ignore_prefix_size=ignore_prefix_size,
                         report_accuracy=report_accuracy, fused_output_layer=fused_output_layer,
                         no_validate_args=no_validate_args)
