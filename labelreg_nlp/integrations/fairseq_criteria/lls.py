"""``lls_cross_entropy``: Learnable Label Smoothing, its learned table trained by fairseq's optimizer and
checkpointed with the criterion."""

from dataclasses import dataclass

from fairseq.criterions import register_criterion

from ...losses.lls import LLSOptions
from .base import MethodCriterion, TokenCriterionConfig, optional_int, options_field


@dataclass
class LLSCrossEntropyConfig(TokenCriterionConfig):
    lls_alpha: float = options_field(LLSOptions, "alpha")
    lls_rank: int = options_field(LLSOptions, "rank")
    lls_full: bool = options_field(LLSOptions, "full")


@register_criterion("lls_cross_entropy", dataclass=LLSCrossEntropyConfig)
class LLSCrossEntropyCriterion(MethodCriterion):
    """Learnable Label Smoothing: ``(KL(t, p) + KL(p, t)) / 2, t = (1-a) onehot(y) + a softmax(Q[y])`` per non-padding token; logs KL(p || t) as ``lls_reverse`` and the
    learned rows' entropy and top mass."""

    method = "lls"
    option_fields = {"alpha": "lls_alpha", "rank": "lls_rank", "full": "lls_full"}
    penalty_log = "lls_reverse"

    def __init__(self, task, sentence_avg, lls_alpha=0.1, lls_rank=0, lls_full=False, ignore_prefix_size=0,
                 report_accuracy=False, fused_output_layer=False, no_validate_args=False):
        options = LLSOptions(alpha=lls_alpha, rank=optional_int(lls_rank), full=bool(lls_full))
        super().__init__(task, sentence_avg, options, ignore_prefix_size=ignore_prefix_size,
                         report_accuracy=report_accuracy, fused_output_layer=fused_output_layer,
                         no_validate_args=no_validate_args)
