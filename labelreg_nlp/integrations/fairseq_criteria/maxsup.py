"""``maxsup_cross_entropy``: Max Suppression, with the authors' alpha schedule (0.1 -> 0.2)."""

from dataclasses import dataclass, field
from typing import Optional

from fairseq.criterions import register_criterion
from omegaconf import II

from ...losses.maxsup import MaxSupOptions
from .base import FairseqSchedule, MethodCriterion, ScheduleUnit, TokenCriterionConfig


@dataclass
class MaxSupCrossEntropyConfig(TokenCriterionConfig):
    maxsup_alpha: float = field(default=0.1, metadata={
        "help": "suppression weight (with --maxsup-alpha-end: the schedule's start); [0, 1]"})
    maxsup_alpha_end: Optional[float] = field(default=None, metadata={  # noqa: UP045 (fairseq reads runtime types)
        "help": "if set, alpha grows linearly to this value over the schedule horizon (MaxSup paper "
                "Appendix E: 0.1 -> 0.2); [0, 1]"})
    maxsup_schedule_unit: ScheduleUnit = field(default="epoch", metadata={
        "help": "count the schedule in epochs or in updates"})
    maxsup_schedule_horizon: int = field(default=0, metadata={
        "help": "epochs/updates over which alpha goes from --maxsup-alpha to --maxsup-alpha-end; "
                "0 = --max-epoch or --max-update"})
    max_epoch: int = II("optimization.max_epoch")
    max_update: int = II("optimization.max_update")


@register_criterion("maxsup_cross_entropy", dataclass=MaxSupCrossEntropyConfig)
class MaxSupCrossEntropyCriterion(MethodCriterion):
    """Max Suppression: ``CE(onehot(y), p) + a (max_k z_k - mean_k z_k)`` per non-padding token;
    logs the penalty as ``maxsup`` (base 2, per token) and the current ``alpha``."""

    method = "maxsup"
    option_fields = {"alpha": "maxsup_alpha", "alpha_end": "maxsup_alpha_end"}
    penalty_log = "maxsup"

    def __init__(self, task, sentence_avg, maxsup_alpha=0.1, maxsup_alpha_end=None, maxsup_schedule_unit="epoch",
                 maxsup_schedule_horizon=0, max_epoch=0, max_update=0, ignore_prefix_size=0,
                 report_accuracy=False, fused_output_layer=False, no_validate_args=False):
        super().__init__(
            task, sentence_avg, MaxSupOptions(alpha=maxsup_alpha, alpha_end=maxsup_alpha_end),
            schedule=FairseqSchedule(str(maxsup_schedule_unit), maxsup_schedule_horizon, max_epoch, max_update),
            schedule_fields={"schedule_unit": "maxsup_schedule_unit", "schedule_horizon": "maxsup_schedule_horizon"},
            ignore_prefix_size=ignore_prefix_size, report_accuracy=report_accuracy,
            fused_output_layer=fused_output_layer, no_validate_args=no_validate_args)
