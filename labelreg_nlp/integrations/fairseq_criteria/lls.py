"""``lls_cross_entropy``: Learnable Label Smoothing, its learned table trained by fairseq's optimizer and
checkpointed with the criterion."""

from dataclasses import dataclass, field

from fairseq.criterions import register_criterion

from ...losses.learned import DEFAULT_RANK, FULL_MAX_CLASSES
from ...losses.lls import LLSOptions
from .base import MethodCriterion, TokenCriterionConfig, optional_int


@dataclass
class LLSCrossEntropyConfig(TokenCriterionConfig):
    lls_alpha: float = field(default=0.1, metadata={
        "help": "weight of the learned distribution in the target (paper: 0.1); (0, 1]"})
    lls_rank: int = field(default=0, metadata={
        "help": f"factored table Q[y] = u_y V^T of this rank (vocabulary scale); 0 = the full table up to "
                f"{FULL_MAX_CLASSES} classes, else rank {DEFAULT_RANK}"})
    lls_full: bool = field(default=False, metadata={"help": "force the full table (V x V parameters)"})


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
