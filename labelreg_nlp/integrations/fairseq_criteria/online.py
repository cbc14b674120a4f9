"""``ols_cross_entropy``: Online Label Smoothing, a period per epoch or every N updates, its soft
labels checkpointed with the criterion."""

from dataclasses import dataclass, field
from typing import Optional

from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum

from ...losses.online import DEFAULT_TOPK, DENSE_MAX_CLASSES, INITS, UNSEEN, OLSOptions
from .base import MethodCriterion, TokenCriterionConfig, optional_int


@dataclass
class OLSCrossEntropyConfig(TokenCriterionConfig):
    ols_hard_weight: float = field(default=0.5, metadata={"help": "weight of CE against the hard label (paper: 0.5); >= 0"})
    ols_soft_weight: float = field(default=0.5, metadata={
        "help": "weight of CE against the online soft label (paper: 0.5); >= 0"})
    ols_init: ChoiceEnum(list(INITS)) = field(default="uniform", metadata={
        "help": "soft labels of the first period: uniform (paper), ls (label smoothing with --ols-init-alpha), "
                "zeros (official code: no soft term at first)"})
    ols_init_alpha: float = field(default=0.1, metadata={"help": "smoothing weight of --ols-init ls; [0, 1]"})
    ols_topk: int = field(default=0, metadata={
        "help": f"sparse soft labels keeping the top-k classes per row; 0 = dense up to {DENSE_MAX_CLASSES} "
                f"classes, else k = {DEFAULT_TOPK}"})
    ols_dense: bool = field(default=False, metadata={"help": "force dense V x V soft labels"})
    ols_unseen: ChoiceEnum(list(UNSEEN)) = field(default="uniform", metadata={
        "help": "soft label of a class with no correct prediction in the period: uniform (paper), zeros (the "
                "MaxSup authors' OLS baseline)"})
    ols_freeze_above: Optional[float] = field(default=None, metadata={  # noqa: UP045 (fairseq reads runtime types)
        "help": "keep a class's soft label once its largest entry reaches this value (official fine-grained "
                "script: 0.88; default: always update); [0, 1]"})
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
