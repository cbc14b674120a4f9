"""fairseq criteria: ``ls_cross_entropy``, ``maxsup_cross_entropy`` and ``ols_cross_entropy``.

Importing this module registers them with fairseq (it is the only place that does). fairseq finds
them through ``--user-dir``: the repository's ``criterions/`` folder, or the folder printed by
``labelreg-nlp user-dir`` for a pip install. The math lives in :mod:`labelreg_nlp.functional`;
this adapter only slices fairseq batches, picks ``sample_size`` and logs like fairseq's own
``label_smoothed_cross_entropy`` (loss and nll_loss in base 2, ppl, accuracy).
"""

# No `from __future__ import annotations` here: fairseq reads the config dataclasses'
# field types at runtime to build its command-line options.
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

# torch >= 2.6 loads with weights_only=True, which fairseq checkpoints (argparse/omegaconf objects)
# cannot pass; fairseq-generate and --restore-file would fail. Only a default: a user's explicit
# setting wins. Must run before fairseq loads a checkpoint, i.e. at --user-dir import time.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import torch  # noqa: E402
from fairseq import utils  # noqa: E402
from fairseq.criterions import FairseqCriterion, register_criterion  # noqa: E402
from fairseq.dataclass import ChoiceEnum, FairseqDataclass  # noqa: E402
from fairseq.logging import metrics  # noqa: E402
from omegaconf import II  # noqa: E402

from .functional import LossParts, check_alpha, label_smoothing_parts, maxsup_parts  # noqa: E402
from .online_label_smoothing import OnlineLabelSmoothing  # noqa: E402
from .schedules import AlphaSchedule, make_schedule  # noqa: E402

LN2 = math.log(2.0)


@dataclass
class TokenCriterionConfig(FairseqDataclass):
    """Options shared by every criterion of this package (same names as fairseq's)."""

    report_accuracy: bool = field(default=False, metadata={"help": "report accuracy metric"})
    ignore_prefix_size: int = field(default=0, metadata={"help": "Ignore first N tokens"})
    sentence_avg: bool = II("optimization.sentence_avg")


class TokenCriterion(FairseqCriterion):
    """Base: translate a fairseq sample into ``(logits, target, padding_idx)``, call the core,
    return ``(summed loss, sample_size, logging_output)`` exactly as fairseq's criteria do."""

    def __init__(self, task, sentence_avg: bool, ignore_prefix_size: int = 0, report_accuracy: bool = False):
        super().__init__(task)
        if ignore_prefix_size < 0:
            raise ValueError(f"--ignore-prefix-size must be >= 0, got {ignore_prefix_size}")
        self.sentence_avg = sentence_avg
        self.ignore_prefix_size = ignore_prefix_size
        self.report_accuracy = report_accuracy

    # -- subclasses implement this ------------------------------------------------------------
    def compute_parts(self, logits: torch.Tensor, target: torch.Tensor, keep_per_position: bool) -> LossParts:
        raise NotImplementedError

    def extra_logging(self, parts: LossParts, sample_size: int, target: torch.Tensor) -> dict[str, Any]:
        return {}

    # -- fairseq plumbing -----------------------------------------------------------------------
    def logits_and_target(self, model, net_output, sample) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder logits ``[B, T, V]`` and targets ``[B, T]``, prefix removed.

        Raw logits give the same numbers as fairseq's log-probs (log_softmax is idempotent) and
        avoid a float32 [B*T, V] copy; adaptive softmax has no full-vocabulary logits, so it goes
        through ``get_normalized_probs``.
        """
        if getattr(getattr(model, "decoder", None), "adaptive_softmax", None) is not None:
            logits = model.get_normalized_probs(net_output, log_probs=True)
        else:
            logits = net_output[0]
        target = model.get_targets(sample, net_output)
        if self.ignore_prefix_size > 0:
            logits = logits[:, self.ignore_prefix_size :, :]
            target = target[:, self.ignore_prefix_size :]
        return logits, target

    def forward(self, model, sample, reduce: bool = True):
        net_output = model(**sample["net_input"])
        logits, target = self.logits_and_target(model, net_output, sample)
        parts = self.compute_parts(logits, target, keep_per_position=not reduce)
        loss = parts.loss if reduce else parts.per_position.reshape(-1)
        sample_size = sample["target"].size(0) if self.sentence_avg else sample["ntokens"]
        logging_output = {
            "loss": parts.loss.data,
            "nll_loss": parts.nll.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["target"].size(0),
            "sample_size": sample_size,
            **self.extra_logging(parts, sample_size, target),
        }
        if self.report_accuracy:
            logging_output["n_correct"] = utils.item(parts.ncorrect.data)
            logging_output["total"] = utils.item(parts.ntokens.data)
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """Aggregate logging outputs from data parallel training (fairseq's formulas)."""
        loss_sum = sum(log.get("loss", 0) for log in logging_outputs)
        nll_loss_sum = sum(log.get("nll_loss", 0) for log in logging_outputs)
        ntokens = sum(log.get("ntokens", 0) for log in logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)

        metrics.log_scalar("loss", loss_sum / sample_size / LN2, sample_size, round=3)
        metrics.log_scalar("nll_loss", nll_loss_sum / ntokens / LN2, ntokens, round=3)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg))

        total = utils.item(sum(log.get("total", 0) for log in logging_outputs))
        if total > 0:
            metrics.log_scalar("total", total)
            n_correct = utils.item(sum(log.get("n_correct", 0) for log in logging_outputs))
            metrics.log_scalar("n_correct", n_correct)
            metrics.log_derived(
                "accuracy",
                lambda meters: round(meters["n_correct"].sum * 100.0 / meters["total"].sum, 3)
                if meters["total"].sum > 0
                else float("nan"),
            )
        cls.reduce_extra_metrics(logging_outputs, sample_size, ntokens)

    @classmethod
    def reduce_extra_metrics(cls, logging_outputs, sample_size, ntokens) -> None:
        pass

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True


def follow_training_progress(task, on_epoch: Callable[[int], None], on_update: Callable[[int], None]) -> None:
    """Call ``on_epoch(epoch)`` (1-based) and ``on_update(num_updates)`` as fairseq trains.

    fairseq gives criteria no such hooks, but its Trainer calls ``task.begin_epoch(epoch, model)``
    at every epoch start (resume included) and ``task.train_step(..., update_num, ...)`` at every
    step, for any task; wrapping those bound methods on this task instance works for all tasks.
    """
    begin_epoch, train_step = task.begin_epoch, task.train_step

    def begin_epoch_hook(epoch, model):
        on_epoch(int(epoch))
        return begin_epoch(epoch, model)

    def train_step_hook(sample, model, criterion, optimizer, update_num, *args, **kwargs):
        on_update(int(update_num))
        return train_step(sample, model, criterion, optimizer, update_num, *args, **kwargs)

    task.begin_epoch = begin_epoch_hook
    task.train_step = train_step_hook


SMOOTHING_CONVENTIONS = ChoiceEnum(["fairseq", "uniform"])


@dataclass
class LSCrossEntropyConfig(TokenCriterionConfig):
    label_smoothing: float = field(
        default=0.0, metadata={"help": "epsilon for label smoothing, 0 means no label smoothing"}
    )
    smoothing_convention: SMOOTHING_CONVENTIONS = field(
        default="fairseq",
        metadata={
            "help": "fairseq: target 1-eps, others eps/(V-1) (fairseq's label_smoothed_cross_entropy); "
            "uniform: target 1-eps+eps/V, others eps/V (torch, HF, the papers)"
        },
    )


@register_criterion("ls_cross_entropy", dataclass=LSCrossEntropyConfig)
class LSCrossEntropyCriterion(TokenCriterion):
    """Label-smoothed cross-entropy; with defaults, fairseq's ``label_smoothed_cross_entropy``."""

    def __init__(self, task, sentence_avg, label_smoothing, smoothing_convention="fairseq",
                 ignore_prefix_size=0, report_accuracy=False):
        super().__init__(task, sentence_avg, ignore_prefix_size, report_accuracy)
        self.eps = check_alpha(label_smoothing, "--label-smoothing")
        self.convention = str(smoothing_convention)

    def compute_parts(self, logits, target, keep_per_position):
        return label_smoothing_parts(
            logits, target, self.eps, ignore_index=self.padding_idx,
            convention=self.convention, keep_per_position=keep_per_position,
        )


SCHEDULE_UNITS = ChoiceEnum(["epoch", "update"])


@dataclass
class MaxSupCrossEntropyConfig(TokenCriterionConfig):
    maxsup_alpha: float = field(
        default=0.1, metadata={"help": "MaxSup weight alpha (at the first epoch/update when scheduled)"}
    )
    maxsup_alpha_end: Optional[float] = field(
        default=None,
        metadata={"help": "if set, alpha grows linearly to this value over the schedule horizon "
                  "(MaxSup paper Appendix E: 0.1 -> 0.2)"},
    )
    maxsup_schedule_unit: SCHEDULE_UNITS = field(
        default="epoch", metadata={"help": "count the schedule in epochs or in updates"}
    )
    maxsup_schedule_horizon: int = field(
        default=0,
        metadata={"help": "epochs/updates over which alpha goes from --maxsup-alpha to "
                  "--maxsup-alpha-end; 0 = --max-epoch or --max-update"},
    )
    max_epoch: int = II("optimization.max_epoch")
    max_update: int = II("optimization.max_update")


@register_criterion("maxsup_cross_entropy", dataclass=MaxSupCrossEntropyConfig)
class MaxSupCrossEntropyCriterion(TokenCriterion):
    """Cross-entropy plus ``alpha * (max_k z_k - mean_k z_k)`` per non-padding token."""

    def __init__(self, task, sentence_avg, maxsup_alpha=0.1, maxsup_alpha_end=None,
                 maxsup_schedule_unit="epoch", maxsup_schedule_horizon=0, max_epoch=0, max_update=0,
                 ignore_prefix_size=0, report_accuracy=False):
        super().__init__(task, sentence_avg, ignore_prefix_size, report_accuracy)
        check_alpha(maxsup_alpha, "--maxsup-alpha")
        if maxsup_alpha_end is not None:
            check_alpha(maxsup_alpha_end, "--maxsup-alpha-end")
        self.unit = str(maxsup_schedule_unit)
        horizon = maxsup_schedule_horizon or (max_epoch if self.unit == "epoch" else max_update)
        if maxsup_alpha_end is not None and maxsup_alpha_end != maxsup_alpha and not horizon:
            raise ValueError(
                f"--maxsup-alpha-end={maxsup_alpha_end} needs a horizon: set --maxsup-schedule-horizon "
                f"or --max-{self.unit}"
            )
        self.schedule: AlphaSchedule = make_schedule(maxsup_alpha, maxsup_alpha_end, horizon)
        self.epoch, self.num_updates = 1, 0
        follow_training_progress(task, self.set_epoch, self.set_num_updates)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_num_updates(self, num_updates: int) -> None:
        self.num_updates = num_updates

    @property
    def alpha(self) -> float:
        step = self.epoch - 1 if self.unit == "epoch" else self.num_updates
        return self.schedule(step)

    def compute_parts(self, logits, target, keep_per_position):
        return maxsup_parts(
            logits, target, self.alpha, ignore_index=self.padding_idx, keep_per_position=keep_per_position
        )

    def extra_logging(self, parts, sample_size, target):
        # Weighted by sample_size so that summed logging outputs still average correctly.
        return {"maxsup": parts.penalty.data, "maxsup_alpha": self.alpha * sample_size}

    @classmethod
    def reduce_extra_metrics(cls, logging_outputs, sample_size, ntokens) -> None:
        penalty = sum(log.get("maxsup", 0) for log in logging_outputs)
        alpha = sum(log.get("maxsup_alpha", 0) for log in logging_outputs)
        # Base 2 and per token like nll_loss, so loss ~= nll_loss + alpha * maxsup in the logs.
        metrics.log_scalar("maxsup", penalty / max(ntokens, 1) / LN2, ntokens, round=3)
        metrics.log_scalar("alpha", alpha / max(sample_size, 1), sample_size, round=4)


OLS_INITS = ChoiceEnum(["uniform", "ls", "zeros"])


@dataclass
class OLSCrossEntropyConfig(TokenCriterionConfig):
    ols_hard_weight: float = field(default=0.5, metadata={"help": "weight of CE against the hard label (paper: alpha = 0.5)"})
    ols_soft_weight: float = field(default=0.5, metadata={"help": "weight of CE against the online soft label (paper: 1 - alpha)"})
    ols_period_updates: int = field(
        default=0, metadata={"help": "end an OLS period every N updates; 0 = at every epoch boundary"})
    ols_init: OLS_INITS = field(
        default="uniform", metadata={"help": "soft labels of the first period: uniform (paper), ls, zeros (official code)"})
    ols_init_alpha: float = field(default=0.1, metadata={"help": "smoothing weight for --ols-init ls"})
    ols_topk: int = field(
        default=0, metadata={"help": "sparse soft labels keeping the top-k classes per row; "
                             "0 = dense up to 2048 classes, else k = 64"})
    ols_dense: bool = field(default=False, metadata={"help": "force dense K x K soft labels"})


@register_criterion("ols_cross_entropy", dataclass=OLSCrossEntropyConfig)
class OLSCrossEntropyCriterion(TokenCriterion):
    """Online Label Smoothing over target tokens: ``w_hard CE(onehot) + w_soft CE(S[y])``."""

    def __init__(self, task, sentence_avg, ols_hard_weight=0.5, ols_soft_weight=0.5, ols_period_updates=0,
                 ols_init="uniform", ols_init_alpha=0.1, ols_topk=0, ols_dense=False,
                 ignore_prefix_size=0, report_accuracy=False):
        super().__init__(task, sentence_avg, ignore_prefix_size, report_accuracy)
        if ols_period_updates < 0:
            raise ValueError(f"--ols-period-updates must be >= 0, got {ols_period_updates}")
        self.ols = OnlineLabelSmoothing(
            len(task.target_dictionary), hard_weight=ols_hard_weight, soft_weight=ols_soft_weight,
            init=str(ols_init), init_alpha=ols_init_alpha, topk=ols_topk or None, dense=ols_dense)
        self.period_updates = int(ols_period_updates)
        # fairseq saves a criterion's state_dict in checkpoints only if it has a parameter; this
        # empty one (added to the loss times zero, so DDP and the optimizer see it used) makes
        # the OLS buffers survive --restore-file.
        self.checkpoint_anchor = torch.nn.Parameter(torch.zeros(0))
        # epoch whose accumulation is pending, last update that ended a period: saved with the state
        self.register_buffer("current_epoch", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_period_update", torch.zeros((), dtype=torch.long))
        follow_training_progress(task, self.on_epoch, self.on_update)

    def on_epoch(self, epoch: int) -> None:
        if self.period_updates == 0 and 0 < int(self.current_epoch) < epoch:
            self.ols.step_period()
        self.current_epoch.fill_(epoch)

    def on_update(self, num_updates: int) -> None:
        if (self.period_updates and num_updates > 0 and num_updates % self.period_updates == 0
                and num_updates != int(self.last_period_update)):
            self.ols.step_period()
            self.last_period_update.fill_(num_updates)

    def compute_parts(self, logits, target, keep_per_position):
        return self.ols.parts(logits, target, ignore_index=self.padding_idx, keep_per_position=keep_per_position)

    def forward(self, model, sample, reduce: bool = True):
        loss, sample_size, logging_output = super().forward(model, sample, reduce)
        return loss + 0.0 * self.checkpoint_anchor.sum(), sample_size, logging_output

    def extra_logging(self, parts, sample_size, target):
        with torch.no_grad():
            tokens = target[target != self.padding_idx]
            mass = self.ols.target_mass(tokens).sum()
        return {"ols_soft": parts.penalty.data, "ols_target_mass": mass,
                "ols_periods": int(self.ols.periods) * sample_size}

    @classmethod
    def reduce_extra_metrics(cls, logging_outputs, sample_size, ntokens) -> None:
        soft = sum(log.get("ols_soft", 0) for log in logging_outputs)
        mass = sum(log.get("ols_target_mass", 0) for log in logging_outputs)
        periods = sum(log.get("ols_periods", 0) for log in logging_outputs)
        # CE against the soft labels, base 2 per token like nll_loss; falls as the model agrees with S
        metrics.log_scalar("ols_soft", soft / max(ntokens, 1) / LN2, ntokens, round=3)
        # mean S[y][y] over target tokens: 1/V before the first period, then what the model learned
        metrics.log_scalar("ols_target_mass", mass / max(ntokens, 1), ntokens, round=4)
        metrics.log_scalar("ols_periods", periods / max(sample_size, 1), sample_size, round=1)
