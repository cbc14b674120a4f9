"""``ls_cross_entropy``: label smoothing, exactly fairseq's ``label_smoothed_cross_entropy`` by
default (``--smoothing-convention fairseq``), with an optional alpha schedule; ``none`` is
``--label-smoothing 0``."""

from dataclasses import dataclass, field
from typing import Optional

from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum
from omegaconf import II

from ...losses.smoothing import CONVENTIONS, LabelSmoothingOptions
from .base import FairseqSchedule, MethodCriterion, ScheduleUnit, TokenCriterionConfig


@dataclass
class LSCrossEntropyConfig(TokenCriterionConfig):
    label_smoothing: float = field(default=0.0, metadata={
        "help": "epsilon for label smoothing, 0 means no label smoothing (with --label-smoothing-end: the "
                "schedule's start); [0, 1]"})
    smoothing_convention: ChoiceEnum(list(CONVENTIONS)) = field(default="fairseq", metadata={
        "help": "fairseq: target 1-a, others a/(K-1) (fairseq's label_smoothed_cross_entropy); uniform: target "
                "1-a+a/K, others a/K (torch, HF, the papers)"})
    label_smoothing_end: Optional[float] = field(default=None, metadata={  # noqa: UP045 (fairseq reads runtime types)
        "help": "if set, the smoothing weight goes linearly to this value over the schedule horizon; [0, 1]"})
    ls_schedule_unit: ScheduleUnit = field(default="epoch", metadata={"help": "count the schedule in epochs or in updates"})
    ls_schedule_horizon: int = field(default=0, metadata={
        "help": "epochs/updates over which the weight goes from --label-smoothing to --label-smoothing-end; "
                "0 = --max-epoch or --max-update"})
    max_epoch: int = II("optimization.max_epoch")
    max_update: int = II("optimization.max_update")


@register_criterion("ls_cross_entropy", dataclass=LSCrossEntropyConfig)
class LSCrossEntropyCriterion(MethodCriterion):
    """Label Smoothing: ``(1-a) CE(onehot(y), p) + a CE(u, p)`` per non-padding token.

    Takes the arguments of fairseq's ``LabelSmoothedCrossEntropyCriterion`` in its order
    (``task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy``), plus its own.
    """

    method = "ls"
    option_fields = {"alpha": "label_smoothing", "alpha_end": "label_smoothing_end",
                     "convention": "smoothing_convention"}

    def __init__(self, task, sentence_avg, label_smoothing=0.0, ignore_prefix_size=0, report_accuracy=False,
                 smoothing_convention="fairseq", label_smoothing_end=None, ls_schedule_unit="epoch",
                 ls_schedule_horizon=0, max_epoch=0, max_update=0, fused_output_layer=False,
                 no_validate_args=False):
        super().__init__(
            task, sentence_avg,
            LabelSmoothingOptions(alpha=label_smoothing, alpha_end=label_smoothing_end,
                                  convention=str(smoothing_convention)),
            schedule=FairseqSchedule(str(ls_schedule_unit), ls_schedule_horizon, max_epoch, max_update),
            schedule_fields={"schedule_unit": "ls_schedule_unit", "schedule_horizon": "ls_schedule_horizon"},
            ignore_prefix_size=ignore_prefix_size, report_accuracy=report_accuracy,
            fused_output_layer=fused_output_layer, no_validate_args=no_validate_args)
        self.log_alpha = label_smoothing_end is not None  # unscheduled, it logs what fairseq's own criterion logs
