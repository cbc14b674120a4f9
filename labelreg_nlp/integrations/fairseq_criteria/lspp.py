"""``lspp_cross_entropy``: Label Smoothing++, its learned table trained by fairseq's optimizer and
checkpointed with the criterion."""

from dataclasses import dataclass, field

from fairseq.criterions import register_criterion

from ...losses.learned import DEFAULT_RANK, FULL_MAX_CLASSES
from ...losses.lspp import LSPPOptions
from .base import MethodCriterion, TokenCriterionConfig, optional_int


@dataclass
class LSPPCrossEntropyConfig(TokenCriterionConfig):
    lspp_alpha: float = field(default=0.1, metadata={
        "help": "weight of the learned distribution in the target (paper: 0.1); (0, 1)"})
    lspp_rank: int = field(default=0, metadata={
        "help": f"factored table C[y] = u_y V^T of this rank (vocabulary scale); 0 = the full table up to "
                f"{FULL_MAX_CLASSES} classes, else rank {DEFAULT_RANK}"})
    lspp_full: bool = field(default=False, metadata={"help": "force the full table (V x (V - 1) parameters)"})


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
