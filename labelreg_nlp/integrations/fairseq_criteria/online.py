"""``ols_cross_entropy``: Online Label Smoothing, a period per epoch or every N updates, its soft
labels checkpointed with the criterion."""

from dataclasses import dataclass, field
from typing import Optional

from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum

from ...losses.online import INITS, UNSEEN, OLSOptions
from .base import MethodCriterion, TokenCriterionConfig, optional_int, options_field


@dataclass
class OLSCrossEntropyConfig(TokenCriterionConfig):
    ols_hard_weight: float = options_field(OLSOptions, "hard_weight")
    ols_soft_weight: float = options_field(OLSOptions, "soft_weight")
    ols_init: ChoiceEnum(list(INITS)) = options_field(OLSOptions, "init")
    ols_init_alpha: float = options_field(OLSOptions, "init_alpha")
    ols_topk: int = options_field(OLSOptions, "topk")
    ols_dense: bool = options_field(OLSOptions, "dense")
    ols_unseen: ChoiceEnum(list(UNSEEN)) = options_field(OLSOptions, "unseen")
    ols_freeze_above: Optional[float] = options_field(OLSOptions, "freeze_above")  # noqa: UP045 (fairseq reads runtime types)
    ols_period_updates: int = field(default=0, metadata={
        "help": "end an OLS period every N updates; 0 = at every epoch boundary"})


@register_criterion("ols_cross_entropy", dataclass=OLSCrossEntropyConfig)
class OLSCrossEntropyCriterion(MethodCriterion):
    """Online Label Smoothing: ``w_hard CE(onehot(y), p) + w_soft CE(S[y], p)`` per non-padding
    token; logs the soft term as ``ols_soft`` and the soft labels' counters."""

    method = "ols"
    option_fields = {"hard_weight": "ols_hard_weight", "soft_weight": "ols_soft_weight", "init": "ols_init",
                     "init_alpha": "ols_init_alpha", "topk": "ols_topk", "dense": "ols_dense",
                     "unseen": "ols_unseen", "freeze_above": "ols_freeze_above"}
    penalty_log = "ols_soft"

    def __init__(self, task, sentence_avg, ols_hard_weight=0.5, ols_soft_weight=0.5, ols_init="uniform",
                 ols_init_alpha=0.1, ols_topk=0, ols_dense=False, ols_unseen="uniform", ols_freeze_above=None,
                 ols_period_updates=0, ignore_prefix_size=0, report_accuracy=False, fused_output_layer=False,
                 no_validate_args=False):
        options = OLSOptions(hard_weight=ols_hard_weight, soft_weight=ols_soft_weight, init=str(ols_init),
                             init_alpha=ols_init_alpha, topk=optional_int(ols_topk), dense=bool(ols_dense),
                             unseen=str(ols_unseen), freeze_above=ols_freeze_above)
        super().__init__(task, sentence_avg, options, period_updates=ols_period_updates,
                         schedule_fields={"period_updates": "ols_period_updates"},
                         ignore_prefix_size=ignore_prefix_size, report_accuracy=report_accuracy,
                         fused_output_layer=fused_output_layer, no_validate_args=no_validate_args)
